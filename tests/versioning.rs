//! Versioning, first part: calls record the components they touch, and a stored call is reused
//! only while each of those components has the content it had. (Code edits between builds are
//! simulated here by rewriting what stored calls recorded; histories, change reports and
//! cosmetic marks are not built yet.)

use std::collections::BTreeSet;

use mandala::{op, track, Id, Storage, Versioning};

#[track]
static N_CLASS: u32 = 2;

#[track]
fn scale_data(x: Vec<f64>) -> Vec<f64> {
    let max = x.iter().fold(1e-9f64, |a, b| a.max(b.abs()));
    x.iter().map(|v| v / max).collect()
}

#[op]
fn load_data(n: u32) -> Vec<f64> {
    (0..n * *N_CLASS).map(|i| f64::from(i) * 1.5).collect()
}

#[op]
fn train_model(x: Vec<f64>, scale: bool) -> f64 {
    let x = if scale { scale_data(x) } else { x };
    x.iter().sum::<f64>() / x.len() as f64
}

#[op]
fn eval_model(model: f64, x: Vec<f64>, scale: bool) -> f64 {
    let x = if scale { scale_data(x) } else { x };
    x.iter().map(|v| (v - model).abs()).sum::<f64>()
}

fn pipeline(storage: &Storage) -> mandala::Result<()> {
    storage.run(|| {
        let x = load_data(10)?;
        for scale in [false, true] {
            let m = train_model(&x, scale)?;
            eval_model(&m, &x, scale)?;
        }
        Ok(())
    })
}

fn versioned(path: &std::path::Path) -> Storage {
    Storage::open(path)
        .unwrap()
        .versioned(Versioning::tracking(["versioning::"]))
        .unwrap()
}

fn executed(storage: &Storage, op: &str) -> u64 {
    storage.stats().op(op).executed
}

#[test]
fn calls_record_what_they_touch_and_versions_differ_by_path() {
    let d = tempfile::tempdir().unwrap();
    let storage = versioned(&d.path().join("s.mandala"));
    pipeline(&storage).unwrap();
    assert_eq!(
        (
            executed(&storage, "load_data"),
            executed(&storage, "train_model"),
            executed(&storage, "eval_model")
        ),
        (1, 2, 2)
    );
    let calls = storage.backend().all_calls().unwrap();
    let deps_of = |op: &str| -> BTreeSet<Vec<String>> {
        calls
            .iter()
            .filter(|c| c.record.op == op)
            .map(|c| c.record.deps.keys().cloned().collect())
            .collect()
    };
    assert_eq!(
        deps_of("load_data"),
        BTreeSet::from([vec!["load_data".to_string(), "versioning::N_CLASS".into()]])
    );
    // Two versions of train_model at once: with and without scale_data.
    assert_eq!(
        deps_of("train_model"),
        BTreeSet::from([
            vec!["train_model".to_string()],
            vec!["train_model".to_string(), "versioning::scale_data".into()],
        ])
    );
    let semvers: BTreeSet<Id> = calls
        .iter()
        .filter(|c| c.record.op == "train_model")
        .map(|c| c.record.semver)
        .collect();
    assert_eq!(semvers.len(), 2);

    // A new process with the same code executes nothing.
    let again = versioned(&d.path().join("s.mandala"));
    pipeline(&again).unwrap();
    assert_eq!(again.stats().total.executed, 0);
    assert_eq!(again.stats().total.hits, 5);
}

/// Rewrites every stored call that recorded `component`, as if it had been computed by code in
/// which `component` had other content.
fn pretend_computed_with_other(storage: &Storage, component: &str) -> usize {
    let root = storage.fs().unwrap().root().to_path_buf();
    let mut n = 0;
    for c in storage.backend().all_calls().unwrap() {
        if let Some(id) = c.record.deps.get(component) {
            let mut rec = c.record.clone();
            rec.deps
                .insert(component.to_string(), Id(id.0.map(|b| b ^ 0xff)));
            rec.semver = store_core::record::semantic_version(&rec.deps);
            let rec = rec.rehistoried(rec.inputs.clone());
            storage.backend().put_call(&rec).unwrap();
            std::fs::remove_file(store_fs::layout::call_path(&root, &c.key, &c.hid, &c.rid))
                .unwrap();
            n += 1;
        }
    }
    n
}

#[test]
fn only_calls_that_touched_a_changed_component_recompute() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.mandala");
    pipeline(&versioned(&path)).unwrap();
    // scale_data "was different" when the scale = true calls were computed.
    assert_eq!(
        pretend_computed_with_other(&versioned(&path), "versioning::scale_data"),
        2
    );
    let s = versioned(&path);
    pipeline(&s).unwrap();
    assert_eq!(executed(&s, "load_data"), 0);
    assert_eq!(executed(&s, "train_model"), 1, "only scale = true");
    assert_eq!(executed(&s, "eval_model"), 1, "only scale = true");

    // N_CLASS "was different" when load_data ran: it recomputes…
    let d2 = tempfile::tempdir().unwrap();
    let path2 = d2.path().join("s.mandala");
    pipeline(&versioned(&path2)).unwrap();
    assert_eq!(
        pretend_computed_with_other(&versioned(&path2), "versioning::N_CLASS"),
        1
    );
    let s = versioned(&path2);
    pipeline(&s).unwrap();
    assert_eq!(executed(&s, "load_data"), 1);
    // The recomputed load_data ran the current code, whose call and output ids are those of the
    // first run's: downstream calls are plain hits.
    assert_eq!(s.stats().op("train_model").hits, 2);
    assert_eq!(executed(&s, "train_model"), 0);
}

#[track]
fn helper(x: u32) -> u32 {
    x * 3
}

#[op]
fn inner(x: u32) -> u32 {
    helper(x) + 1
}

#[op]
fn outer(x: u32) -> u32 {
    mandala::unwrap(&inner(x).unwrap()).unwrap() * 2
}

#[test]
fn a_helper_reached_only_through_a_nested_op_is_a_dependency_of_the_outer_call() {
    let storage = Storage::in_memory()
        .versioned(Versioning::tracking(["versioning::"]))
        .unwrap();
    // The inner call first, so that inside outer it is a hit and does not execute.
    storage.run(|| inner(4)).unwrap();
    let y = storage.run(|| outer(4)).unwrap();
    assert_eq!(storage.stats().op("inner").hits, 1);
    let deps: Vec<String> = storage
        .get_ref_creator(&y)
        .unwrap()
        .unwrap()
        .record
        .deps
        .into_keys()
        .collect();
    assert_eq!(deps, ["inner", "outer", "versioning::helper"]);
}

#[test]
fn an_unversioned_store_records_no_dependencies_and_versioned_runs_do_not_trust_its_calls() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.mandala");
    let plain = Storage::open(&path).unwrap();
    pipeline(&plain).unwrap();
    assert!(plain
        .backend()
        .all_calls()
        .unwrap()
        .iter()
        .all(|c| c.record.deps.is_empty()));
    let v = versioned(&path);
    pipeline(&v).unwrap();
    assert_eq!(
        v.stats().total.executed,
        5,
        "calls of unknown code are recomputed"
    );
    assert!(v
        .enable_versioning(Versioning::tracking(["other::"]))
        .is_err());
}
