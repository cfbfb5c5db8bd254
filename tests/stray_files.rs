//! Files that are not a store's own, where its objects live (issue 9, item 4): `.DS_Store`
//! (macOS Finder), `name~` (editors), `.name.XXXXXX` (rsync's temp files while it copies into
//! a store), anything unparsable. Every reader skips them; only fsck reports them, as
//! warnings. Before, one such name in a call shard made every lookup in that shard, status,
//! cat and cf fail with "not a call record name".

use std::path::{Path, PathBuf};
use std::process::Command;

use mandala::{op, Storage};

#[op]
fn double(x: u64) -> u64 {
    x * 2
}

#[op]
fn plus(x: u64, y: u64) -> u64 {
    x + y
}

fn pipeline(storage: &Storage, n: u64) -> mandala::Result<u64> {
    storage.run(|| {
        let mut total = 0;
        for i in 0..n {
            let y = plus(double(i)?, i)?;
            total += storage.unwrap(&y)?;
        }
        Ok(total)
    })
}

/// Strays named after a real object's name `name` in the same directory.
fn stray_names(name: &str) -> Vec<String> {
    vec![
        ".DS_Store".into(),
        format!("{name}~"),
        format!(".{name}.Xy12Ab"),
        "not-an-object".into(),
    ]
}

/// The first file under `dir/<shard>/`, if there is one.
fn first_object(dir: &Path) -> Option<PathBuf> {
    let mut shards: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    shards.sort();
    let mut files: Vec<_> = std::fs::read_dir(shards.first()?)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.first().cloned()
}

/// The first file in `dir`, if there is one.
fn first_file(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.first().cloned()
}

/// Puts every kind of stray into every place objects live; returns their paths.
fn litter(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["calls", "values", "versions"] {
        std::fs::create_dir_all(store.join(top)).unwrap();
        // At the top of the directory, where shard directories belong.
        out.push(store.join(top).join(".DS_Store"));
    }
    for top in ["calls", "values"] {
        let Some(object) = first_object(&store.join(top)) else {
            continue; // format 2: small objects are in packs
        };
        let name = object.file_name().unwrap().to_str().unwrap().to_string();
        for stray in stray_names(&name) {
            out.push(object.with_file_name(stray));
        }
    }
    // Format 2: beside packs and logs (a stray `.log` that is no log, too).
    if let Some(pack) = first_file(&store.join("packs")) {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        for stray in stray_names(&name) {
            out.push(pack.with_file_name(stray));
        }
        std::fs::create_dir_all(store.join("logs")).unwrap();
        out.push(store.join("logs/.DS_Store"));
        out.push(store.join("logs/not-a-log.log"));
    }
    std::fs::create_dir_all(store.join("refs/decisions")).unwrap();
    out.push(store.join("refs/decisions/.DS_Store"));
    out.push(store.join(".DS_Store"));
    for p in &out {
        std::fs::write(p, b"\x00\x01 not an object").unwrap();
    }
    out
}

#[test]
fn stray_files_are_skipped_by_every_reader_and_reported_by_fsck() {
    strays_are_skipped(mandala::OpenOptions::default());
}

#[test]
fn stray_files_in_a_format_1_store_are_skipped_and_reported() {
    strays_are_skipped(mandala::OpenOptions {
        format: 1,
        ..Default::default()
    });
}

fn strays_are_skipped(options: mandala::OpenOptions) {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let expected = pipeline(&Storage::open_with(&store, options).unwrap(), 20).unwrap();
    let before = Storage::open(&store)
        .unwrap()
        .fs()
        .unwrap()
        .status()
        .unwrap();
    let strays = litter(&store);

    // Lookups: every call is a hit, in a new handle (nothing cached).
    let storage = Storage::open(&store).unwrap();
    storage.allow_new_calls(false);
    assert_eq!(pipeline(&storage, 20).unwrap(), expected);
    assert_eq!(storage.stats().total.hits, 40);
    // Whole-store queries see exactly the objects they saw before.
    let fs = storage.fs().unwrap();
    let after = fs.status().unwrap();
    let counts =
        |s: &store_fs::StoreStatus| (s.values, s.calls, s.packs, s.packed_values, s.packed_calls);
    assert_eq!(counts(&after), counts(&before));
    let mut cf = storage.cf("plus").unwrap();
    cf.expand_back(None, true).unwrap();
    assert_eq!(cf.df(false).unwrap().len(), 20);
    fs.gc(true, std::time::Duration::ZERO).unwrap();
    fs.gc(false, std::time::Duration::ZERO).unwrap();
    for p in &strays {
        assert!(p.exists(), "gc left {} alone", p.display());
    }
    // Versioning reads versions/ and refs/decisions/.
    let versioned = Storage::open(&store)
        .unwrap()
        .versioned(mandala::Versioning::tracking(["stray_files::"]))
        .unwrap();
    pipeline(&versioned, 3).unwrap();

    // fsck: no damage, one warning per stray, naming it.
    let report = fs.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    for p in &strays {
        assert!(
            report.warnings.iter().any(|w| &w.path == p),
            "no warning for {}: {:#?}",
            p.display(),
            report.warnings
        );
    }
}

/// rsync copying into a store (its `.name.XXXXXX` temp files appear and vanish in the shards)
/// while another process's handle reads and writes it: no reader ever fails.
#[test]
fn a_store_read_while_rsync_copies_into_it() {
    if Command::new("rsync").arg("--version").output().is_err() {
        panic!("rsync is not installed: this test needs it (.ci/run installs it)");
    }
    let d = tempfile::tempdir().unwrap();
    let source = d.path().join("source.mandala");
    pipeline(&Storage::open(&source).unwrap(), 300).unwrap();
    for round in 0..3 {
        let dest = d.path().join(format!("dest{round}.mandala"));
        pipeline(&Storage::open(&dest).unwrap(), 5).unwrap();
        let mut rsync = Command::new("rsync")
            .args(["-a", "--bwlimit=1000"])
            .arg(format!("{}/", source.display()))
            .arg(format!("{}/", dest.display()))
            .spawn()
            .unwrap();
        let mut reads = 0;
        loop {
            let done = rsync.try_wait().unwrap().is_some();
            let storage = Storage::open(&dest).unwrap();
            let fs = storage.fs().unwrap();
            fs.status().unwrap();
            store_core::Backend::call_names(fs).unwrap();
            storage.cf("plus").unwrap();
            pipeline(&storage, 10).unwrap();
            reads += 1;
            if done {
                break;
            }
        }
        assert!(rsync.wait().unwrap().success());
        assert!(
            reads >= 2,
            "round {round}: the store was read while rsync ran"
        );
        let storage = Storage::open(&dest).unwrap();
        storage.allow_new_calls(false);
        pipeline(&storage, 300).unwrap();
        let report = storage.verify().unwrap();
        assert!(report.is_clean(), "{:#?}", report.problems);
    }
}
