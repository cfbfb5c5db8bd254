//! The seed scenario of versioning, end to end: one program built in four variants (cargo
//! features of `tests/seed-scenario` stand for code edits), run one after another against one
//! store. Exactly the calls whose code changed recompute; cosmetic changes and reverts
//! recompute nothing; strict mode refuses an undecided change.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the program with `features` and returns a copy of the binary (each build replaces
/// the last one). A target directory of its own keeps this build out of the outer one's lock.
fn build(features: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("seed-scenario");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "seed-scenario",
            "--features",
            features,
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(root)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building seed-scenario with features '{features}'"
    );
    let name = if features.is_empty() {
        "v1".to_string()
    } else {
        features.replace(',', "+")
    };
    let copy = target.join(format!("seed-scenario-{name}"));
    std::fs::copy(target.join("debug").join("seed-scenario"), &copy).unwrap();
    copy
}

/// Runs a variant; returns (load_data, train_model, eval_model) executions and the report.
fn run(bin: &Path, store: &Path, args: &[&str]) -> Result<((u64, u64, u64), String), String> {
    let out = Command::new(bin).arg(store).args(args).output().unwrap();
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
    assert_eq!(
        n[3],
        2.max(n[3]),
        "train_model has at least its two versions"
    );
    Ok(((n[0], n[1], n[2]), stdout))
}

#[test]
fn code_edits_recompute_exactly_what_they_change() {
    let v1 = build("");
    let scale_v2 = build("scale_v2");
    let eval_v2 = build("eval_v2");
    let nclass_v2 = build("nclass_v2");
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("seed.mandala");

    // First run: 1 + 2 + 2; train_model has two versions (with and without scale_data).
    let (counts, _) = run(&v1, &store, &[]).unwrap();
    assert_eq!(counts, (1, 2, 2));

    // Strict mode refuses an undecided change, listing it, and changes nothing.
    let e = run(&eval_v2, &store, &["--strict"]).unwrap_err();
    assert!(
        e.contains("strict versioning: undecided changes in eval_model"),
        "{e}"
    );

    // scale_data changed semantically: only the scale = true calls recompute.
    let (counts, report) = run(&scale_v2, &store, &[]).unwrap();
    assert_eq!(counts, (0, 1, 1), "{report}");
    assert!(
        report.contains("CHANGE in seed_scenario::scale_data (semantic)"),
        "{report}"
    );
    assert!(report.contains("+    let mean"), "the diff: {report}");

    // eval_model changed cosmetically (marked): nothing recomputes. scale_data is back to
    // its first text here: going back in time, its old calls are hits again.
    let (counts, report) = run(&eval_v2, &store, &["--cosmetic", "eval_model"]).unwrap();
    assert_eq!(counts, (0, 0, 0), "{report}");
    assert!(
        report.contains("CHANGE in eval_model (cosmetic)"),
        "{report}"
    );

    // N_CLASS changed: load_data and everything downstream of its new output recompute.
    let (counts, report) = run(&nclass_v2, &store, &[]).unwrap();
    assert_eq!(counts, (1, 2, 2), "{report}");
    assert!(
        report.contains("CHANGE in seed_scenario::N_CLASS (semantic)"),
        "{report}"
    );

    // Everything back as it was: zero executions.
    let (counts, _) = run(&v1, &store, &[]).unwrap();
    assert_eq!(counts, (0, 0, 0));
    // The cosmetic decision was recorded: eval_v2 again, unmarked and strict, runs fine.
    let (counts, _) = run(&eval_v2, &store, &["--strict"]).unwrap();
    assert_eq!(counts, (0, 0, 0));
}
