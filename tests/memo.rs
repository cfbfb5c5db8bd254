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
    // Values 1, 2, 3 once each.
    assert_eq!(storage.fs().unwrap().status().unwrap().values.count, 3);
    // Three call records: inc(1), inc(2), and inc(inc(1)) recorded under its own hid.
    assert_eq!(storage.fs().unwrap().status().unwrap().calls.count, 3);
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
    let ok = storage.run(|| parse("42".to_string())).unwrap();
    assert_eq!(storage.unwrap(&ok).unwrap(), 42);
    let err = storage.run(|| parse("x".to_string())).unwrap_err();
    assert_eq!(err, ParseError::Bad("x".into()));
    let err = storage.run(|| parse("x")).unwrap_err();
    assert_eq!(err, ParseError::Bad("x".into()));
    storage.run(|| parse("42")).unwrap();
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
    assert_eq!(r.get(), Some(&102));
    assert_eq!(r2.get(), Some(&102));
    assert!(INC_RUNS.load(Ordering::SeqCst) - before >= 4);
    assert_eq!(storage.stats().total.executed, 0);
    let st = storage.fs().unwrap().status().unwrap();
    assert_eq!((st.values.count, st.calls.count), (0, 0));
}

#[test]
fn outside_a_context_ops_are_plain_functions() {
    let r = inc(41).unwrap();
    assert_eq!(r.get(), Some(&42));
}

#[test]
fn new_calls_can_be_forbidden() {
    let storage = Storage::in_memory();
    storage.run(|| inc(10)).unwrap();
    storage.allow_new_calls(false);
    let hit = storage.run(|| inc(10)).unwrap();
    assert_eq!(storage.unwrap(&hit).unwrap(), 11);
    let err = storage.run(|| inc(11)).unwrap_err();
    assert!(matches!(err, Error::NewCallNotAllowed { ref op } if op == "inc"));
    assert_eq!(
        err.to_string(),
        "call to op 'inc' is not in the store and new calls are not allowed"
    );
    storage.allow_new_calls(true);
    storage.run(|| inc(11)).unwrap();
}
