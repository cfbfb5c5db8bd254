//! The `mandala` binary against stores written by the library.

use std::path::Path;
use std::process::{Command, Output};

use mandala::{op, Id, Storage};

mod common;
use common::on_tty;
use serde_json::Value as Json;

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

#[op(output_names(quotient, remainder))]
fn divmod(a: u64, b: u64) -> (u64, u64) {
    (a / b, a % b)
}

fn mandala(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mandala"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MANDALA_STORE")
        .output()
        .unwrap()
}

/// The rows of a CSV of (learning_rate, epochs, accuracy), after checking its header.
fn accuracy_rows(csv: &str) -> Vec<(f64, u32, f64)> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("learning_rate,epochs,accuracy"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// `mandala cf accuracy` expanded back to the quickstart's parameters, as CSV (with `extra`
/// options): what [`accuracy_rows`] reads.
fn accuracy_csv(cwd: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "cf",
        "accuracy",
        "--expand",
        "back",
        "--columns",
        "learning_rate,epochs,accuracy",
        "--format",
        "csv",
    ];
    args.extend_from_slice(extra);
    ok(cwd, &args)
}

fn ok(cwd: &Path, args: &[&str]) -> String {
    let out = mandala(cwd, args);
    assert!(
        out.status.success(),
        "mandala {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(cwd: &Path, args: &[&str], code: i32) -> String {
    let out = mandala(cwd, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "mandala {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A store with inc(1), inc(2), inc(inc(1)) and divmod(17, 5).
fn sample() -> (tempfile::TempDir, Storage) {
    sample_with(mandala::OpenOptions::default())
}

/// The sample in a format-1 store (one file per object), for tests that damage loose files.
fn sample_v1() -> (tempfile::TempDir, Storage) {
    sample_with(mandala::OpenOptions {
        format: 1,
        ..Default::default()
    })
}

fn sample_with(options: mandala::OpenOptions) -> (tempfile::TempDir, Storage) {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open_with(d.path().join("lab.mandala"), options).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            inc(1)?;
            inc(2)?;
            inc(inc(1)?)?;
            divmod(17, 5)?;
            Ok(())
        })
        .unwrap();
    (d, storage)
}

#[test]
fn status_ops_and_calls() {
    let (d, _s) = sample();
    let status = ok(d.path(), &["status"]);
    assert!(status.contains("ops     2\n"), "{status}");
    assert!(
        status.contains("calls          4  (0 loose files of 0 bytes, 0 in packs, 4 in logs)"),
        "{status}"
    );
    assert!(status.contains("values         5  (0 loose"), "{status}");
    let j: Json = serde_json::from_str(&ok(d.path(), &["status", "--json"])).unwrap();
    assert_eq!(j["calls"]["count"], 4);
    assert_eq!(
        j["values"]["count"], 5,
        "1, 2, 3, 17, 5: the quotient and remainder are 3 and 2 again"
    );
    assert_eq!(ok(d.path(), &["ops"]), "divmod  1 call\ninc     3 calls\n");
    let j: Json = serde_json::from_str(&ok(d.path(), &["ops", "--json"])).unwrap();
    assert_eq!(
        j,
        serde_json::json!([
            {"op": "divmod", "calls": 1, "structural": false},
            {"op": "inc", "calls": 3, "structural": false}
        ])
    );
    let calls = ok(d.path(), &["calls", "divmod"]);
    assert!(
        calls.ends_with("  a=17 b=5 → quotient=3 remainder=2\n"),
        "{calls}"
    );
    let inc_calls = ok(d.path(), &["calls", "inc"]);
    let mut rows: Vec<&str> = inc_calls.lines().map(|l| &l[14..]).collect();
    rows.sort();
    assert_eq!(
        rows,
        ["x=1 → output_0=2", "x=2 → output_0=3", "x=2 → output_0=3"]
    );
    let e = fails(d.path(), &["calls", "nope"], 2);
    assert!(
        e.contains("no calls of op 'nope' in") && e.contains("(ops: divmod, inc)"),
        "{e}"
    );
}

#[test]
fn show_and_cat_by_prefix() {
    let (d, storage) = sample();
    let (q, _r) = storage.run(|| divmod(17, 5)).unwrap();
    let cid = q.cid().to_string();
    assert_eq!(ok(d.path(), &["cat", &cid[..10]]), "3\n");
    assert_eq!(
        ok(d.path(), &["cat", &q.hid().to_string()[..10]]),
        "3\n",
        "a ref hid works too"
    );
    let shown = ok(d.path(), &["show", &cid[..8]]);
    assert_eq!(shown, format!("value {cid}\n3\n"));
    let call = storage.get_ref_creator(&q).unwrap().unwrap();
    let j: Json = serde_json::from_str(&ok(
        d.path(),
        &["show", "--json", &call.hid.to_string()[..12]],
    ))
    .unwrap();
    assert_eq!(j["kind"], "call");
    assert_eq!(j["op"], "divmod");
    assert_eq!(
        j["git"].as_str().map(str::len),
        Some(40),
        "the repository's HEAD: {j}"
    );
    assert_eq!(j["outputs"][1]["name"], "remainder");
    assert_eq!(j["outputs"][1]["value"], 2);
    assert_eq!(j["inputs"][0]["value"], 17);
    let r = ok(d.path(), &["show", &q.hid().to_string()[..12]]);
    assert!(
        r.starts_with(&format!(
            "ref {}\ncid      {cid}\ncreated  output 'quotient' of divmod call",
            q.hid()
        )),
        "{r}"
    );
    let e = fails(d.path(), &["cat", &call.hid.to_string()[..12]], 2);
    assert!(e.contains("not a value; use `mandala show`"), "{e}");
}

#[test]
fn bad_prefixes_are_explained() {
    let (d, storage) = sample();
    let e = fails(d.path(), &["show", "12zz"], 2);
    assert_eq!(
        e,
        "mandala: error: '12zz' is not a hash: 'z' at position 2 is not a hex digit\n"
    );
    let e = fails(d.path(), &["show", "12"], 2);
    assert_eq!(
        e,
        "mandala: error: '12' has 2 hex digits; a hash prefix needs 4 to 64\n"
    );
    // Find two values whose cids share 4 hex digits, and store both.
    let cid = |i: i64| {
        Id::hash(
            mandala::Kind::Value,
            &store_core::format::cbor::to_canonical(&i).unwrap(),
        )
        .to_string()
    };
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..100_000i64)
        .find_map(|i| seen.insert(cid(i)[..4].to_string(), i).map(|j| (j, i)))
        .unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            inc(a - 1)?;
            inc(b - 1).map(|_| ())
        })
        .unwrap();
    let prefix = &cid(a)[..4];
    let e = fails(d.path(), &["show", prefix], 2);
    assert!(
        e.starts_with(&format!(
            "mandala: error: hash prefix {prefix} is ambiguous: it matches value "
        )),
        "{e}"
    );
    assert!(
        e.contains(&cid(a)[..16]) && e.contains(&cid(b)[..16]),
        "{e}"
    );
    let e = fails(d.path(), &["show", "0000000000"], 2);
    assert!(e.contains("object 0000000000 is not in the store"), "{e}");
}

#[test]
fn finds_the_store_like_git_and_explains_when_it_cannot() {
    let (d, _s) = sample();
    let sub = d.path().join("lab.mandala/tmp");
    assert!(ok(&sub, &["ops"]).contains("inc"), "inside the store");
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mandala"))
        .arg("status")
        .current_dir(other.path())
        .env_remove("MANDALA_STORE")
        .env(
            "MANDALA_CEILING_DIRECTORIES",
            other.path().parent().unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains("no mandala store in") && e.contains("pass --store PATH"),
        "{e}"
    );
    std::fs::write(other.path().join("x"), "").unwrap();
    let e = fails(
        d.path(),
        &["status", "--store", other.path().to_str().unwrap()],
        2,
    );
    assert!(
        e.contains("is not a mandala store: the directory holds no mandala.toml; create a store with `mandala init PATH`"),
        "{e}"
    );
    let child = d.path().join("project");
    std::fs::create_dir(&child).unwrap();
    assert!(
        ok(&child, &["ops"]).contains("divmod"),
        "found in the parent as a *.mandala child"
    );
}

#[test]
fn init_and_fsck() {
    let d = tempfile::tempdir().unwrap();
    assert!(ok(d.path(), &["init", "new.mandala"]).starts_with("Created an empty store in"));
    assert!(ok(d.path(), &["init", "new.mandala"]).starts_with("Store already exists in"));
    let (d, storage) = sample_v1();
    assert_eq!(
        ok(d.path(), &["fsck"]),
        "checked 5 values and 4 calls: 0 problem(s), 0 warning(s)\n"
    );
    let y = storage.run(|| inc(1)).unwrap();
    let path = store_fs::layout::value_path(&d.path().join("lab.mandala"), &y.cid());
    std::fs::write(&path, b"garbage").unwrap();
    let out = mandala(d.path(), &["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "error: {}: not a complete zstd frame",
            path.display()
        )),
        "{text}"
    );
    let j: Json = serde_json::from_str(&ok_or_code(d.path(), &["fsck", "--json"])).unwrap();
    assert_eq!(j["clean"], false);
}

fn ok_or_code(cwd: &Path, args: &[&str]) -> String {
    String::from_utf8(mandala(cwd, args).stdout).unwrap()
}

#[mandala::track]
fn halve(x: u64) -> u64 {
    x / 2
}

#[op]
fn halved(x: u64) -> u64 {
    halve(x) + 1
}

#[test]
fn log_versions_and_diff() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("lab.mandala"))
        .unwrap()
        .versioned(mandala::Versioning::tracking(["cli::"]))
        .unwrap();
    storage.run(|| halved(10)).unwrap();
    let log = ok(d.path(), &["log", "cli::halve", "--patch"]);
    assert!(log.starts_with("version "), "{log}");
    assert!(log.contains("(semantic; semantic id"), "{log}");
    // The stored source is the function as written, signature included.
    assert!(
        log.contains("+fn halve(x: u64) -> u64 {\n+    x / 2\n+}"),
        "{log}"
    );
    let versions = ok(d.path(), &["versions", "halved"]);
    assert!(
        versions.starts_with("version ") && versions.contains("(1 call)"),
        "{versions}"
    );
    assert!(
        versions.contains("  cli::halve  ") && versions.contains("    |     x / 2"),
        "{versions}"
    );
    let j: Json = serde_json::from_str(&ok(d.path(), &["log", "--json", "halved"])).unwrap();
    let id = j[0]["version"].as_str().unwrap().to_string();
    assert_eq!(
        ok(d.path(), &["diff", &id[..8], &id[..8]]),
        "",
        "a version against itself"
    );
    let j: Json =
        serde_json::from_str(&ok(d.path(), &["--json", "diff", &id[..8], &id[..8]])).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"from": &id[..8], "to": &id[..8], "diff": ""})
    );
    let e = fails(d.path(), &["log", "nothing"], 2);
    assert!(e.contains("no history of component 'nothing'"), "{e}");
    // A name without its module path: the components of that name are suggested.
    let e = fails(d.path(), &["log", "halve"], 2);
    assert!(e.ends_with("; did you mean cli::halve?\n"), "{e}");
}

#[test]
fn mark_records_a_decision_in_the_store() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("lab.mandala"))
        .unwrap()
        .versioned(mandala::Versioning::tracking(["cli::"]))
        .unwrap();
    storage.run(|| halved(10)).unwrap();
    // A component the store has never seen cannot change; a near name is suggested.
    let e = fails(
        d.path(),
        &["mark", "cli::halv", "0123abcd", "--cosmetic"],
        2,
    );
    assert!(
        e.contains("no component 'cli::halv' in") && e.contains("did you mean cli::halve?"),
        "{e}"
    );
    let out = ok(d.path(), &["mark", "cli::halve", "0123abcd", "--cosmetic"]);
    assert_eq!(
        out,
        "Marked the change of cli::halve to 0123abcd as cosmetic.\n"
    );
    let decisions = storage.backend().decisions().unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(
        (
            decisions[0].component.as_str(),
            decisions[0].content.as_str()
        ),
        ("cli::halve", "0123abcd")
    );
    let e = fails(d.path(), &["mark", "cli::halve", "0123", "--semantic"], 2);
    assert!(
        e.contains("'0123' has 4 hex digits; a hash prefix needs 8 to 64"),
        "{e}"
    );
    // Exactly one of --cosmetic and --semantic, and the usage says so.
    let e = fails(d.path(), &["mark", "cli::halve", "0123abcd"], 2);
    assert!(e.contains("<--cosmetic|--semantic>"), "{e}");
    let e = fails(
        d.path(),
        &["mark", "cli::halve", "0123abcd", "--cosmetic", "--semantic"],
        2,
    );
    assert!(e.contains("cannot be used with"), "{e}");
}

#[test]
fn log_reports_conflicting_decisions() {
    use store_core::version::history::VersionRecord;
    let (d, storage) = sample();
    let id = |n: u8| Id([n; 32]);
    let root = VersionRecord {
        component: "c".into(),
        content: id(1),
        parents: vec![],
        semantic: id(1),
        source: id(0),
        git: None,
    };
    let cosmetic = VersionRecord {
        content: id(2),
        parents: vec![root.id()],
        semantic: id(1),
        ..root.clone()
    };
    let semantic = VersionRecord {
        content: id(2),
        parents: vec![root.id()],
        semantic: id(2),
        ..root.clone()
    };
    for v in [&root, &cosmetic, &semantic] {
        storage.backend().put_version(v).unwrap();
    }
    let log = ok(d.path(), &["log", "c"]);
    assert_eq!(
        log.matches("CONFLICT merged stores decided differently")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(log.matches("version ").count(), 3, "{log}");
}

#[test]
fn cf_prints_the_same_table_as_the_api() {
    let (d, storage) = sample();
    let mut frame = storage.cf("inc").unwrap();
    frame.expand_all().unwrap();
    let api = frame.df(false).unwrap().values().unwrap();
    // Values by default; the call columns (`inc()`) with --calls.
    assert_eq!(
        ok(d.path(), &["cf", "inc", "--expand", "all", "--calls"]),
        api.to_string()
    );
    let api = api.without_calls();
    assert_eq!(
        ok(d.path(), &["cf", "inc", "--expand", "all"]),
        api.to_string()
    );
    assert_eq!(
        ok(
            d.path(),
            &["cf", "inc", "--expand", "all", "--format", "csv"]
        ),
        api.to_csv()
    );
    let j: Json = serde_json::from_str(&ok(
        d.path(),
        &["cf", "inc", "--json", "--columns", "x,inc"],
    ))
    .unwrap();
    let rows = j.as_array().unwrap();
    assert_eq!(rows.len(), api.len());
    // inc(inc(1)) passes through the in-place cycle x -> inc() -> inc -> x twice: its row
    // holds sets ({1, 2} -> {2, 3}); every other row holds single values with inc = x + 1.
    let sets: Vec<&Json> = rows.iter().filter(|r| r["x"].is_array()).collect();
    assert_eq!(sets.len(), 1, "{j}");
    let sorted = |v: &Json| {
        let mut v: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&sets[0]["x"]), [1, 2], "{j}");
    assert_eq!(sorted(&sets[0]["inc"]), [2, 3], "{j}");
    assert!(rows
        .iter()
        .filter(|r| !r["x"].is_array())
        .all(|r| r["inc"].as_i64().unwrap() == r["x"].as_i64().unwrap() + 1));
    let e = fails(d.path(), &["cf", "inc", "--columns", "nope"], 2);
    assert!(
        e.contains("no column 'nope' in the table; it has: x, inc(), inc"),
        "{e}"
    );
}

#[test]
fn graph_prints_the_frame_as_dot() {
    let (d, storage) = sample();
    let dot = ok(d.path(), &["graph", "divmod", "--verbose"]);
    assert_eq!(dot, storage.cf("divmod").unwrap().to_dot(true));
    assert!(
        dot.contains("\"divmod()\" -> \"quotient\" [label=\"quotient (1)\"];"),
        "{dot}"
    );
    let e = fails(d.path(), &["graph", "nope"], 2);
    assert!(e.contains("no calls of op 'nope'"), "{e}");
    // SVG without a system graphviz.
    let svg = d.path().join("divmod.svg");
    let said = ok(
        d.path(),
        &[
            "graph",
            "divmod",
            "--verbose",
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(said, format!("wrote {}\n", svg.display()));
    // --json: the frame's variables and ops.
    let j: Json = serde_json::from_str(&ok(d.path(), &["graph", "divmod", "--json"])).unwrap();
    assert_eq!(j["ops"][0]["name"], "divmod()");
    assert_eq!(j["ops"][0]["calls"], 1);
    assert_eq!(
        j["ops"][0]["outputs"],
        serde_json::json!({"quotient": "quotient", "remainder": "remainder"})
    );
    let names: Vec<&str> = j["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "quotient", "remainder"]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("quotient"))),
        "{text}"
    );
    let e = fails(
        d.path(),
        &["graph", "divmod", "--svg", "/nonexistent/dir/x.svg"],
        2,
    );
    assert!(e.contains("/nonexistent/dir/x.svg"), "{e}");
}

#[test]
fn gc_dry_run_lists_and_gc_removes_unreferenced_values() {
    let (d, storage) = sample();
    assert_eq!(
        ok(d.path(), &["gc", "--dry-run", "--min-age-secs", "0"]),
        "would remove 0 value(s), 0 bytes\n"
    );
    storage.cf("divmod").unwrap().delete_calls().unwrap();
    // divmod(17, 5): 17 and 5 were only its inputs (3 and 2 are also inc's values).
    let dry = ok(d.path(), &["gc", "--dry-run", "--min-age-secs", "0"]);
    assert!(dry.ends_with("would remove 2 value(s), 2 bytes\n"), "{dry}");
    // Right after the deletion they are too young by default, and gc says why.
    let young = ok(d.path(), &["gc", "--dry-run"]);
    assert_eq!(
        young,
        "would remove 0 value(s), 0 bytes\nleft 2 unreferenced value(s) younger than the grace period of 3600 s (a running program may be about to name them): a later gc removes them, or now with --min-age-secs 0 if no program is writing\n"
    );
    let done = ok(d.path(), &["gc", "--min-age-secs", "0"]);
    assert!(done.ends_with("removed 2 value(s), 2 bytes\n"), "{done}");
    assert_eq!(
        ok(d.path(), &["fsck"]),
        "checked 3 values and 3 calls: 0 problem(s), 0 warning(s)\n"
    );
}

/// Regression (issue 9, item 4): one stray name in a call shard made status, cat and cf fail
/// with "not a call record name"; now they skip it and fsck warns about it.
#[test]
fn stray_files_are_skipped_and_fsck_warns_about_them() {
    let (d, storage) = sample_v1();
    let store = d.path().join("lab.mandala");
    let y = storage.run(|| inc(1)).unwrap();
    let call = storage.get_ref_creator(&y).unwrap().unwrap();
    let record = store_fs::layout::call_path(&store, &call.name());
    let strays = [
        record.with_file_name(".DS_Store"),
        record.with_file_name(format!(
            ".{}.a1B2c3",
            record.file_name().unwrap().to_str().unwrap()
        )),
        store.join("values/.DS_Store"),
        store.join("calls/notes~"),
    ];
    for p in &strays {
        std::fs::write(p, "x").unwrap();
    }
    let status = ok(d.path(), &["status"]);
    assert!(
        status.contains("calls          4  (4 loose files"),
        "{status}"
    );
    assert_eq!(ok(d.path(), &["cat", &y.cid().to_string()[..10]]), "2\n");
    assert!(ok(d.path(), &["cf", "inc"]).lines().count() >= 4);
    let out = ok(d.path(), &["fsck"]);
    for p in &strays {
        assert!(
            out.contains(&format!("warning: {}: not ", p.display())),
            "{out}"
        );
    }
    assert!(out.ends_with("0 problem(s), 4 warning(s)\n"), "{out}");
}

/// Regression (issue 9, item 6): I/O errors printed their cause twice ("Not a directory (os
/// error 20): Not a directory (os error 20)"). Each error names the action and the path and
/// says its cause once.
#[test]
fn an_io_error_names_the_action_and_path_and_says_its_cause_once() {
    let (d, _storage) = sample();
    let store = d.path().join("lab.mandala");
    // (A format-2 store has no values/ until it holds a large value.)
    let _ = std::fs::remove_dir_all(store.join("values"));
    std::fs::write(store.join("values"), "not a directory").unwrap();
    let e = fails(d.path(), &["status"], 2);
    assert_eq!(
        e,
        format!(
            "mandala: error: cannot list {}: Not a directory (os error 20)\n",
            store.join("values").display()
        )
    );
    // A directory where the config belongs: a named error, not an OS message.
    std::fs::remove_file(store.join("mandala.toml")).unwrap();
    std::fs::create_dir(store.join("mandala.toml")).unwrap();
    let e = fails(d.path(), &["--store", "lab.mandala", "status"], 2);
    assert!(
        e.contains("lab.mandala/mandala.toml is a directory, not a regular file"),
        "{e}"
    );
    assert_eq!(e.matches("directory").count(), 1, "{e}");
}

/// Regression (issue 9, item 3): `cat` printed the call index's cached copy of a value whose
/// file was truncated. The CLI shows what the files say: a damaged file is an error naming it.
#[test]
fn cat_reads_the_file_not_the_index_copy() {
    let (d, storage) = sample_v1();
    let y = storage.run(|| inc(1)).unwrap();
    // A whole-store query with values puts small values into the index.
    storage
        .cf("inc")
        .unwrap()
        .df(false)
        .unwrap()
        .values()
        .unwrap();
    drop(storage);
    let store = d.path().join("lab.mandala");
    let path = store_fs::layout::value_path(&store, &y.cid());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let e = fails(d.path(), &["cat", &y.cid().to_string()[..12]], 2);
    assert!(
        e.contains(&format!(
            "corrupt object {}: not a complete zstd frame",
            path.display()
        )),
        "{e}"
    );
    assert!(path.exists(), "inspection moves nothing");
}

/// Issue 10: `upgrade` turns a format-1 store into one pack (format 3); `status` shows where objects
/// are; `cat` and `fsck` read packs; `pack` merges packs (a dry run changes nothing).
#[test]
fn upgrade_pack_and_status_show_where_objects_are() {
    let (d, storage) = sample_v1();
    drop(storage);
    let status = ok(d.path(), &["status"]);
    assert!(status.contains("format  1\n"), "{status}");
    assert!(
        status.contains("calls          4  (4 loose files"),
        "{status}"
    );
    let up = ok(d.path(), &["upgrade"]);
    assert!(up.contains("is now format 3"), "{up}");
    assert!(
        up.contains("merged 0 pack(s) and 9 loose file(s)"),
        "5 values and 4 records: {up}"
    );
    assert!(ok(d.path(), &["upgrade"]).contains("is already format 3"));
    let status = ok(d.path(), &["status"]);
    assert!(status.contains("format  3\n"), "{status}");
    assert!(
        status.contains("calls          4  (0 loose files of 0 bytes, 4 in packs, 0 in logs)"),
        "{status}"
    );
    assert!(status.contains("packs          1  ("), "{status}");
    let storage = Storage::open(d.path().join("lab.mandala")).unwrap();
    let y = storage.run(|| inc(1)).unwrap();
    assert_eq!(storage.stats().total.executed, 0, "hits after the upgrade");
    assert_eq!(ok(d.path(), &["cat", &y.cid().to_string()[..10]]), "2\n");
    storage.run(|| inc(100)).unwrap();
    storage.flush().unwrap();
    assert_eq!(
        ok(d.path(), &["fsck"]),
        "checked 7 values and 5 calls: 0 problem(s), 0 warning(s)\n"
    );
    let dry = ok(d.path(), &["pack", "--dry-run"]);
    assert!(dry.starts_with("would merge 2 pack(s)"), "{dry}");
    assert!(ok(d.path(), &["status"]).contains("packs          2  ("));
    let done = ok(d.path(), &["pack"]);
    assert!(
        done.starts_with("merged 2 pack(s) and 0 loose file(s)"),
        "{done}"
    );
    assert!(
        done.contains("into one pack of 7 values and 5 calls"),
        "{done}"
    );
    assert!(ok(d.path(), &["status"]).contains("packs          1  ("));
    let j: Json = serde_json::from_str(&ok(d.path(), &["status", "--json"])).unwrap();
    assert_eq!(j["calls"]["packed"], 5);
    assert_eq!(j["packs"]["count"], 1);
}

#[op]
fn split_words(text: String) -> mandala::MList<String> {
    text.split(' ').map(str::to_string).collect()
}

#[op]
fn count_letters(words: mandala::MList<String>) -> mandala::MDict<u64> {
    words.iter().map(|w| (w.clone(), w.len() as u64)).collect()
}

#[test]
fn collections_print_as_their_elements() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("lab.mandala")).unwrap();
    let counts = storage
        .run(|| {
            let words = split_words("to be or not".to_string())?;
            count_letters(&words[1..])?; // a slice: a new list of element refs
            count_letters(&words)
        })
        .unwrap();
    drop(storage);
    // `calls`: the list and the dict as their elements.
    let calls = ok(d.path(), &["calls", "split_words"]);
    assert!(
        calls.contains(r#"output_0=["to","be","or","not"]"#),
        "{calls}"
    );
    let calls = ok(d.path(), &["calls", "count_letters"]);
    assert!(
        calls.contains(r#"output_0={"be":2,"not":3,"or":2,"to":2}"#),
        "{calls}"
    );
    // JSON exports them as an array and a map.
    let j: Json =
        serde_json::from_str(&ok(d.path(), &["calls", "count_letters", "--json"])).unwrap();
    let whole = j
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["inputs"][0]["value"] == serde_json::json!(["to", "be", "or", "not"]))
        .expect("the call on the whole list");
    assert_eq!(
        whole["outputs"][0]["value"],
        serde_json::json!({"to": 2, "be": 2, "or": 2, "not": 3})
    );
    // `show` of an element ref names the structural call that made it.
    let hid = counts.hid().to_string();
    let shown = ok(d.path(), &["show", &hid]);
    assert!(shown.contains(r#""not": 3"#), "{shown}");
    let ops = ok(d.path(), &["ops"]);
    assert!(
        ops.contains("__list_getitem__  4 calls  (structural: collections and pointers)"),
        "{ops}"
    );
    assert!(ops.contains("split_words       1 call\n"), "{ops}");
    let getitem = ok(d.path(), &["calls", "__dict_getitem__"]);
    assert_eq!(getitem.lines().count(), 4 + 3, "{getitem}");
    // `cf`: a list shows as its elements; the slice's elements in a collection cell; JSON
    // exports both as arrays.
    let table = ok(d.path(), &["cf", "count_letters", "--expand", "back"]);
    assert!(table.contains("[to, be, or, not]"), "{table}");
    assert!(table.contains("{be: 2, not: 3, or: 2}"), "{table}");
    let j: Json = serde_json::from_str(&ok(
        d.path(),
        &["cf", "count_letters", "--expand", "back", "--json"],
    ))
    .unwrap();
    let rows = j.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{j}");
    // The slice's row holds its three elements in one cell: the variable of the list's
    // elements (`*elts`), named after the argument, as the elements came from mandala's own
    // get-item calls.
    let sliced = rows
        .iter()
        .find(|r| r["elts"].is_array())
        .unwrap_or_else(|| panic!("a row with the slice's elements: {j}"));
    let cell = &sliced["elts"];
    let mut elts: Vec<&str> = cell
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    elts.sort();
    assert_eq!(elts, ["be", "not", "or"]);
}

#[op]
fn first(xs: Vec<u32>) -> u32 {
    xs[0]
}

#[test]
fn fsck_and_show_name_pointers() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        d.path().join("a.mandala"),
        d.path().join("b.mandala"),
        d.path().join("m.mandala"),
    );
    for (path, v) in [(&a, 1u32), (&b, 2)] {
        let s = Storage::open(path).unwrap();
        s.run(|| first(mandala::Pointer::new("weights-v1", vec![v, 0])))
            .unwrap();
    }
    for src in [&a, &b] {
        let status = Command::new("rsync")
            .args([
                "-a",
                &format!("{}/", src.display()),
                &format!("{}/", m.display()),
            ])
            .status()
            .expect("rsync runs");
        assert!(status.success());
    }
    let m = m.to_str().unwrap();
    let calls = ok(d.path(), &["--store", m, "calls", "first"]);
    assert!(calls.contains(r#"xs={"pointer":"weights-v1"}"#), "{calls}");
    let out = mandala(d.path(), &["--store", m, "fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("pointer 'weights-v1'") && text.contains("names 2 different values"),
        "{text}"
    );
}

#[op]
fn make_points(n: u32) -> Vec<f64> {
    (0..n).map(f64::from).collect()
}

#[op(output_names(train, test))]
fn halves(data: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let (a, b) = data.split_at(data.len() / 2);
    (a.to_vec(), b.to_vec())
}

#[op]
fn fit(data: Vec<f64>, learning_rate: f64, epochs: u32) -> f64 {
    data.iter().sum::<f64>() * learning_rate / f64::from(epochs)
}

#[op]
fn accuracy(model: f64, data: Vec<f64>) -> f64 {
    model / (1.0 + data.len() as f64)
}

/// The newcomer's path: every accuracy with its parameters, by column name, exported as CSV
/// that a CSV reader types (numbers bare, names as they are).
#[test]
fn accuracies_with_their_parameters_by_name_as_typed_csv() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("lab.mandala")).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            let (train, test) = halves(make_points(10)?)?;
            for lr in [0.5, 0.05] {
                for epochs in [20u32, 200] {
                    let model = fit(&train, lr, epochs)?;
                    accuracy(&model, &test)?;
                }
            }
            Ok(())
        })
        .unwrap();
    drop(storage);
    // The names: ops as `op()`, outputs after their ops or their own names, inputs after what
    // produced them.
    let table = ok(d.path(), &["cf", "accuracy", "--expand", "back", "--calls"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "epochs",
            "learning_rate",
            "n",
            "make_points()",
            "make_points",
            "halves()",
            "test",
            "train",
            "fit()",
            "fit",
            "accuracy()",
            "accuracy"
        ],
        "{table}"
    );
    let csv = accuracy_csv(d.path(), &[]);
    let mut rows = accuracy_rows(&csv);
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(rows.len(), 4, "{csv}");
    assert_eq!((rows[0].0, rows[0].1), (0.05, 20));
    assert!(
        (rows[3].2 - 10.0 * 0.5 / 200.0 / 6.0).abs() < 1e-12,
        "{csv}"
    );
}

#[op]
fn ramp(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[test]
fn calls_json_cuts_long_values_unless_asked_and_cf_sorts_by_a_column() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("lab.mandala")).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            for n in [3, 1000, 20] {
                ramp(n)?;
            }
            Ok(())
        })
        .unwrap();
    drop(storage);
    let j: Json = serde_json::from_str(&ok(d.path(), &["calls", "ramp", "--json"])).unwrap();
    let by_n = |j: &Json, n: u64| -> Json {
        j.as_array()
            .unwrap()
            .iter()
            .find(|c| c["inputs"][0]["value"] == n)
            .unwrap()["outputs"][0]
            .clone()
    };
    assert_eq!(by_n(&j, 3)["value"], serde_json::json!([0, 1, 2]));
    let long = by_n(&j, 1000);
    assert_eq!(long["cut"], true);
    let text = long["value"].as_str().unwrap();
    assert!(
        text.starts_with("[0,1,2,") && text.ends_with('…') && text.chars().count() == 40,
        "{text}"
    );
    let full: Json =
        serde_json::from_str(&ok(d.path(), &["calls", "ramp", "--json", "--values"])).unwrap();
    assert_eq!(by_n(&full, 1000)["value"].as_array().unwrap().len(), 1000);
    assert!(by_n(&full, 1000).get("cut").is_none());
    // Rows sorted by a column's values: numbers by value, not by text or id.
    let csv = ok(
        d.path(),
        &[
            "cf",
            "ramp",
            "--columns",
            "n",
            "--format",
            "csv",
            "--sort",
            "n",
        ],
    );
    assert_eq!(csv, "n\n3\n20\n1000\n");
    let e = fails(d.path(), &["cf", "ramp", "--sort", "nope"], 2);
    assert!(e.contains("no column 'nope'"), "{e}");
}

/// Shell completion, as bash runs it: the script `mandala completions bash` prints completes
/// subcommands and their options.
#[test]
fn completions_complete_subcommands_in_bash() {
    let d = tempfile::tempdir().unwrap();
    let script = ok(d.path(), &["completions", "bash"]);
    let path = d.path().join("mandala.bash");
    std::fs::write(&path, script).unwrap();
    let complete = |words: &str| -> String {
        let n = words.split(' ').count() - 1;
        let cur = words.split(' ').next_back().unwrap();
        let prev = words.split(' ').nth(n.saturating_sub(1)).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={n}; _mandala mandala {cur} {prev}; echo \"${{COMPREPLY[@]}}\"",
                path.display()
            ))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("mandala st"), "status");
    assert_eq!(complete("mandala cf accuracy --ex"), "--expand");
    assert_eq!(complete("mandala completions z"), "zsh");
    for shell in ["zsh", "fish"] {
        assert!(ok(d.path(), &["completions", shell]).contains("mandala"));
    }
    // The version names the store formats it reads.
    let v = ok(d.path(), &["--version"]);
    assert!(
        v.starts_with("mandala ") && v.contains("store formats 1 to 3"),
        "{v}"
    );
}

/// Each way of pointing at something that is not a store gets its own hint.
#[test]
fn hints_fit_the_mistake() {
    let (d, _s) = sample();
    let store = d.path().join("lab.mandala");
    let inner = store.join("packs");
    let e = fails(d.path(), &["--store", inner.to_str().unwrap(), "status"], 2);
    assert!(
        e.contains(&format!("did you mean {}?", store.display())),
        "{e}"
    );
    let file = d.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let e = fails(d.path(), &["--store", file.to_str().unwrap(), "status"], 2);
    assert!(e.contains("it is a file, not a directory"), "{e}");
    let e = fails(
        d.path(),
        &["--store", "/nonexistent/x.mandala", "status"],
        2,
    );
    assert!(
        e.contains("the path does not exist; create a store there with `mandala init PATH`"),
        "{e}"
    );
    // init in a directory that holds other files says so (not "… or `mandala init`").
    let busy = d.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("data.csv"), "1,2").unwrap();
    let e = fails(d.path(), &["init", busy.to_str().unwrap()], 2);
    assert!(
        e.contains("the directory is not empty and holds no mandala.toml; create a store in an empty or new directory"),
        "{e}"
    );
    assert!(!e.contains("mandala init"), "{e}");
}

/// `mandala tag NAME PREFIX`, `mandala tags`, and a tag's name wherever a prefix goes.
#[test]
fn tags_name_refs_on_the_command_line() {
    let (d, storage) = sample();
    let q = storage.run(|| divmod(17, 5)).unwrap().0;
    let hid = q.hid().to_string();
    let said = ok(d.path(), &["tag", "results/quotient", &hid[..10]]);
    assert_eq!(
        said,
        format!("Tagged ref {} as results/quotient.\n", &hid[..12])
    );
    let tags = ok(d.path(), &["tags"]);
    assert_eq!(tags, format!("results/quotient  ref {}  3\n", &hid[..12]));
    // Wherever a prefix goes.
    assert_eq!(ok(d.path(), &["cat", "results/quotient"]), "3\n");
    let shown = ok(d.path(), &["show", "results/quotient"]);
    assert!(shown.starts_with(&format!("ref {hid}")), "{shown}");
    assert!(
        shown.contains("created  output 'quotient' of divmod call"),
        "{shown}"
    );
    // Re-pointing needs --force.
    let r = storage.run(|| divmod(17, 5)).unwrap().1;
    let other = r.hid().to_string();
    let e = fails(d.path(), &["tag", "results/quotient", &other[..10]], 2);
    assert!(e.contains("it names ref") && e.contains("--force"), "{e}");
    ok(
        d.path(),
        &["tag", "results/quotient", &other[..10], "--force"],
    );
    assert_eq!(ok(d.path(), &["cat", "results/quotient"]), "2\n");
    let j: Json = serde_json::from_str(&ok(d.path(), &["tags", "--json"])).unwrap();
    assert_eq!(j[0]["hid"], other);
    assert_eq!(j[0]["conflicts"], serde_json::json!([]));
    let e = fails(d.path(), &["tag", "bad name", &other[..10]], 2);
    assert!(
        e.contains("tag 'bad name': a tag name holds letters"),
        "{e}"
    );
}

#[allow(dead_code)]
#[path = "../../examples/quickstart.rs"]
mod quickstart;

/// The newcomer's path on the quickstart itself: run it, then find every accuracy with its
/// parameters by column name, as CSV a CSV reader types.
#[test]
fn the_quickstart_accuracies_by_column_name_as_csv() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("quickstart.mandala");
    quickstart::run(store.to_str().unwrap()).unwrap();
    let header = ok(d.path(), &["cf", "accuracy", "--expand", "back"]);
    let columns: Vec<&str> = header.lines().next().unwrap().split_whitespace().collect();
    for c in [
        "n",
        "seed",
        "k",
        "learning_rate",
        "epochs",
        "train",
        "test",
        "accuracy",
    ] {
        assert!(columns.contains(&c), "no column {c} in {columns:?}");
    }
    let csv = accuracy_csv(d.path(), &["--sort", "accuracy"]);
    let rows = accuracy_rows(&csv);
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(
        rows.windows(2).all(|w| w[0].2 <= w[1].2),
        "sorted by accuracy: {csv}"
    );
    assert!(rows.iter().all(|r| (0.5..=1.0).contains(&r.2)), "{csv}");
}

/// Long work says it is working on a terminal (here `script`'s pseudo-terminal, with the
/// line's delay set to 0), never when piped or with --quiet, and the line is gone before the
/// command's output.
#[test]
fn long_work_says_it_is_working_on_a_terminal_only() {
    let (d, _s) = sample();
    let bin = env!("CARGO_BIN_EXE_mandala");
    let store = d.path().join("lab.mandala");
    let on_tty = |args: &str| on_tty(&store, args, &[("MANDALA_BUSY_AFTER_MS", Some("0"))]);
    let shown = on_tty("fsck");
    assert!(shown.contains("\rchecking every object… "), "{shown:?}");
    // Erased, then the report.
    let erased = shown.rfind("\r\x1b[2K").expect("the line is erased");
    assert!(
        shown[erased..].contains("checked 5 values and 4 calls"),
        "{shown:?}"
    );
    let quiet = on_tty("fsck --quiet");
    assert!(!quiet.contains("checking every object"), "{quiet:?}");
    assert!(quiet.contains("checked 5 values and 4 calls"), "{quiet:?}");
    let piped = Command::new(bin)
        .args(["--store", store.to_str().unwrap(), "fsck"])
        .env("MANDALA_BUSY_AFTER_MS", "0")
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}

/// Long output goes through a pager on a terminal (here one that marks each line), never when
/// piped, and not with an empty MANDALA_PAGER.
#[test]
fn long_output_is_paged_on_a_terminal_only() {
    let (d, _s) = sample();
    let bin = env!("CARGO_BIN_EXE_mandala");
    let store = d.path().join("lab.mandala");
    let on_tty =
        |pager: &str| on_tty(&store, "ops", &[("MANDALA_PAGER", Some(pager))]).replace('\r', "");
    assert_eq!(
        on_tty("sed s/^/paged:/"),
        "paged:divmod  1 call\npaged:inc     3 calls\n"
    );
    assert_eq!(on_tty(""), "divmod  1 call\ninc     3 calls\n");
    // A pager that is not installed: the shell says so, and the output is shown anyway.
    let missing = on_tty("no-such-pager-here");
    assert!(missing.contains("not found"), "{missing}");
    assert!(
        missing.ends_with("divmod  1 call\ninc     3 calls\n"),
        "{missing}"
    );
    let piped = Command::new(bin)
        .args(["--store", store.to_str().unwrap(), "ops"])
        .env("MANDALA_PAGER", "sed s/^/paged:/")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(piped.stdout).unwrap(),
        "divmod  1 call\ninc     3 calls\n"
    );
}

/// A table's header is bold on a terminal, plain with NO_COLOR or when piped.
#[test]
fn colour_on_a_terminal_only() {
    let (d, _s) = sample();
    let store = d.path().join("lab.mandala");
    let on_tty = |no_color: bool| {
        let env = [
            ("MANDALA_PAGER", Some("")),
            ("TERM", Some("xterm")),
            ("NO_COLOR", no_color.then_some("1")),
        ];
        on_tty(&store, "cf inc", &env)
    };
    assert!(on_tty(false).starts_with("\x1b[1mx"), "{:?}", on_tty(false));
    assert!(on_tty(true).starts_with("x "), "{:?}", on_tty(true));
    let piped = ok(d.path(), &["cf", "inc"]);
    assert!(piped.starts_with("x "), "{piped:?}");
}

/// Help is short with -h and long with --help (where the naming rules and an example live).
#[test]
fn help_is_short_or_long() {
    let d = tempfile::tempdir().unwrap();
    let short = ok(d.path(), &["cf", "-h"]);
    let long = ok(d.path(), &["cf", "--help"]);
    assert!(!short.contains("Names:"), "{short}");
    assert!(long.contains("Names: an op's calls are `op()`"), "{long}");
    assert!(
        long.contains("Example: mandala cf accuracy --expand back"),
        "{long}"
    );
    assert!(short.lines().count() < long.lines().count());
}
