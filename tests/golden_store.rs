//! The golden store in `fixtures/golden-store.mandala`, written by format 1: every future
//! version must read it back value by value, with every call a hit.
//!
//! Regenerate it only for a deliberate format change:
//! `cargo test --test golden_store -- --ignored bless_golden_store`.

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

#[test]
#[ignore = "writes fixtures/golden-store.mandala; run only for a deliberate format change"]
fn bless_golden_store() {
    let _ = std::fs::remove_dir_all(golden());
    let storage = Storage::open(golden()).unwrap();
    assert_eq!(pipeline(&storage).unwrap(), EXPECTED);
    std::fs::remove_dir_all(golden().join("tmp")).unwrap();
}

#[test]
fn the_golden_store_reads_back_value_by_value() {
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("golden.mandala");
    copy_dir(&golden(), &copy);
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
}
