//! ComputationFrames: tables of the stored web of calls, built without re-running code.

use mandala::{op, Storage};

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

#[op(output_names(z))]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[test]
fn the_frame_of_an_op_has_one_row_per_call() {
    let storage = Storage::in_memory();
    storage
        .run(|| (0..10).try_for_each(|i| inc(i).map(|_| ())))
        .unwrap();
    let table = storage.cf("inc").unwrap().df(false).unwrap();
    assert_eq!(table.columns, ["x", "inc", "var_0"]);
    assert_eq!(table.len(), 10);
    let x = table.column::<i64>("x").unwrap();
    let y = table.column::<i64>("var_0").unwrap();
    for (x, y) in x.iter().zip(&y) {
        assert_eq!(y.unwrap(), x.unwrap() + 1);
    }
    let values = table.values().unwrap().without_calls();
    assert_eq!(values.columns, ["x", "var_0"]);
    let text = values.to_string();
    assert!(text.starts_with("x  var_0\n"), "{text}");
    assert_eq!(text.lines().count(), 11);
    assert!(text.lines().any(|l| l == "9  10"), "{text}");
}

fn inc_then_add(storage: &Storage) {
    storage
        .run(|| -> mandala::Result<()> {
            for x in 0..5 {
                let y = inc(x)?;
                if x % 2 == 0 {
                    add(x, &y)?;
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn expanding_from_add_gives_one_row_per_add_call() {
    let storage = Storage::in_memory();
    inc_then_add(&storage);
    let mut cf = storage.cf("add").unwrap();
    cf.expand_all().unwrap();
    let table = cf.df(false).unwrap();
    assert_eq!(table.len(), 3, "{table}");
    let (x, y, z) = (
        table.column::<i64>("x").unwrap(),
        table.column::<i64>("y").unwrap(),
        table.column::<i64>("z").unwrap(),
    );
    for i in 0..3 {
        assert_eq!(z[i].unwrap(), x[i].unwrap() + y[i].unwrap());
        assert_eq!(y[i].unwrap(), x[i].unwrap() + 1);
    }
}

#[test]
fn expanding_from_inc_outer_joins_the_add_calls() {
    let storage = Storage::in_memory();
    inc_then_add(&storage);
    let mut cf = storage.cf("inc").unwrap();
    cf.expand_all().unwrap();
    let table = cf.df(false).unwrap();
    assert_eq!(table.len(), 5, "{table}");
    let add_col = table.index("add").unwrap();
    assert_eq!(
        table.rows.iter().filter(|r| r[add_col].is_none()).count(),
        2
    );
    assert_eq!(cf.df(true).unwrap().len(), 3, "join inner");
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Model {
    n_estimators: u32,
    weight: f64,
}

#[allow(non_snake_case)]
#[op(output_names(X, y))]
fn load_data(n_class: u32) -> (Vec<f64>, Vec<u32>) {
    (
        (0..20).map(|i| f64::from(i % n_class)).collect(),
        (0..20).map(|i| i % n_class).collect(),
    )
}

#[allow(non_snake_case)]
#[op]
fn train_model(X: Vec<f64>, y: Vec<u32>, n_estimators: u32) -> Model {
    let _ = y;
    Model {
        n_estimators,
        weight: X.iter().sum::<f64>() / f64::from(n_estimators),
    }
}

#[allow(non_snake_case)]
#[op]
fn get_acc(model: Model, X: Vec<f64>, y: Vec<u32>) -> f64 {
    let _ = (X, y);
    model.weight / 100.0
}

#[test]
fn the_readme_pipeline_as_a_table() {
    let storage = Storage::in_memory();
    let (mut accs, mut models) = (Vec::new(), Vec::new());
    storage
        .run(|| -> mandala::Result<()> {
            for n_class in [2, 5] {
                let (x, y) = load_data(n_class)?;
                for n in [5, 10] {
                    let model = train_model(&x, &y, n)?;
                    accs.push(get_acc(&model, &x, &y)?);
                    models.push(model);
                }
            }
            Ok(())
        })
        .unwrap();
    let mut cf = storage.cf_from(vec![
        ("acc", accs.iter().map(|r| r.ids()).collect()),
        ("model", models.iter().map(|r| r.ids()).collect()),
    ]);
    cf.expand_back(None, true).unwrap();
    let table = cf.df(false).unwrap();
    assert_eq!(table.len(), 4, "{table}");
    let n_class = table.column::<u32>("n_class").unwrap();
    let n_est = table.column::<u32>("n_estimators").unwrap();
    let acc = table.column::<f64>("acc").unwrap();
    let mut rows: Vec<(u32, u32, f64)> = (0..4)
        .map(|i| (n_class[i].unwrap(), n_est[i].unwrap(), acc[i].unwrap()))
        .collect();
    rows.sort_by_key(|r| (r.0, r.1));
    let expected_acc = |n_class: u32, n: u32| {
        (0..20).map(|i| f64::from(i % n_class)).sum::<f64>() / f64::from(n) / 100.0
    };
    for (c, n, a) in rows.iter().copied() {
        assert_eq!(a, expected_acc(c, n));
    }
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        [(2, 5), (2, 10), (5, 5), (5, 10)]
    );
    assert!(
        table.columns.iter().position(|c| c == "n_class")
            < table.columns.iter().position(|c| c == "acc")
    );
}

#[test]
fn the_pipeline_draws_as_dot_with_labelled_edges() {
    let storage = Storage::in_memory();
    let accs = storage
        .run(|| -> mandala::Result<Vec<_>> {
            let mut accs = Vec::new();
            for n_class in [2, 5] {
                let (x, y) = load_data(n_class)?;
                for n in [5, 10] {
                    let model = train_model(&x, &y, n)?;
                    accs.push(get_acc(&model, &x, &y)?);
                }
            }
            Ok(accs)
        })
        .unwrap();
    let mut cf = storage.cf_from(vec![("acc", accs.iter().map(|r| r.ids()).collect())]);
    cf.expand_back(None, true).unwrap();
    let dot = cf.to_dot(false);
    for line in [
        "\"load_data\" [shape=ellipse",
        "\"n_class\" -> \"load_data\" [label=\"n_class\"];",
        "\"load_data\" -> \"X\" [label=\"X\"];",
        "\"X\" -> \"train_model\" [label=\"X\"];",
        "\"train_model\" -> \"model\" [label=\"output_0\"];",
        "\"model\" -> \"get_acc\" [label=\"model\"];",
        "\"get_acc\" -> \"acc\" [label=\"output_0\"];",
    ] {
        assert!(dot.contains(line), "missing {line} in\n{dot}");
    }
    let verbose = cf.to_dot(true);
    assert!(
        verbose.contains("acc\\n4 refs (0 sources, 4 sinks)"),
        "{verbose}"
    );
    assert!(
        verbose.contains("train_model\\n4 calls, 1 version(s)"),
        "{verbose}"
    );
    assert!(verbose.contains("[label=\"n_class (2)\"]"), "{verbose}");
}

static INC_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[op]
fn inc2(x: i64) -> i64 {
    INC_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x + 2
}

#[op]
fn double(x: i64) -> i64 {
    x * 2
}

#[test]
fn deleting_calls_deletes_their_dependents_which_then_recompute() {
    let d = tempfile::tempdir().unwrap();
    let storage = Storage::open(d.path().join("s.mandala")).unwrap();
    let pipeline = |s: &Storage| {
        s.run(|| -> mandala::Result<()> {
            for x in 0..4 {
                let y = inc2(x)?;
                double(&y)?;
            }
            Ok(())
        })
        .unwrap()
    };
    pipeline(&storage);
    // Delete inc2's calls for x = 0 and 1: their double calls go too.
    let cf = storage.cf("inc2").unwrap();
    let doomed: Vec<_> = cf.funcs()["inc2"]
        .calls
        .iter()
        .filter(|id| {
            let c = cf.call(id).unwrap();
            let x: i64 = storage.load_value(&c.record.inputs[0].cid).unwrap();
            x < 2
        })
        .copied()
        .collect();
    let deleted = storage.delete_calls(&doomed).unwrap();
    assert_eq!(
        deleted.len(),
        4,
        "2 inc2 calls and the 2 double calls downstream"
    );
    assert!(storage.verify().unwrap().is_clean());
    assert_eq!(storage.backend().all_calls().unwrap().len(), 4);
    // The same process never serves a deleted output: they recompute.
    storage.reset_stats();
    pipeline(&storage);
    assert_eq!(storage.stats().op("inc2").executed, 2);
    assert_eq!(storage.stats().op("double").executed, 2);
    // Deleting a whole frame, then collecting its values.
    let n = storage.cf("double").unwrap().delete_calls().unwrap();
    assert_eq!(n, 4);
    let fs = storage.fs().unwrap();
    let dry = fs.gc(true, std::time::Duration::ZERO).unwrap();
    // double's outputs 4, 6, 8, 10: 4 is also inc2(2), still named; 6, 8 and 10 go.
    assert_eq!(dry.values.len(), 3, "{:?}", dry.values);
    assert_eq!(
        storage.backend().all_values().unwrap().len(),
        9,
        "a dry run removes nothing"
    );
    let done = fs.gc(false, std::time::Duration::ZERO).unwrap();
    assert_eq!(done.values, dry.values);
    assert_eq!(storage.backend().all_values().unwrap().len(), 6);
    assert!(storage.verify().unwrap().is_clean());
    let fresh = Storage::open(d.path().join("s.mandala")).unwrap();
    pipeline(&fresh);
    assert_eq!(
        (
            fresh.stats().op("inc2").executed,
            fresh.stats().op("double").executed
        ),
        (0, 4)
    );
}

#[test]
fn select_drop_rename_union_and_intersection() {
    let storage = Storage::in_memory();
    inc_then_add(&storage);
    let mut all = storage.cf("inc").unwrap();
    all.expand_all().unwrap();
    assert_eq!(all.vars().keys().collect::<Vec<_>>(), ["var_0", "x", "z"]);
    // Only inc and its variables: five rows, no add column.
    let incs = all.drop_nodes(&["add", "z"]);
    assert_eq!(incs.funcs().keys().collect::<Vec<_>>(), ["inc"]);
    let t = incs.df(false).unwrap();
    assert_eq!(
        (t.len(), t.columns.clone()),
        (5, vec!["x".to_string(), "inc".into(), "var_0".into()])
    );
    let mut renamed = incs.clone();
    renamed.rename_var("var_0", "y").unwrap();
    assert_eq!(renamed.df(false).unwrap().columns, ["x", "inc", "y"]);
    assert!(renamed.rename_var("y", "x").is_err(), "names stay unique");
    // The frame of add united with the frame of inc is the expanded frame's table again.
    let adds = storage.cf("add").unwrap();
    let mut incs_only = storage.cf("inc").unwrap();
    incs_only.rename_var("var_0", "y").unwrap();
    let both = &incs_only | &adds;
    assert_eq!(both.funcs().keys().collect::<Vec<_>>(), ["add", "inc"]);
    assert_eq!(both.df(false).unwrap().len(), 5);
    assert_eq!(both.df(true).unwrap().len(), 3);
    // Intersection: what both frames hold.
    let common = &both & &incs_only;
    assert_eq!(common.funcs().keys().collect::<Vec<_>>(), ["inc"]);
    assert_eq!(common.df(false).unwrap().len(), 5);
    let select = both.select(&["inc", "x", "y"]);
    assert_eq!(select.funcs().keys().collect::<Vec<_>>(), ["inc"]);
    assert_eq!(select.df(false).unwrap().len(), 5);
}
