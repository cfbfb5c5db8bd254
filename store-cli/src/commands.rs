//! The commands: each reads the store and writes text or JSON to `out`.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value as Json};
use store_core::version::history::Change;
use store_core::{Backend, Id, Slot, StoredCall};
use store_fs::{FsBackend, OpenOptions};

use crate::json::{short, to_json};
use crate::lookup::{resolve, Object};
use crate::{discover, Cli, Command};

/// Runs the command line `cli`, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut impl Write) -> Result<ExitCode> {
    if let Command::Completions { shell } = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut command, "mandala", out);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Init { path } = &cli.command {
        let path = path
            .clone()
            .or_else(|| cli.store.clone())
            .unwrap_or_else(|| ".mandala".into());
        let existed = path.join("mandala.toml").exists();
        let store = FsBackend::open_with(&path, OpenOptions::default())
            .with_context(|| format!("cannot create a store in {}", path.display()))?;
        let verb = if existed {
            "Store already exists in"
        } else {
            "Created an empty store in"
        };
        if cli.json {
            writeln!(
                out,
                "{}",
                json!({"store": store.describe(), "created": !existed})
            )?;
        } else {
            writeln!(out, "{verb} {}", store.describe())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = discover::find(cli.store.as_deref())?;
    let store = FsBackend::open_existing(&path)?;
    match &cli.command {
        Command::Init { .. } | Command::Completions { .. } => unreachable!("handled above"),
        Command::Status => status(&store, cli.json, out),
        Command::Ops => ops(&store, cli.json, out),
        Command::Tag {
            name,
            prefix,
            force,
        } => tag(&store, name, prefix, *force, cli.json, out),
        Command::Tags => tags(&store, cli.json, out),
        Command::Calls { op, width, values } => calls(&store, op, *width, cli.json, *values, out),
        Command::Show { prefix } => show(&store, prefix, cli.json, out),
        Command::Cat { prefix } => cat(&store, prefix, out),
        Command::Fsck => fsck(&store, cli.json, out),
        Command::Log { component, patch } => log(&store, component, *patch, cli.json, out),
        Command::Versions { op } => versions(&store, op, cli.json, out),
        Command::Gc {
            dry_run,
            min_age_secs,
        } => gc(&store, *dry_run, *min_age_secs, cli.json, out),
        Command::Pack { dry_run } => {
            let report = store.pack(*dry_run)?;
            pack_report(&report, cli.json, out)
        }
        Command::Remote { action } => crate::remote::manage(&store, action, cli.json, out),
        Command::Push { name } => {
            crate::remote::transfer(&store, "push", name.as_deref(), cli.quiet, cli.json, out)
        }
        Command::Pull { name } => {
            crate::remote::transfer(&store, "pull", name.as_deref(), cli.quiet, cli.json, out)
        }
        Command::Fetch { name } => {
            crate::remote::transfer(&store, "fetch", name.as_deref(), cli.quiet, cli.json, out)
        }
        Command::Upgrade => {
            if store.format() >= store_fs::FORMAT_VERSION {
                writeln!(
                    out,
                    "{} is already format {}",
                    store.describe(),
                    store.format()
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let report = store.upgrade()?;
            writeln!(out, "{} is now format {}", store.describe(), store.format())?;
            pack_report(&report, cli.json, out)
        }
        Command::Graph {
            op,
            expand,
            verbose,
            svg,
        } => {
            let frame = expanded_frame(&store, op, *expand)?;
            match svg {
                Some(path) => {
                    frame.draw_svg(path, *verbose)?;
                    if cli.json {
                        writeln!(out, "{}", json!({"wrote": path.display().to_string()}))?;
                    } else {
                        writeln!(out, "wrote {}", path.display())?;
                    }
                }
                None if cli.json => writeln!(out, "{}", frame.to_json())?,
                None => write!(out, "{}", frame.to_dot(*verbose))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cf {
            op,
            expand,
            columns,
            format,
            inner,
            calls,
            sort,
        } => {
            let format = if cli.json {
                crate::Format::Json
            } else {
                *format
            };
            let shape = TableShape {
                columns,
                inner: *inner,
                calls: *calls,
                sort: sort.as_deref(),
            };
            cf(&store, op, *expand, &shape, format, out)
        }
        Command::Mark {
            component,
            content,
            cosmetic,
            ..
        } => {
            let known = known_components(&store)?;
            if !known.contains(component.as_str()) {
                anyhow::bail!(
                    "no component '{component}' in {}: only a component with a history in the store can change{}",
                    store.describe(),
                    did_you_mean(component, &known)
                );
            }
            let change = if *cosmetic {
                Change::Cosmetic
            } else {
                Change::Semantic
            };
            store_core::Engine::new(Box::new(store.clone())).mark(component, content, change)?;
            let kind = if *cosmetic { "cosmetic" } else { "semantic" };
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"component": component, "content": content, "change": kind})
                )?;
            } else {
                writeln!(
                    out,
                    "Marked the change of {component} to {content} as {kind}."
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { a, b } => {
            let patch = store_core::version::inspect::diff(&store, a, b)?;
            if cli.json {
                writeln!(out, "{}", json!({"from": a, "to": b, "diff": patch}))?;
            } else {
                write!(out, "{patch}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A value as JSON, from its file (the CLI shows what the store's files say, never the call
/// index's copy). A collection (docs/FORMAT.md §6c) shows as its elements: an array for a
/// list, an object for a dict; a pointer (§6d) as `{"pointer": name}`.
fn value_json(store: &FsBackend, cid: &Id) -> Result<Json> {
    value_json_upto(store, cid, usize::MAX)
}

/// [`value_json`] reading at most `limit` elements of a collection; the rest are counted in a
/// last `"… N more"` element (a dict: under the key `"…"`). For text cut to a width anyway.
fn value_json_upto(store: &FsBackend, cid: &Id, limit: usize) -> Result<Json> {
    use store_core::format::collection::Shape;
    let bytes = store
        .read_value_file(cid)?
        .with_context(|| format!("value {cid} is not in the store {}", store.describe()))?;
    match Shape::decode(&bytes) {
        Some(Shape::List(cids)) => {
            let mut items = Vec::new();
            for c in cids.iter().take(limit) {
                items.push(value_json_upto(store, c, limit)?);
            }
            if cids.len() > limit {
                items.push(json!(format!("… {} more", cids.len() - limit)));
            }
            Ok(Json::Array(items))
        }
        Some(Shape::Dict(entries)) => {
            let mut obj = serde_json::Map::new();
            for (k, c) in entries.iter().take(limit) {
                obj.insert(k.clone(), value_json_upto(store, c, limit)?);
            }
            if entries.len() > limit {
                obj.insert("…".into(), json!(format!("{} more", entries.len() - limit)));
            }
            Ok(Json::Object(obj))
        }
        None if store_core::format::collection::pointer_name(&bytes).is_some() => {
            let name = store_core::format::collection::pointer_name(&bytes).expect("checked");
            Ok(json!({ "pointer": name }))
        }
        None => {
            let v: ciborium::Value = store_core::format::cbor::from_slice(&bytes)
                .with_context(|| format!("value {cid} is not valid CBOR"))?;
            Ok(to_json(&v))
        }
    }
}

/// Elements a collection shows in one line of text (cut to its width after).
const BRIEF_ELEMENTS: usize = 16;

fn status(store: &FsBackend, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    let st = store.status()?;
    let n_ops = store.op_counts()?.len();
    if as_json {
        let kind = |k: store_fs::KindStatus| json!({"count": k.count, "bytes": k.bytes});
        writeln!(
            out,
            "{}",
            json!({
                "store": store.describe(),
                "format": store.format(),
                "ops": n_ops,
                "values": {
                    "count": st.value_count(),
                    "loose": kind(st.values),
                    "packed": st.packed_values,
                    "logged": st.logged_values,
                },
                "calls": {
                    "count": st.call_count(),
                    "loose": kind(st.calls),
                    "packed": st.packed_calls,
                    "logged": st.logged_calls,
                },
                "packs": kind(st.packs),
                "logs": kind(st.logs),
                "temp": kind(st.temp),
            })
        )?;
    } else {
        writeln!(out, "store   {}", store.describe())?;
        writeln!(out, "format  {}", store.format())?;
        writeln!(out, "ops     {n_ops}")?;
        for (what, total, loose, packed, logged) in [
            (
                "calls",
                st.call_count(),
                st.calls,
                st.packed_calls,
                st.logged_calls,
            ),
            (
                "values",
                st.value_count(),
                st.values,
                st.packed_values,
                st.logged_values,
            ),
        ] {
            writeln!(
                out,
                "{what:<7} {total:>8}  ({} loose files of {} bytes, {packed} in packs, {logged} in logs)",
                loose.count, loose.bytes
            )?;
        }
        writeln!(
            out,
            "packs   {:>8}  ({} bytes)",
            st.packs.count, st.packs.bytes
        )?;
        if st.logs.count > 0 {
            writeln!(
                out,
                "logs    {:>8}  ({} bytes: of running writers, or sealed by the next writer)",
                st.logs.count, st.logs.bytes
            )?;
        }
        if st.temp.count > 0 {
            writeln!(
                out,
                "temp    {:>8} files (interrupted or ongoing writes)",
                st.temp.count
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tag(
    store: &FsBackend,
    name: &str,
    prefix: &str,
    force: bool,
    as_json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let (hid, cid) = match resolve(store, prefix)? {
        Object::Ref { hid, cid, .. } => (hid, cid),
        // A value some call output: the ref of that output (the first by call, if several).
        Object::Value(cid) => {
            let calls = store.all_calls()?;
            let hid = calls
                .iter()
                .flat_map(|c| &c.record.outputs)
                .find(|o| o.cid == cid)
                .map(|o| o.hid)
                .with_context(|| {
                    format!("value {cid} is no call's output; tag a ref (an output's hid) instead")
                })?;
            (hid, cid)
        }
        Object::Call(c) => anyhow::bail!(
            "{prefix} names call {} of op '{}', not a ref; tag one of its outputs",
            c.hid,
            c.record.op
        ),
        Object::CallGroup(cid, _) => {
            anyhow::bail!("{prefix} names call cid {cid}, not a ref; tag one of its outputs")
        }
    };
    let engine = store_core::Engine::new(Box::new(store.clone()));
    engine.tag_ids(name, store_core::RefIds { cid, hid }, force)?;
    if as_json {
        writeln!(
            out,
            "{}",
            json!({"tag": name, "hid": hid.to_string(), "cid": cid.to_string()})
        )?;
    } else {
        writeln!(out, "Tagged ref {} as {name}.", hid.short(12))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn tags(store: &FsBackend, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    let tags = store_core::format::tag::resolve(&store.tag_records()?);
    if as_json {
        let v: Vec<Json> = tags
            .iter()
            .map(|t| {
                json!({
                    "tag": t.name,
                    "hid": t.current.hid.to_string(),
                    "cid": t.current.cid.to_string(),
                    "time": t.current.time,
                    "conflicts": t.conflicts.iter().map(|c| c.hid.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", Json::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    let w = tags.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &tags {
        let value = value_json_upto(store, &t.current.cid, BRIEF_ELEMENTS)
            .map(|v| short(&v, 40))
            .unwrap_or_else(|_| "(value not in the store)".into());
        write!(
            out,
            "{:<w$}  ref {}  {value}",
            t.name,
            t.current.hid.short(12)
        )?;
        if !t.conflicts.is_empty() {
            let others: Vec<String> = t.conflicts.iter().map(|c| c.hid.short(12)).collect();
            write!(
                out,
                "  (merged stores also point it at {})",
                others.join(", ")
            )?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ops(store: &FsBackend, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    let ops = store.op_counts()?;
    if as_json {
        let list: Vec<Json> = ops
            .iter()
            .map(|(op, n)| {
                json!({"op": op, "calls": n, "structural": store_core::format::collection::is_structural(op)})
            })
            .collect();
        writeln!(out, "{}", Json::Array(list))?;
    } else {
        let w = ops.keys().map(|k| k.len()).max().unwrap_or(0);
        for (op, n) in &ops {
            // Structural calls are mandala's own: collections built and taken apart, pointers.
            let note = if store_core::format::collection::is_structural(op) {
                "  (structural: collections and pointers)"
            } else {
                ""
            };
            writeln!(
                out,
                "{op:<w$}  {n} call{}{note}",
                if *n == 1 { "" } else { "s" }
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How much of each value a call's JSON holds: all of it, or at most this many characters of
/// its compact JSON text (a longer value becomes that text cut, with `"cut": true`).
#[derive(Clone, Copy)]
enum Values {
    Full,
    Upto(usize),
}

fn slots_json(store: &FsBackend, slots: &[Slot], values: Values) -> Result<Json> {
    let mut v = Vec::new();
    for s in slots {
        let mut slot = json!({"name": s.name, "hid": s.hid.to_string(), "cid": s.cid.to_string()});
        match values {
            Values::Full => slot["value"] = value_json(store, &s.cid)?,
            Values::Upto(width) => {
                let value = value_json_upto(store, &s.cid, BRIEF_ELEMENTS)?;
                let text = value.to_string();
                if text.chars().count() <= width {
                    slot["value"] = value;
                } else {
                    slot["value"] = Json::String(short(&value, width));
                    slot["cut"] = Json::Bool(true);
                }
            }
        }
        v.push(slot);
    }
    Ok(Json::Array(v))
}

fn call_json(store: &FsBackend, c: &StoredCall) -> Result<Json> {
    call_json_with(store, c, Values::Full)
}

fn call_json_with(store: &FsBackend, c: &StoredCall, values: Values) -> Result<Json> {
    Ok(json!({
        "kind": "call",
        "op": c.record.op,
        "hid": c.hid.to_string(),
        "cid": c.cid.to_string(),
        "key": c.key.to_string(),
        "rid": c.rid.to_string(),
        "semver": c.record.semver.to_string(),
        "git": c.record.git,
        "inputs": slots_json(store, &c.record.inputs, values)?,
        "outputs": slots_json(store, &c.record.outputs, values)?,
    }))
}

fn calls(
    store: &FsBackend,
    op: &str,
    width: usize,
    as_json: bool,
    full_values: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let mine = store.calls_of_op(op)?;
    if mine.is_empty() {
        let known = store
            .op_counts()?
            .into_keys()
            .collect::<Vec<_>>()
            .join(", ");
        anyhow::bail!(
            "no calls of op '{op}' in {} (ops: {})",
            store.describe(),
            if known.is_empty() { "none" } else { &known }
        );
    }
    if as_json {
        let values = if full_values {
            Values::Full
        } else {
            Values::Upto(width)
        };
        let mut v = Vec::new();
        for c in &mine {
            v.push(call_json_with(store, c, values)?);
        }
        writeln!(out, "{}", Json::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    let fmt = |slots: &[Slot]| -> Result<String> {
        let mut parts = Vec::new();
        for s in slots {
            parts.push(format!(
                "{}={}",
                s.name,
                short(&value_json_upto(store, &s.cid, BRIEF_ELEMENTS)?, width)
            ));
        }
        Ok(parts.join(" "))
    };
    for c in &mine {
        writeln!(
            out,
            "{}  {} → {}",
            c.hid.short(12),
            fmt(&c.record.inputs)?,
            fmt(&c.record.outputs)?
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_call(store: &FsBackend, c: &StoredCall, out: &mut impl Write) -> Result<()> {
    writeln!(out, "call {}", c.hid)?;
    writeln!(out, "op       {}", c.record.op)?;
    writeln!(out, "cid      {}", c.cid)?;
    writeln!(out, "key      {}", c.key)?;
    writeln!(out, "record   {}", c.rid)?;
    if let Some(git) = &c.record.git {
        writeln!(out, "git      {git}")?;
    }
    for (title, slots) in [("inputs", &c.record.inputs), ("outputs", &c.record.outputs)] {
        writeln!(out, "{title}:")?;
        for s in slots {
            writeln!(
                out,
                "  {} = {}",
                s.name,
                short(&value_json_upto(store, &s.cid, BRIEF_ELEMENTS)?, 60)
            )?;
            writeln!(
                out,
                "      hid {}  cid {}",
                s.hid.short(16),
                s.cid.short(16)
            )?;
        }
    }
    Ok(())
}

fn show(store: &FsBackend, prefix: &str, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    match resolve(store, prefix)? {
        Object::Value(cid) => {
            let v = value_json(store, &cid)?;
            if as_json {
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "value", "cid": cid.to_string(), "value": v})
                )?;
            } else {
                writeln!(out, "value {cid}")?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
        }
        Object::Call(c) => {
            if as_json {
                writeln!(out, "{}", call_json(store, &c)?)?;
            } else {
                write_call(store, &c, out)?;
            }
        }
        Object::CallGroup(cid, calls) => {
            if as_json {
                let mut v = Vec::new();
                for c in &calls {
                    v.push(call_json(store, c)?);
                }
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "calls", "cid": cid.to_string(), "calls": v})
                )?;
            } else {
                writeln!(
                    out,
                    "call cid {cid}: {} call(s) with this content",
                    calls.len()
                )?;
                for c in &calls {
                    writeln!(out)?;
                    write_call(store, c, out)?;
                }
            }
        }
        Object::Ref { hid, cid, creator } => {
            let v = value_json(store, &cid)?;
            if as_json {
                let created = creator.map(|(c, name)| json!({"call": c.hid.to_string(), "op": c.record.op, "output": name}));
                writeln!(
                    out,
                    "{}",
                    json!({"kind": "ref", "hid": hid.to_string(), "cid": cid.to_string(), "creator": created, "value": v})
                )?;
            } else {
                writeln!(out, "ref {hid}")?;
                writeln!(out, "cid      {cid}")?;
                match creator {
                    Some((c, name)) => writeln!(
                        out,
                        "created  output '{name}' of {} call {}",
                        c.record.op,
                        c.hid.short(16)
                    )?,
                    None => writeln!(out, "created  outside any op (a source value)")?,
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cat(store: &FsBackend, prefix: &str, out: &mut impl Write) -> Result<ExitCode> {
    let cid = match resolve(store, prefix)? {
        Object::Value(cid) | Object::Ref { cid, .. } => cid,
        Object::Call(c) => anyhow::bail!(
            "{prefix} names call {} of op '{}', not a value; use `mandala show`",
            c.hid,
            c.record.op
        ),
        Object::CallGroup(cid, _) => {
            anyhow::bail!("{prefix} names call cid {cid}, not a value; use `mandala show`")
        }
    };
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&value_json(store, &cid)?)?
    )?;
    Ok(ExitCode::SUCCESS)
}

fn fsck(store: &FsBackend, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    let r = store.verify_counting(&crate::busy::DONE)?;
    if as_json {
        let list = |v: &[store_fs::Problem]| -> Vec<Json> {
            v.iter()
                .map(|p| json!({"path": p.path.display().to_string(), "problem": p.what}))
                .collect()
        };
        writeln!(
            out,
            "{}",
            json!({"values": r.values, "calls": r.calls, "problems": list(&r.problems), "warnings": list(&r.warnings), "clean": r.is_clean()})
        )?;
    } else {
        for p in &r.problems {
            writeln!(out, "error: {p}")?;
        }
        for p in &r.warnings {
            writeln!(out, "warning: {p}")?;
        }
        writeln!(
            out,
            "checked {} values and {} calls: {} problem(s), {} warning(s)",
            r.values,
            r.calls,
            r.problems.len(),
            r.warnings.len()
        )?;
    }
    Ok(if r.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The components with a history in the store.
fn known_components(store: &FsBackend) -> Result<BTreeSet<String>> {
    Ok(store
        .all_versions()?
        .into_iter()
        .map(|v| v.component)
        .collect())
}

/// "; did you mean …?" for the known names close to `name`: those with its last path segment,
/// else those a few letters off; or nothing.
fn did_you_mean(name: &str, known: &BTreeSet<String>) -> String {
    let last = |n: &str| n.rsplit("::").next().unwrap_or(n).to_string();
    let same_name: Vec<&str> = known
        .iter()
        .filter(|k| last(k) == last(name))
        .map(|k| k.as_str())
        .collect();
    let close = if same_name.is_empty() {
        known
            .iter()
            .filter(|k| strsim::levenshtein(k, name) <= 2)
            .map(|k| k.as_str())
            .collect()
    } else {
        same_name
    };
    match close.as_slice() {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        many => format!("; did you mean one of {}?", many.join(", ")),
    }
}

fn log(
    store: &FsBackend,
    component: &str,
    patch: bool,
    as_json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let history = store_core::version::inspect::source_history(store, component)?;
    if history.is_empty() {
        anyhow::bail!(
            "no history of component '{component}' in {}{}",
            store.describe(),
            did_you_mean(component, &known_components(store)?)
        );
    }
    if as_json {
        let v: Vec<Json> = history
            .iter()
            .map(|h| {
                json!({
                    "version": h.id.to_string(),
                    "content": h.record.content.to_string(),
                    "semantic": h.record.semantic.to_string(),
                    "parents": h.record.parents.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "git": h.record.git,
                    "text": h.text,
                })
            })
            .collect();
        writeln!(out, "{}", Json::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Newest first, as git log.
    for h in history.iter().rev() {
        let kind = if h.record.semantic == h.record.content {
            "semantic"
        } else {
            "cosmetic"
        };
        writeln!(out, "version {}", h.id)?;
        if !h.record.parents.is_empty() {
            let parents: Vec<String> = h.record.parents.iter().map(|p| p.short(12)).collect();
            writeln!(out, "parents  {}", parents.join(" "))?;
        }
        writeln!(
            out,
            "content  {}  ({kind}; semantic id {})",
            h.record.content.short(12),
            h.record.semantic.short(12)
        )?;
        if let Some(git) = &h.record.git {
            writeln!(out, "git      {git}")?;
        }
        if history
            .iter()
            .any(|o| o.record.content == h.record.content && o.record.semantic != h.record.semantic)
        {
            writeln!(out, "CONFLICT merged stores decided differently about this content; it counts as semantic")?;
        }
        if patch {
            let parent_text = h
                .record
                .parents
                .first()
                .and_then(|p| history.iter().find(|x| x.id == *p))
                .map(|x| x.text.as_str())
                .unwrap_or("");
            let diff = similar::TextDiff::from_lines(parent_text, h.text.as_str());
            write!(out, "{}", diff.unified_diff().header("parent", "this"))?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn versions(store: &FsBackend, op: &str, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    let versions = store_core::version::inspect::op_versions(store, op)?;
    if as_json {
        let v: Vec<Json> = versions
            .iter()
            .map(|v| {
                json!({
                    "semver": v.semver.to_string(),
                    "calls": v.calls,
                    "deps": v.deps.iter().map(|(k, id)| (k.clone(), Json::String(id.to_string()))).collect::<serde_json::Map<_, _>>(),
                    "texts": v.texts,
                })
            })
            .collect();
        writeln!(out, "{}", Json::Array(v))?;
        return Ok(ExitCode::SUCCESS);
    }
    for v in &versions {
        writeln!(
            out,
            "version {}  ({} call{})",
            v.semver.short(16),
            v.calls,
            if v.calls == 1 { "" } else { "s" }
        )?;
        if v.deps.is_empty() {
            writeln!(out, "  (unversioned calls: no dependencies recorded)")?;
        }
        for (name, id) in &v.deps {
            writeln!(out, "  {name}  {}", id.short(12))?;
            if let Some(text) = v.texts.get(name) {
                for line in text.lines() {
                    writeln!(out, "    | {line}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which table `cf` prints: its columns (all if empty), the join, and whether call columns
/// are shown.
struct TableShape<'a> {
    columns: &'a [String],
    inner: bool,
    calls: bool,
    sort: Option<&'a str>,
}

fn cf(
    store: &FsBackend,
    op: &str,
    expand: Option<crate::Expand>,
    shape: &TableShape<'_>,
    format: crate::Format,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let frame = expanded_frame(store, op, expand)?;
    let mut table = frame.df(shape.inner)?;
    if !shape.columns.is_empty() {
        // Chosen first, so that only the values shown are read.
        let names: Vec<&str> = shape.columns.iter().map(|s| s.as_str()).collect();
        table = table.select(&names)?;
    } else if !shape.calls {
        table = table.without_calls();
    }
    let mut table = table.values()?;
    if let Some(column) = shape.sort {
        table = table.sort_by(column)?;
    }
    match format {
        crate::Format::Table => {
            // The header in bold on a terminal.
            let text = table.to_string();
            match text.split_once('\n') {
                Some((header, rows)) => write!(out, "{}\n{rows}", crate::pager::bold(header))?,
                None => write!(out, "{text}")?,
            }
        }
        crate::Format::Csv => write!(out, "{}", table.to_csv())?,
        crate::Format::Json => writeln!(out, "{}", table.to_json())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn expanded_frame(
    store: &FsBackend,
    op: &str,
    expand: Option<crate::Expand>,
) -> Result<store_core::frame::ComputationFrame> {
    let engine = store_core::Engine::new(Box::new(store.clone()));
    let mut frame = store_core::frame::ComputationFrame::from_op(&engine, op)?;
    if frame.funcs().is_empty() {
        anyhow::bail!("no calls of op '{op}' in {}", store.describe());
    }
    match expand {
        Some(crate::Expand::Back) => frame.expand_back(None, true).map(|_| ())?,
        Some(crate::Expand::Forward) => frame.expand_forward(None, true).map(|_| ())?,
        Some(crate::Expand::All) => frame.expand_all().map(|_| ())?,
        None => {}
    }
    Ok(frame)
}

fn pack_report(r: &store_fs::PackReport, as_json: bool, out: &mut impl Write) -> Result<ExitCode> {
    if as_json {
        writeln!(
            out,
            "{}",
            json!({
                "dry_run": r.dry_run,
                "packs": r.packs,
                "loose": r.loose,
                "logs_sealed": r.logs,
                "values": r.values,
                "calls": r.calls,
                "bytes_before": r.bytes_before,
                "bytes_after": r.bytes_after,
                "damaged": r.damaged,
                "pack": r.pack.map(|p| p.to_string()),
            })
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if r.dry_run { "would merge" } else { "merged" };
    writeln!(
        out,
        "{verb} {} pack(s) and {} loose file(s) ({} bytes) into one pack of {} values and {} calls",
        r.packs, r.loose, r.bytes_before, r.values, r.calls
    )?;
    if r.logs > 0 {
        writeln!(out, "sealed {} log(s) of ended writers first", r.logs)?;
    }
    if let Some(p) = r.pack.filter(|_| !r.dry_run) {
        writeln!(out, "pack-{} ({} bytes)", p.short(16), r.bytes_after)?;
    }
    for d in &r.damaged {
        writeln!(out, "left out a damaged entry: {d}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(
    store: &FsBackend,
    dry_run: bool,
    min_age_secs: u64,
    as_json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let report = store.gc(dry_run, std::time::Duration::from_secs(min_age_secs))?;
    let bytes: u64 = report.values.iter().map(|(_, b)| b).sum();
    let verb = if report.removed {
        "removed"
    } else {
        "would remove"
    };
    if as_json {
        let ids: Vec<String> = report.values.iter().map(|(c, _)| c.to_string()).collect();
        writeln!(
            out,
            "{}",
            json!({"values": ids, "bytes": bytes, "removed": report.removed, "young": report.young})
        )?;
    } else {
        for (cid, b) in &report.values {
            writeln!(out, "{verb} value {cid} ({b} bytes)")?;
        }
        writeln!(
            out,
            "{verb} {} value(s), {bytes} bytes",
            report.values.len()
        )?;
        if report.young > 0 {
            writeln!(
                out,
                "left {} unreferenced value(s) younger than the grace period of {min_age_secs} s (a running program may be about to name them): a later gc removes them, or now with --min-age-secs 0 if no program is writing",
                report.young
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
