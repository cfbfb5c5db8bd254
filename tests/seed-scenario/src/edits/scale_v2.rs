//! `scale_data` changed: a semantic change of a tracked function.
use mandala::track;

#[track(name = "seed_scenario::scale_data")]
pub fn scale_data(x: Vec<f64>) -> Vec<f64> {
    // Standardise instead of dividing by the maximum: a semantic change.
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| v - mean).collect()
}
