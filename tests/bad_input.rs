//! Damaged stores and bad input: each gives a specific error naming the file or id, never a
//! panic and never a silent recomputation. What is stored is never changed, except that a
//! value file found damaged is moved aside (to `tmp/`) so that the call that made it can be
//! computed again.

use std::fs;
use std::path::{Path, PathBuf};

use mandala::{op, Error, Id, Storage};

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    input: Id,
    output: Id,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.mandala");
        // Format 1: these tests damage loose files (damaged packs: tests/packs.rs).
        let options = mandala::OpenOptions {
            format: 1,
            ..Default::default()
        };
        let storage = Storage::open_with(&store, options).unwrap();
        let y = storage.run(|| inc(1)).unwrap();
        let call = storage.get_ref_creator(&y).unwrap().unwrap();
        Fixture {
            _dir: dir,
            store,
            input: call.record.inputs[0].cid,
            output: y.cid(),
        }
    }

    fn value_path(&self, cid: &Id) -> PathBuf {
        store_fs::layout::value_path(&self.store, cid)
    }

    fn call_path(&self) -> PathBuf {
        let calls = self.store.join("calls");
        let shard = fs::read_dir(&calls)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fs::read_dir(shard).unwrap().next().unwrap().unwrap().path()
    }

    /// Opens the store afresh and unwraps `inc(1)`'s result.
    fn load_output(&self) -> mandala::Result<i64> {
        let storage = Storage::open(&self.store)?;
        let y = storage.run(|| inc(1))?;
        storage.unwrap(&y)
    }

    fn problems(&self) -> Vec<String> {
        Storage::open(&self.store)
            .unwrap()
            .verify()
            .unwrap()
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect()
    }
}

fn corrupt_message(e: Error, path: &Path) -> String {
    match e {
        Error::Store(mandala::StoreError::Corrupt { path: p, reason }) => {
            assert_eq!(p, path);
            reason
        }
        other => panic!(
            "expected a Corrupt error for {}, got {other}",
            path.display()
        ),
    }
}

#[test]
fn a_truncated_blob_is_reported_with_its_path() {
    let f = Fixture::new();
    let p = f.value_path(&f.output);
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
    let problems = f.problems();
    let reason = corrupt_message(f.load_output().unwrap_err(), &p);
    assert!(reason.starts_with("not a complete zstd frame"), "{reason}");
    assert_eq!(
        problems,
        [format!(
            "{}: {}",
            p.display(),
            reason.split("; moved aside").next().unwrap()
        )]
    );
    assert!(reason.contains("moved aside to"), "{reason}");
}

#[test]
fn a_flipped_byte_is_reported_with_its_path() {
    let f = Fixture::new();
    let p = f.value_path(&f.output);
    let mut bytes = fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // inside the frame checksum
    fs::write(&p, &bytes).unwrap();
    assert_eq!(f.problems().len(), 1);
    let reason = corrupt_message(f.load_output().unwrap_err(), &p);
    assert!(reason.starts_with("zstd:"), "{reason}");
}

#[test]
fn a_blob_under_the_wrong_name_is_reported() {
    let f = Fixture::new();
    let p = f.value_path(&f.output);
    fs::copy(f.value_path(&f.input), &p).unwrap();
    let reason = corrupt_message(f.load_output().unwrap_err(), &p);
    assert!(
        reason.starts_with(&format!("content hashes to {}, not to its name", f.input)),
        "{reason}"
    );
}

#[test]
fn a_damaged_call_record_is_an_error_not_a_recomputation() {
    let f = Fixture::new();
    let p = f.call_path();
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let storage = Storage::open(&f.store).unwrap();
    let e = storage.run(|| inc(1)).unwrap_err();
    corrupt_message(e, &p);
    // The engine's own counters (RUNS is shared by the tests running beside this one).
    assert_eq!(storage.stats().op("inc").executed, 0, "the op did not run");
    assert_eq!(
        fs::read(&p).unwrap(),
        &bytes[..bytes.len() / 2],
        "nothing was rewritten"
    );
}

#[test]
fn a_call_record_under_another_call_id_is_reported() {
    let f = Fixture::new();
    let p = f.call_path();
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    // CID(62).HID(64).RID(64): replace the hid.
    let wrong = format!("{}{}{}", &name[..63], "0".repeat(64), &name[127..]);
    fs::rename(&p, p.with_file_name(&wrong)).unwrap();
    assert_eq!(
        f.problems(),
        [format!(
            "{}: record's call ids do not match its name",
            p.with_file_name(&wrong).display()
        )]
    );
}

#[test]
fn a_call_naming_a_missing_value_is_reported_then_healed() {
    let f = Fixture::new();
    fs::remove_file(f.value_path(&f.output)).unwrap();
    let problems = f.problems();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].ends_with(&format!(
            "names value {} (output_0) which is not in the store",
            f.output
        )),
        "{problems:?}"
    );
    // Loading the value alone names it and the store.
    let storage = Storage::open(&f.store).unwrap();
    let e = storage.load_value::<i64>(&f.output).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "value {} is not in the store {}",
            f.output,
            f.store.display()
        )
    );
    // The call computes again (the lookup finds its output gone) and rewrites the value.
    assert_eq!(f.load_output().unwrap(), 2);
    assert!(f.problems().is_empty());
}

#[test]
fn a_newer_format_is_refused_and_left_alone() {
    let f = Fixture::new();
    let toml = f.store.join("mandala.toml");
    fs::write(&toml, "format = 4\n").unwrap();
    let e = Storage::open(&f.store).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{} uses store format 4, but this mandala reads formats 1 to 3; upgrade mandala",
            toml.display()
        )
    );
    assert_eq!(fs::read_to_string(&toml).unwrap(), "format = 4\n");
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let e = Storage::open(dir.path()).err().unwrap();
    assert!(
        matches!(e, Error::Store(mandala::StoreError::NotAStore { ref path, .. }) if path == dir.path())
    );
    assert_eq!(
        e.to_string(),
        format!("{} is not a mandala store: the directory is not empty and holds no mandala.toml; create a store in an empty or new directory", dir.path().display())
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);

    let file = dir.path().join("notes.txt");
    let e = Storage::open(&file).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{} is not a mandala store: it is a file, not a directory",
            file.display()
        )
    );
    // A directory inside a store names the store.
    let store = dir.path().join("s.mandala");
    drop(Storage::open(&store).unwrap());
    fs::create_dir_all(store.join("values")).unwrap();
    let inner = store.join("values");
    let e = store_fs::FsBackend::open_existing(&inner).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{} is not a mandala store: it is inside the store {}; did you mean {}?",
            inner.display(),
            store.display(),
            store.display()
        )
    );
    let missing = dir.path().join("nope");
    let e = store_fs::FsBackend::open_existing(&missing).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!("{} is not a mandala store: the path does not exist; create a store there with `mandala init PATH`", missing.display())
    );
}

#[test]
fn a_stray_file_in_the_store_is_reported_as_a_warning() {
    let f = Fixture::new();
    fs::write(f.store.join("values/zz"), "x").unwrap();
    fs::create_dir_all(f.store.join("values/ab")).unwrap();
    fs::write(f.store.join("values/ab/short"), "x").unwrap();
    fs::write(f.store.join("README"), "x").unwrap();
    assert!(f.problems().is_empty(), "{:?}", f.problems());
    let report = Storage::open(&f.store).unwrap().verify().unwrap();
    let mut warnings: Vec<String> = report.warnings.iter().map(|p| p.to_string()).collect();
    warnings.sort();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|p| p.ends_with("README: not part of a store (mandala ignores it)")));
    assert!(warnings.iter().any(|p| p.ends_with(
        "values/ab/short: not a value name (2 + 62 hex digits): a stray file, ignored by mandala"
    )));
    assert!(warnings.iter().any(|p| p.ends_with(
        "values/zz: not a shard directory (2 hex digits): a stray file, ignored by mandala"
    )));
}
