//! `scale_data` as first written.
use mandala::track;

#[track(name = "seed_scenario::scale_data")]
pub fn scale_data(x: Vec<f64>) -> Vec<f64> {
    let max = x.iter().fold(1e-9f64, |a, b| a.max(b.abs()));
    x.iter().map(|v| v / max).collect()
}
