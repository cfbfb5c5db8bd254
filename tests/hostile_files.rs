//! Hostile files in a store (issue 9, item 5): a small value file that decompresses to
//! hundreds of megabytes, links to `/dev/zero` where a value, `mandala.toml` or `index/calls`
//! belongs, a FIFO where a value belongs. Each is met at once, in bounded memory, with a named
//! error or by computing the call again; nothing hangs and nothing grows without bound.
//!
//! Each case runs in a child process (this test binary again, on the `#[ignore]`d helper
//! `child`) under a memory cap (`RLIMIT_AS`) and a time limit, and reports its peak memory.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use mandala::{op, Storage};

#[op]
fn make(n: u64) -> Vec<u64> {
    (0..n).collect()
}

/// The bomb's true size: a value file of a few hundred kilobytes that decompresses to this.
const BOMB: u64 = 256 << 20;

/// A cap on the child's address space: generous for a test binary, far below what reading a
/// hostile file without bounds needs.
const CAP: u64 = 1 << 30;

fn peak_rss_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_maxrss
}

#[test]
#[ignore = "helper: runs inside child processes started by the other tests"]
fn child() {
    let store = PathBuf::from(std::env::var("MANDALA_STORE").expect("run by a parent test"));
    let case = std::env::var("MANDALA_HOSTILE_CASE").unwrap();
    let cap = libc::rlimit {
        rlim_cur: CAP,
        rlim_max: CAP,
    };
    // SAFETY: setrlimit only reads the struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &cap) }, 0);
    let outcome: Result<String, String> = match case.as_str() {
        "load" => Storage::open_with(&store, common::format1())
            .and_then(|s| {
                let y = s.run(|| make(5))?;
                s.unwrap(&y)
                    .map(|v| format!("{v:?} healed={}", s.stats().op("make").healed))
            })
            .map_err(|e| e.to_string()),
        "fsck" => Storage::open_with(&store, common::format1())
            .and_then(|s| s.verify())
            .map(|r| format!("{:?}", r.problems))
            .map_err(|e| e.to_string()),
        "open" => Storage::open_with(&store, common::format1())
            .map(|_| "opened".into())
            .map_err(|e| e.to_string()),
        "table" => Storage::open_with(&store, common::format1())
            .and_then(|s| s.cf("make")?.df(false))
            .map(|t| format!("rows={}", t.len()))
            .map_err(|e| e.to_string()),
        other => panic!("no case {other}"),
    };
    println!("OUTCOME {outcome:?}");
    println!("PEAK_KIB {}", peak_rss_kib());
}

/// Runs `case` on `store` in a capped child; returns its outcome line and peak memory (KiB).
fn run_case(store: &Path, case: &str) -> (String, i64) {
    let mut child = common::helper_process(&[
        ("MANDALA_STORE", store.as_os_str()),
        ("MANDALA_HOSTILE_CASE", case.as_ref()),
    ])
    .spawn()
    .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("case {case} hung: killed after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "case {case} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = stdout
        .lines()
        .find_map(|l| l.find("OUTCOME ").map(|i| &l[i + 8..]))
        .expect("an outcome")
        .to_string();
    let peak = stdout
        .lines()
        .find_map(|l| l.find("PEAK_KIB ").map(|i| &l[i + 9..]))
        .expect("a peak")
        .parse()
        .unwrap();
    (outcome, peak)
}

/// A store holding `make(5)`; returns it and the path of that call's output value.
fn store_with_value(dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("s.mandala");
    let storage = Storage::open_with(&store, common::format1()).unwrap();
    let y = storage.run(|| make(5)).unwrap();
    let path = store_fs::layout::value_path(&store, &y.cid());
    (store, path)
}

/// Writes one zstd frame of `BOMB` zero bytes (with its content size) to `path`.
fn write_bomb(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = zstd::stream::write::Encoder::new(file, 1).unwrap();
    enc.include_contentsize(true).unwrap();
    enc.include_checksum(true).unwrap();
    enc.set_pledged_src_size(Some(BOMB)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB >> 20 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
}

/// Peak memory a case may use: the test binary and a few buffers, not the bomb's size.
const PEAK_LIMIT_KIB: i64 = 96 << 10;

#[test]
fn a_small_file_that_decompresses_to_hundreds_of_megabytes_is_rejected_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let (store, value) = store_with_value(d.path());
    write_bomb(&value);
    assert!(std::fs::metadata(&value).unwrap().len() < BOMB / 64);

    let (outcome, peak) = run_case(&store, "fsck");
    assert!(outcome.contains("not to its name"), "{outcome}");
    assert!(
        peak < PEAK_LIMIT_KIB,
        "fsck peaked at {peak} KiB: {outcome}"
    );

    let (outcome, peak) = run_case(&store, "load");
    assert!(
        outcome.contains("not to its name (found in a streaming check before loading"),
        "{outcome}"
    );
    assert!(outcome.contains(&value.display().to_string()), "{outcome}");
    assert!(
        peak < PEAK_LIMIT_KIB,
        "a re-run peaked at {peak} KiB: {outcome}"
    );
    // The bomb was moved aside: the next run computes the call again.
    let (outcome, _) = run_case(&store, "load");
    assert_eq!(outcome, "Ok(\"[0, 1, 2, 3, 4] healed=1\")");
}

#[test]
fn a_value_that_is_a_link_to_dev_zero_is_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let (store, value) = store_with_value(d.path());
    std::fs::remove_file(&value).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &value).unwrap();
    let (outcome, _) = run_case(&store, "fsck");
    assert!(
        outcome.contains("is a character device, not a regular file"),
        "{outcome}"
    );
    let (outcome, peak) = run_case(&store, "load");
    assert_eq!(outcome, "Ok(\"[0, 1, 2, 3, 4] healed=1\")");
    assert!(peak < PEAK_LIMIT_KIB, "{peak} KiB");
    assert!(
        std::fs::symlink_metadata(&value).unwrap().is_file(),
        "replaced by the value"
    );
}

#[test]
fn a_fifo_where_a_value_belongs_is_met_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (store, value) = store_with_value(d.path());
    std::fs::remove_file(&value).unwrap();
    let made = Command::new("mkfifo")
        .arg(&value)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let (outcome, _) = run_case(&store, "fsck");
    assert!(
        outcome.contains("is a FIFO (named pipe), not a regular file"),
        "{outcome}"
    );
    let (outcome, _) = run_case(&store, "load");
    assert_eq!(outcome, "Ok(\"[0, 1, 2, 3, 4] healed=1\")");
}

#[test]
fn a_config_or_index_that_is_a_link_to_dev_zero_is_never_read() {
    let d = tempfile::tempdir().unwrap();
    let (store, _) = store_with_value(d.path());
    // The index: ignored (it is a cache) and replaced.
    Storage::open_with(&store, common::format1())
        .unwrap()
        .cf("make")
        .unwrap();
    let index = store.join("index/calls");
    std::fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
    let (outcome, peak) = run_case(&store, "table");
    assert_eq!(outcome, "Ok(\"rows=1\")");
    assert!(peak < PEAK_LIMIT_KIB, "{peak} KiB");
    // The config: a named error.
    let config = store.join("mandala.toml");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let (outcome, _) = run_case(&store, "open");
    assert!(
        outcome.contains(&format!(
            "{} is a character device, not a regular file",
            config.display()
        )),
        "{outcome}"
    );
    let config_fifo = store.join("mandala.toml");
    std::fs::remove_file(&config_fifo).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&config_fifo)
        .status()
        .unwrap()
        .success());
    let (outcome, _) = run_case(&store, "open");
    assert!(outcome.contains("is a FIFO (named pipe)"), "{outcome}");
}
