//! Several processes and one store: restarts, a killed writer, concurrent writers, and stores
//! merged with rsync and git.
//!
//! Child processes are this test binary run again on one `#[ignore]`d helper test
//! (`child`), which reads its job from environment variables and prints its counters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use mandala::{op, MList, Storage};

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

#[op]
fn square(x: i64) -> i64 {
    x * x
}

/// Not deterministic: the result depends on the process that computes it.
#[op]
fn roll(x: i64) -> i64 {
    x * 1000 + i64::from(std::process::id() % 1000)
}

/// Splits `data` into pairs: one element per pair, each with its own history.
#[op]
fn split_pairs(data: Vec<i64>) -> MList<Vec<i64>> {
    data.chunks(2).map(<[i64]>::to_vec).collect()
}

#[op]
fn sum_sq(chunk: Vec<i64>) -> i64 {
    chunk.iter().map(|x| x * x).sum()
}

#[op]
fn mean_of(xs: MList<i64>) -> i64 {
    xs.iter().sum::<i64>() / xs.len() as i64
}

/// The job a child runs, from `MANDALA_CHILD_JOB`:
/// - `incs A B`: `inc(inc(i))` and `square(inc(i))` for i in A..B;
/// - `inc12`: `inc(1)`, `inc(2)`;  `nested`: `inc(inc(1))`;
/// - `chunks N`: `mean_of([sum_sq(c) for c in split_pairs(0..N)])`, element by element.
fn run_job(storage: &Storage, job: &str) -> mandala::Result<()> {
    let words: Vec<&str> = job.split_whitespace().collect();
    storage.run(|| -> mandala::Result<()> {
        match words.as_slice() {
            ["incs", a, b] => {
                for i in a.parse::<i64>().unwrap()..b.parse::<i64>().unwrap() {
                    let y = inc(i)?;
                    inc(&y)?;
                    square(&y)?;
                }
            }
            ["inc12"] => {
                inc(1)?;
                inc(2)?;
            }
            ["roll"] => {
                let r = roll(1)?;
                inc(&r)?;
            }
            ["chunks", n] => {
                let data: Vec<i64> = (0..n.parse::<i64>().unwrap()).collect();
                let chunks = split_pairs(data.clone())?;
                let sums: Vec<mandala::Ref<i64>> =
                    chunks.iter().map(sum_sq).collect::<mandala::Result<_>>()?;
                let m = mean_of(sums)?;
                let want: i64 = data
                    .chunks(2)
                    .map(|c| c.iter().map(|x| x * x).sum::<i64>())
                    .sum::<i64>()
                    / chunks.len() as i64;
                assert_eq!(storage.unwrap(&m)?, want);
            }
            ["nested"] => {
                let z = inc(inc(1)?)?;
                assert_eq!(storage.unwrap(&z)?, 3);
            }
            other => panic!("unknown job {other:?}"),
        }
        Ok(())
    })
}

#[test]
#[ignore = "helper: runs inside child processes started by the other tests"]
fn child() {
    let store = std::env::var("MANDALA_CHILD_STORE").expect("run by a parent test");
    let job = std::env::var("MANDALA_CHILD_JOB").unwrap();
    let storage = Storage::open(&store).unwrap();
    run_job(&storage, &job).unwrap();
    let t = storage.stats().total;
    println!(
        "STATS executed={} hits={} reused={}",
        t.executed, t.hits, t.reused
    );
}

fn child_command(store: &Path, job: &str) -> Command {
    common::helper_process(&[
        ("MANDALA_CHILD_STORE", store.as_os_str()),
        ("MANDALA_CHILD_JOB", job.as_ref()),
    ])
}

/// Runs a child to completion and returns its (executed, hits, reused).
fn run_child(store: &Path, job: &str) -> (u64, u64, u64) {
    let out = child_command(store, job).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("STATS ").map(|i| &l[i..]))
        .expect("child prints its stats");
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|kv| kv.split('=').nth(1).unwrap().parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// Opens `store` in this process and checks that every call of job `incs a b` is a hit.
fn assert_all_hits(store: &Path, a: i64, b: i64) {
    let storage = Storage::open(store).unwrap();
    storage.allow_new_calls(false);
    run_job(&storage, &format!("incs {a} {b}")).expect("every call is stored");
    assert_eq!(storage.stats().total.executed, 0);
    assert_eq!(storage.stats().total.hits, 3 * (b - a) as u64);
}

fn assert_verifies(store: &Path) {
    let report = Storage::open(store).unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
}

fn store_in(dir: &Path) -> PathBuf {
    dir.join("s.mandala")
}

#[test]
fn a_new_process_executes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    // inc(inc(i)) has the content of inc(i + 1): 19 of the 20 are reused, not executed.
    assert_eq!(run_child(&s, "incs 0 20"), (41, 0, 19));
    assert_eq!(run_child(&s, "incs 0 20"), (0, 60, 0));
    assert_verifies(&s);
}

#[test]
fn content_reuse_works_across_processes() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    assert_eq!(run_child(&s, "inc12"), (2, 0, 0));
    // inc(1) is a hit; inc(<2 computed by inc>) has inc(2)'s content: reused, not executed.
    assert_eq!(run_child(&s, "nested"), (0, 1, 1));
    assert_eq!(run_child(&s, "nested"), (0, 2, 0));
    let storage = Storage::open(&s).unwrap();
    assert_eq!(
        storage.backend().all_values().unwrap().len(),
        3,
        "values 1, 2, 3 once each"
    );
    assert_eq!(storage.backend().all_calls().unwrap().len(), 3);
}

#[test]
fn a_killed_writer_leaves_a_valid_store() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let mut child = child_command(&s, "incs 0 1000000").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait until the child has written a good number of calls, then SIGKILL it mid-stream.
    loop {
        let n = store_fs::FsBackend::open_existing(&s)
            .and_then(|b| b.status())
            .map(|st| st.call_count())
            .unwrap_or(0);
        if n >= 200 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");

    let storage = Storage::open(&s).unwrap();
    let report = storage.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let calls = storage.backend().all_calls().unwrap();
    assert!(calls.len() >= 200, "{} calls survived", calls.len());
    // Every call the store reports is complete: its values load, and it is a hit.
    storage.allow_new_calls(false);
    storage
        .run(|| -> mandala::Result<()> {
            for c in &calls {
                for s in c.record.inputs.iter().chain(&c.record.outputs) {
                    storage.load_value::<i64>(&s.cid)?;
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn concurrent_writers_lose_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    Storage::open(&s).unwrap();
    let a = child_command(&s, "incs 0 600").spawn().unwrap();
    let b = child_command(&s, "incs 300 900").spawn().unwrap();
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_verifies(&s);
    assert_all_hits(&s, 0, 900);
    // Each distinct call is stored once however the two writers interleaved.
    let storage = Storage::open(&s).unwrap();
    assert_eq!(storage.backend().all_calls().unwrap().len(), 3 * 900);
}

#[test]
fn stores_merge_with_rsync() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, merged) = (
        d.path().join("a.mandala"),
        d.path().join("b.mandala"),
        d.path().join("m.mandala"),
    );
    run_child(&a, "incs 0 200");
    run_child(&b, "incs 100 300");
    for src in [&a, &b] {
        common::rsync_into(src, &merged);
    }
    assert_verifies(&merged);
    assert_all_hits(&merged, 0, 300);
}

/// Collections across processes: a new process finds every element's call; a longer list
/// computes only its new element; two stores that built overlapping lists merge by rsync.
#[test]
fn collections_across_processes_and_merges() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, merged) = (
        d.path().join("a.mandala"),
        d.path().join("b.mandala"),
        d.path().join("m.mandala"),
    );
    // split, 3 × sum_sq, mean.
    assert_eq!(run_child(&a, "chunks 6"), (5, 0, 0));
    assert_eq!(
        run_child(&a, "chunks 6"),
        (0, 5, 0),
        "a new process executes nothing"
    );
    // One more pair: split and mean are new calls, three pairs are reused by content, one
    // pair's sum is computed.
    assert_eq!(run_child(&a, "chunks 8"), (3, 0, 3));
    assert_verifies(&a);
    // Another store built an overlapping list on its own; the union of both is a store where
    // everything each built is a hit.
    assert_eq!(run_child(&b, "chunks 10"), (7, 0, 0));
    for src in [&a, &b] {
        common::rsync_into(src, &merged);
    }
    assert_verifies(&merged);
    assert_eq!(run_child(&merged, "chunks 6"), (0, 5, 0));
    assert_eq!(run_child(&merged, "chunks 8"), (0, 6, 0));
    assert_eq!(run_child(&merged, "chunks 10"), (0, 7, 0));
}

#[test]
fn stores_merge_with_git_without_conflicts() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path();
    let s = store_in(repo);
    common::merge_in_git(
        repo,
        &s,
        || {
            run_child(&s, "incs 0 150");
        },
        || {
            run_child(&s, "incs 100 250");
        },
    );
    // Nothing in tmp/ but the collection lock.
    assert!(store_fs::write::stray_temp_files(&s.join("tmp"))
        .unwrap()
        .is_empty());
    assert_verifies(&s);
    assert_all_hits(&s, 0, 250);
}

#[test]
fn provenance_sees_calls_another_process_stored_after_the_first_query() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    run_child(&s, "incs 0 1");
    let storage = Storage::open(&s).unwrap();
    storage.allow_new_calls(false);
    let y = storage.run(|| inc(0)).unwrap(); // consumed by inc(y) and square(y)
    assert_eq!(storage.get_consumers(&y).unwrap().len(), 2);
    // Another process adds the calls of i = 1 and 2; the index picks them up.
    run_child(&s, "incs 0 3");
    let z = storage.run(|| inc(2)).unwrap();
    let creator = storage
        .get_ref_creator(&z)
        .unwrap()
        .expect("a call stored by the other process");
    assert_eq!(creator.record.op, "inc");
    assert_eq!(storage.get_consumers(&z).unwrap().len(), 2);
    assert_eq!(
        storage.get_consumers(&y).unwrap().len(),
        2,
        "nothing counted twice"
    );
}

#[test]
fn diverging_results_of_a_non_deterministic_op_both_survive_a_merge() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.mandala"), d.path().join("b.mandala"));
    run_child(&a, "roll");
    run_child(&b, "roll");
    let value = |s: &Path| -> i64 {
        let st = Storage::open(s).unwrap();
        st.allow_new_calls(false);
        let r = st.run(|| roll(1)).unwrap();
        st.unwrap(&r).unwrap()
    };
    let (va, vb) = (value(&a), value(&b));
    assert_ne!(va, vb, "two processes, two results");
    // Merge in both orders: both records survive, and both merged stores answer alike.
    let (ab, ba) = (d.path().join("ab.mandala"), d.path().join("ba.mandala"));
    for (dst, srcs) in [(&ab, [&a, &b]), (&ba, [&b, &a])] {
        for src in srcs {
            common::rsync_into(src, dst);
        }
    }
    for merged in [&ab, &ba] {
        let st = Storage::open(merged).unwrap();
        let report = st.verify().unwrap();
        assert!(report.is_clean(), "{:#?}", report.problems);
        // roll(1) diverged; the inc calls after it took different contents: they are two
        // different calls, not a divergence.
        assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
        assert!(report.warnings[0]
            .what
            .contains("different results for one call"));
        assert_eq!(
            st.backend().all_calls().unwrap().len(),
            4,
            "both records of each call survive"
        );
    }
    assert_eq!(value(&ab), value(&ba), "lookups choose deterministically");
    assert!([va, vb].contains(&value(&ab)));
}

/// Issue 10: a process's own writes change its shard directories' stamps; they are taken into
/// its listings instead of making every new call list its shard again (O(N) per call).
#[test]
fn new_calls_do_not_list_their_shard_again() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    run_job(&Storage::open(&s).unwrap(), "incs 0 1500").unwrap();
    let storage = Storage::open(&s).unwrap();
    run_job(&storage, "incs 10000 12000").unwrap();
    let t = storage.stats().total;
    assert_eq!(t.executed + t.reused, 6000);
    // One listing per shard, then at most one more per 64 own writes into it (4 000 new
    // records over 256 shards: none), against one per new call before.
    let listings = storage.fs().unwrap().shard_listings();
    assert!(listings <= 2 * 256 + 4000 / 64, "{listings} listings");
    assert_all_hits(&s, 10000, 12000);
}

/// While this process takes its own writes into its listings, calls another process stored
/// meanwhile are still found by this process's next lookups: their writes changed the stamps
/// this process knew, so it lists those shards again.
#[test]
fn another_writer_s_calls_are_seen_by_a_process_that_keeps_writing() {
    let d = tempfile::tempdir().unwrap();
    let s = store_in(d.path());
    let storage = Storage::open(&s).unwrap();
    run_job(&storage, "incs 0 300").unwrap();
    let (executed, hits, reused) = run_child(&s, "incs 1000 1300");
    assert_eq!((executed + reused, hits), (900, 0));
    run_job(&storage, "incs 2000 2300").unwrap();
    storage.reset_stats();
    storage.allow_new_calls(false);
    run_job(&storage, "incs 1000 1300").expect("every call of the other process is found");
    assert_eq!(storage.stats().total.executed, 0);
}
