//! Quickstart: a small but real memoized pipeline on an on-disk store.
//!
//! Generates a two-class data set, splits it, fits a logistic regression over a grid of
//! learning rates and epoch counts (the slow op), and evaluates each model. Run it twice: the
//! second run executes nothing and reads every result from the store.
//!
//! ```text
//! cargo run --release --example quickstart -- [STORE]     (default: quickstart.mandala)
//! ```

use std::time::{Duration, Instant};

use mandala::{op, Storage};
use serde::{Deserialize, Serialize};

/// Points with two features and a 0/1 label.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<[f64; 2]>,
    pub y: Vec<u8>,
}

/// A logistic regression model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Model {
    pub w: [f64; 2],
    pub b: f64,
}

/// A deterministic pseudo-random generator (SplitMix64), so the data is the same every run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64().max(1e-12), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Two Gaussian blobs centred at (-1, -1) and (1, 1).
#[op]
fn make_data(n: u32, seed: u64) -> Dataset {
    let mut rng = Rng(seed);
    let mut d = Dataset {
        x: Vec::new(),
        y: Vec::new(),
    };
    for i in 0..n {
        let label = (i % 2) as u8;
        let c = if label == 1 { 1.0 } else { -1.0 };
        d.x.push([c + rng.normal(), c + rng.normal()]);
        d.y.push(label);
    }
    d
}

/// Every `k`-th point goes to the test set.
#[op(output_names(train, test))]
fn split(data: Dataset, k: u32) -> (Dataset, Dataset) {
    let (mut train, mut test) = (
        Dataset {
            x: vec![],
            y: vec![],
        },
        Dataset {
            x: vec![],
            y: vec![],
        },
    );
    for (i, (x, y)) in data.x.iter().zip(&data.y).enumerate() {
        let part = if (i as u32).is_multiple_of(k) {
            &mut test
        } else {
            &mut train
        };
        part.x.push(*x);
        part.y.push(*y);
    }
    (train, test)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Full-batch gradient descent. Deliberately slow: it also sleeps, standing in for real work.
#[op]
fn train(data: Dataset, learning_rate: f64, epochs: u32) -> Model {
    std::thread::sleep(Duration::from_millis(250));
    let mut m = Model {
        w: [0.0; 2],
        b: 0.0,
    };
    let n = data.y.len() as f64;
    for _ in 0..epochs {
        let (mut gw, mut gb) = ([0.0; 2], 0.0);
        for (x, y) in data.x.iter().zip(&data.y) {
            let err = sigmoid(m.w[0] * x[0] + m.w[1] * x[1] + m.b) - f64::from(*y);
            gw[0] += err * x[0];
            gw[1] += err * x[1];
            gb += err;
        }
        m.w[0] -= learning_rate * gw[0] / n;
        m.w[1] -= learning_rate * gw[1] / n;
        m.b -= learning_rate * gb / n;
    }
    m
}

/// The fraction of points the model classifies correctly.
#[op]
fn accuracy(model: Model, data: Dataset) -> f64 {
    let correct = data
        .x
        .iter()
        .zip(&data.y)
        .filter(|(x, y)| {
            let p = sigmoid(model.w[0] * x[0] + model.w[1] * x[1] + model.b);
            u8::from(p >= 0.5) == **y
        })
        .count();
    correct as f64 / data.y.len() as f64
}

fn main() -> mandala::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart.mandala".into());
    run(&path)
}

/// The pipeline on the store at `path` (the CLI's tests run it too).
pub fn run(path: &str) -> mandala::Result<()> {
    let started = Instant::now();
    let storage = Storage::open(path)?;
    let mut results = Vec::new();
    storage.run(|| -> mandala::Result<()> {
        let data = make_data(2_000, 42)?;
        let (train_set, test_set) = split(&data, 5)?;
        for learning_rate in [0.05, 0.5] {
            for epochs in [20, 200] {
                let model = train(&train_set, learning_rate, epochs)?;
                let acc = accuracy(&model, &test_set)?;
                results.push((learning_rate, epochs, storage.unwrap(&acc)?));
            }
        }
        Ok(())
    })?;
    println!("learning_rate  epochs  accuracy");
    for (lr, epochs, acc) in results {
        println!("{lr:>13}  {epochs:>6}  {acc:>8.3}");
    }
    let st = storage.stats().total;
    println!(
        "store {path}: executed {} calls, reused {} ({} hits, {} by content) in {:.2?}",
        st.executed,
        st.hits + st.reused,
        st.hits,
        st.reused,
        started.elapsed()
    );
    Ok(())
}
