//! End to end: `#[op]` memoization in one process, in memory and on disk.

use std::sync::atomic::{AtomicU64, Ordering};

use mandala::{op, Error, Ref, Storage};

static INC_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn inc(x: i64) -> i64 {
    INC_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 1
}

#[op]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[op(output_names(quotient, remainder))]
fn divmod(a: u64, b: u64) -> (u64, u64) {
    (a / b, a % b)
}

#[op]
fn pair(a: u64) -> (u64, String) {
    (a, a.to_string())
}

#[op(name = "stable_name")]
fn renamed_in_rust(x: u8) -> u8 {
    x * 2
}

#[op(name = "stable_name")]
fn renamed_again(x: u8) -> u8 {
    x * 200
}

static SCALE_RUNS: AtomicU64 = AtomicU64::new(0);

#[op(ignore(verbose))]
fn scale(x: f64, verbose: bool) -> f64 {
    SCALE_RUNS.fetch_add(1, Ordering::SeqCst);
    if verbose {
        eprintln!("scaling {x}");
    }
    x * 10.0
}

#[derive(Debug, PartialEq)]
enum ParseError {
    Bad(String),
    Store(String),
}

impl From<Error> for ParseError {
    fn from(e: Error) -> Self {
        ParseError::Store(e.to_string())
    }
}

static PARSE_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn parse(s: String) -> Result<i64, ParseError> {
    PARSE_RUNS.fetch_add(1, Ordering::SeqCst);
    s.parse().map_err(|_| ParseError::Bad(s))
}

fn tempstore() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("s.mandala")).unwrap();
    (dir, s)
}

#[test]
fn second_run_in_the_same_process_executes_nothing() {
    for storage in [Storage::in_memory(), tempstore().1] {
        let run = || -> mandala::Result<Ref<i64>> {
            let a = inc(1)?;
            let b = inc(&a)?;
            add(&a, b)
        };
        let first = storage.run(run).unwrap();
        assert_eq!(storage.unwrap(&first).unwrap(), 5);
        let executed = storage.stats().total.executed;
        assert_eq!(executed, 3);
        let second = storage.run(run).unwrap();
        assert_eq!(storage.stats().total.executed, 3, "nothing executes again");
        assert_eq!(storage.stats().total.hits, 3);
        assert!(!second.in_memory(), "hits are lazy");
        assert_eq!(second.hid(), first.hid());
        assert_eq!(storage.unwrap(&second).unwrap(), 5);
    }
}

#[test]
fn same_content_through_another_history_is_stored_once_and_not_executed() {
    let (_d, storage) = tempstore();
    let (x, y, z) = storage
        .run(|| -> mandala::Result<_> { Ok((inc(1)?, inc(2)?, inc(inc(1)?)?)) })
        .unwrap();
    let st = storage.stats();
    assert_eq!(st.op("inc").executed, 2, "inc(1) and inc(2)");
    assert_eq!(st.op("inc").hits, 1, "the inner inc(1)");
    assert_eq!(st.op("inc").reused, 1, "inc(inc(1)) reuses inc(2)'s result");
    assert_eq!(y.cid(), z.cid());
    assert_ne!(y.hid(), z.hid());
    assert_eq!(storage.unwrap(&z).unwrap(), 3);
    assert_eq!(storage.unwrap(&x).unwrap(), 2);
    // Values 1, 2, 3 once each (in one pack, once the log is sealed).
    storage.flush().unwrap();
    let status = storage.fs().unwrap().status().unwrap();
    assert_eq!((status.value_count(), status.packs.count), (3, 1));
    // Three call records: inc(1), inc(2), and inc(inc(1)) recorded under its own hid.
    assert_eq!(status.call_count(), 3);
    let creator = storage.get_ref_creator(&z).unwrap().unwrap();
    assert_eq!(creator.record.inputs[0].hid, x.hid());
}

#[test]
fn tuple_outputs_and_output_names() {
    let storage = Storage::in_memory();
    let (q, r) = storage.run(|| divmod(17, 5)).unwrap();
    assert_eq!(
        (storage.unwrap(&q).unwrap(), storage.unwrap(&r).unwrap()),
        (3, 2)
    );
    let call = storage.get_ref_creator(&r).unwrap().unwrap();
    let names: Vec<_> = call
        .record
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(names, ["quotient", "remainder"]);
    let (a, s) = storage.run(|| pair(7)).unwrap();
    assert_eq!(storage.unwrap(&s).unwrap(), "7");
    let call = storage.get_ref_creator(&a).unwrap().unwrap();
    let names: Vec<_> = call
        .record
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(names, ["output_0", "output_1"]);
}

#[test]
fn a_pinned_name_keeps_results_across_rust_renames() {
    let storage = Storage::in_memory();
    let a = storage.run(|| renamed_in_rust(3)).unwrap();
    let b = storage.run(|| renamed_again(3)).unwrap();
    assert_eq!(storage.stats().op("stable_name").executed, 1);
    assert_eq!(
        storage.unwrap(&b).unwrap(),
        6,
        "the stored result of the same op identity"
    );
    assert_eq!(a.hid(), b.hid());
}

#[test]
fn ignored_arguments_are_passed_but_not_hashed() {
    let storage = Storage::in_memory();
    let a = storage.run(|| scale(1.5, false)).unwrap();
    let b = storage.run(|| scale(1.5, true)).unwrap();
    assert_eq!(a.hid(), b.hid());
    assert_eq!(storage.stats().op("scale").executed, 1);
    let call = storage.get_ref_creator(&a).unwrap().unwrap();
    let inputs: Vec<_> = call.record.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(inputs, ["x"]);
}

#[test]
fn result_ops_store_ok_values_only() {
    let storage = Storage::in_memory();
    let before = PARSE_RUNS.load(Ordering::SeqCst);
    let ok = storage.run_with(|| parse("42".to_string())).unwrap();
    assert_eq!(storage.unwrap(&ok).unwrap(), 42);
    let err = storage.run_with(|| parse("x".to_string())).unwrap_err();
    assert_eq!(err, ParseError::Bad("x".into()));
    let err = storage.run_with(|| parse("x")).unwrap_err();
    assert_eq!(err, ParseError::Bad("x".into()));
    storage.run_with(|| parse("42")).unwrap();
    assert_eq!(
        PARSE_RUNS.load(Ordering::SeqCst) - before,
        3,
        "errors re-run, Ok is a hit"
    );
    assert_eq!(storage.stats().op("parse").executed, 1);
    assert_eq!(storage.backend().all_calls().unwrap().len(), 1);
}

#[test]
fn noop_mode_executes_and_stores_nothing() {
    let (_d, storage) = tempstore();
    let before = INC_RUNS.load(Ordering::SeqCst);
    let r = storage.noop(|| inc(inc(100)?)).unwrap();
    let r2 = storage.noop(|| inc(inc(100)?)).unwrap();
    assert_eq!(r.value(), Some(&102));
    assert_eq!(r2.value(), Some(&102));
    assert!(INC_RUNS.load(Ordering::SeqCst) - before >= 4);
    assert_eq!(storage.stats().total.executed, 0);
    let st = storage.fs().unwrap().status().unwrap();
    assert_eq!((st.values.count, st.calls.count), (0, 0));
}

#[test]
fn outside_a_context_ops_are_plain_functions() {
    let r = inc(41).unwrap();
    assert_eq!(r.value(), Some(&42));
}

#[test]
fn new_calls_can_be_forbidden() {
    let storage = Storage::in_memory();
    storage.run(|| inc(10)).unwrap();
    storage.allow_new_calls(false);
    let hit = storage.run(|| inc(10)).unwrap();
    assert_eq!(storage.unwrap(&hit).unwrap(), 11);
    let err = storage.run(|| inc(11)).unwrap_err();
    assert!(
        matches!(err, Error::Call(mandala::CallError::NewCallNotAllowed { ref op }) if op == "inc")
    );
    assert_eq!(
        err.to_string(),
        "call to op 'inc' is not in the store and new calls are not allowed"
    );
    storage.allow_new_calls(true);
    storage.run(|| inc(11)).unwrap();
}

static FIT_RUNS: AtomicU64 = AtomicU64::new(0);

// Version 1 of `fit` had no `tol` argument; version 2 adds it with new_default so the calls
// made by version 1 remain hits.
#[op(name = "fit")]
fn fit_v1(x: i64) -> i64 {
    FIT_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 3
}

#[op(name = "fit", new_default(tol = 0.5))]
fn fit_v2(x: i64, tol: f64) -> i64 {
    FIT_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 3 + if tol == 0.5 { 0 } else { 1 }
}

#[test]
fn new_default_arguments_keep_old_calls() {
    let storage = Storage::in_memory();
    let before = FIT_RUNS.load(Ordering::SeqCst);
    let old = storage.run(|| fit_v1(4)).unwrap();
    let same = storage.run(|| fit_v2(4, 0.5)).unwrap();
    assert_eq!(
        FIT_RUNS.load(Ordering::SeqCst) - before,
        1,
        "the default value is a hit on the old call"
    );
    assert_eq!(old.hid(), same.hid());
    let other = storage.run(|| fit_v2(4, 0.1)).unwrap();
    assert_eq!(storage.unwrap(&other).unwrap(), 13);
    assert_eq!(FIT_RUNS.load(Ordering::SeqCst) - before, 2);
    let call = storage.get_ref_creator(&other).unwrap().unwrap();
    let inputs: Vec<_> = call.record.inputs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(inputs, ["tol", "x"]);
}

static OUTER_RUNS: AtomicU64 = AtomicU64::new(0);

#[op]
fn outer(x: i64) -> i64 {
    OUTER_RUNS.fetch_add(1, Ordering::SeqCst);
    let y = inc(x).unwrap();
    mandala::unwrap(&y).unwrap() * 10
}

#[test]
fn an_op_inside_an_op_is_its_own_call() {
    let storage = Storage::in_memory();
    let r = storage.run(|| outer(5)).unwrap();
    assert_eq!(storage.unwrap(&r).unwrap(), 60);
    assert_eq!(storage.stats().op("inc").executed, 1);
    assert_eq!(storage.stats().op("outer").executed, 1);
    // The inner call is stored on its own: calling it directly is a hit.
    storage.run(|| inc(5)).unwrap();
    assert_eq!(storage.stats().op("inc").hits, 1);
    // A hit of the outer call does not run the inner one at all.
    storage.run(|| outer(5)).unwrap();
    assert_eq!(storage.stats().op("outer").hits, 1);
    assert_eq!(storage.stats().op("inc").hits, 1);
}

#[test]
fn calls_completed_before_an_error_or_a_panic_are_stored() {
    let (dir, storage) = tempstore();
    let r: Result<(), Error> = storage.run(|| {
        inc(1000)?;
        Err(Error::Call(mandala::CallError::NewCallNotAllowed {
            op: "pretend".into(),
        }))
    });
    assert!(r.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        storage
            .run(|| -> mandala::Result<()> {
                inc(2000)?;
                panic!("user code panics");
            })
            .unwrap()
    }));
    assert!(panicked.is_err());
    assert!(!mandala::in_context(), "the context ended with the panic");
    let fresh = Storage::open(dir.path().join("s.mandala")).unwrap();
    fresh.allow_new_calls(false);
    fresh
        .run(|| -> mandala::Result<()> {
            inc(1000).map(|_| ())?;
            inc(2000).map(|_| ())
        })
        .unwrap();
    assert_eq!(fresh.stats().op("inc").hits, 2);
}

#[test]
fn contexts_nest_and_noop_inside_run_stores_nothing() {
    let storage = Storage::in_memory();
    storage
        .run(|| -> mandala::Result<()> {
            inc(7)?;
            storage.noop(|| inc(8))?;
            storage.run(|| inc(9))?;
            Ok(())
        })
        .unwrap();
    assert_eq!(storage.stats().op("inc").executed, 2);
    assert_eq!(storage.backend().all_calls().unwrap().len(), 2);
}

/// A value whose serialization always fails.
#[derive(Clone, Debug, serde::Deserialize)]
struct Unstorable;

impl serde::Serialize for Unstorable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "Unstorable refuses to be serialized",
        ))
    }
}

#[op]
fn consume(u: Unstorable) -> u8 {
    let _ = u;
    1
}

#[op]
fn produce(x: u8) -> Unstorable {
    let _ = x;
    Unstorable
}

#[test]
fn values_that_cannot_be_serialized_give_an_error_naming_op_and_argument() {
    let storage = Storage::in_memory();
    let e = storage.run(|| consume(Unstorable)).unwrap_err();
    assert_eq!(e.to_string(), "op 'consume': argument 'u' cannot be stored: value cannot be serialized: Unstorable refuses to be serialized");
    let e = storage.run(|| produce(1)).unwrap_err();
    assert_eq!(e.to_string(), "op 'produce': output 'output_0' cannot be stored: value cannot be serialized: Unstorable refuses to be serialized");
    assert!(storage.backend().all_calls().unwrap().is_empty());
}

#[test]
fn provenance_creator_consumers_and_load_ref() {
    let (_d, storage) = tempstore();
    let (a, b, c) = storage
        .run(|| -> mandala::Result<_> {
            let a = inc(10)?;
            let b = inc(&a)?;
            let c = add(&a, &b)?;
            Ok((a, b, c))
        })
        .unwrap();
    let creator = storage.get_ref_creator(&c).unwrap().unwrap();
    assert_eq!(creator.record.op, "add");
    let inputs: Vec<_> = creator
        .record
        .inputs
        .iter()
        .map(|s| (s.name.as_str(), s.hid))
        .collect();
    assert_eq!(inputs, [("x", a.hid()), ("y", b.hid())]);
    let mut consumers: Vec<String> = storage
        .get_consumers(&a)
        .unwrap()
        .into_iter()
        .map(|c| c.record.op.to_string())
        .collect();
    consumers.sort();
    assert_eq!(consumers, ["add", "inc"]);
    assert!(storage.get_consumers(&c).unwrap().is_empty());
    // A source value has consumers but no creator.
    let source = storage.get_ref_creator(&a).unwrap().unwrap().record.inputs[0].clone();
    let src: Ref<i64> = storage.load_ref(&source.hid).unwrap();
    assert!(storage.get_ref_creator(&src).unwrap().is_none());
    assert_eq!(storage.unwrap(&src).unwrap(), 10);
    // load_ref gives a lazy ref with the same ids, loadable in a fresh process.
    let fresh = Storage::open(storage.fs().unwrap().root()).unwrap();
    let again: Ref<i64> = fresh.load_ref(&c.hid()).unwrap();
    assert!(!again.in_memory());
    assert_eq!(again.cid(), c.cid());
    assert_eq!(fresh.unwrap(&again).unwrap(), 23);
    let missing = fresh.load_ref::<i64>(&mandala::Id([7; 32])).unwrap_err();
    assert!(
        missing.to_string().starts_with("ref 0707070707"),
        "{missing}"
    );
}

#[test]
fn attach_loads_in_place_and_type_mismatches_are_errors() {
    let (dir, storage) = tempstore();
    let y = storage.run(|| inc(5)).unwrap();
    let fresh = Storage::open(dir.path().join("s.mandala")).unwrap();
    let lazy = fresh.run(|| inc(5)).unwrap();
    assert!(!lazy.in_memory());
    assert_eq!(fresh.attach(&lazy).unwrap(), &6);
    assert!(lazy.in_memory());
    let wrong: Ref<String> = fresh.load_ref(&y.hid()).unwrap();
    let e = fresh.unwrap(&wrong).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "value {} does not decode as alloc::string::String",
            y.cid()
        )),
        "{e}"
    );
}

#[test]
fn records_of_another_semantic_version_are_not_reused() {
    let storage = Storage::in_memory();
    let x = inc(77).unwrap(); // outside a context: a detached ref, ids computed on demand
    let y = inc(78).unwrap();
    // A record of inc(77) made by other code (another semantic version), and its values.
    for (cid, v) in [(x.cid(), 77i64), (y.cid(), 78)] {
        storage
            .backend()
            .put_value(&cid, &store_core::format::cbor::to_canonical(&v).unwrap())
            .unwrap();
    }
    let other = mandala::CallRecord {
        op: "inc".into(),
        semver: mandala::Id([9; 32]),
        inputs: vec![mandala::Slot {
            name: "x".into(),
            hid: x.hid(),
            cid: x.cid(),
        }],
        outputs: vec![mandala::Slot {
            name: "output_0".into(),
            hid: mandala::Id([1; 32]),
            cid: y.cid(),
        }],
        deps: Default::default(),
        git: None,
    };
    storage.backend().put_call(&other).unwrap();
    let r = storage.run(|| inc(77)).unwrap();
    assert_eq!(
        storage.stats().op("inc").executed,
        1,
        "the other version's result is not used"
    );
    assert_eq!(storage.stats().op("inc").reused, 0);
    assert_eq!(storage.unwrap(&r).unwrap(), 78);
    assert_eq!(
        storage.backend().all_calls().unwrap().len(),
        2,
        "both versions are kept"
    );
}

#[test]
fn threads_share_one_store_each_in_its_own_context() {
    let (_d, storage) = tempstore();
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let storage = storage.clone();
            s.spawn(move || {
                storage
                    .run(|| -> mandala::Result<()> {
                        for i in 0..50 {
                            add(i, (i + t) % 3)?; // overlapping calls across threads
                        }
                        Ok(())
                    })
                    .unwrap();
            });
        }
    });
    let st = storage.stats().op("add");
    assert_eq!(st.executed + st.hits + st.reused, 200);
    // Threads may race to compute the same new call, but each distinct call is stored once.
    let distinct: std::collections::HashSet<(i64, i64)> = (0..4)
        .flat_map(|t| (0..50).map(move |i| (i, (i + t) % 3)))
        .collect();
    assert_eq!(storage.backend().all_calls().unwrap().len(), distinct.len());
    assert!(storage.verify().unwrap().is_clean());
    storage.allow_new_calls(false);
    for (x, y) in distinct {
        storage.run(|| add(x, y)).unwrap();
    }
}

#[op(name = "scale_by")]
fn scale_by_v1(factor: u32, x: u32) -> u32 {
    factor * x
}

// The argument `factor` was renamed `k`; `renamed` keeps the stored name, so results stay.
#[op(name = "scale_by", renamed(k = "factor"))]
fn scale_by_v2(k: u32, x: u32) -> u32 {
    k * x
}

#[test]
fn a_renamed_argument_keeps_its_results() {
    let storage = Storage::in_memory();
    let a = storage.run(|| scale_by_v1(3, 5)).unwrap();
    let b = storage.run(|| scale_by_v2(3, 5)).unwrap();
    assert_eq!(storage.stats().op("scale_by").executed, 1);
    assert_eq!(storage.stats().op("scale_by").hits, 1);
    assert_eq!(a.hid(), b.hid());
}

#[test]
fn the_current_mode_is_visible_and_closures_infer_their_error_type() {
    use mandala::Mode;
    let storage = Storage::in_memory();
    assert_eq!(mandala::current_mode(), None);
    // A closure of several statements using `?` needs no annotation.
    let (mode, y) = storage
        .run(|| {
            let mode = mandala::current_mode();
            let y = inc(1)?;
            Ok((mode, y))
        })
        .unwrap();
    assert_eq!(mode, Some(Mode::Run));
    assert_eq!(storage.unwrap(&y).unwrap(), 2);
    let mode = storage.noop(|| Ok(mandala::current_mode())).unwrap();
    assert_eq!(mode, Some(Mode::Noop));
}
