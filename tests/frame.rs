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
    let table = storage.cf(inc::OP).unwrap().df(false).unwrap();
    assert_eq!(table, storage.cf("inc").unwrap().df(false).unwrap());
    // The op's one output is named after it; its calls are the column `inc()`.
    assert_eq!(table.columns, ["x", "inc()", "inc"]);
    assert_eq!(table.len(), 10);
    let x = table.column::<i64>("x").unwrap();
    let y = table.column::<i64>("inc").unwrap();
    for (x, y) in x.iter().zip(&y) {
        assert_eq!(y.unwrap(), x.unwrap() + 1);
    }
    let values = table.values().unwrap().without_calls();
    assert_eq!(values.columns, ["x", "inc"]);
    let text = values.to_string();
    assert!(text.starts_with("x  inc\n"), "{text}");
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
    // add's input y is named after the output that produced it: inc's.
    let (x, y, z) = (
        table.column::<i64>("x").unwrap(),
        table.column::<i64>("inc").unwrap(),
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
    let add_col = table.index("add()").unwrap();
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
    let cf = pipeline_frame(&storage);
    let dot = cf.to_dot(false);
    // Ops are `op()`; an op's one output needs no label (its variable is named for it).
    for line in [
        "\"load_data()\" [shape=ellipse",
        "\"n_class\" -> \"load_data()\" [label=\"n_class\"];",
        "\"load_data()\" -> \"X\" [label=\"X\"];",
        "\"X\" -> \"train_model()\" [label=\"X\"];",
        // get_acc's input `model` is named after the output that produced it.
        "\"train_model()\" -> \"train_model\" [label=\"\"];",
        "\"train_model\" -> \"get_acc()\" [label=\"model\"];",
        "\"get_acc()\" -> \"acc\" [label=\"\"];",
    ] {
        assert!(dot.contains(line), "missing {line} in\n{dot}");
    }
    let verbose = cf.to_dot(true);
    assert!(
        verbose.contains("acc\\n4 refs (0 sources, 4 sinks)"),
        "{verbose}"
    );
    assert!(
        verbose.contains("train_model()\\n4 calls, 1 version(s)"),
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
    let doomed: Vec<_> = cf.funcs()["inc2()"]
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
    assert_eq!(all.vars().keys().collect::<Vec<_>>(), ["inc", "x", "z"]);
    // Only inc and its variables: five rows, no add column.
    let incs = all.drop_nodes(&["add()", "z"]);
    assert_eq!(incs.funcs().keys().collect::<Vec<_>>(), ["inc()"]);
    let t = incs.df(false).unwrap();
    assert_eq!(
        (t.len(), t.columns.clone()),
        (5, vec!["x".to_string(), "inc()".into(), "inc".into()])
    );
    let mut renamed = incs.clone();
    renamed.rename_var("inc", "y").unwrap();
    assert_eq!(renamed.df(false).unwrap().columns, ["x", "inc()", "y"]);
    assert!(renamed.rename_var("y", "x").is_err(), "names stay unique");
    // The frame of add united with the frame of inc is the expanded frame's table again.
    let adds = storage.cf("add").unwrap();
    let incs_only = storage.cf("inc").unwrap();
    let both = &incs_only | &adds;
    assert_eq!(both.funcs().keys().collect::<Vec<_>>(), ["add()", "inc()"]);
    assert_eq!(both.df(false).unwrap().len(), 5);
    assert_eq!(both.df(true).unwrap().len(), 3);
    // Intersection: what both frames hold.
    let common = &both & &incs_only;
    assert_eq!(common.funcs().keys().collect::<Vec<_>>(), ["inc()"]);
    assert_eq!(common.df(false).unwrap().len(), 5);
    let select = both.select(&["inc()", "x", "inc"]);
    assert_eq!(select.funcs().keys().collect::<Vec<_>>(), ["inc()"]);
    assert_eq!(select.df(false).unwrap().len(), 5);
}

#[op]
fn dbl(x: i64) -> i64 {
    x * 2
}

#[op]
fn sq(x: i64) -> i64 {
    x * x
}

#[test]
fn two_ops_feeding_one_op_merge_into_one_variable() {
    let storage = Storage::in_memory();
    let (mut doubled, mut squared) = (Vec::new(), Vec::new());
    storage
        .run(|| -> mandala::Result<()> {
            for x in 0..5 {
                let d = dbl(x)?;
                let s = sq(x)?;
                inc(&d)?;
                inc(&s)?;
                doubled.push(d);
                squared.push(s);
            }
            Ok(())
        })
        .unwrap();
    let mut cf = storage.cf_from(vec![
        ("doubled", doubled.iter().map(|r| r.ids()).collect()),
        ("squared", squared.iter().map(|r| r.ids()).collect()),
    ]);
    cf.expand_all().unwrap();
    // inc's input edge leads to `doubled`, so the squares reached through inc land there too:
    // `squared` is now a strict subset of `doubled`.
    assert!(cf.vars()["squared"].is_subset(&cf.vars()["doubled"]));
    assert_eq!(cf.vars()["doubled"].len(), 10);
    assert_eq!(cf.merge_vars(), 1);
    assert_eq!(
        cf.vars().keys().collect::<Vec<_>>(),
        ["doubled", "inc", "x"]
    );
    assert_eq!(cf.funcs()["sq()"].outputs["output_0"], "doubled");
    let table = cf.df(false).unwrap();
    assert_eq!(
        table.columns,
        ["x", "dbl()", "sq()", "doubled", "inc()", "inc"]
    );
    assert_eq!(table.len(), 10, "one row per inc call\n{table}");
    let (dbl_col, sq_col) = (table.index("dbl()").unwrap(), table.index("sq()").unwrap());
    let x = table.column::<i64>("x").unwrap();
    let mid = table.column::<i64>("doubled").unwrap();
    let out = table.column::<i64>("inc").unwrap();
    for (i, row) in table.rows.iter().enumerate() {
        // Each trace went through exactly one of the two paths.
        assert!(row[dbl_col].is_some() != row[sq_col].is_some(), "{table}");
        let x = x[i].unwrap();
        let expected = if row[dbl_col].is_some() { x * 2 } else { x * x };
        assert_eq!(mid[i], Some(expected));
        assert_eq!(out[i], Some(expected + 1));
    }
    let e = cf.merge_into("doubled", "doubled").unwrap_err().to_string();
    assert!(e.contains("cannot be merged into itself"), "{e}");
    let e = cf.merge_into("nope", "x").unwrap_err().to_string();
    assert_eq!(
        e,
        "no variable 'nope' in the frame; it has: doubled, inc, x"
    );
}

/// The README pipeline, expanded back from its accuracies.
fn pipeline_frame(storage: &Storage) -> mandala::ComputationFrame {
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
    cf
}

fn names(m: &std::collections::BTreeMap<String, impl Sized>) -> Vec<&str> {
    m.keys().map(|s| s.as_str()).collect()
}

#[test]
fn upstream_downstream_midstream_and_filters() {
    let storage = Storage::in_memory();
    let cf = pipeline_frame(&storage);
    assert_eq!(
        names(cf.funcs()),
        ["get_acc()", "load_data()", "train_model()"]
    );

    // The models are named after the op that made them.
    let up = cf.upstream(&["train_model"]).unwrap();
    assert_eq!(names(up.funcs()), ["load_data()", "train_model()"]);
    assert_eq!(
        names(up.vars()),
        ["X", "n_class", "n_estimators", "train_model", "y"]
    );
    assert_eq!(up.df(false).unwrap().len(), 4);

    let down = cf.downstream(&["X"]).unwrap();
    assert_eq!(names(down.funcs()), ["get_acc()", "train_model()"]);
    assert_eq!(names(down.vars()), ["X", "acc", "train_model"]);
    assert_eq!(down.vars()["acc"].len(), 4);

    let mid = cf.midstream(&["n_class", "train_model"]).unwrap();
    assert_eq!(names(mid.funcs()), ["load_data()", "train_model()"]);
    assert_eq!(names(mid.vars()), ["X", "n_class", "train_model", "y"]);
    assert!(cf.upstream(&["nope"]).is_err());

    // Filtering by value keeps whole traces through the kept refs.
    let two = cf.isin("n_class", &[2u32]).unwrap();
    let t = two.df(false).unwrap();
    assert_eq!(t.len(), 2, "{t}");
    assert!(t
        .column::<u32>("n_class")
        .unwrap()
        .iter()
        .all(|c| *c == Some(2)));
    assert_eq!(
        two.vars()["n_estimators"].len(),
        2,
        "both n_estimators values reach n_class = 2"
    );
    assert_eq!(two.funcs()["train_model()"].calls.len(), 2);
    // By content id and by history id: the same frame.
    let n2 = two.vars()["n_class"].iter().next().copied().unwrap();
    assert_eq!(cf.filter_hids("n_class", &[n2]).unwrap(), two);
    assert_eq!(
        cf.filter_cids("n_class", &[two.cid(&n2).unwrap()]).unwrap(),
        two
    );
    // A predicate over loaded values, on a sink variable: the history comes along.
    let best = cf.filter_values::<f64>("acc", |a| *a > 0.03).unwrap();
    let t = best.df(false).unwrap();
    assert!(t
        .column::<f64>("acc")
        .unwrap()
        .iter()
        .all(|a| a.unwrap() > 0.03));
    assert_eq!(
        t.len(),
        2,
        "acc = sum(i % n_class) / n / 100: 0.08 and 0.04 for n_class = 5\n{t}"
    );
    assert!(t
        .column::<u32>("n_class")
        .unwrap()
        .iter()
        .all(|c| *c == Some(5)));

    // Difference: removing the n_class = 2 source removes everything computed from it.
    let rest = &cf - &two.select(&["n_class"]);
    let t = rest.df(false).unwrap();
    assert_eq!(t.len(), 2, "{t}");
    assert!(t
        .column::<u32>("n_class")
        .unwrap()
        .iter()
        .all(|c| *c == Some(5)));
    assert_eq!((&rest | &two).df(false).unwrap(), cf.df(false).unwrap());
    assert!((&rest & &two).funcs().values().all(|f| f.calls.is_empty()));
    // Setwise, as in mandala: subtracting the whole n_class = 2 traces also removes their
    // n_estimators refs, which the n_class = 5 traces share (equal source values share a
    // history id), so no model is left.
    let setwise = &cf - &two;
    assert!(setwise.funcs()["train_model()"].calls.is_empty());
    assert_eq!(setwise.funcs()["load_data()"].calls.len(), 1);

    // eval: the values of one variable.
    let mut n_class = cf.eval::<u32>("n_class").unwrap();
    n_class.sort();
    assert_eq!(n_class, [2, 5]);
    assert_eq!(
        cf.sink_vars(),
        ["acc"],
        "every other variable feeds a call of the frame"
    );
    assert_eq!(cf.source_vars(), ["n_class", "n_estimators"]);
}

#[op]
fn halve(x: f64) -> f64 {
    x / 2.0
}

#[test]
fn a_trace_through_an_in_place_update_holds_sets() {
    let storage = Storage::in_memory();
    storage
        .run(|| -> mandala::Result<()> {
            let once = halve(8.0)?;
            halve(&once)?;
            Ok(())
        })
        .unwrap();
    let table = storage.cf("halve").unwrap().df(false).unwrap();
    assert_eq!(table.columns, ["x", "halve()", "halve"]);
    assert_eq!(table.len(), 2, "{table}");
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let xs: Vec<Vec<f64>> = table
        .column_sets::<f64>("x")
        .unwrap()
        .into_iter()
        .map(sorted)
        .collect();
    let outs: Vec<Vec<f64>> = table
        .column_sets::<f64>("halve")
        .unwrap()
        .into_iter()
        .map(sorted)
        .collect();
    // Row of halve(8): x = 8 -> 4; row of halve(halve(8)): both steps, as sets.
    let mut rows: Vec<(Vec<f64>, Vec<f64>)> = xs.into_iter().zip(outs).collect();
    rows.sort_by_key(|r| r.0.len());
    assert_eq!(rows[0], (vec![8.0], vec![4.0]));
    assert_eq!(rows[1], (vec![4.0, 8.0], vec![2.0, 4.0]));
    let e = table.column::<f64>("x").unwrap_err().to_string();
    assert!(
        e.contains("holds 2 values; read it with column_sets"),
        "{e}"
    );
    let v = table.clone().values().unwrap();
    let json = v.to_json();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|r| r["x"].as_array().is_some_and(|a| a.len() == 2)),
        "{json}"
    );
    assert!(
        v.to_csv().contains("\"[4.0,8.0]\"") || v.to_csv().contains("\"[8.0,4.0]\""),
        "sets are JSON arrays in CSV:\n{}",
        v.to_csv()
    );
}

#[test]
fn tables_export_json_and_csv() {
    let storage = Storage::in_memory();
    storage
        .run(|| (0..3).try_for_each(|i| inc(i).map(|_| ())))
        .unwrap();
    let table = storage.cf("inc").unwrap().df(false).unwrap();
    let json = table.clone().values().unwrap().to_json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r["inc"].as_i64().unwrap(), r["x"].as_i64().unwrap() + 1);
        assert!(r["inc()"]["call"].as_str().unwrap().len() == 64, "{r}");
    }
    let refs = table.to_json();
    assert_eq!(refs[0]["x"]["ref"].as_str().unwrap().len(), 64);
    let csv = table.values().unwrap().without_calls().to_csv();
    let mut lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.remove(0), "x,inc");
    lines.sort();
    assert_eq!(lines, ["0,1", "1,2", "2,3"]);
}

#[test]
fn the_pipeline_draws_as_svg_without_graphviz() {
    let storage = Storage::in_memory();
    let cf = pipeline_frame(&storage);
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("pipeline.svg");
    cf.draw_svg(&path, true).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: String = doc
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ");
    for node in ["load_data", "train_model", "get_acc", "n_class", "acc"] {
        assert!(
            texts.contains(node),
            "{node} missing from the SVG's text: {texts}"
        );
    }
    assert!(texts.contains("4 calls"), "verbose counts: {texts}");
}

#[op]
fn ramp(n: u32) -> Vec<f64> {
    (0..n).map(f64::from).collect()
}

#[test]
fn long_values_print_cut_and_export_whole() {
    let storage = Storage::in_memory();
    storage.run(|| ramp(20_000).map(|_| ())).unwrap();
    let table = storage
        .cf("ramp")
        .unwrap()
        .df(false)
        .unwrap()
        .values()
        .unwrap();
    let text = table.to_string();
    let row = text.lines().nth(1).unwrap();
    assert!(row.starts_with("20000  call "), "{row}");
    assert!(
        row.ends_with("  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, …"),
        "{row}"
    );
    assert_eq!(
        row.split("  ").last().unwrap().chars().count(),
        mandala::CELL_WIDTH
    );
    let json = table.to_json();
    assert_eq!(json[0]["ramp"].as_array().unwrap().len(), 20_000);
    assert!(table.to_csv().len() > 100_000, "CSV keeps the whole value");
}

#[test]
fn a_frame_lists_its_variables_and_ops() {
    let storage = Storage::in_memory();
    inc_then_add(&storage);
    let mut cf = storage.cf("add").unwrap();
    cf.expand_back(None, true).unwrap();
    assert_eq!(
        cf.to_string(),
        "ComputationFrame with 3 variables and 2 ops\n\
         variables: x (3 refs), inc (3 refs), z (3 refs)\n\
         ops:\n  \
         inc()  3 calls  x=x → inc\n  \
         add()  3 calls  x=x, y=inc → z\n"
    );
}
