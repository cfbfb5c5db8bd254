//! Benchmarks of the memo engine and the on-disk store, each beside a raw baseline measured in
//! the same run and reported as a ratio. Run: `cargo bench --bench memo` (add `-- --quick` for
//! a short run). Figures are recorded in docs/PERFORMANCE.md.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mandala::{op, Id, Kind, Storage};

#[op]
fn add2(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// 5 ms of work (sleeping, as I/O or a subprocess would).
#[op]
fn work_5ms(x: u64, salt: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(5));
    x ^ salt
}

/// A second op over the first's results.
#[op]
fn work_5ms_more(y: u64, salt: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(5));
    y + salt
}

/// Issue 14's grid: 2 ops over N inputs with 5 ms of work each, sequential vs `par_map` on this
/// machine's threads (2 here); target ≤ 0.6× the sequential time.
fn parallel_grid(dir: &Path, quick: bool) {
    let n: u64 = if quick { 100 } else { 500 };
    let storage = create_store(&dir.join("grid.mandala")).unwrap();
    let t = Instant::now();
    storage
        .run(|| -> mandala::Result<()> {
            for x in 0..n {
                work_5ms_more(work_5ms(x, 1)?, 1)?;
            }
            Ok(())
        })
        .unwrap();
    let sequential = t.elapsed();
    let t = Instant::now();
    storage
        .par_map(0..n, |x| work_5ms_more(work_5ms(x, 2)?, 2))
        .unwrap();
    let parallel = t.elapsed();
    row(
        &format!("grid of {} calls of 5 ms, par_map", 2 * n),
        parallel.as_secs_f64() * 1e3,
        "ms",
        "the same grid, sequential",
        sequential.as_secs_f64() * 1e3,
        "<= 0.6",
    );
}

/// A list of `n` distinct elements (distinct per `salt`), stored per element.
#[op]
fn range_list(n: u64, salt: u64) -> mandala::MList<u64> {
    (0..n).map(|i| i ^ (salt << 32)).collect()
}

/// An op over a list built from element refs.
#[op]
fn list_len(xs: mandala::MList<u64>) -> u64 {
    xs.len() as u64
}

#[mandala::track]
fn tracked_mix(a: u64, b: u64) -> u64 {
    a.rotate_left(7) ^ b
}

#[inline(never)]
fn plain_mix(a: u64, b: u64) -> u64 {
    a.rotate_left(7) ^ b
}

/// A `#[track]`ed function called while no op executes (so nothing is recorded) against the
/// same function untracked.
fn tracked_idle(quick: bool) {
    let n: u64 = if quick { 1_000_000 } else { 20_000_000 };
    let ours = median_per(5, n, || {
        let mut acc = 0u64;
        for i in 0..n {
            acc = tracked_mix(black_box(acc), i);
        }
        black_box(acc);
    });
    let base = median_per(5, n, || {
        let mut acc = 0u64;
        for i in 0..n {
            acc = plain_mix(black_box(acc), i);
        }
        black_box(acc);
    });
    row(
        "tracked function, no op executing, per call",
        ns(ours),
        "ns",
        "the same function untracked",
        ns(base),
        "next to nothing",
    );
}

/// The median of `runs` timings of `f`, each divided by `per`.
fn median_per(runs: usize, per: u64, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed() / per as u32
        })
        .collect();
    v.sort();
    v[runs / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn row(name: &str, ours: f64, unit: &str, baseline_name: &str, base: f64, target: &str) {
    println!("{name:<44} {ours:>12.1} {unit:<5} | {baseline_name:<34} {base:>10.1} {unit:<5} | ratio {:>6.2}  (target {target})", ours / base);
}

fn hit_in_process(quick: bool) {
    let storage = Storage::in_memory();
    storage.run(|| add2(1, 2)).unwrap();
    let n = if quick { 20_000 } else { 200_000 };
    let per = median_per(5, n, || {
        storage
            .run(|| -> mandala::Result<()> {
                for _ in 0..n {
                    black_box(add2(black_box(1), black_box(2))?);
                }
                Ok(())
            })
            .unwrap()
    });
    let input = [7u8; 64];
    let base = median_per(5, n, || {
        for _ in 0..n {
            black_box(blake3::hash(black_box(&input)));
        }
    });
    row(
        "hit, same process (lazy), per call",
        ns(per),
        "ns",
        "blake3 of 64 bytes",
        ns(base),
        "<= 2000 ns",
    );
}

/// Runs in a child process: opens the store fresh and times `n` hits, each value unwrapped,
/// between two timings of the baseline (one open + read of each of `n` small files written
/// beside the store).
fn child_hits(store: &str, n: u64) {
    let files = small_files(Path::new(store), n);
    let baseline = || {
        let t = Instant::now();
        for f in &files {
            black_box(fs::read(f).unwrap());
        }
        ns(t.elapsed()) / files.len() as f64
    };
    let before = baseline();
    let t = Instant::now();
    let storage = Storage::open(store).unwrap();
    storage.allow_new_calls(false);
    storage
        .run(|| -> mandala::Result<()> {
            for i in 0..n {
                black_box(storage.unwrap(&add2(i, i + 1)?)?);
            }
            Ok(())
        })
        .unwrap();
    let hits = storage.stats().total.hits;
    drop(storage);
    let per = ns(t.elapsed()) / n as f64;
    assert_eq!(hits, n);
    let after = baseline();
    println!("PER_CALL_NS {per} BASELINE_NS {}", (before + after) / 2.0);
}

fn hit_fresh_process(dir: &Path, quick: bool) {
    let n: u64 = if quick { 2_000 } else { 100_000 };
    let store = dir.join("hits.mandala");
    let storage = create_store(&store).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            for i in 0..n {
                add2(i, i + 1)?;
            }
            Ok(())
        })
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--child-hits", store.to_str().unwrap(), &n.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("PER_CALL_NS "))
            .unwrap_or_else(|| panic!("child: {text} {}", String::from_utf8_lossy(&out.stderr)));
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        runs.push((v[0] / v[1], v[0], v[1]));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (_, ours, base) = runs[2];
    row(
        &format!("hit + unwrap, fresh process, amortized over {n} incl. open"),
        ours,
        "ns",
        "open+read of a small file",
        base,
        "<= 2 us",
    );
}

fn record_new_calls(dir: &Path, quick: bool) {
    let n: u64 = if quick { 1_000 } else { 5_000 };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    let (mut files, mut dirs) = (0u64, 0u64);
    let mut k = 0u64;
    // Rounds alternate which of ours and the baseline goes first, so both see the file system
    // (and its background writeback) in the same states.
    for round in 0..6u64 {
        let mut run_ours = || {
            let store = dir.join(format!("new{round}.mandala"));
            let storage = create_store(&store).unwrap();
            let before = count_objects(&store);
            let t = Instant::now();
            storage
                .run(|| -> mandala::Result<()> {
                    for i in 0..n {
                        add2(i * 3 + round * 10 * n, i * 3 + 1 + round * 10 * n)?;
                    }
                    Ok(())
                })
                .unwrap();
            ours.push(t.elapsed() / n as u32);
            let after = count_objects(&store);
            (files, dirs) = (after.0 - before.0, after.1 - before.1);
        };
        // Baseline: an atomic small-file write (temp file + rename) into a fresh sharded
        // directory, as the store is.
        let mut run_base = || {
            base.push(atomic_writes(&dir.join(format!("raw{round}")), k, n));
            k += n;
        };
        if round % 2 == 0 {
            run_ours();
            run_base();
        } else {
            run_base();
            run_ours();
        }
    }
    ours.sort();
    base.sort();
    let (ours, base) = (ours[3], base[3]);
    let (fpc, dpc) = (files as f64 / n as f64, dirs as f64 / n as f64);
    println!("a new call creates {fpc:.4} files and {dpc:.4} directories (2 new inputs, 1 new output, 1 record; formats 2 and 3: appended to a log)");
    row(
        "record a new call (run of 5k)",
        ns(ours),
        "ns",
        "atomic small-file write",
        ns(base),
        "<= 0.25",
    );
}

/// The baseline of writing: `n` atomic small-file writes (temp file + rename) into a fresh
/// sharded directory under `base_dir`, as the store writes, with names from `first` on;
/// returns the time per write.
fn atomic_writes(base_dir: &Path, first: u64, n: u64) -> Duration {
    fs::create_dir_all(base_dir.join("tmp")).unwrap();
    let t = Instant::now();
    for k in first..first + n {
        let id = Id::hash(Kind::Value, &k.to_le_bytes()).to_string();
        let dest = base_dir.join(&id[..2]).join(&id[2..]);
        let tmp = base_dir.join("tmp").join(&id);
        fs::write(&tmp, b"0123456789abcdef0123").unwrap();
        if fs::rename(&tmp, &dest).is_err() {
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::rename(&tmp, &dest).unwrap();
        }
    }
    t.elapsed() / n as u32
}

/// Opens (creating) a benchmark's store in the format `MANDALA_BENCH_FORMAT` says (default:
/// the default of new stores, 2), to compare formats in the same minutes.
fn create_store(path: &Path) -> mandala::Result<Storage> {
    let format = std::env::var("MANDALA_BENCH_FORMAT")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(store_fs::FORMAT_VERSION);
    Storage::open_with(
        path,
        mandala::OpenOptions {
            format,
            // MANDALA_BENCH_CLAIMS=1: claims across processes on (their cost per new call).
            claims: std::env::var_os("MANDALA_BENCH_CLAIMS")
                .map(|_| std::time::Duration::from_secs(600)),
            ..Default::default()
        },
    )
}

/// Records `add2(i, b)` for every `i` in `range` (new calls, unless stored already).
fn add2_calls(storage: &Storage, range: std::ops::Range<u64>, b: u64) {
    storage
        .run(|| -> mandala::Result<()> {
            for i in range {
                add2(i, b)?;
            }
            Ok(())
        })
        .unwrap();
}

/// The cost of a new call as the store grows (issue 10's first target: flat from 1k to 1M).
/// Two rows per size N: one run recording N new calls of `add2` into an empty store,
/// amortized per call (the definition); then a new handle recording 1 000 more into
/// that store of N (a process's first listing of each shard shows here). The baseline is one
/// atomic small-file write (temp file + rename into a sharded directory) in the same minutes.
fn new_call_at_scale(dir: &Path, quick: bool) {
    let sizes: &[u64] = if quick {
        &[1_000, 10_000]
    } else if std::env::var_os("MANDALA_BENCH_1M").is_some() {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[10_000, 100_000]
    };
    const MORE: u64 = 1_000;
    // The engine's own cost of a new call (hashing, encoding; nothing written): the floor.
    let memory = Storage::in_memory();
    let t = Instant::now();
    add2_calls(&memory, 0..10_000, 7);
    println!(
        "new call, in-memory store (the engine's floor): {:.1} us",
        ns(t.elapsed()) / 1e3 / 10_000.0
    );
    let mut first = None;
    for &n in sizes {
        let store = dir.join(format!("scale{n}.mandala"));
        let storage = create_store(&store).unwrap();
        let t = Instant::now();
        add2_calls(&storage, 0..n, 7);
        let run = t.elapsed() / n as u32;
        assert_eq!(storage.stats().total.executed, n);
        drop(storage);
        let base = atomic_writes(&dir.join(format!("scale-raw{n}")), 0, n.min(20_000));
        let growth = first.map_or(1.0, |f: Duration| run.as_secs_f64() / f.as_secs_f64());
        first.get_or_insert(run);
        let (files, _) = count_objects(&store);
        let bytes = allocated(&store);
        println!(
            "store of {n} calls: {files} files, {:.0} allocated bytes per call",
            bytes as f64 / n as f64
        );
        // What `mandala status` computes: the files and objects of each kind, and the
        // number of ops (which reads the op at the start of every record).
        let t = Instant::now();
        let fs = store_fs::FsBackend::open_existing(&store).unwrap();
        let st = fs.status().unwrap();
        let ops = fs.op_counts().unwrap();
        println!(
            "mandala status of it: {:.1} ms ({} calls, {} op)",
            ns(t.elapsed()) / 1e6,
            st.call_count(),
            ops.len()
        );
        row(
            &format!("new call, run of {n} ({growth:.2}x the first size)"),
            ns(run) / 1e3,
            "us",
            "atomic small-file write",
            ns(base) / 1e3,
            "<= 0.25, flat",
        );
        let storage = Storage::open(&store).unwrap();
        let t = Instant::now();
        add2_calls(&storage, n..n + MORE, 7);
        let more = t.elapsed() / MORE as u32;
        row(
            &format!("  1k more, new handle, store of {n}"),
            ns(more) / 1e3,
            "us",
            "atomic small-file write",
            ns(base) / 1e3,
            "(first listings)",
        );
    }
}

/// Bytes allocated on disk under `root` (files and directories).
fn allocated(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += m.blocks() * 512;
        if m.is_dir() {
            total += allocated(&e.path());
        }
    }
    total
}

/// (files, directories) under `root`.
fn count_objects(root: &Path) -> (u64, u64) {
    let (mut f, mut d) = (0, 0);
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let (f2, d2) = count_objects(&e.path());
            f += f2;
            d += d2 + 1;
        } else {
            f += 1;
        }
    }
    (f, d)
}

fn big_vector(dir: &Path, quick: bool) {
    let n = if quick { 1_000_000 } else { 10_000_000 };
    let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.001).sin() * 1e3).collect();
    let storage = Storage::open(dir.join("big.mandala")).unwrap();
    let fs_backend = storage.fs().unwrap().clone();
    let cbor = store_core::format::cbor::to_canonical(&v).unwrap();
    let mb = cbor.len() as f64 / 1e6;
    let runs = 5;
    let mut cid = Id([0; 32]);
    let mut k = 0;
    let store = median_per(runs, 1, || {
        // What recording an output does: encode, hash, compress, write (in one pass, a
        // mebibyte at a time). A fresh store each time, so the write is never skipped as
        // already present.
        k += 1;
        let b = Storage::open(dir.join(format!("big{k}.mandala"))).unwrap();
        cid = b.save_value(&v).unwrap();
    });
    let z1 = median_per(runs, 1, || {
        black_box(zstd::bulk::compress(&cbor, 1).unwrap());
    });
    let compressed = zstd::bulk::compress(&cbor, 1).unwrap();
    let _ = fs_backend;
    let b = store_fs::FsBackend::open(&dir.join("big1.mandala")).unwrap();
    let engine = mandala::Engine::new(Box::new(b));
    let load = median_per(runs, 1, || {
        black_box(engine.load_value::<Vec<f64>>(&cid).unwrap());
    });
    let unz1 = median_per(runs, 1, || {
        black_box(zstd::bulk::decompress(&compressed, cbor.len()).unwrap());
    });
    let mbps = |d: Duration| mb / d.as_secs_f64();
    println!("Vec<f64> of {n} elements = {mb:.1} MB of CBOR");
    println!(
        "{:<44} {:>12.1} MB/s  | {:<34} {:>10.1} MB/s  | ratio {:>6.2}  (target >= 0.5)",
        "store (encode+hash+compress+write)",
        mbps(store),
        "zstd -1 compress",
        mbps(z1),
        mbps(store) / mbps(z1)
    );
    println!(
        "{:<44} {:>12.1} MB/s  | {:<34} {:>10.1} MB/s  | ratio {:>6.2}  (target >= 0.5)",
        "load (read+decompress+verify+decode)",
        mbps(load),
        "zstd decompress",
        mbps(unz1),
        mbps(load) / mbps(unz1)
    );
}

#[op]
fn gen(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761)
}

#[op]
fn feat(a: u64) -> u64 {
    a.rotate_left(13)
}

#[op]
fn score(f: u64, k: u64) -> f64 {
    (f % 1000) as f64 / (k + 1) as f64
}

/// How many calls make one row of `op`'s table in these benchmarks.
fn calls_per_row(op: &str) -> u64 {
    if op == "score" {
        3
    } else {
        1
    }
}

/// In a child process: opens the store, builds the frame of `op`, expands it all and makes its
/// table with values; prints the time taken and the time to read as many small files as the
/// table has call records (open + read: what one file per record costs), the baseline.
fn child_table(store: &str, op: &str, rows: usize) {
    let t = Instant::now();
    let storage = Storage::open(store).unwrap();
    let mut cf = storage.cf(op).unwrap();
    cf.expand_all().unwrap();
    let table = cf.df(false).unwrap().values().unwrap();
    let ours = t.elapsed();
    assert_eq!(table.len(), rows);
    drop(storage);
    // The baseline: one small file per call record, as format 1 stores them.
    let files = small_files(Path::new(store), rows as u64 * calls_per_row(op));
    let t = Instant::now();
    for f in &files {
        black_box(fs::read(f).unwrap());
    }
    let base = t.elapsed();
    println!("TABLE_NS {} BASELINE_NS {}", ns(ours), ns(base));
}

/// `n` small files (20 bytes each, sharded as a store's objects) beside `store`, written the
/// first time: the baseline "as many small files" of reads.
fn small_files(store: &Path, n: u64) -> Vec<std::path::PathBuf> {
    let raw = store.with_extension("raw");
    if !raw.exists() {
        atomic_writes(&raw, 0, n);
        fs::remove_dir_all(raw.join("tmp")).unwrap();
    }
    let mut files = Vec::new();
    for shard in fs::read_dir(&raw).unwrap() {
        for f in fs::read_dir(shard.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files
}

/// Median over `runs` child processes of (table time, baseline time).
fn table_in_children(store: &Path, op: &str, rows: usize, runs: usize) -> (f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let mut got: Vec<(f64, f64)> = (0..runs)
        .map(|_| {
            let out = Command::new(&exe)
                .args([
                    "--child-table",
                    store.to_str().unwrap(),
                    op,
                    &rows.to_string(),
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let w: Vec<&str> = text.split_whitespace().collect();
            (w[1].parse().unwrap(), w[3].parse().unwrap())
        })
        .collect();
    got.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ours = got[runs / 2].0;
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    (ours, got[runs / 2].1)
}

/// Lets the store's call shard directories settle (the call index trusts a directory's listing
/// only once it has been quiet for 2 s), then makes the index with one query.
fn settle(store: &Path, op: &str) {
    std::thread::sleep(Duration::from_millis(2100));
    let storage = Storage::open(store).unwrap();
    black_box(storage.cf(op).unwrap());
}

/// The table of a 10 000-call store of one op in a fresh process (open, frame, expand_all,
/// df, values), beside reading the same call record files raw.
fn frame_table(dir: &Path, quick: bool) {
    let n: u64 = if quick { 1_000 } else { 10_000 };
    let store = dir.join("frame.mandala");
    add2_calls(&create_store(&store).unwrap(), 0..n, 1);
    settle(&store, "add2");
    let (ours, base) = table_in_children(&store, "add2", n as usize, 7);
    row(
        &format!("table of {n} calls, fresh process (+ values)"),
        ours / 1e6,
        "ms",
        "reading one small file per record",
        base / 1e6,
        "<= 50 ms",
    );
    // In a running program: a new handle on the store (nothing of it cached), warm heap.
    let table = || {
        let storage = Storage::open(&store).unwrap();
        let mut cf = storage.cf("add2").unwrap();
        cf.expand_all().unwrap();
        assert_eq!(cf.df(false).unwrap().values().unwrap().len() as u64, n);
    };
    table();
    let ours = median_per(7, 1, table);
    row(
        &format!("table of {n} calls, new handle in a process"),
        ns(ours) / 1e6,
        "ms",
        "reading one small file per record",
        base / 1e6,
        "<= 50 ms",
    );
}

/// The table of a 3-op pipeline of 100 000 calls in a fresh process, beside reading the same
/// call record files raw.
fn pipeline_table(dir: &Path, quick: bool) {
    let n: u64 = if quick { 3_334 } else { 33_334 };
    let store = dir.join("pipeline.mandala");
    let storage = create_store(&store).unwrap();
    storage
        .run(|| -> mandala::Result<()> {
            for i in 0..n {
                let a = gen(i)?;
                let f = feat(&a)?;
                score(&f, i % 10)?;
            }
            Ok(())
        })
        .unwrap();
    drop(storage);
    settle(&store, "score");
    let (ours, base) = table_in_children(&store, "score", n as usize, 5);
    row(
        &format!("table of {} calls, 3 ops, fresh process", 3 * n),
        ours / 1e6,
        "ms",
        "reading one small file per record",
        base / 1e6,
        "<= 1000 ms",
    );
}

/// Collections stored per element (issue 12): the cost of one element of an output list (its
/// value and its get-item record), of one element of an argument list built from refs (an
/// input of its make-list record), and of one element of a stored list found in a fresh handle
/// (its ids derived from the list's shape), each beside a new trivial call recorded in the same
/// run: an element should cost no more than a call.
fn collections(dir: &Path, quick: bool) {
    let n: u64 = if quick { 2_000 } else { 20_000 };
    let (mut out_elt, mut in_elt, mut hit_elt, mut call) = (vec![], vec![], vec![], vec![]);
    for round in 0..5u64 {
        let store = dir.join(format!("lists{round}.mandala"));
        let storage = create_store(&store).unwrap();
        let t = Instant::now();
        let list = storage.run(|| range_list(n, round)).unwrap();
        out_elt.push(t.elapsed() / n as u32);
        // The same elements as refs in another order: a new list, built by a make-list call.
        let refs: Vec<mandala::Ref<u64>> = list.iter().rev().cloned().collect();
        let t = Instant::now();
        storage.run(|| list_len(refs)).unwrap();
        in_elt.push(t.elapsed() / n as u32);
        let t = Instant::now();
        add2_calls(&storage, 0..n, round + 1_000);
        call.push(t.elapsed() / n as u32);
        storage.flush().unwrap();
        drop(storage);
        let storage = Storage::open(&store).unwrap();
        let t = Instant::now();
        let list = storage.run(|| range_list(n, round)).unwrap();
        for r in list.iter() {
            black_box(r.hid());
        }
        hit_elt.push(t.elapsed() / n as u32);
    }
    let mid = |mut v: Vec<Duration>| {
        v.sort();
        ns(v[v.len() / 2])
    };
    let call = mid(call);
    let rows = [
        ("element of an output list (new)", mid(out_elt)),
        ("element of a list argument from refs (new)", mid(in_elt)),
        ("element of a list found in a fresh handle", mid(hit_elt)),
    ];
    for (name, ours) in rows {
        row(name, ours, "ns", "new trivial call", call, "<= 1");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 5 && args[1] == "--child-table" {
        child_table(&args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    if args.len() >= 4 && args[1] == "--child-hits" {
        child_hits(&args[2], args[3].parse().unwrap());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args.iter().skip(1).find(|a| !a.starts_with("--")).cloned();
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    // MANDALA_BENCH_DIR keeps the stores for inspection (e.g. profiling `--child-hits`).
    let kept = std::env::var_os("MANDALA_BENCH_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir = match &kept {
        Some(d) => {
            fs::create_dir_all(d).unwrap();
            tempfile::tempdir_in(d).unwrap().keep()
        }
        None => temp.path().to_path_buf(),
    };
    println!(
        "mandala benchmarks ({} cores){}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if quick { ", quick" } else { "" }
    );
    if want("tracked_idle") {
        tracked_idle(quick);
    }
    if want("hit_in_process") {
        hit_in_process(quick);
    }
    if want("hit_fresh_process") {
        hit_fresh_process(&dir, quick);
    }
    if want("record_new_calls") {
        record_new_calls(&dir, quick);
    }
    if want("new_call_at_scale") {
        new_call_at_scale(&dir, quick);
    }
    if want("frame_table") {
        frame_table(&dir, quick);
    }
    if want("pipeline_table") {
        pipeline_table(&dir, quick);
    }
    if want("parallel_grid") {
        parallel_grid(&dir, quick);
    }
    if want("collections") {
        collections(&dir, quick);
    }
    if want("big_vector") {
        big_vector(&dir, quick);
    }
}
