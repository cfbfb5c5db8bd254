//! `eval_model` as first written.
use mandala::op;

use crate::scale::scale_data;

#[op]
pub fn eval_model(model: f64, x: Vec<f64>, scale: bool) -> f64 {
    let x = if scale { scale_data(x) } else { x };
    x.iter().map(|v| (v - model).abs()).sum::<f64>()
}
