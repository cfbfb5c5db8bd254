//! Chunk, process, aggregate: a big input split into chunks stored per element (`MList`), one
//! call per chunk, and a mean over the chunks' results. Run it with a number of chunks, then with
//! one more: only the new chunk is processed. The frame of the aggregate shows the many-to-one
//! step.
//!
//! ```text
//! cargo run --release --example chunks -- 8     (then: -- 9)
//! ```

use mandala::{op, MList, Ref, Storage};

const CHUNK: usize = 100_000;

/// The data, `n` chunks long.
#[op]
fn load(n: usize) -> Vec<f64> {
    (0..n * CHUNK).map(|i| (i as f64 * 1e-3).sin()).collect()
}

/// Chunks of `size`: each one a ref of its own.
#[op]
fn split(data: Vec<f64>, size: usize) -> MList<Vec<f64>> {
    data.chunks(size).map(<[f64]>::to_vec).collect()
}

/// The slow step, once per chunk.
#[op]
fn energy(chunk: Vec<f64>) -> f64 {
    chunk.iter().map(|x| (x * 40.0).sin().powi(2)).sum::<f64>() / chunk.len() as f64
}

/// One result over every chunk's.
#[op]
fn mean(xs: MList<f64>) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn main() -> mandala::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8);
    let storage = Storage::open("chunks.mandala")?;
    let m = storage.run(|| {
        // The data is the same prefix whatever n: chunks already processed are found by content.
        let chunks = split(load(n)?, CHUNK)?;
        let energies: Vec<Ref<f64>> = chunks.iter().map(energy).collect::<mandala::Result<_>>()?;
        mean(energies)
    })?;
    let stats = storage.stats();
    println!(
        "mean energy over {n} chunks: {:.6} (energy computed {} times, {} found in the store)",
        storage.unwrap(&m)?,
        stats.op("energy").executed,
        stats.op("energy").hits + stats.op("energy").reused,
    );
    // Every mean computed so far, with the chunk results it aggregates (one cell per row).
    let mut cf = storage.cf("mean")?;
    cf.expand_back(None, true)?;
    let table = cf.df(false)?.select(&["energy", "mean"])?.values()?;
    println!("{table}");
    Ok(())
}
