//! `mandala`: inspect and verify a mandala store without the program that wrote it.
//!
//! Definitions of the command line live here; each command is a function in [`commands`]
//! that writes to an `impl Write`. Exit codes: 0 success, 1 a failed check (`fsck` found
//! problems), 2 an error (bad input, missing store, I/O). A closed pipe exits 0.

mod busy;
mod commands;
mod discover;
mod json;
mod lookup;
mod pager;
mod remote;

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `mandala --version`: the version and the store formats it reads and writes.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (store formats 1 to {}; new stores: format {})",
        env!("CARGO_PKG_VERSION"),
        store_fs::FORMAT_VERSION,
        store_fs::FORMAT_VERSION
    )
});

/// Inspect, query and verify mandala stores.
#[derive(Parser, Debug)]
#[command(name = "mandala", version = VERSION.as_str(), about)]
pub struct Cli {
    /// The store to use. Default: $MANDALA_STORE, else the nearest store in the current
    /// directory or its parents (a directory with mandala.toml, or a single *.mandala child),
    /// stopping before the directories in $MANDALA_CEILING_DIRECTORIES.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress or "working…" line on the terminal.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a store (in PATH, or --store, or ./.mandala).
    Init {
        /// Where to create it.
        path: Option<PathBuf>,
    },
    /// Counts and sizes per kind of object.
    Status,
    /// Name a ref (as git tags a commit): NAME then names what PREFIX names (a ref hid, or an
    /// output's value), in every command that takes a prefix.
    Tag {
        /// The tag's name: `/`-separated parts of letters, digits, `.`, `_`, `-`.
        name: String,
        /// A hash prefix of a ref (or of a value that some call output), or another tag.
        prefix: String,
        /// Re-point a name that already names another ref.
        #[arg(long)]
        force: bool,
    },
    /// Every tag with the ref it names (and names merged stores pointed elsewhere).
    Tags,
    /// Print the shell completion script for SHELL (e.g. `mandala completions bash >
    /// ~/.local/share/bash-completion/completions/mandala`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Each op with its number of stored calls.
    Ops,
    /// One line per stored call of OP: inputs → outputs.
    Calls {
        /// The op's name.
        op: String,
        /// Show at most this many characters of each value.
        #[arg(long, default_value_t = 40)]
        width: usize,
        /// With --json: every value in full (by default a value longer than --width is cut).
        #[arg(long)]
        values: bool,
    },
    /// Show the object with this hash prefix: a value, a call, or a ref.
    Show {
        /// At least 4 hex digits of a cid, call hid, call cid or ref hid.
        prefix: String,
    },
    /// Print the value with this hash prefix (a value cid or a ref hid) as JSON.
    Cat {
        /// At least 4 hex digits.
        prefix: String,
    },
    /// Check every object of the store; exit 1 if any is damaged.
    Fsck,
    /// The history of a component (op, tracked function or global), like `git log`.
    Log {
        /// The component's name (`train_model`, `my_crate::scale_data`).
        component: String,
        /// Show each version's diff from its parent.
        #[arg(long, short)]
        patch: bool,
    },
    /// The semantic versions of an op: the components its calls depended on, with their texts.
    Versions {
        /// The op's name.
        op: String,
    },
    /// Decide whether a pending change of a component is cosmetic (calls made with its earlier
    /// version stay valid) or semantic. The next run of the program applies it.
    #[command(group(clap::ArgGroup::new("change").required(true).args(["cosmetic", "semantic"])))]
    Mark {
        /// The component's name, as the change report or strict mode names it.
        component: String,
        /// At least 8 hex digits of its new content id, as they show it.
        content: String,
        /// The change is cosmetic (calls computed before it stay valid).
        #[arg(long)]
        cosmetic: bool,
        /// The change is semantic (calls recompute).
        #[arg(long)]
        semantic: bool,
    },
    /// The table of an op's calls (a ComputationFrame), without the program.
    ///
    /// One row per trace of computation, one column per variable, plus the calls with --calls.
    /// Names: an op's calls are `op()`; an op's one unnamed output is named after the op
    /// (`accuracy`), named outputs keep their names (`train`, `test`), and an input is named
    /// after the output that produced it, else after its argument; a name two outputs would
    /// share is qualified by the op (`split.train`). Rows are in a stable order of their ids
    /// unless --sort names a column.
    ///
    /// Example: mandala cf accuracy --expand back --columns learning_rate,accuracy --format csv
    Cf {
        /// The op.
        op: String,
        /// Expand the frame before making the table.
        #[arg(long, value_enum)]
        expand: Option<Expand>,
        /// Keep only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Keep only traces through every sink variable (an inner join).
        #[arg(long)]
        inner: bool,
        /// Also show the call columns (`op()`: which call made each row); values only without.
        #[arg(long)]
        calls: bool,
        /// Sort the rows by this column's values (numbers by value; by default rows are in a
        /// stable order of their ids).
        #[arg(long, value_name = "COLUMN")]
        sort: Option<String>,
    },
    /// The graph of an op's calls (a ComputationFrame) as Graphviz DOT text, or drawn as SVG.
    Graph {
        /// The op.
        op: String,
        /// Expand the frame first.
        #[arg(long, value_enum)]
        expand: Option<Expand>,
        /// Show counts of refs, sources, sinks, edge elements, calls and versions.
        #[arg(long)]
        verbose: bool,
        /// Draw the graph as SVG into this file (laid out in-process; no graphviz needed).
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
    },
    /// Remove values that no call or version names any more (after deleting calls).
    Gc {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave values younger than this many seconds (a writer may be about to name them).
        #[arg(long, default_value_t = 3600)]
        min_age_secs: u64,
    },
    /// Merge the store's packs (and, in formats 2 and 3, its loose small objects) into one
    /// pack of the version its format writes, and remove what it replaced; safe beside
    /// running programs.
    Pack {
        /// Say what would be merged, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Convert a format-1 store (one file per object) or a format-2 store (packs of version 1)
    /// to format 3 (packs of version 2: half the bytes a call). An older mandala then refuses
    /// the store with an "upgrade mandala" message instead of missing its calls.
    Upgrade,
    /// Manage the store's remotes (kept in its remotes.toml; never a secret).
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
    },
    /// Upload to a remote every pack, large value, version record and decision it lacks.
    Push {
        /// The remote (default: origin, or the store's only remote).
        name: Option<String>,
    },
    /// Download from a remote every call this store lacks, with its history and values.
    Pull {
        /// The remote (default: origin, or the store's only remote).
        name: Option<String>,
    },
    /// Like pull, without the large values (they can be pulled later).
    Fetch {
        /// The remote (default: origin, or the store's only remote).
        name: Option<String>,
    },
    /// A unified diff between two versions, by version id prefix.
    Diff {
        /// The older version.
        a: String,
        /// The newer version.
        b: String,
    },
}

/// What `mandala remote` does.
#[derive(Subcommand, Debug)]
pub enum RemoteAction {
    /// Add a remote: s3://bucket/prefix or file:///absolute/path. Credentials come from the
    /// AWS environment variables and profile files, never from the store.
    Add {
        /// Its name (e.g. origin).
        name: String,
        /// Its URL.
        url: String,
        /// The S3 endpoint of an S3-compatible server (MinIO, Ceph, R2, moto).
        #[arg(long)]
        endpoint: Option<String>,
        /// The S3 region.
        #[arg(long)]
        region: Option<String>,
        /// The AWS profile to take credentials from.
        #[arg(long)]
        profile: Option<String>,
        /// Fetch on demand: programs opening the store ask this remote before computing a
        /// call the store lacks, and download large values only when they load them.
        #[arg(long)]
        lazy: bool,
    },
    /// List the remotes.
    List,
    /// Remove a remote (nothing on the remote is touched).
    Remove {
        /// Its name.
        name: String,
    },
}

/// How to expand a frame.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Expand {
    /// Add the calls that created its refs, recursively.
    Back,
    /// Add the calls that consumed its refs, recursively.
    Forward,
    /// Both, until nothing changes.
    All,
}

/// Table output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text.
    Table,
    /// Comma-separated values.
    Csv,
    /// A JSON array of objects.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    // Long work says it is working (on a terminal); its output is printed once the line is
    // gone, so the two never mix (and is buffered only then, or for the pager).
    let wanted = !cli.quiet && !cli.json && io::stderr().is_terminal();
    let busy = match &cli.command {
        Command::Status => Some("reading the store"),
        Command::Fsck => Some("checking every object"),
        Command::Gc { .. } => Some("collecting"),
        Command::Pack { .. } => Some("packing"),
        Command::Cf { .. } | Command::Graph { .. } => Some("building the frame"),
        _ => None,
    }
    .filter(|_| wanted);
    // Output that can be long goes through a pager on a terminal, as git's does.
    let paged = matches!(
        &cli.command,
        Command::Calls { .. }
            | Command::Cf { .. }
            | Command::Show { .. }
            | Command::Log { .. }
            | Command::Versions { .. }
            | Command::Diff { .. }
            | Command::Graph { .. }
            | Command::Ops
            | Command::Tags
    ) && io::stdout().is_terminal();
    let result = if busy.is_some() || paged {
        let line = busy.map(|what| busy::Busy::start(what, true));
        let mut buffered = Vec::new();
        let result = commands::run(&cli, &mut buffered);
        drop(line);
        let shown = if paged {
            pager::show(&buffered, &mut out)
        } else {
            out.write_all(&buffered)
        };
        shown.map_err(anyhow::Error::from).and(result)
    } else {
        commands::run(&cli, &mut out)
    };
    match result {
        Ok(code) => {
            let _ = out.flush();
            code
        }
        Err(e) => {
            let broken_pipe = |io: &io::Error| io.kind() == io::ErrorKind::BrokenPipe;
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>().is_some_and(broken_pipe)
                    || matches!(c.downcast_ref::<store_core::Error>(),
                        Some(store_core::Error::Store(store_core::StoreError::Io { cause, .. })) if broken_pipe(cause))
            }) {
                return ExitCode::SUCCESS;
            }
            let _ = out.flush();
            eprintln!("mandala: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
