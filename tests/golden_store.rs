//! The golden stores in `fixtures/`: `golden-store.mandala`, written by format 1 (one file per
//! object), `golden-store-v2.mandala`, written by format 2 (one pack of version 1), and
//! `golden-store-v3.mandala`, written by format 3 (one pack of version 2): every future
//! version must read each back value by value, with every call a hit.
//!
//! Regenerate one only for a deliberate format change:
//! `cargo test --test golden_store -- --ignored bless_golden_store` (or `…_v2`, `…_v3`).

mod common;
use common::copy_dir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mandala::{op, Storage};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Kernel {
    Linear,
    Rbf { gamma: f64 },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Config {
    name: String,
    kernel: Kernel,
    weights: BTreeMap<String, f32>,
}

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

#[op(output_names(mean, spread))]
fn stats(xs: Vec<f64>) -> (f64, f64) {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let spread = xs.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b))
        - xs.iter().fold(f64::INFINITY, |a, b| a.min(*b));
    (mean, spread)
}

#[op]
fn describe(config: Config, scale: f64) -> Option<String> {
    match config.kernel {
        Kernel::Linear => None,
        Kernel::Rbf { gamma } => Some(format!("{} rbf {}", config.name, gamma * scale)),
    }
}

fn config() -> Config {
    Config {
        name: "svm".into(),
        kernel: Kernel::Rbf { gamma: 0.5 },
        weights: [("a".to_string(), 1.5f32), ("b".to_string(), -0.25)]
            .into_iter()
            .collect(),
    }
}

/// The pipeline the golden store holds, returning every value as JSON for comparison.
fn pipeline(storage: &Storage) -> mandala::Result<Vec<String>> {
    storage.run(|| {
        let a = inc(1)?;
        let b = inc(&a)?;
        let c = inc(2)?; // same content as b, another history
        let (mean, spread) = stats(vec![1.0, 2.5, -0.0, 1e300])?;
        let d = describe(config(), 2.0)?;
        let lin = describe(
            Config {
                kernel: Kernel::Linear,
                ..config()
            },
            1.0,
        )?;
        Ok(vec![
            storage.unwrap(&a)?.to_string(),
            storage.unwrap(&b)?.to_string(),
            storage.unwrap(&c)?.to_string(),
            format!("{:?}", storage.unwrap(&mean)?),
            format!("{:?}", storage.unwrap(&spread)?),
            format!("{:?}", storage.unwrap(&d)?),
            format!("{:?}", storage.unwrap(&lin)?),
        ])
    })
}

const EXPECTED: &[&str] = &[
    "2",
    "3",
    "3",
    "2.5e299",
    "1e300",
    "Some(\"svm rbf 1\")",
    "None",
];

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden-store.mandala")
}

fn golden_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden-store-v2.mandala")
}

fn golden_v3() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden-store-v3.mandala")
}

/// Writes the golden store of `format` at `path` anew: the pipeline, then (dropping the
/// storage seals a packed store's log into its pack) without its `tmp/`.
fn bless(path: &Path, format: u32) {
    let _ = std::fs::remove_dir_all(path);
    let storage = Storage::open_with(path, common::format(format)).unwrap();
    assert_eq!(pipeline(&storage).unwrap(), EXPECTED);
    drop(storage);
    std::fs::remove_dir_all(path.join("tmp")).unwrap();
}

#[test]
#[ignore = "writes fixtures/golden-store.mandala; run only for a deliberate format change"]
fn bless_golden_store() {
    bless(&golden(), 1);
}

#[test]
#[ignore = "writes fixtures/golden-store-v2.mandala; run only for a deliberate format change"]
fn bless_golden_store_v2() {
    bless(&golden_v2(), 2);
}

#[test]
#[ignore = "writes fixtures/golden-store-v3.mandala; run only for a deliberate format change"]
fn bless_golden_store_v3() {
    bless(&golden_v3(), 3);
}

/// Opens a copy of `store` (in the returned directory) and checks every call is a hit with
/// the expected values.
fn reads_back(store: &Path) -> (tempfile::TempDir, Storage) {
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("golden.mandala");
    copy_dir(store, &copy);
    let storage = Storage::open(&copy).unwrap();
    assert!(storage.verify().unwrap().is_clean());
    storage.allow_new_calls(false);
    assert_eq!(pipeline(&storage).unwrap(), EXPECTED);
    let st = storage.stats().total;
    assert_eq!(
        (st.executed, st.reused),
        (0, 0),
        "every call of the golden store is a hit"
    );
    assert_eq!(st.hits, 6);
    assert_eq!(storage.backend().all_calls().unwrap().len(), 6);
    assert_eq!(storage.backend().all_values().unwrap().len(), 12);
    (d, storage)
}

#[test]
fn the_golden_store_reads_back_value_by_value() {
    let (_d, storage) = reads_back(&golden());
    assert_eq!(storage.fs().unwrap().format(), 1);
}

/// A packed golden store of `format`, read back: its format kept, everything in one pack.
fn packed_reads_back(store: &Path, format: u32) -> (tempfile::TempDir, Storage) {
    let (d, storage) = reads_back(store);
    let fs = storage.fs().unwrap();
    assert_eq!(fs.format(), format);
    let st = fs.status().unwrap();
    assert_eq!(
        (st.packs.count, st.packed_calls, st.packed_values),
        (1, 6, 12)
    );
    assert_eq!((st.calls.count, st.values.count), (0, 0));
    (d, storage)
}

#[test]
fn the_format_2_golden_store_reads_back_value_by_value() {
    packed_reads_back(&golden_v2(), 2);
}

#[test]
fn the_format_3_golden_store_reads_back_value_by_value() {
    let (_d, storage) = packed_reads_back(&golden_v3(), 3);
    // Its records name the commit they were made at: once, in the pack's commit entry.
    let pack = std::fs::read_dir(golden_v3().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .unwrap();
    let commit = storage.backend().all_calls().unwrap()[0]
        .record
        .git
        .clone()
        .expect("made inside a git repository");
    let bytes = std::fs::read(pack).unwrap();
    let times = bytes
        .windows(commit.len())
        .filter(|w| *w == commit.as_bytes())
        .count();
    assert_eq!(times, 1);
}

/// The format-1 and format-2 golden stores upgraded: one pack of version 2, nothing loose,
/// every call still a hit; the pack's name (the hash of its index, which holds the hash of
/// the pack) is pinned: a consolidated pack is sorted and its encoding deterministic, so the
/// same objects make the same pack on any machine, in any run.
#[test]
fn the_format_1_and_2_golden_stores_upgrade_to_format_3() {
    let d = tempfile::tempdir().unwrap();
    for (store, loose, name) in [
        (
            golden(),
            18,
            "87ac91f59ac112ca923226a92c3c5cc474a681ee551d5590b407c7e99741b945",
        ),
        (
            golden_v2(),
            0,
            "055364ffabb62d72ad86dc8ce6e8756f14324260b7f442d11963fa99150275e0",
        ),
    ] {
        let copy = d.path().join(format!("golden{loose}.mandala"));
        copy_dir(&store, &copy);
        let report = store_fs::FsBackend::open_existing(&copy)
            .unwrap()
            .upgrade()
            .unwrap();
        assert_eq!((report.calls, report.values, report.loose), (6, 12, loose));
        let (_d, storage) = reads_back(&copy);
        let st = storage.fs().unwrap().status().unwrap();
        assert_eq!(st.format, 3);
        assert_eq!((st.packs.count, st.calls.count, st.values.count), (1, 0, 0));
        assert_eq!(
            report.pack.unwrap().to_string(),
            name,
            "{}",
            store.display()
        );
    }
}

/// docs/tools/read_pack.py, a reader of packs written from docs/FORMAT.md with nothing but
/// Python's blake3, zstandard and cbor2, checks the names and hashes of the golden packs (of
/// both versions) and of a pack made by consolidation, and re-derives every entry's id.
#[test]
fn an_independent_reader_re_derives_every_id_in_a_pack() {
    let d = tempfile::tempdir().unwrap();
    let upgraded = d.path().join("up.mandala");
    copy_dir(&golden(), &upgraded);
    store_fs::FsBackend::open_existing(&upgraded)
        .unwrap()
        .upgrade()
        .unwrap();
    for store in [golden_v2(), golden_v3(), upgraded] {
        let stdout = common::read_first_pack(&store);
        assert!(
            stdout.ends_with("ok: 12 values and 6 calls re-derive their ids\n"),
            "{stdout}"
        );
    }
}

/// Store format 3's compact record (docs/FORMAT.md §11.9): every record of the golden stores,
/// git commits and all, expands from its compact form to the same record, with the same
/// record id, in well under half the bytes.
#[test]
fn every_golden_record_expands_from_its_compact_form() {
    use store_core::format::record::{CallRecord, CommitTable};
    for store in [golden(), golden_v2(), golden_v3()] {
        let (_d, storage) = reads_back(&store);
        let mut commits = CommitTable::default();
        let (mut canonical, mut compact) = (0, 0);
        for call in storage.backend().all_calls().unwrap() {
            let bytes = call.record.to_compact(&mut commits);
            let table = CommitTable::from_list(commits.list().to_vec());
            let back = CallRecord::from_compact(&bytes, &table, None).unwrap();
            assert_eq!(back, call.record, "{}", store.display());
            assert_eq!(back.rid(), call.rid);
            let given = CallRecord::from_compact(&bytes, &table, Some(&call.hid)).unwrap();
            assert_eq!(given, call.record);
            canonical += call.record.to_cbor().len();
            compact += bytes.len();
        }
        println!("{}: {compact} of {canonical} bytes", store.display());
        assert!(compact * 2 < canonical, "{compact} of {canonical} bytes");
    }
}
