//! `eval_model` rewritten: the same computation, a cosmetic change of an op.
use mandala::op;

use crate::scale::scale_data;

#[op]
pub fn eval_model(model: f64, x: Vec<f64>, scale: bool) -> f64 {
    // The same computation, written differently: a cosmetic change.
    let data = if scale { scale_data(x) } else { x };
    data.iter().map(|value| (value - model).abs()).sum::<f64>()
}
