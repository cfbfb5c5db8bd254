//! The part of the seed-scenario program that no variant edits: `load_data` reads the tracked
//! global `N_CLASS`; `train_model` (here) and `eval_model` (an edit) call the tracked
//! `scale_data` only when `scale` is true.
//!
//! Usage: `seed-scenario-<variant> STORE [--strict] [--cosmetic COMPONENT]...`; prints the
//! change report, then one line of counters that `tests/scenario.rs` reads.

use mandala::{op, Storage, Versioning};

use crate::eval::eval_model;
use crate::nclass::N_CLASS;
use crate::scale::scale_data;

#[op]
fn load_data(n: u32) -> Vec<f64> {
    (0..n * *N_CLASS).map(|i| f64::from(i) * 1.5).collect()
}

#[op]
fn train_model(x: Vec<f64>, scale: bool) -> f64 {
    let x = if scale { scale_data(x) } else { x };
    x.iter().sum::<f64>() / x.len() as f64
}

pub fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> mandala::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: seed-scenario-<variant> STORE [--strict] [--cosmetic C]...");
    let mut versioning = Versioning::tracking(["seed_scenario::"]);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--strict" => versioning = versioning.strict(),
            "--cosmetic" => versioning = versioning.cosmetic(args.next().expect("a component")),
            other => panic!("unknown argument {other}"),
        }
    }
    let storage = Storage::open(&path)?.versioned(versioning)?;
    print!("{}", storage.changes().expect("versioned"));
    storage.run(|| -> mandala::Result<()> {
        let x = load_data(10)?;
        for scale in [false, true] {
            let m = train_model(&x, scale)?;
            eval_model(&m, &x, scale)?;
        }
        Ok(())
    })?;
    let st = storage.stats();
    println!(
        "COUNTS load_data={} train_model={} eval_model={} train_model_versions={}",
        st.op("load_data").executed,
        st.op("train_model").executed,
        st.op("eval_model").executed,
        storage.versions("train_model")?.len()
    );
    Ok(())
}
