//! Pointers: values passed under a name that is their identity — hashed and stored once, never
//! again under that name; shown by name in tables; listed by fsck when merged stores disagree.

use std::sync::atomic::{AtomicU64, Ordering};

use mandala::{op, Pointer, Storage};

mod common;

/// How many times a `Dataset` was serialized (hashed or stored).
static SERIALIZED: AtomicU64 = AtomicU64::new(0);

/// Stands for a large dataset: counts its serializations.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
struct Dataset(Vec<f64>);

impl serde::Serialize for Dataset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        s.serialize_newtype_struct("Dataset", &self.0)
    }
}

static MEAN_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn mean(data: Dataset) -> f64 {
    MEAN_RUNS.fetch_add(1, Ordering::SeqCst);
    data.0.iter().sum::<f64>() / data.0.len() as f64
}

#[op]
fn scale(data: Dataset, k: f64) -> f64 {
    data.0.iter().map(|x| x * k).sum()
}

fn data(n: usize) -> Dataset {
    Dataset((0..n).map(|i| i as f64).collect())
}

// The counters are per process and tests run in parallel: every test holds this.
static COUNTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_pointer_is_hashed_and_stored_once_then_found_by_name() -> mandala::Result<()> {
    let _lock = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mandala");
    SERIALIZED.store(0, Ordering::SeqCst);
    {
        let storage = Storage::open(&path)?;
        let m = storage.run(|| mean(Pointer::new("training-set-v3", data(1000))))?;
        assert_eq!(storage.unwrap(&m)?, 499.5);
        assert_eq!(
            SERIALIZED.load(Ordering::SeqCst),
            1,
            "encoded once, to store it"
        );
        // Another op on the same name: the data is not looked at again.
        storage.run(|| scale(Pointer::new("training-set-v3", data(1000)), 2.0))?;
        assert_eq!(SERIALIZED.load(Ordering::SeqCst), 1);
    }
    // A new handle (as a new run): the call is a hit, the data neither hashed nor stored.
    let storage = Storage::open(&path)?;
    let runs = MEAN_RUNS.load(Ordering::SeqCst);
    let m = storage.run(|| mean(Pointer::new("training-set-v3", data(1000))))?;
    assert_eq!(storage.stats().total.hits, 1);
    assert_eq!(MEAN_RUNS.load(Ordering::SeqCst), runs);
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 1);
    assert_eq!(storage.unwrap(&m)?, 499.5);
    // The input's ref is the name's; unwrapped it is the data behind the name.
    let call = storage.get_ref_creator(&m)?.unwrap();
    let input = &call.record.inputs[0];
    assert_eq!(input.hid, Pointer::new("training-set-v3", ()).ids().hid);
    let r = storage.load_ref::<Dataset>(&input.hid)?;
    assert_eq!(storage.unwrap(&r)?, data(1000));
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    Ok(())
}

#[test]
fn the_name_is_the_identity() -> mandala::Result<()> {
    let _lock = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let storage = Storage::in_memory();
    let a = storage.run(|| mean(Pointer::new("v1", data(3))))?;
    // Other data under the same name: a hit on what the name was first stored with.
    let b = storage.run(|| mean(Pointer::new("v1", data(5))))?;
    assert_eq!(storage.stats().total.executed, 1);
    assert_eq!((storage.unwrap(&a)?, storage.unwrap(&b)?), (1.0, 1.0));
    // A new name is a new identity; the same data under it is stored once (by content).
    let c = storage.run(|| mean(Pointer::new("v2", data(3))))?;
    assert_eq!(storage.stats().total.executed, 2);
    assert_eq!(storage.unwrap(&c)?, 1.0);
    // A pointer and the plain value are different inputs.
    storage.run(|| mean(data(3)))?;
    assert_eq!(storage.stats().total.executed, 3);
    Ok(())
}

#[test]
fn tables_show_the_pointer_name() -> mandala::Result<()> {
    let _lock = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let storage = Storage::in_memory();
    storage.run(|| mean(Pointer::new("training-set-v3", data(4))))?;
    storage.run(|| mean(data(2)))?;
    let cf = storage.cf("mean")?;
    let table = cf.df(false)?.values()?;
    let shown = table.to_string();
    assert!(shown.contains("{pointer: training-set-v3}"), "{shown}");
    assert!(
        shown.contains("[0, 1]") || shown.contains("[0.0, 1.0]"),
        "{shown}"
    );
    let json = table.to_json().to_string();
    assert!(json.contains(r#"{"pointer":"training-set-v3"}"#), "{json}");
    // Reading the column with the program's type gives the data behind the name.
    let mut column: Vec<Dataset> = table_column(&storage)?;
    column.sort_by_key(|d| d.0.len());
    assert_eq!(column, [data(2), data(4)]);
    // Expanding the frame does not show the binding as a step.
    let mut cf = storage.cf("mean")?;
    cf.expand_all()?;
    assert!(
        cf.funcs().keys().all(|f| f != "__pointer__"),
        "{:?}",
        cf.funcs().keys()
    );
    Ok(())
}

fn table_column(storage: &Storage) -> mandala::Result<Vec<Dataset>> {
    let table = storage.cf("mean")?.df(false)?;
    Ok(table
        .column::<Dataset>("data")?
        .into_iter()
        .flatten()
        .collect())
}

#[test]
fn fsck_lists_a_name_merged_stores_bound_to_different_values() -> mandala::Result<()> {
    let _lock = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (a, b, merged) = (
        dir.path().join("a.mandala"),
        dir.path().join("b.mandala"),
        dir.path().join("m.mandala"),
    );
    for (path, n) in [(&a, 3), (&b, 5)] {
        let storage = Storage::open(path)?;
        storage.run(|| mean(Pointer::new("shared-name", data(n))))?;
    }
    for src in [&a, &b] {
        common::rsync_into(src, &merged);
    }
    let storage = Storage::open(&merged)?;
    let report = storage.verify()?;
    assert!(report.is_clean(), "{:#?}", report.problems);
    let listed: Vec<&str> = report
        .warnings
        .iter()
        .map(|w| w.what.as_str())
        .filter(|w| w.starts_with("pointer 'shared-name'"))
        .collect();
    assert_eq!(listed.len(), 1, "{:#?}", report.warnings);
    assert!(
        listed[0].contains("names 2 different values"),
        "{}",
        listed[0]
    );
    // The merged store still answers: one of the two, the same on every machine.
    let m = storage.run(|| mean(Pointer::new("shared-name", data(1))))?;
    assert_eq!(storage.stats().total.executed, 0);
    assert!([1.0, 2.0].contains(&storage.unwrap(&m)?));
    Ok(())
}
