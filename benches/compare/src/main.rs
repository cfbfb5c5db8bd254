//! mandala side by side with what a user would otherwise pick, in the same run, on the same
//! file system (`MANDALA_BENCH_DIR`, default the system's temp directory):
//!
//! - `cached [N]`: `cached`'s redb store (`RedbCache`): recording N new calls of a trivial
//!   function, and hits with their values in a fresh process, amortized over N including
//!   opening the store; with the small-file baselines of `cargo bench --bench memo` (an atomic
//!   file write, one open+read). The function is `add2(a, b) = a + b` over `u64`; for
//!   `cached`, a call is what its `#[concurrent_cached(disk = true)]` does: `cache_get` of the
//!   key (the arguments as a string) and, on a miss, `cache_set` of the result.
//! - `big [N]`: a `Vec<f64>` of N elements (default 10 M, 80 MB of floats) stored and loaded
//!   back, each in a fresh process, against Python's joblib (`joblib.dump` / `joblib.load` of
//!   the same numbers as a numpy array), if `python3` has joblib and numpy (else it says so).
//!
//! With no argument both run. Figures are medians of 5 fresh processes.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cached::stores::RedbCache;
use cached::ConcurrentCached;
use mandala::{op, Storage};

#[op]
fn add2(a: u64, b: u64) -> u64 {
    a + b
}

fn redb(dir: &Path, durable: bool) -> RedbCache<String, u64> {
    RedbCache::builder("add2")
        .disk_dir(dir)
        .durable(durable)
        .build()
        .unwrap()
}

fn key(i: u64) -> String {
    format!("{i},{}", i + 1)
}

fn per_call(t: Instant, n: u64) -> f64 {
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Child: hits with values in a fresh process (`which` is "mandala" or "cached").
fn child(which: &str, dir: &Path, n: u64) {
    let t = Instant::now();
    match which {
        "mandala" => {
            let storage = Storage::open(dir.join("s.mandala")).unwrap();
            storage.allow_new_calls(false);
            storage
                .run(|| {
                    for i in 0..n {
                        black_box(storage.unwrap(&add2(i, i + 1)?)?);
                    }
                    Ok(())
                })
                .unwrap();
            assert_eq!(storage.stats().total.hits, n);
        }
        _ => {
            let cache = redb(&dir.join("cached"), false);
            for i in 0..n {
                black_box(cache.cache_get(&key(i)).unwrap().expect("a hit"));
            }
        }
    }
    println!("PER_CALL_NS {}", per_call(t, n));
}

fn fresh_hits(which: &str, dir: &Path, n: u64) -> f64 {
    median(
        (0..5)
            .map(|_| {
                let out = Command::new(std::env::current_exe().unwrap())
                    .args(["--child", which, dir.to_str().unwrap(), &n.to_string()])
                    .output()
                    .unwrap();
                figure(out, "PER_CALL_NS")
            })
            .collect(),
    )
}

/// One atomic small-file write (temp file + rename) and one open+read of a small file.
fn baselines(dir: &Path, n: u64) -> (f64, f64) {
    let d = dir.join("raw");
    std::fs::create_dir_all(&d).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let tmp = d.join(format!("tmp-{i}"));
        std::fs::write(&tmp, i.to_le_bytes()).unwrap();
        std::fs::rename(&tmp, d.join(format!("{i:016x}"))).unwrap();
    }
    let write = per_call(t, n);
    let t = Instant::now();
    for i in 0..n {
        black_box(std::fs::read(d.join(format!("{i:016x}"))).unwrap());
    }
    (write, per_call(t, n))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--child" {
        child(&args[2], Path::new(&args[3]), args[4].parse().unwrap());
        return;
    }
    if args.len() == 5 && args[1] == "--big" {
        big_child(&args[2], Path::new(&args[3]), args[4].parse().unwrap());
        return;
    }
    let temp = match std::env::var_os("MANDALA_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).unwrap();
            tempfile::tempdir_in(d).unwrap()
        }
        None => tempfile::tempdir().unwrap(),
    };
    let which = args.get(1).map(String::as_str).unwrap_or("all");
    let n: Option<u64> = args.get(2).and_then(|a| a.parse().ok());
    if which == "cached" || which == "all" {
        vs_cached(temp.path(), n.unwrap_or(100_000));
    }
    if which == "big" || which == "all" {
        vs_joblib(temp.path(), n.unwrap_or(10_000_000));
    }
}

/// The numbers both sides store: `sin(i / 1000) * 1000`.
fn numbers(n: u64) -> Vec<f64> {
    (0..n).map(|i| (i as f64 * 0.001).sin() * 1e3).collect()
}

/// Child: stores the vector (what recording an op's output does: encode, hash, compress,
/// write) or loads it back (what unwrapping its ref does: read, decompress, verify, decode),
/// in a store under `dir`; prints the time, opening the store included.
fn big_child(what: &str, dir: &Path, n: u64) {
    // The numbers are made only to be stored: a load is checked against their count.
    let v = if what == "store" {
        numbers(n)
    } else {
        Vec::new()
    };
    let t = Instant::now();
    let storage = Storage::open(dir.join("big.mandala")).unwrap();
    let engine: &mandala::Engine = &storage;
    if what == "store" {
        let cid = engine.save_value(&v).unwrap();
        drop(storage);
        std::fs::write(dir.join("big.cid"), cid.to_string()).unwrap();
    } else {
        let cid: mandala::Id = std::fs::read_to_string(dir.join("big.cid"))
            .unwrap()
            .parse()
            .unwrap();
        let back: Vec<f64> = engine.load_value(&cid).unwrap();
        assert_eq!(back.len() as u64, n);
        black_box(back);
    }
    println!("SECONDS {}", t.elapsed().as_secs_f64());
}

/// The number a child printed after `name` (and a space).
fn figure(out: std::process::Output, name: &str) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        .trim()
        .parse()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const JOBLIB: &str = r#"
import sys, time, numpy, joblib
what, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what == "store":
    a = numpy.sin(numpy.arange(n, dtype=numpy.float64) * 0.001) * 1e3
    t = time.perf_counter()
    joblib.dump(a, path)
else:
    t = time.perf_counter()
    a = joblib.load(path)
    assert len(a) == n
print("SECONDS", time.perf_counter() - t)
"#;

fn vs_joblib(dir: &Path, n: u64) {
    println!(
        "\na Vec<f64> of {n} elements, stored then loaded in fresh processes, in {}",
        dir.display()
    );
    let ours = |what: &str| {
        median(
            (0..5)
                .map(|_| {
                    if what == "store" {
                        let _ = std::fs::remove_dir_all(dir.join("big.mandala"));
                    }
                    figure(
                        Command::new(std::env::current_exe().unwrap())
                            .args(["--big", what, dir.to_str().unwrap(), &n.to_string()])
                            .output()
                            .unwrap(),
                        "SECONDS",
                    )
                })
                .collect(),
        )
    };
    let (store, load) = (ours("store"), ours("load"));
    let python = |what: &str| -> Option<f64> {
        let runs: Option<Vec<f64>> = (0..5)
            .map(|_| {
                let out = Command::new("python3")
                    .args(["-c", JOBLIB, what])
                    .arg(dir.join("big.joblib"))
                    .arg(n.to_string())
                    .output()
                    .ok()?;
                out.status.success().then(|| figure(out, "SECONDS"))
            })
            .collect();
        runs.map(median)
    };
    println!("| {n} f64 | mandala | joblib | mandala / joblib | target |");
    println!("| --- | --- | --- | --- | --- |");
    match (python("store"), python("load")) {
        (Some(js), Some(jl)) => {
            println!(
                "| store | {store:.3} s | {js:.3} s | {:.2} | <= 1 |",
                store / js
            );
            println!(
                "| load | {load:.3} s | {jl:.3} s | {:.2} | <= 2 |",
                load / jl
            );
        }
        _ => {
            println!("| store | {store:.3} s | (skipped: python3 has no joblib and numpy) | | |");
            println!("| load | {load:.3} s | (skipped) | | |");
        }
    }
}

fn vs_cached(dir: &Path, n: u64) {
    println!(
        "mandala against cached's RedbCache, {n} calls, in {}",
        dir.display()
    );

    let (write, read) = baselines(dir, n.min(20_000));

    // New calls: each store is new and empty.
    let t = Instant::now();
    let storage = Storage::open(dir.join("s.mandala")).unwrap();
    storage
        .run(|| {
            for i in 0..n {
                add2(i, i + 1)?;
            }
            Ok(())
        })
        .unwrap();
    drop(storage);
    let ours_new = per_call(t, n);
    let cached_new = |durable: bool, sub: &str, n: u64| {
        let t = Instant::now();
        let cache = redb(&dir.join(sub), durable);
        for i in 0..n {
            let k = key(i);
            if cache.cache_get(&k).unwrap().is_none() {
                cache.cache_set(k, black_box(i + i + 1)).unwrap();
            }
        }
        drop(cache);
        per_call(t, n)
    };
    let theirs_new = cached_new(false, "cached", n);
    let theirs_new_durable = cached_new(true, "cached-durable", n.min(10_000));

    let ours_hit = fresh_hits("mandala", dir, n);
    let theirs_hit = fresh_hits("cached", dir, n);

    let size = |p: &Path| -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            let m = e.metadata().unwrap();
                            if m.is_dir() {
                                walk(&e.path())
                            } else {
                                use std::os::unix::fs::MetadataExt;
                                m.blocks() * 512
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(p)
    };
    let us = |ns: f64| ns / 1000.0;
    println!("| what | mandala | cached (RedbCache) | mandala / cached |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| new call, run of {n} incl. open and close | {:.1} µs | {:.1} µs (durable: {:.1} µs) | {:.2} ({:.2}) |",
        us(ours_new),
        us(theirs_new),
        us(theirs_new_durable),
        ours_new / theirs_new,
        ours_new / theirs_new_durable
    );
    println!(
        "| hit + value, fresh process, amortized over {n} incl. open | {:.2} µs | {:.2} µs | {:.2} |",
        us(ours_hit),
        us(theirs_hit),
        ours_hit / theirs_hit
    );
    println!(
        "| allocated bytes per call | {} | {} | |",
        size(&dir.join("s.mandala")) / n,
        size(&dir.join("cached")) / n
    );
    println!(
        "baselines in the same run: atomic small-file write {:.1} µs, open+read of a small file {:.2} µs",
        us(write),
        us(read)
    );
}
