//! Collection beside writers, and calls whose stored values are gone or damaged (issue 9,
//! item 1): gc never removes a value a record names, whatever the interleaving, and a hit
//! whose output value is missing or damaged is computed again instead of failing forever.
//!
//! Writers are this test binary run again on the `#[ignore]`d helper test `child`.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

mod common;

use mandala::{op, Storage};

#[op]
fn first(i: u64) -> u64 {
    i * 7 + 1
}

#[op]
fn second(x: u64) -> u64 {
    x * 3
}

/// The last step: its calls are deleted and recomputed by the writer while gc runs.
#[op]
fn last(x: u64) -> Vec<u64> {
    // A little work, so that the writer's pass spans several collections.
    std::thread::sleep(Duration::from_micros(300));
    vec![x, x + 1, x + 2]
}

const N: u64 = 200;

/// The chain: `last(second(first(i)))` for i in 0..N (3 × N calls).
fn chain(storage: &Storage) -> mandala::Result<Vec<Vec<u64>>> {
    storage.run(|| {
        (0..N)
            .map(|i| {
                let y = last(second(first(i)?)?)?;
                storage.unwrap(&y)
            })
            .collect()
    })
}

#[test]
#[ignore = "helper: runs inside child processes started by the other tests"]
fn child() {
    let store = std::env::var("MANDALA_CHILD_STORE").expect("run by a parent test");
    let storage = Storage::open(&store).unwrap();
    // Ready; wait for the parent's go (its collections are running by then).
    println!("READY");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    chain(&storage).unwrap();
    if std::env::var_os("MANDALA_CHILD_IDLE").is_some() {
        // Stay alive, idle, with the store open, until the parent says so.
        println!("STORED");
        std::io::stdin().read_line(&mut line).unwrap();
    }
}

/// Starts a writer process that recomputes the chain once told to go.
fn writer(
    store: &Path,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    writer_with(store, &[])
}

/// [`writer`] with more environment for the child.
fn writer_with(
    store: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    let mut vars = vec![("MANDALA_CHILD_STORE", store.as_os_str())];
    vars.extend_from_slice(env);
    let mut child = common::helper_process(&vars)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("READY") => break,
            Some(Ok(_)) => continue,
            _ => panic!("the writer did not start"),
        }
    }
    let stdin = child.stdin.take().unwrap();
    (child, stdin, lines)
}

/// Sets the modification time of every value file and pack to two hours ago.
fn age_values(store: &Path) {
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    let age = |p: &Path| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap()
    };
    for f in std::fs::read_dir(store.join("packs")).into_iter().flatten() {
        age(&f.unwrap().path());
    }
    for shard in std::fs::read_dir(store.join("values"))
        .into_iter()
        .flatten()
    {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            age(&f.unwrap().path());
        }
    }
}

/// The records that name a value the store does not hold.
fn dangling(store: &Path) -> Vec<String> {
    let report = Storage::open(store).unwrap().verify().unwrap();
    report.problems.iter().map(|p| p.to_string()).collect()
}

/// Deletes `last`'s calls, ages every value, then runs `gc` (min age `min_age`) in a loop in
/// this process while a writer process recomputes them. Returns how many collections ran
/// while the writer worked.
fn race_round(store: &Path, min_age: Duration) -> usize {
    let storage = Storage::open(store).unwrap();
    assert_eq!(
        storage.cf("last").unwrap().delete_calls().unwrap(),
        N as usize
    );
    drop(storage);
    age_values(store);
    let (mut child, mut go, out) = writer(store);
    let done = std::sync::atomic::AtomicBool::new(false);
    let collections = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let backend = store_fs::FsBackend::open_existing(store).unwrap();
                backend.gc(false, min_age).unwrap();
                n += 1;
            }
            n
        });
        // Let the first collection start, then the writer.
        std::thread::sleep(Duration::from_millis(2));
        writeln!(go, "go").unwrap();
        // Its output is read to the end (the pipe stays open while it runs).
        out.for_each(drop);
        let status = child.wait().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "writer failed: {err}");
        gc.join().unwrap()
    });
    collections
}

fn store_with_chain(dir: &Path, options: mandala::OpenOptions) -> PathBuf {
    let store = dir.join("s.mandala");
    let storage = Storage::open_with(&store, options).unwrap();
    chain(&storage).unwrap();
    assert_eq!(storage.stats().total.executed, 3 * N);
    store
}

/// Regression: a writer that found a value already on disk skipped writing it, and a gc that
/// had listed the records before the writer's record appeared removed the value: the call
/// stayed a hit whose value was gone.
#[test]
fn gc_beside_a_writer_never_removes_a_value_a_record_names() {
    gc_race(mandala::OpenOptions::default());
}

/// The same in a format-1 store (loose values removed one by one).
#[test]
fn gc_beside_a_writer_in_a_format_1_store() {
    gc_race(common::format1());
}

fn gc_race(options: mandala::OpenOptions) {
    let d = tempfile::tempdir().unwrap();
    let store = store_with_chain(d.path(), options);
    for (round, min_age) in [
        Duration::ZERO,
        Duration::from_secs(3600),
        Duration::ZERO,
        Duration::from_secs(3600),
    ]
    .into_iter()
    .enumerate()
    {
        let collections = race_round(&store, min_age);
        assert!(
            collections >= 2,
            "gc ran {collections} times beside the writer"
        );
        let broken = dangling(&store);
        assert!(
            broken.is_empty(),
            "round {round} (min age {min_age:?}, {collections} collections): {} records damaged: {:#?}",
            broken.len(),
            &broken[..broken.len().min(5)]
        );
    }
    // A fresh process finds every call, and every value loads.
    let storage = Storage::open(&store).unwrap();
    storage.allow_new_calls(false);
    let values = chain(&storage).unwrap();
    assert_eq!(values.len(), N as usize);
    assert_eq!(storage.stats().total.executed, 0);
    assert_eq!(storage.stats().total.healed, 0);
}

/// gc waits for a writer that holds the lock, and a writer waits for gc: the lock file is
/// where the format says, and a collection that removed values moves the epoch on.
#[test]
fn gc_takes_the_lock_and_moves_the_epoch_on_when_it_removes_values() {
    let d = tempfile::tempdir().unwrap();
    let store = store_with_chain(d.path(), mandala::OpenOptions::default());
    let backend = store_fs::FsBackend::open_existing(&store).unwrap();
    let lock = store.join("tmp/gc.lock");
    // Nothing to collect: the epoch stays.
    assert!(backend.gc(false, Duration::ZERO).unwrap().values.is_empty());
    let epoch = || {
        let b = std::fs::read(&lock).unwrap_or_default();
        if b.len() == 8 {
            u64::from_le_bytes(b.try_into().unwrap())
        } else {
            0
        }
    };
    assert_eq!(epoch(), 0);
    let storage = Storage::open(&store).unwrap();
    storage.cf("last").unwrap().delete_calls().unwrap();
    let removed = backend.gc(false, Duration::ZERO).unwrap();
    assert_eq!(removed.values.len(), N as usize, "each last() output");
    assert_eq!(epoch(), 1);

    // A writer holding the lock (shared) keeps gc waiting.
    let held = std::fs::File::open(&lock).unwrap();
    held.lock_shared().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let store2 = store.clone();
    let t = std::thread::spawn(move || {
        let b = store_fs::FsBackend::open_existing(&store2).unwrap();
        b.gc(false, Duration::ZERO).unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "gc waited"
    );
    held.unlock().unwrap();
    rx.recv_timeout(Duration::from_secs(30))
        .expect("gc ran once the lock was free");
    t.join().unwrap();
}

/// A writer holds the lock only while it stores a call: a writer process that sits idle with
/// its store open never keeps another process's gc waiting.
#[test]
fn an_idle_writer_does_not_keep_gc_waiting() {
    let d = tempfile::tempdir().unwrap();
    let store = store_with_chain(d.path(), mandala::OpenOptions::default());
    let storage = Storage::open(&store).unwrap();
    storage.cf("last").unwrap().delete_calls().unwrap();
    drop(storage);
    let idle = std::ffi::OsStr::new("1");
    let (mut child, mut go, mut out) = writer_with(&store, &[("MANDALA_CHILD_IDLE", idle)]);
    writeln!(go, "go").unwrap();
    loop {
        match out.next() {
            Some(Ok(l)) if l.contains("STORED") => break,
            Some(Ok(_)) => continue,
            _ => panic!("the writer did not store its calls"),
        }
    }
    // The writer is alive, idle, its store open: a collection here takes the lock.
    let (tx, rx) = std::sync::mpsc::channel();
    let store2 = store.clone();
    let t = std::thread::spawn(move || {
        let b = store_fs::FsBackend::open_existing(&store2).unwrap();
        tx.send(b.gc(false, Duration::from_secs(3600)).map(|_| ()))
            .unwrap();
    });
    let ran = rx.recv_timeout(Duration::from_secs(60));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer is still running, idle"
    );
    ran.expect("gc ran while the writer sat idle with the store open")
        .unwrap();
    t.join().unwrap();
    writeln!(go, "exit").unwrap();
    assert!(child.wait().unwrap().success());
}

/// A process that remembers a value as stored forgets it after a collection removed values:
/// it writes the value again rather than recording a call that names a missing value.
#[test]
fn a_writer_forgets_what_it_knew_about_stored_values_after_a_collection() {
    let d = tempfile::tempdir().unwrap();
    let store = store_with_chain(d.path(), mandala::OpenOptions::default());
    let storage = Storage::open(&store).unwrap();
    // This process stored last()'s outputs; another deletes those calls and collects.
    let other = Storage::open(&store).unwrap();
    other.cf("last").unwrap().delete_calls().unwrap();
    other.fs().unwrap().gc(false, Duration::ZERO).unwrap();
    drop(other);
    // The deleted calls are still in this process's memory (documented), but new calls that
    // produce the same values must store them again.
    #[op]
    fn last_again(x: u64) -> Vec<u64> {
        vec![x, x + 1, x + 2]
    }
    storage
        .run(|| -> mandala::Result<()> {
            for i in 0..N {
                last_again(second(first(i)?)?)?;
            }
            Ok(())
        })
        .unwrap();
    assert!(dangling(&store).is_empty(), "{:#?}", dangling(&store));
}

/// Regression: a hit whose record named a value that is gone failed with "value … is not in
/// the store" on every later run. Now it is computed again, with a warning.
#[test]
fn a_hit_whose_output_value_is_missing_is_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = Storage::open_with(&store, common::format1()).unwrap(); // loose files
    let y = storage.run(|| last(5)).unwrap();
    let cid = y.cid();
    drop(storage);
    let path = store_fs::layout::value_path(&store, &cid);
    std::fs::remove_file(&path).unwrap();
    let problems = dangling(&store);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("which is not in the store"),
        "{problems:?}"
    );

    let storage = Storage::open(&store).unwrap();
    let y = storage.run(|| last(5)).unwrap();
    assert_eq!(storage.unwrap(&y).unwrap(), vec![5, 6, 7]);
    let st = storage.stats().op("last");
    assert_eq!((st.executed, st.hits, st.healed), (1, 0, 1));
    assert!(path.exists(), "the value was written again");
    assert!(dangling(&store).is_empty());

    let again = Storage::open(&store).unwrap();
    again.run(|| last(5)).unwrap();
    assert_eq!(again.stats().op("last").hits, 1);
}

/// A damaged value file: the read that finds it fails (naming the file) and moves it aside;
/// the next run computes the call again; fsck reports the record until then.
#[test]
fn a_damaged_output_value_is_moved_aside_and_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = Storage::open_with(&store, common::format1()).unwrap(); // loose files
    let y = storage.run(|| last(9)).unwrap();
    let cid = y.cid();
    drop(storage);
    let path = store_fs::layout::value_path(&store, &cid);
    // Another value's blob under this name: a sound zstd frame with the wrong content.
    std::fs::write(&path, zstd::encode_all(&[0x01u8][..], 1).unwrap()).unwrap();

    let storage = Storage::open(&store).unwrap();
    let y = storage.run(|| last(9)).unwrap();
    let e = storage.unwrap(&y).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("moved aside"), "{e}");
    assert!(!path.exists());
    let problems = dangling(&store);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    drop(storage);

    let storage = Storage::open(&store).unwrap();
    let y = storage.run(|| last(9)).unwrap();
    assert_eq!(storage.unwrap(&y).unwrap(), vec![9, 10, 11]);
    assert_eq!(storage.stats().op("last").healed, 1);
    let report = storage.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.what.contains("damaged value moved aside")),
        "{:#?}",
        report.warnings
    );
}

/// The same with versioning on: the versioned lookup passes the record over too.
#[test]
fn a_versioned_hit_whose_output_value_is_missing_is_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let versioned = || {
        Storage::open_with(&store, common::format1())
            .unwrap()
            .versioned(mandala::Versioning::tracking(["gc::"]))
            .unwrap()
    };
    let storage = versioned();
    let y = storage.run(|| last(11)).unwrap();
    drop(storage);
    let path = store_fs::layout::value_path(&store, &y.cid());
    std::fs::remove_file(&path).unwrap();

    let storage = versioned();
    let y = storage.run(|| last(11)).unwrap();
    assert_eq!(storage.unwrap(&y).unwrap(), vec![11, 12, 13]);
    let st = storage.stats().op("last");
    assert_eq!((st.executed, st.healed), (1, 1));
    assert!(dangling(&store).is_empty());
    drop(storage);
    let again = versioned();
    again.run(|| last(11)).unwrap();
    assert_eq!(again.stats().op("last").hits, 1);
}
