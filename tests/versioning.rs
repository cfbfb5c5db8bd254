//! Versioning, first part: calls record the components they touch, and a stored call is reused
//! only while each of those components has the content it had. (Code edits between builds are
//! simulated here by rewriting what stored calls recorded; histories, change reports and
//! cosmetic marks are not built yet.)

mod common;
use common::copy_dir;

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
    rewrite_dep(storage, component, |id| Id(id.0.map(|b| b ^ 0xff)))
}

/// Rewrites every stored call that recorded `component`, replacing the semantic id it recorded
/// for it by `to(id)` (so the call is filed as computed by other code). Returns how many.
fn rewrite_dep(storage: &Storage, component: &str, to: impl Fn(Id) -> Id) -> usize {
    let mut n = 0;
    for c in storage.backend().all_calls().unwrap() {
        if let Some(id) = c.record.deps.get(component) {
            let mut rec = c.record.clone();
            rec.deps.insert(component.to_string(), to(*id));
            rec.semver = store_core::format::record::semantic_version(&rec.deps);
            let rec = rec.rehistoried(rec.inputs.clone());
            storage.backend().put_call(&rec).unwrap();
            storage.backend().delete_calls(&[c.name()]).unwrap();
            n += 1;
        }
    }
    n
}

/// A store where the pipeline ran, then its calls that touched `component` were made to look
/// computed with other code; returns it with how many calls that changed, after running the
/// pipeline again on a new handle (whose stats tell what recomputed).
fn rerun_after_pretending(component: &str) -> (tempfile::TempDir, Storage, usize) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.mandala");
    pipeline(&versioned(&path)).unwrap();
    let changed = pretend_computed_with_other(&versioned(&path), component);
    let s = versioned(&path);
    pipeline(&s).unwrap();
    (d, s, changed)
}

#[test]
fn only_calls_that_touched_a_changed_component_recompute() {
    // scale_data "was different" when the scale = true calls were computed.
    let (_d, s, changed) = rerun_after_pretending("versioning::scale_data");
    assert_eq!(changed, 2);
    assert_eq!(executed(&s, "load_data"), 0);
    assert_eq!(executed(&s, "train_model"), 1, "only scale = true");
    assert_eq!(executed(&s, "eval_model"), 1, "only scale = true");

    // N_CLASS "was different" when load_data ran: it recomputes…
    let (_d2, s, changed) = rerun_after_pretending("versioning::N_CLASS");
    assert_eq!(changed, 1);
    assert_eq!(executed(&s, "load_data"), 1);
    // The recomputed load_data ran the current code, whose call and output ids are those of the
    // first run's: downstream calls are plain hits.
    assert_eq!(s.stats().op("train_model").hits, 2);
    assert_eq!(executed(&s, "train_model"), 0);
}

/// Stores written before the semver rule was corrected (issue 9, item 2) hold the *content* id
/// of a component changed cosmetically. Such records are read through the component's history
/// (content id → semantic id), so they stay hits: no migration is needed.
#[test]
fn records_holding_the_content_id_of_a_cosmetic_version_stay_hits() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.mandala");
    pipeline(&versioned(&path)).unwrap();
    let storage = versioned(&path);
    let current = storage
        .backend()
        .all_versions()
        .unwrap()
        .into_iter()
        .find(|v| v.component == "eval_model")
        .unwrap();
    // A later version of eval_model, marked cosmetic: its semantic id is the current one's.
    let cosmetic = store_core::version::history::VersionRecord {
        component: "eval_model".into(),
        content: Id([7; 32]),
        parents: vec![current.id()],
        semantic: current.semantic,
        source: current.source,
        git: None,
    };
    storage.backend().put_version(&cosmetic).unwrap();
    // The calls as an old mandala wrote them under that version: its content id in `deps`.
    assert_eq!(rewrite_dep(&storage, "eval_model", |_| Id([7; 32])), 2);
    drop(storage);

    let again = versioned(&path);
    pipeline(&again).unwrap();
    assert_eq!(again.stats().total.executed, 0, "{:?}", again.stats());
    // `versions` shows the text of the version an old record's content id stands for.
    for v in again.versions("eval_model").unwrap() {
        assert!(
            v.texts
                .get("eval_model")
                .is_some_and(|t| t.contains("fn eval_model")),
            "{:?}",
            v.texts
        );
    }
    // fsck names the old records, as warnings, and finds no damage.
    let report = again.fs().unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let old: Vec<_> = report
        .warnings
        .iter()
        .filter(|w| w.what.contains("holds the content id"))
        .collect();
    assert_eq!(old.len(), 2, "{:?}", report.warnings);
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

const SCALE: &str = "versioning::scale_data";

/// Two copies of an older build's store, one deciding the change of scale_data cosmetic and
/// the other semantic, merged into the first (the union of their files: both decisions).
fn stores_that_decided_differently_merged(dir: &std::path::Path) -> std::path::PathBuf {
    let base = store_from_an_older_build(dir);
    let (a, b) = (dir.join("a.mandala"), dir.join("b.mandala"));
    copy_dir(&base, &a);
    copy_dir(&base, &b);
    open_with(&a, scope().cosmetic(SCALE)).unwrap();
    open_with(&b, scope()).unwrap();
    copy_dir(&b, &a);
    a
}

/// A store as an older build would have left it: its history of scale_data holds only an
/// older text, with which the scale = true calls were computed.
fn store_from_an_older_build(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("s.mandala");
    let s = versioned(&path);
    pipeline(&s).unwrap();
    let old_text = "fn scale_data(x: Vec<f64>) -> Vec<f64> { x }";
    let old_content = Id::hash(mandala::Kind::Source, b"older tokens");
    // Replace the history of scale_data by the older version…
    let versions = path.join("versions");
    for v in s.backend().all_versions().unwrap() {
        if v.component == SCALE {
            std::fs::remove_file(store_fs::layout::sharded(&path, "versions", &v.id())).unwrap();
        }
    }
    assert!(versions.exists());
    let text = store_core::format::cbor::to_canonical(old_text).unwrap();
    let text_cid = Id::hash(mandala::Kind::Value, &text);
    s.backend().put_value(&text_cid, &text).unwrap();
    s.backend()
        .put_version(&store_core::version::history::VersionRecord {
            component: SCALE.into(),
            content: old_content,
            parents: vec![],
            semantic: old_content,
            source: text_cid,
            git: None,
        })
        .unwrap();
    // …and the calls that used it by calls recorded with it.
    rewrite_dep(&s, SCALE, |_| old_content);
    path
}

fn open_with(path: &std::path::Path, v: Versioning) -> mandala::Result<Storage> {
    Storage::open(path)?.versioned(v)
}

fn scope() -> Versioning {
    Versioning::tracking(["versioning::"])
}

#[test]
fn a_changed_helper_is_reported_with_a_diff_and_recomputes_by_default() {
    let d = tempfile::tempdir().unwrap();
    let path = store_from_an_older_build(d.path());
    let s = open_with(&path, scope()).unwrap();
    let report = s.changes().unwrap();
    assert_eq!(report.changes.len(), 1, "{report}");
    let change = &report.changes[0];
    assert_eq!(change.component, SCALE);
    assert_eq!(
        change.change,
        store_core::version::history::Change::Semantic
    );
    assert!(
        change
            .diff
            .contains("-fn scale_data(x: Vec<f64>) -> Vec<f64> { x }"),
        "{}",
        change.diff
    );
    assert!(change.diff.contains("+    let max"), "{}", change.diff);
    assert_eq!(
        change.affected,
        [
            ("eval_model".to_string(), 1),
            ("train_model".to_string(), 1)
        ]
        .into()
    );
    let text = report.to_string();
    let old = Id::hash(mandala::Kind::Source, b"older tokens").short(12);
    let now = change.to.short(12);
    assert!(
        text.starts_with(&format!(
            "CHANGE in versioning::scale_data (semantic): {old} -> {now}\n  affects 2 stored call(s) of: eval_model, train_model\n"
        )),
        "{text}"
    );
    pipeline(&s).unwrap();
    assert_eq!(
        (
            executed(&s, "train_model"),
            executed(&s, "eval_model"),
            executed(&s, "load_data")
        ),
        (1, 1, 0)
    );
}

#[test]
fn a_cosmetic_mark_keeps_old_calls_and_is_honoured_by_the_next_process() {
    let d = tempfile::tempdir().unwrap();
    let path = store_from_an_older_build(d.path());
    let s = open_with(&path, scope().cosmetic(SCALE)).unwrap();
    assert_eq!(
        s.changes().unwrap().changes[0].change,
        store_core::version::history::Change::Cosmetic
    );
    pipeline(&s).unwrap();
    assert_eq!(
        s.stats().total.executed,
        0,
        "a cosmetic change recomputes nothing"
    );
    // A collaborator's process (no mark in its code) gets the same answer from the store.
    let next = open_with(&path, scope()).unwrap();
    assert!(next.changes().unwrap().changes.is_empty());
    pipeline(&next).unwrap();
    assert_eq!(next.stats().total.executed, 0);
}

#[test]
fn strict_mode_refuses_undecided_changes() {
    let d = tempfile::tempdir().unwrap();
    let path = store_from_an_older_build(d.path());
    let e = open_with(&path, scope().strict()).err().unwrap();
    let now = store_core::version::component::find(SCALE)
        .unwrap()
        .content_id()
        .short(12);
    assert_eq!(
        e.to_string(),
        format!(
            "strict versioning: undecided changes in versioning::scale_data (content {now}); mark each cosmetic or semantic (`mandala mark COMPONENT CONTENT --cosmetic`)"
        )
    );
    assert!(open_with(&path, scope().strict().semantic(SCALE)).is_ok());
}

#[test]
fn a_decision_marked_in_the_store_settles_a_pending_change() {
    let d = tempfile::tempdir().unwrap();
    let path = store_from_an_older_build(d.path());
    let now = store_core::version::component::find(SCALE)
        .unwrap()
        .content_id()
        .short(12);
    // What `mandala mark versioning::scale_data <now> --cosmetic` does.
    let plain = Storage::open(&path).unwrap();
    assert!(
        plain
            .mark(SCALE, "12", store_core::version::history::Change::Cosmetic)
            .is_err(),
        "8 hex digits at least"
    );
    plain
        .mark(SCALE, &now, store_core::version::history::Change::Cosmetic)
        .unwrap();
    let s = open_with(&path, scope().strict()).unwrap();
    assert_eq!(
        s.changes().unwrap().changes[0].change,
        store_core::version::history::Change::Cosmetic
    );
    pipeline(&s).unwrap();
    assert_eq!(s.stats().total.executed, 0);

    // Two stores that marked the same change differently: semantic, and reported.
    let d2 = tempfile::tempdir().unwrap();
    let path2 = store_from_an_older_build(d2.path());
    let plain = Storage::open(&path2).unwrap();
    plain
        .mark(SCALE, &now, store_core::version::history::Change::Cosmetic)
        .unwrap();
    plain
        .mark(
            SCALE,
            &now[..8],
            store_core::version::history::Change::Semantic,
        )
        .unwrap();
    let s = open_with(&path2, scope()).unwrap();
    assert_eq!(s.changes().unwrap().conflicts, [SCALE]);
    assert_eq!(
        s.changes().unwrap().changes[0].change,
        store_core::version::history::Change::Semantic
    );
}

#[test]
fn stores_that_decided_differently_fall_back_to_semantic_and_say_so() {
    let d = tempfile::tempdir().unwrap();
    let a = stores_that_decided_differently_merged(d.path());
    let s = open_with(&a, scope()).unwrap();
    assert_eq!(s.changes().unwrap().conflicts, [SCALE]);
    pipeline(&s).unwrap();
    assert_eq!(executed(&s, "train_model"), 1, "treated as semantic");
    assert!(s.verify().unwrap().is_clean());
}

#[test]
fn histories_versions_and_diffs_can_be_inspected() {
    let d = tempfile::tempdir().unwrap();
    let path = store_from_an_older_build(d.path());
    let s = open_with(&path, scope().cosmetic(SCALE)).unwrap();
    let history = s.source_history(SCALE).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].text,
        "fn scale_data(x: Vec<f64>) -> Vec<f64> { x }"
    );
    assert!(history[1].text.contains("let max"), "{}", history[1].text);
    assert_eq!(history[1].record.parents, [history[0].id]);
    assert_eq!(
        history[1].record.semantic, history[0].record.semantic,
        "cosmetic"
    );
    let versions = s.versions("train_model").unwrap();
    assert_eq!(versions.len(), 2);
    let with_scale = versions
        .iter()
        .find(|v| v.deps.contains_key(SCALE))
        .unwrap();
    assert_eq!(with_scale.calls, 1);
    assert_eq!(
        with_scale.texts[SCALE], history[0].text,
        "the text of the semantic representative"
    );
    assert!(with_scale.texts["train_model"].contains("scale_data(x)"));
    let diff = s
        .diff(
            &history[0].id.to_string()[..8],
            &history[1].id.to_string()[..8],
        )
        .unwrap();
    assert!(
        diff.contains("-fn scale_data(x: Vec<f64>) -> Vec<f64> { x }")
            && diff.contains("+    let max"),
        "{diff}"
    );
    assert!(s.versions("nope").is_err());
}

/// Declares in code that it stays compatible with the version whose content id starts with
/// 8eb1a5c4 (the "older tokens" that `store_with_old_polish` puts in the history).
#[track(cosmetic_of = "8eb1a5c4")]
fn polish(x: u32) -> u32 {
    x + 1
}

#[op]
fn polished(x: u32) -> u32 {
    polish(x) * 10
}

#[test]
fn a_cosmetic_mark_in_code_names_the_content_it_stays_compatible_with() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.mandala");
    let name = "versioning::polish";
    let s = versioned(&path);
    s.run(|| polished(4)).unwrap();
    // Rewrite history and calls as if "older tokens" had been the text of polish.
    let old = Id::hash(mandala::Kind::Source, b"older tokens");
    assert!(old.to_string().starts_with("8eb1a5c4"));
    for v in s.backend().all_versions().unwrap() {
        if v.component == name {
            std::fs::remove_file(store_fs::layout::sharded(&path, "versions", &v.id())).unwrap();
            let mut older = v.clone();
            older.content = old;
            older.semantic = old;
            s.backend().put_version(&older).unwrap();
        }
    }
    rewrite_dep(&s, name, |_| old);
    // Strict mode needs no decision: the code made it.
    let again = open_with(&path, scope().strict()).unwrap();
    let report = again.changes().unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(
        report.changes[0].change,
        store_core::version::history::Change::Cosmetic
    );
    assert!(
        report
            .to_string()
            .contains(&format!("(cosmetic): {} -> ", &old.to_string()[..12])),
        "{report}"
    );
    again.run(|| polished(4)).unwrap();
    assert_eq!(again.stats().total.executed, 0);
}

#[test]
fn calls_and_versions_record_the_git_head_of_the_run() {
    // The tests run inside the project's repository (CI clones it): HEAD is known.
    let Some(head) = mandala::git_head() else {
        panic!("the test suite runs in a git checkout, so HEAD must be found");
    };
    assert_eq!(head.len(), 40);
    let d = tempfile::tempdir().unwrap();
    let s = versioned(&d.path().join("s.mandala"));
    s.run(|| polished(1)).unwrap();
    let gits: Vec<Option<String>> = s
        .backend()
        .all_calls()
        .unwrap()
        .iter()
        .map(|c| c.record.git.clone())
        .collect();
    assert!(
        gits.iter().all(|g| g.as_deref() == Some(head.as_str())),
        "{gits:?} vs {head}"
    );
    assert!(s
        .backend()
        .all_versions()
        .unwrap()
        .iter()
        .all(|v| v.git.as_deref() == Some(head.as_str())));
}

#[test]
fn merged_decisions_keep_both_version_records() {
    let d = tempfile::tempdir().unwrap();
    let a = stores_that_decided_differently_merged(d.path());
    let history = Storage::open(&a).unwrap().source_history(SCALE).unwrap();
    let same: Vec<_> = history
        .iter()
        .filter(|h| h.record.content != history[0].record.content)
        .collect();
    assert_eq!(same.len(), 2, "one content, two decisions");
    assert_ne!(same[0].record.semantic, same[1].record.semantic);
}
