//! The seed scenario of versioning, end to end: one program built in variants (one binary per
//! combination of code edits, built with the workspace), run one after another against one
//! store. Exactly the calls whose code changed recompute; cosmetic changes and reverts
//! recompute nothing; calls computed under code marked cosmetic are found again; strict mode
//! refuses an undecided change.

use std::path::Path;
use std::process::Command;

/// A variant's binary, built by cargo with this test.
fn variant(name: &str) -> &'static Path {
    Path::new(match name {
        "v1" => env!("CARGO_BIN_EXE_seed-scenario-v1"),
        "scale_v2" => env!("CARGO_BIN_EXE_seed-scenario-scale_v2"),
        "eval_v2" => env!("CARGO_BIN_EXE_seed-scenario-eval_v2"),
        "nclass_v2" => env!("CARGO_BIN_EXE_seed-scenario-nclass_v2"),
        "all_v2" => env!("CARGO_BIN_EXE_seed-scenario-all_v2"),
        other => panic!("no variant {other}"),
    })
}

/// Runs a variant; returns (load_data, train_model, eval_model) executions and the report.
fn run(name: &str, store: &Path, args: &[&str]) -> Result<((u64, u64, u64), String), String> {
    let out = Command::new(variant(name))
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("COUNTS "))
        .expect("counters");
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|kv| kv.split('=').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(n[3] >= 2, "train_model has at least its two versions");
    Ok(((n[0], n[1], n[2]), stdout))
}

#[test]
fn code_edits_recompute_exactly_what_they_change() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("seed.mandala");

    // First run: 1 + 2 + 2; train_model has two versions (with and without scale_data).
    let (counts, _) = run("v1", &store, &[]).unwrap();
    assert_eq!(counts, (1, 2, 2));

    // Strict mode refuses an undecided change, listing it, and changes nothing.
    let e = run("eval_v2", &store, &["--strict"]).unwrap_err();
    assert!(
        e.contains("strict versioning: undecided changes in eval_model"),
        "{e}"
    );

    // scale_data changed semantically: only the scale = true calls recompute.
    let (counts, report) = run("scale_v2", &store, &[]).unwrap();
    assert_eq!(counts, (0, 1, 1), "{report}");
    assert!(
        report.contains("CHANGE in seed_scenario::scale_data (semantic)"),
        "{report}"
    );
    assert!(report.contains("+    let mean"), "the diff: {report}");

    // eval_model changed cosmetically (marked): nothing recomputes. scale_data is back to
    // its first text here: going back in time, its old calls are hits again.
    let (counts, report) = run("eval_v2", &store, &["--cosmetic", "eval_model"]).unwrap();
    assert_eq!(counts, (0, 0, 0), "{report}");
    assert!(
        report.contains("CHANGE in eval_model (cosmetic)"),
        "{report}"
    );

    // N_CLASS changed: load_data and everything downstream of its new output recompute.
    let (counts, report) = run("nclass_v2", &store, &[]).unwrap();
    assert_eq!(counts, (1, 2, 2), "{report}");
    assert!(
        report.contains("CHANGE in seed_scenario::N_CLASS (semantic)"),
        "{report}"
    );

    // Everything back as it was: zero executions.
    let (counts, _) = run("v1", &store, &[]).unwrap();
    assert_eq!(counts, (0, 0, 0));
    // The cosmetic decision was recorded: eval_v2 again, unmarked and strict, runs fine.
    let (counts, _) = run("eval_v2", &store, &["--strict"]).unwrap();
    assert_eq!(counts, (0, 0, 0));
}

/// Regression (issue 9, item 2): calls computed under code marked cosmetic recorded the new
/// content id but were looked up by semantic id, so they recomputed on every run.
#[test]
fn calls_computed_after_a_cosmetic_change_are_reused() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("seed.mandala");
    assert_eq!(run("v1", &store, &[]).unwrap().0, (1, 2, 2));
    assert_eq!(run("scale_v2", &store, &[]).unwrap().0, (0, 1, 1));
    let (counts, report) = run("eval_v2", &store, &["--cosmetic", "eval_model"]).unwrap();
    assert_eq!(counts, (0, 0, 0), "{report}");
    assert_eq!(run("nclass_v2", &store, &[]).unwrap().0, (1, 2, 2));
    assert_eq!(run("v1", &store, &[]).unwrap().0, (0, 0, 0));
    assert_eq!(run("eval_v2", &store, &[]).unwrap().0, (0, 0, 0));

    // All three edits at once: scale_data v2 with N_CLASS v2 is new (load_data's output is
    // N_CLASS v2's, computed above); eval_model v2 was marked cosmetic.
    let (first, report) = run("all_v2", &store, &[]).unwrap();
    assert_eq!(first, (0, 1, 1), "{report}");
    for round in 0..3 {
        let (counts, report) = run("all_v2", &store, &[]).unwrap();
        assert_eq!(counts, (0, 0, 0), "round {round}: {report}");
    }
    // The store is consistent, and fsck finds every record's semver to be the hash of its
    // semantic ids.
    let storage = mandala::Storage::open(&store).unwrap();
    let report = storage.fs().unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}
