//! mandala: computations that save, query and version themselves.
//!
//! Mark functions with [`op`]; inside a storage context every call is memoized on disk (or in
//! memory), so the same call is never computed twice: not later in the process, not in the
//! next run, not on a colleague's machine that pulled the store.
//!
//! ```
//! use mandala::{op, Storage};
//!
//! #[op]
//! fn inc(x: u64) -> u64 {
//!     x + 1
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let storage = Storage::open(dir.path().join("demo.mandala"))?;
//! let y = storage.run(|| inc(inc(1)?))?;      // executes twice
//! assert_eq!(storage.unwrap(&y)?, 3);
//! storage.run(|| inc(inc(1)?))?;              // executes nothing
//! assert_eq!(storage.stats().total.executed, 2);
//! assert_eq!(storage.stats().total.hits, 2);
//! # Ok::<(), mandala::Error>(())
//! ```
//!
//! # `#[op]`
//! - Arguments and results are any `serde` types (`Serialize + DeserializeOwned + Clone`).
//!   Each parameter `x: T` accepts `T`, `Ref<T>` or `&Ref<T>`; passing another op's output
//!   keeps its history, passing a plain value makes a source ref.
//! - The op returns `mandala::Result<Ref<T>>`, or a tuple of refs for a tuple return type.
//!   An op returning `Result<T, E>` returns `Result<Ref<T>, E>` (with `E: From<mandala::Error>`)
//!   and stores only `Ok` values.
//! - Options: `#[op(name = "...")]` pins the op's identity (renaming the Rust function keeps its
//!   results); `output_names(a, b)` names the outputs (default `output_0`, `output_1`, …);
//!   `ignore(arg)` passes the argument without hashing or storing it;
//!   `new_default(arg = EXPR)` leaves the argument out of the call's identity when it equals
//!   `EXPR`, so calls made before the argument existed stay hits.
//! - Each op comes with a handle to its name, `inc::OP` (a module beside the function), for
//!   `storage.cf(inc::OP)`: a typo fails to compile. (So a module of the op's name cannot sit
//!   beside the op.)
//! - Outside a storage context an op runs as a plain function (its results are detached refs);
//!   in a [`noop`](Engine::noop) context it executes without reading or writing anything. An op
//!   called inside another op's body is memoized as its own call.
//!
//! # Collections
//! A `Vec<T>` or `HashMap` argument or result is one value. An [`MList<T>`] or [`MDict<T>`]
//! (string keys, ascending) is stored per element: each element is a ref with its own history
//! (element `i` of output `o` of call `c`), stored once however many collections hold it, and
//! an op over a list built from other lists' elements keeps their histories. An `MList<T>`
//! parameter accepts a `Vec<T>`, a `Vec<Ref<T>>`, a slice of element refs or a list ref;
//! unwrapping a list ref gives a `Vec<T>`.
//!
//! ```
//! use mandala::{op, MList, Storage};
//!
//! #[op]
//! fn primes_below(n: u64) -> MList<u64> {
//!     (2..n).filter(|k| (2..*k).all(|d| k % d != 0)).collect()
//! }
//!
//! #[op]
//! fn total(xs: MList<u64>) -> u64 {
//!     xs.iter().sum()
//! }
//!
//! let storage = Storage::in_memory();
//! let primes = storage.run(|| primes_below(10))?;
//! assert_eq!(primes.len(), 4);
//! assert_eq!(storage.unwrap(&primes[3])?, 7); // an element's ref
//! let s = storage.run(|| total(&primes[1..]))?; // a slice keeps the elements' histories
//! assert_eq!(storage.unwrap(&s)?, 3 + 5 + 7);
//! assert_eq!(storage.unwrap(&primes)?, vec![2, 3, 5, 7]);
//! # Ok::<(), mandala::Error>(())
//! ```
//!
//! # Pointers
//! [`Pointer::new("training-set-v3", data)`](Pointer) passed where an op takes the data's type
//! makes the name the input's identity: the data is hashed and stored once, the first time the
//! store sees the name, and later calls are found by name without reading it.
//!
//! ```
//! use mandala::{op, Pointer, Storage};
//!
//! #[op]
//! fn mean(xs: Vec<f64>) -> f64 {
//!     xs.iter().sum::<f64>() / xs.len() as f64
//! }
//!
//! let storage = Storage::in_memory();
//! let data = vec![1.0, 2.0, 3.0];
//! let m = storage.run(|| mean(Pointer::new("training-set-v3", data.clone())))?;
//! assert_eq!(storage.unwrap(&m)?, 2.0);
//! // The same name: a hit, whatever the data (the data is not looked at).
//! storage.run(|| mean(Pointer::new("training-set-v3", vec![])))?;
//! assert_eq!(storage.stats().total.hits, 1);
//! # Ok::<(), mandala::Error>(())
//! ```
//!
//! # Guarantees
//! See `docs/FORMAT.md` for the on-disk format and its invariants (write-once files, merge by
//! union of files, every object verifiable).

use std::ops::Deref;
use std::path::Path;

pub use store_core::frame::{Cell, ComputationFrame, Table, CELL_WIDTH};
pub use store_core::version::global::Tracked;
pub use store_core::version::history::Change;
pub use store_core::{
    Arg, Backend, CallName, CallRecord, Engine, Error, Id, IdPrefix, IntoArg, Kind, MDict, MList,
    MemoryBackend, Mode, OpName, OpStats, OpValue, Pointer, Ref, RefIds, Result, Slot, Stats,
    StoredCall, Value,
};
pub use store_core::{CallError, FormatError, FrameError, StoreError, VersioningError};
pub use store_core::{ChangeReport, ComponentChange, Versioning};
pub use store_fs::{Durability, FsBackend, OpenOptions, VerifyReport};
/// Makes a function a memoized op. See the [crate docs](crate#op) for its options.
///
/// ```
/// use mandala::{op, Storage};
///
/// #[op(output_names(quotient, remainder))]
/// fn divmod(a: u64, b: u64) -> (u64, u64) {
///     (a / b, a % b)
/// }
///
/// let storage = Storage::in_memory();
/// let (q, r) = storage.run(|| divmod(17, 5))?;
/// assert_eq!((storage.unwrap(&q)?, storage.unwrap(&r)?), (3, 2));
/// # Ok::<(), mandala::Error>(())
/// ```
pub use store_macros::op;
pub use store_remote::{Progress, RemoteConfig, Remotes, SyncOptions, SyncReport};

/// Tracks a function, the methods of an impl block, or a static, for versioning: while an op
/// executes with versioning on, each call of a tracked function and each read of a tracked
/// static is recorded as a dependency of that op call, and the call is reused later only if
/// all of them still have the same content. Formatting and comments are not content.
///
/// A component is named `module::path::item` (`crate::module::Type::method` for methods);
/// `#[track(name = "...")]` pins the name of a function or a static, so it keeps its history
/// when it moves between modules or crates. `#[track(cosmetic_of = "<content id prefix>")]`
/// declares a change cosmetic.
///
/// ```
/// use mandala::{op, track, Storage, Versioning};
///
/// #[track]
/// static SCALE: f64 = 2.0;
///
/// #[track]
/// fn scale(x: f64) -> f64 {
///     x * *SCALE
/// }
///
/// #[op]
/// fn prepare(x: f64) -> f64 {
///     scale(x) + 1.0
/// }
///
/// let storage = Storage::in_memory().versioned(Versioning::tracking([""]))?;
/// let y = storage.run(|| prepare(3.0))?;
/// let call = storage.get_ref_creator(&y)?.unwrap();
/// let deps: Vec<&str> = call.record.deps.keys().map(|k| k.as_str()).collect();
/// assert_eq!(deps.len(), 3); // prepare, scale and SCALE
/// # Ok::<(), mandala::Error>(())
/// ```
pub use store_macros::track;

/// docs/GUIDE.md, whose examples run as this crate's doc tests (so the guide cannot drift from
/// the code).
#[doc = include_str!("../docs/GUIDE.md")]
#[cfg(doctest)]
pub mod guide {}

/// The README, whose complete example compiles as a doc test (`no_run`: run, it would leave
/// its store in the repository, beside the quickstart's); its sketches are marked `ignore`,
/// and the guide holds them whole.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub mod readme {}

/// Support code for the `#[op]` macro. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use store_core::engine::call::{begin, detached, Begin, CallBuilder, Hit, Input, OpSpec};
    pub use store_core::inventory;
    pub use store_core::version::component::{source_id, ComponentKind, ComponentSpec};
    pub use store_core::version::deps::touch;
}

/// A store of memoized calls, and the context ops run in.
///
/// Cheap to clone (shared). Everything the engine offers ([`Engine::run`],
/// [`Engine::unwrap`], [`Engine::get_ref_creator`], …) is available through `Deref`.
#[derive(Clone)]
pub struct Storage {
    engine: Engine,
    fs: Option<FsBackend>,
    /// The remote this store fetches from on demand, if any.
    lazy: Option<std::sync::Arc<store_remote::LazyRemote>>,
}

impl Storage {
    /// Opens the store at `path`, creating it if the directory does not exist or is empty.
    ///
    /// Fails with [`StoreError::NotAStore`] for a non-empty directory without `mandala.toml`, and
    /// with [`StoreError::UnsupportedFormat`] for a store written by a newer format.
    pub fn open(path: impl AsRef<Path>) -> Result<Storage> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens (or creates) the store at `path` with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Storage> {
        let fs = FsBackend::open_with(path.as_ref(), options)?;
        let engine = Engine::new(Box::new(fs.clone()));
        engine.set_git_commit_with(git_head);
        let storage = Storage {
            engine,
            fs: Some(fs),
            lazy: None,
        };
        // A remote marked `lazy` in the store's remotes.toml (the first, by name).
        let remotes = store_remote::Remotes::load(path.as_ref())?;
        let lazy = remotes
            .iter()
            .find(|(_, c)| c.lazy)
            .map(|(n, _)| n.to_string());
        match lazy {
            Some(name) => storage.with_remote(&name),
            None => Ok(storage),
        }
    }

    /// Fetches on demand from remote `name` (see `remotes.toml`, docs/REMOTES.md): a lookup
    /// that misses here first takes in what is new on the remote (its packs: records and
    /// small values), and a large value is downloaded when it is loaded. A worker with an
    /// empty store so reuses every call the team pushed, downloading only what it loads. An
    /// unreachable remote is warned about and the call computed.
    ///
    /// ```
    /// # use mandala::{op, Storage};
    /// #[op]
    /// fn inc(x: u64) -> u64 { x + 1 }
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("file://{}", dir.path().join("remote").display());
    /// let a = Storage::open(dir.path().join("a.mandala"))?;
    /// a.run(|| inc(1))?;
    /// a.add_remote("origin", &url)?;
    /// a.push("origin")?;
    /// let b = Storage::open(dir.path().join("b.mandala"))?;
    /// b.add_remote("origin", &url)?;
    /// let b = b.with_remote("origin")?;
    /// assert_eq!(b.unwrap(&b.run(|| inc(1))?)?, 2); // fetched, not computed
    /// assert_eq!(b.stats().total.executed, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_remote(mut self, name: &str) -> Result<Storage> {
        let fs = self.on_disk("fetch on demand into")?;
        let lazy = std::sync::Arc::new(store_remote::LazyRemote::open(fs, name)?);
        fs.set_fallback(lazy.clone());
        self.lazy = Some(lazy);
        Ok(self)
    }

    /// What fetching on demand downloaded so far (files, bytes) and the requests it made;
    /// `None` without a lazy remote.
    pub fn remote_report(&self) -> Option<SyncReport> {
        self.lazy.as_ref().map(|l| l.report())
    }

    /// A store that lives in memory and disappears with the process.
    pub fn in_memory() -> Storage {
        let engine = Engine::in_memory();
        engine.set_git_commit_with(git_head);
        Storage {
            engine,
            fs: None,
            lazy: None,
        }
    }

    /// Turns versioning on (see [`Versioning`] and [`track`]); call right after opening.
    pub fn versioned(self, versioning: Versioning) -> Result<Storage> {
        self.engine.enable_versioning(versioning)?;
        Ok(self)
    }

    /// A ComputationFrame of every stored call of `op` (see [`ComputationFrame`]): its name,
    /// or better the handle `#[op]` makes, `storage.cf(inc::OP)`, which a typo cannot miss.
    pub fn cf(&self, op: impl AsRef<str>) -> Result<ComputationFrame> {
        ComputationFrame::from_op(&self.engine, op.as_ref())
    }

    /// A ComputationFrame with one variable per named group of refs.
    ///
    /// ```
    /// # use mandala::{op, Storage, RefIds};
    /// #[op]
    /// fn inc(x: i64) -> i64 { x + 1 }
    /// let storage = Storage::in_memory();
    /// let ys = storage.run(|| (0..3).map(inc).collect::<mandala::Result<Vec<_>>>())?;
    /// let mut cf = storage.cf_from(vec![("y", ys.iter().map(|r| r.ids()).collect())]);
    /// cf.expand_back(None, true)?;
    /// let table = cf.df(false)?.values()?;
    /// assert_eq!(table.columns, ["x", "inc()", "y"]); // `inc()`: the calls
    /// assert_eq!(table.len(), 3);
    /// # Ok::<(), mandala::Error>(())
    /// ```
    pub fn cf_from(&self, groups: Vec<(&str, Vec<RefIds>)>) -> ComputationFrame {
        ComputationFrame::from_refs(
            &self.engine,
            groups
                .into_iter()
                .map(|(n, ids)| (n, ids.into_iter().map(|i| (i.hid, i.cid)).collect())),
        )
    }

    /// A ComputationFrame with one variable per tag, named after it, holding the ref it names
    /// (see [`Engine::tag`]): expand it back to see how tagged results were computed.
    pub fn cf_from_tags(&self, names: &[&str]) -> Result<ComputationFrame> {
        let mut groups = Vec::new();
        for name in names {
            let t = self.engine.find_tag(name)?.ok_or_else(|| {
                Error::Store(StoreError::Tag {
                    name: name.to_string(),
                    reason: "no such tag".into(),
                })
            })?;
            groups.push((*name, vec![(t.current.hid, t.current.cid)]));
        }
        Ok(ComputationFrame::from_refs(&self.engine, groups))
    }

    /// Runs `f` on every input in turn in this storage's context and returns the results in
    /// input order (stopping at the first error): [`Storage::par_map`] on one thread.
    pub fn map<I, R>(
        &self,
        inputs: impl IntoIterator<Item = I>,
        f: impl Fn(I) -> Result<R>,
    ) -> Result<Vec<R>> {
        self.run(|| inputs.into_iter().map(&f).collect())
    }

    /// Runs `f` on every input on all cores, each in this storage's context, and returns the
    /// results in input order (the first error, in input order, if any fails). A call several
    /// inputs reach at once is computed once: the other threads wait for it and count it as a
    /// hit (`stats().total.waited`).
    ///
    /// Any thread pool works the same way: call `storage.run` inside each task (a context is
    /// per thread; `Storage` is `Send + Sync` and cheap to clone).
    ///
    /// ```
    /// # use mandala::{op, Storage};
    /// #[op]
    /// fn square(x: u64) -> u64 { x * x }
    /// let storage = Storage::in_memory();
    /// let ys = storage.par_map(vec![1, 2, 3, 2, 1], square)?;
    /// let values: Vec<u64> = ys.iter().map(|y| storage.unwrap(y)).collect::<mandala::Result<_>>()?;
    /// assert_eq!(values, [1, 4, 9, 4, 1]);
    /// assert_eq!(storage.stats().op("square").executed, 3);
    /// # Ok::<(), mandala::Error>(())
    /// ```
    pub fn par_map<I: Send, R: Send>(
        &self,
        inputs: impl IntoIterator<Item = I>,
        f: impl Fn(I) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let items: Vec<std::sync::Mutex<Option<I>>> = inputs
            .into_iter()
            .map(|i| std::sync::Mutex::new(Some(i)))
            .collect();
        let results: Vec<std::sync::Mutex<Option<Result<R>>>> =
            items.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(items.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let _context = self.engine.enter(Mode::Run);
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let input = item.lock().unwrap().take().expect("taken once");
                        *results[i].lock().unwrap() = Some(f(input));
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|r| r.into_inner().unwrap().expect("every input ran"))
            .collect()
    }

    /// The on-disk backend, for a store opened from a path.
    pub fn fs(&self) -> Option<&FsBackend> {
        self.fs.as_ref()
    }

    /// Pushes to remote `name` (see `remotes.toml`, docs/REMOTES.md) every content file it
    /// lacks: the calls stored so far by this handle included (its log is sealed first).
    ///
    /// ```
    /// # use mandala::{op, Storage};
    /// #[op]
    /// fn inc(x: u64) -> u64 { x + 1 }
    /// let dir = tempfile::tempdir()?;
    /// let a = Storage::open(dir.path().join("a.mandala"))?;
    /// a.run(|| inc(1))?;
    /// let url = format!("file://{}", dir.path().join("remote").display());
    /// a.add_remote("origin", &url)?;
    /// a.push("origin")?;
    /// let b = Storage::open(dir.path().join("b.mandala"))?;
    /// b.add_remote("origin", &url)?;
    /// b.pull("origin")?;
    /// b.run(|| inc(1))?; // a hit: computed by `a`
    /// assert_eq!(b.stats().total.executed, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, name: &str) -> Result<SyncReport> {
        store_remote::push(self.on_disk("push")?, name, &SyncOptions::default())
    }

    /// Fetches from remote `name` every call this store lacks, with its history, and the
    /// large values they name: afterwards each of them is a hit here.
    pub fn pull(&self, name: &str) -> Result<SyncReport> {
        store_remote::pull(self.on_disk("pull")?, name, &SyncOptions::default())
    }

    /// Like [`pull`](Self::pull) without the large values.
    pub fn fetch(&self, name: &str) -> Result<SyncReport> {
        store_remote::fetch(self.on_disk("fetch")?, name, &SyncOptions::default())
    }

    /// Adds remote `name` at `url` (`s3://bucket/prefix`, `file:///path`) to this store's
    /// `remotes.toml`.
    pub fn add_remote(&self, name: &str, url: &str) -> Result<()> {
        let fs = self.on_disk("add a remote to")?;
        store_remote::Remotes::load(fs.root())?.add(
            name,
            store_remote::RemoteConfig {
                url: url.to_string(),
                ..Default::default()
            },
        )
    }

    fn on_disk(&self, action: &str) -> Result<&FsBackend> {
        self.fs.as_ref().ok_or_else(|| {
            Error::Store(StoreError::Remote {
                remote: String::new(),
                url: String::new(),
                reason: format!("cannot {action} an in-memory store"),
            })
        })
    }

    /// Checks every object of an on-disk store (see [`FsBackend::verify`]); an in-memory store
    /// has nothing to verify and reports clean.
    pub fn verify(&self) -> Result<VerifyReport> {
        match &self.fs {
            Some(fs) => fs.verify(),
            None => Ok(VerifyReport::default()),
        }
    }
}

impl Deref for Storage {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// The value of `r`, loading it through the current storage context if it is lazy. Useful in
/// an op's body, where nested ops return refs.
pub fn unwrap<T: OpValue>(r: &Ref<T>) -> Result<T::Plain> {
    let current = store_core::engine::context::current();
    T::unwrap_ref(r, current.as_ref().map(|(engine, _)| engine))
}

/// Whether a storage context (`run` or `noop`) is active on this thread.
pub fn in_context() -> bool {
    store_core::engine::context::current().is_some()
}

/// The mode of this thread's current storage context: [`Mode::Run`] (memoizing),
/// [`Mode::Noop`] (executing only), or `None` outside any.
pub fn current_mode() -> Option<Mode> {
    Engine::current_mode()
}

/// The HEAD commit of the git repository the program runs in (found from the current
/// directory, as git finds `.git`), read once per process; `None` outside a repository or
/// without the `git` feature. Only HEAD is read: checking whether the work tree is dirty would
/// double what git support adds to a clean build (measured: +27 s for HEAD, +55 s with status,
/// on 2 cores), so it is left out.
pub fn git_head() -> Option<String> {
    static HEAD: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HEAD.get_or_init(|| {
        #[cfg(feature = "git")]
        {
            let dir = std::env::current_dir().ok()?;
            let repo = gix::discover(dir).ok()?;
            let id = repo.head_id().ok()?;
            Some(id.to_string())
        }
        #[cfg(not(feature = "git"))]
        None
    })
    .clone()
}
