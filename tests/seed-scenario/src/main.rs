//! The seed scenario of versioning, as a program built in variants (cargo features stand for
//! code edits): `load_data` reads the tracked global `N_CLASS`; `train_model` and `eval_model`
//! call the tracked `scale_data` only when `scale` is true.
//!
//! Usage: `seed-scenario STORE [--strict] [--cosmetic COMPONENT]...`; prints one line of
//! counters that tests/seed_scenario.rs reads.

use mandala::{op, track, Storage, Versioning};

#[cfg(not(feature = "nclass_v2"))]
#[track]
static N_CLASS: u32 = 2;
#[cfg(feature = "nclass_v2")]
#[track]
static N_CLASS: u32 = 3;

#[cfg(not(feature = "scale_v2"))]
#[track]
fn scale_data(x: Vec<f64>) -> Vec<f64> {
    let max = x.iter().fold(1e-9f64, |a, b| a.max(b.abs()));
    x.iter().map(|v| v / max).collect()
}
#[cfg(feature = "scale_v2")]
#[track]
fn scale_data(x: Vec<f64>) -> Vec<f64> {
    // Standardise instead of dividing by the maximum: a semantic change.
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| v - mean).collect()
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

#[cfg(not(feature = "eval_v2"))]
#[op]
fn eval_model(model: f64, x: Vec<f64>, scale: bool) -> f64 {
    let x = if scale { scale_data(x) } else { x };
    x.iter().map(|v| (v - model).abs()).sum::<f64>()
}
#[cfg(feature = "eval_v2")]
#[op]
fn eval_model(model: f64, x: Vec<f64>, scale: bool) -> f64 {
    // The same computation, written differently: a cosmetic change.
    let data = if scale { scale_data(x) } else { x };
    data.iter().map(|value| (value - model).abs()).sum::<f64>()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> mandala::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: seed-scenario STORE [--strict] [--cosmetic C]...");
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
