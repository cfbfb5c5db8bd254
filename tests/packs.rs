//! Store format 2 (issue 10): logs, packs, sealing, consolidation and upgrade, exercised by
//! doing them — real processes, real SIGKILL, real rsync and git, a consolidation racing a
//! writer, damaged and torn files.
//!
//! Child processes are this test binary run again on its `#[ignore]`d helper test `child`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

use mandala::{op, Storage};

#[op]
fn inc(x: i64) -> i64 {
    x + 1
}

#[op]
fn square(x: i64) -> i64 {
    x * x
}

/// `inc(i)`, `square(inc(i))` for i in `range`; prints `DONE i` once both returned.
fn job(storage: &Storage, range: std::ops::Range<i64>, report: bool) -> mandala::Result<()> {
    storage.run(|| -> mandala::Result<()> {
        let mut out = std::io::stdout().lock();
        for i in range {
            let y = inc(i)?;
            square(&y)?;
            if report {
                writeln!(out, "DONE {i}").unwrap();
                out.flush().unwrap();
            }
        }
        Ok(())
    })
}

/// The helper: `MANDALA_JOB` is `A B [flush-every N] [wait]`; `wait` keeps the process (and
/// its log) alive after the job until stdin closes.
#[test]
#[ignore = "helper: runs inside child processes started by the other tests"]
fn child() {
    let store = std::env::var("MANDALA_STORE").expect("run by a parent test");
    let words: Vec<String> = std::env::var("MANDALA_JOB")
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let (a, b): (i64, i64) = (words[0].parse().unwrap(), words[1].parse().unwrap());
    let storage = Storage::open(&store).unwrap();
    match words.get(2).map(String::as_str) {
        Some("flush-every") => {
            let n: i64 = words[3].parse().unwrap();
            let mut i = a;
            while i < b {
                job(&storage, i..(i + n).min(b), true).unwrap();
                storage.flush().unwrap();
                i += n;
            }
        }
        _ => job(&storage, a..b, true).unwrap(),
    }
    if words.iter().any(|w| w == "wait") {
        println!("WAITING");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let t = storage.stats().total;
    println!("STATS executed={} hits={}", t.executed, t.hits);
}

fn spawn(store: &Path, job: &str) -> std::process::Child {
    common::helper_process(&[
        ("MANDALA_STORE", store.as_os_str()),
        ("MANDALA_JOB", job.as_ref()),
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap()
}

fn run_child(store: &Path, job: &str) {
    let out = spawn(store, job).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every call of `job(a..b)` is a hit in a new handle: nothing executes.
/// Opens the store at `s` and calls `inc(41)` in it (computed, or a hit).
fn inc_41(s: &Path) -> (Storage, mandala::Ref<i64>) {
    let storage = Storage::open(s).unwrap();
    let y = storage.run(|| inc(41)).unwrap();
    (storage, y)
}

fn assert_all_hits(store: &Path, range: std::ops::Range<i64>) {
    let storage = Storage::open(store).unwrap();
    storage.allow_new_calls(false);
    let n = range.end - range.start;
    job(&storage, range, false).expect("every call is stored");
    let t = storage.stats().total;
    assert_eq!((t.executed, t.hits), (0, 2 * n as u64));
}

/// How many distinct values `job(range)` stores: i, i + 1 and (i + 1)².
fn distinct_values(range: std::ops::Range<i64>) -> u64 {
    let mut v = std::collections::BTreeSet::new();
    for i in range {
        v.extend([i, i + 1, (i + 1) * (i + 1)]);
    }
    v.len() as u64
}

fn assert_clean(store: &Path) -> store_fs::VerifyReport {
    let report = Storage::open(store).unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    report
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn packs(store: &Path) -> Vec<String> {
    files(&store.join("packs"))
}

#[test]
fn a_run_writes_one_log_sealed_into_one_pack() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let storage = Storage::open(&s).unwrap();
    job(&storage, 0..50, false).unwrap();
    // While the program runs: one log, no loose small objects.
    assert_eq!(files(&s.join("logs")).len(), 1);
    assert!(!s.join("calls").exists() && files(&s.join("values")).is_empty());
    // Another process sees the running writer's calls (it reads the log).
    let reader = Storage::open(&s).unwrap();
    reader.allow_new_calls(false);
    job(&reader, 0..50, false).unwrap();
    assert_eq!(reader.stats().total.executed, 0);
    drop(reader);
    drop(storage);
    // Dropped: sealed into one pack (its index and file), the log gone.
    let p = packs(&s);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("pack-") && p[0].ends_with(".idx"), "{p:?}");
    assert_eq!(p[1], p[0].replace(".idx", ".pack"));
    assert!(files(&s.join("logs")).is_empty());
    let st = store_fs::FsBackend::open_existing(&s)
        .unwrap()
        .status()
        .unwrap();
    // 50 × (inc, square) records, and the distinct values they name.
    assert_eq!((st.packed_calls, st.calls.count), (100, 0));
    assert_eq!(st.packed_values, distinct_values(0..50));
    assert_clean(&s);
    assert_all_hits(&s, 0..50);
}

/// The pack's name is the BLAKE3 hash of its index minus the trailing hash, which is that
/// hash; the index records the BLAKE3 of the pack file: both re-derived here with nothing
/// but the blake3 crate, as docs/FORMAT.md says a reader can.
#[test]
fn pack_names_are_hashes_a_reader_can_recompute() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    job(&Storage::open(&s).unwrap(), 0..5, false).unwrap();
    let p = packs(&s);
    let idx = std::fs::read(s.join("packs").join(&p[0])).unwrap();
    let pack = std::fs::read(s.join("packs").join(&p[1])).unwrap();
    let (body, trailer) = idx.split_at(idx.len() - 32);
    assert_eq!(blake3::hash(body).as_bytes(), trailer);
    assert_eq!(p[0], format!("pack-{}.idx", blake3::hash(body).to_hex()));
    assert_eq!(&idx[16..48], blake3::hash(&pack).as_bytes());
    assert_eq!(&pack[..12], b"mandala-pack");
}

/// A writer SIGKILLed at random moments: every call whose `Ref` it had returned (it printed
/// `DONE i` after) survives, and the store checks clean; the next writer seals the dead log.
#[test]
fn a_writer_killed_at_random_moments_loses_no_returned_call() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let mut done: Vec<i64> = Vec::new();
    let mut start = 0;
    for round in 0..6u64 {
        let mut c = spawn(&s, &format!("{start} 1000000"));
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        // A different moment each round: after 1..~400 returned calls, plus a sleep of
        // 0–4 ms so the kill also lands in the middle of a write.
        let want = 1 + (round * 7919 % 400) as usize;
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(i) = line.strip_prefix("DONE ") {
                done.push(i.parse().unwrap());
                seen += 1;
                if seen >= want {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(round * 700));
        c.kill().unwrap();
        c.wait().unwrap();
        // Lines printed before the kill landed are returned calls too.
        for line in lines.map_while(Result::ok) {
            if let Some(i) = line.strip_prefix("DONE ") {
                done.push(i.parse().unwrap());
            }
        }
        start = done.iter().max().unwrap() + 1;
    }
    assert!(
        !files(&s.join("logs")).is_empty(),
        "the last dead writer's log"
    );
    let report = assert_clean(&s);
    assert!(report
        .warnings
        .iter()
        .all(|w| w.what.contains("writer that ended")));
    // A new writer seals them (cutting torn tails off); every returned call is a hit.
    let storage = Storage::open(&s).unwrap();
    job(&storage, 1_000_000..1_000_001, false).unwrap();
    assert!(files(&s.join("logs")).len() <= 1, "sealed: only its own");
    storage.allow_new_calls(false);
    storage
        .run(|| -> mandala::Result<()> {
            for &i in &done {
                square(inc(i)?)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(storage.stats().total.executed, 2, "only the new calls");
    drop(storage);
    let report = assert_clean(&s);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

/// Two writers at once on one store, each reading the other's running log: together they
/// store each call once, and everything is a hit afterwards.
#[test]
fn concurrent_writers_on_a_packed_store() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    Storage::open(&s).unwrap();
    let a = spawn(&s, "0 400");
    let b = spawn(&s, "200 600");
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_clean(&s);
    assert_all_hits(&s, 0..600);
    let storage = Storage::open(&s).unwrap();
    assert_eq!(storage.backend().all_calls().unwrap().len(), 2 * 600);
}

/// A running writer's calls are hits in another process before they are sealed.
#[test]
fn a_running_writers_calls_are_seen_before_they_are_sealed() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let mut w = spawn(&s, "0 30 wait");
    let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap() == "WAITING"));
    assert!(packs(&s).is_empty(), "nothing sealed yet");
    assert_all_hits(&s, 0..30);
    drop(w.stdin.take());
    assert!(w.wait().unwrap().success());
    assert_eq!(packs(&s).len(), 2, "sealed when it ended");
}

/// Two packed stores merged by rsync (twice, in both orders) and by `git merge`, and a packed
/// store merged with a loose (format-1) one: no conflict, every call a hit.
#[test]
fn packed_stores_merge_with_rsync_and_git() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, loose) = (
        d.path().join("a.mandala"),
        d.path().join("b.mandala"),
        d.path().join("l.mandala"),
    );
    run_child(&a, "0 200");
    run_child(&b, "100 300");
    Storage::open_with(&loose, common::format1()).unwrap();
    run_child(&loose, "250 350");
    for (order, name) in [([&a, &b, &loose], "m1"), ([&loose, &b, &a], "m2")] {
        let merged = d.path().join(name);
        for src in order {
            common::rsync_into(src, &merged);
        }
        assert_clean(&merged);
        assert_all_hits(&merged, 0..350);
    }

    // git: two branches each add a pack; the merge has both and no conflict.
    let repo = d.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let s = repo.join("s.mandala");
    common::merge_in_git(
        &repo,
        &s,
        || run_child(&s, "0 150"),
        || run_child(&s, "100 250"),
    );
    assert_eq!(packs(&s).len(), 4, "two packs, each with its index");
    assert_clean(&s);
    assert_all_hits(&s, 0..250);
}

/// A format-1 store stays format 1 when written (loose files, no packs), until `upgrade`
/// packs its small objects and marks it with the newest format.
#[test]
fn a_format_1_store_is_read_and_written_as_format_1_then_upgraded() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    Storage::open_with(&s, common::format1()).unwrap();
    run_child(&s, "0 40"); // a default open of an existing store keeps its format
    assert!(!s.join("packs").exists() && !s.join("logs").exists());
    assert!(!files(&s.join("calls")).is_empty());
    let toml = std::fs::read_to_string(s.join("mandala.toml")).unwrap();
    assert!(toml.contains("format = 1"), "{toml}");
    assert_all_hits(&s, 0..40);

    let backend = store_fs::FsBackend::open_existing(&s).unwrap();
    let report = backend.upgrade().unwrap();
    let values = distinct_values(0..40) as usize;
    assert_eq!((report.calls, report.values), (80, values));
    assert_eq!(report.loose, 80 + values);
    drop(backend);
    let toml = std::fs::read_to_string(s.join("mandala.toml")).unwrap();
    assert!(toml.contains("format = 3"), "{toml}");
    assert_eq!(pack_versions(&s), [2]);
    let st = store_fs::FsBackend::open_existing(&s)
        .unwrap()
        .status()
        .unwrap();
    assert_eq!((st.calls.count, st.values.count), (0, 0), "nothing loose");
    assert_eq!((st.packed_calls, st.packs.count), (80, 1));
    assert_clean(&s);
    assert_all_hits(&s, 0..40);
    run_child(&s, "40 50");
    let calls = s.join("calls");
    assert!(files(&calls)
        .iter()
        .all(|shard| files(&calls.join(shard)).is_empty()));
    assert_all_hits(&s, 0..50);
}

/// The versions of a store's pack indexes (bytes 12..16 of each `.idx`), sorted.
fn pack_versions(store: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = packs(store)
        .iter()
        .filter(|n| n.ends_with(".idx"))
        .map(|n| {
            let b = std::fs::read(store.join("packs").join(n)).unwrap();
            u32::from_le_bytes(b[12..16].try_into().unwrap())
        })
        .collect();
    v.sort();
    v
}

/// A format-2 store stays format 2 (packs of version 1) when this mandala writes it, even
/// with version-2 packs merged in (consolidating writes version 1 again); a format-3 store
/// takes in a format-2 store's packs by a union of files (rsync) and reads both; `upgrade`
/// turns a format-2 store into format 3, its packs into one of version 2.
#[test]
fn format_2_and_format_3_stores_merge_and_format_2_upgrades() {
    let d = tempfile::tempdir().unwrap();
    let (two, three) = (d.path().join("two.mandala"), d.path().join("three.mandala"));
    Storage::open_with(&two, common::format(2)).unwrap();
    run_child(&two, "0 40");
    run_child(&three, "20 60");
    assert_eq!(pack_versions(&two), [1]);
    assert_eq!(pack_versions(&three), [2]);
    let toml = |s: &Path| std::fs::read_to_string(s.join("mandala.toml")).unwrap();
    assert!(toml(&two).contains("format = 2"), "{}", toml(&two));

    // Each merged into a copy of the other: both read every call, and a consolidation
    // writes the version of the store's format.
    for (base, other, version) in [(&two, &three, 1), (&three, &two, 2)] {
        let merged = d.path().join(format!("m{version}"));
        common::rsync_into(base, &merged);
        common::rsync_into(other, &merged);
        // The merged store keeps the base's mandala.toml: rsync copies the other's over it
        // only when the two differ in mtime (they have the same size, "format = 2" and
        // "format = 3"), which made this test depend on whether the two stores were made in
        // the same second. Either is a valid store; this one is the base's format.
        std::fs::copy(base.join("mandala.toml"), merged.join("mandala.toml")).unwrap();
        assert_eq!(pack_versions(&merged), [1, 2]);
        assert_clean(&merged);
        assert_all_hits(&merged, 0..60);
        let fs = store_fs::FsBackend::open_existing(&merged).unwrap();
        let report = fs.pack(false).unwrap();
        assert_eq!((report.packs, report.calls), (2, 120), "{report:?}");
        drop(fs);
        assert_eq!(pack_versions(&merged), [version]);
        assert_clean(&merged);
        assert_all_hits(&merged, 0..60);
    }

    let fs = store_fs::FsBackend::open_existing(&two).unwrap();
    let report = fs.upgrade().unwrap();
    assert_eq!((report.packs, report.calls), (1, 80), "{report:?}");
    assert_eq!(fs.format(), 3);
    drop(fs);
    assert!(toml(&two).contains("format = 3"), "{}", toml(&two));
    assert_eq!(pack_versions(&two), [2]);
    assert_clean(&two);
    assert_all_hits(&two, 0..40);
    run_child(&two, "40 50");
    assert_eq!(pack_versions(&two), [2, 2]);
    assert_all_hits(&two, 0..50);
}

/// `pack` merges many packs into one while a writer keeps writing and sealing: nothing is
/// lost, and what remains checks clean.
#[test]
fn consolidation_beside_a_running_writer_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    run_child(&s, "0 100 flush-every 10");
    assert_eq!(packs(&s).len(), 20, "ten packs");
    let backend = store_fs::FsBackend::open_existing(&s).unwrap();
    let dry = backend.pack(true).unwrap();
    assert_eq!((dry.packs, dry.calls), (10, 200));
    assert_eq!(packs(&s).len(), 20, "a dry run changes nothing");
    let writer = spawn(&s, "100 400 flush-every 7");
    // And a reader, whose handle has the packs open as they are replaced under it: every
    // lookup of the first 100 stays a hit.
    let reader = Storage::open(&s).unwrap();
    reader.allow_new_calls(false);
    let mut rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (out, reads) = std::thread::scope(|sc| {
        let w = sc.spawn(|| writer.wait_with_output().unwrap());
        let r = sc.spawn(|| {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                job(&reader, 0..100, false).expect("a stored call stays a hit");
                // And a new handle, which lists and opens the packs as they are replaced.
                let fresh = Storage::open(&s).unwrap();
                fresh.allow_new_calls(false);
                job(&fresh, 0..100, false).expect("a stored call is a hit in a new handle");
                reads += 1;
            }
            reads
        });
        while !w.is_finished() && Instant::now() < deadline {
            backend.pack(false).unwrap();
            rounds += 1;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = r.join().unwrap();
        (w.join().unwrap(), reads)
    });
    assert!(reads > 1, "the reader read while packs were replaced");
    assert_eq!(reader.stats().total.executed, 0);
    drop(reader);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rounds > 1, "consolidations ran while it wrote");
    backend.pack(false).unwrap();
    assert_eq!(packs(&s).len(), 2, "one pack");
    drop(backend);
    assert_clean(&s);
    assert_all_hits(&s, 0..400);
}

/// More than `AUTO_PACKS` packs are consolidated when a handle flushes.
#[test]
fn many_packs_are_consolidated_automatically() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let storage = Storage::open(&s).unwrap();
    for i in 0..(store_fs::AUTO_PACKS as i64 + 1) {
        job(&storage, i..i + 1, false).unwrap();
        storage.flush().unwrap();
    }
    assert!(
        packs(&s).len() <= 4,
        "consolidated: {} files",
        packs(&s).len()
    );
    drop(storage);
    // A handle that only reads never consolidates, however many packs: a store made of the
    // packs of 40 one-call stores (a union of stores is a store), then read.
    let many = d.path().join("many.mandala");
    Storage::open(&many).unwrap();
    for i in 0..(store_fs::AUTO_PACKS as i64 + 8) {
        let one = d.path().join(format!("one{i}.mandala"));
        job(&Storage::open(&one).unwrap(), i..i + 1, false).unwrap();
        common::copy_dir(&one.join("packs"), &many.join("packs"));
    }
    let before = packs(&many);
    assert!(before.len() > 2 * store_fs::AUTO_PACKS, "{}", before.len());
    let reader = Storage::open(&many).unwrap();
    assert_eq!(
        reader.backend().all_calls().unwrap().len(),
        2 * (store_fs::AUTO_PACKS + 8)
    );
    drop(reader);
    assert_eq!(packs(&many), before, "a reader changed nothing");
    assert_clean(&s);
    assert_all_hits(&s, 0..store_fs::AUTO_PACKS as i64 + 1);
}

/// A damaged entry in a pack: the read that finds it fails naming the pack and the entry's
/// offset; fsck reports it; the next run computes the call again and is served the new copy.
#[test]
fn a_damaged_pack_entry_is_reported_then_computed_again() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let (storage, y) = inc_41(&s);
    drop(storage);
    let pack: PathBuf = s.join("packs").join(&packs(&s)[1]);
    let mut bytes = std::fs::read(&pack).unwrap();
    // The first entry is the smallest value id's; find y's entry by its id and flip the
    // first byte of its content (the value's CBOR, stored as it is: format 3).
    let at = bytes
        .windows(32)
        .position(|w| w == y.cid().0)
        .expect("the value's entry");
    bytes[at + 32 + 4] ^= 0x55;
    std::fs::write(&pack, &bytes).unwrap();

    let report = Storage::open(&s).unwrap().verify().unwrap();
    // The pack's hash, and the entry, each reported with the pack's path.
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    assert!(report.problems.iter().all(|p| p.path == pack));
    assert!(report.problems[0]
        .what
        .contains("does not hash to what its index records"));
    assert!(report.problems[1]
        .what
        .starts_with(&format!("entry at offset {}: ", at - 1)));

    // Inspection (`mandala cat` reads this way) reports it and changes nothing.
    let fs = store_fs::FsBackend::open_existing(&s).unwrap();
    let e = fs.read_value_file(&y.cid()).unwrap_err().to_string();
    assert!(e.contains("inspection changes nothing"), "{e}");
    drop(fs);
    assert_eq!(std::fs::read(&pack).unwrap(), bytes);

    let (storage, y) = inc_41(&s);
    let e = storage.unwrap(&y).unwrap_err().to_string();
    assert!(e.contains(&pack.display().to_string()), "{e}");
    assert!(e.contains(&format!("entry at offset {}", at - 1)), "{e}");
    assert!(e.contains("left out of the store's packs"), "{e}");
    drop(storage);
    // The packs were rewritten without it: the next run computes the call again.
    assert!(!pack.exists());
    let (storage, y) = inc_41(&s);
    assert_eq!(storage.unwrap(&y).unwrap(), 42);
    assert_eq!(storage.stats().op("inc").healed, 1);
    drop(storage);
    let fresh = Storage::open(&s).unwrap();
    let y = fresh.run(|| inc(41)).unwrap();
    assert_eq!(fresh.unwrap(&y).unwrap(), 42);
    assert_eq!(fresh.stats().op("inc").executed, 0);
    drop(fresh);
    let report = assert_clean(&s);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

/// A handle checks each pack entry it serves against its id until it has checked an eighth of
/// the pack; then it checks the pack whole, once (here on a thread of its own: the pack is
/// over a mebibyte), and serves the rest of its entries without hashing each.
#[test]
fn a_pack_checked_whole_serves_its_entries_without_hashing_each() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    job(&Storage::open(&s).unwrap(), 0..4000, false).unwrap();
    let pack = s.join("packs").join(&packs(&s)[1]);
    assert!(std::fs::metadata(&pack).unwrap().len() > 1 << 20);

    let storage = Storage::open(&s).unwrap();
    storage.allow_new_calls(false);
    let trust = |storage: &Storage| {
        let t = storage.fs().unwrap().pack_trust();
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].path, pack);
        t[0].clone()
    };
    // Packs are opened by the first lookup; a few lookups check a few entries.
    job(&storage, 0..10, false).unwrap();
    assert_eq!(trust(&storage).state, store_fs::PackTrustState::Unchecked);
    job(&storage, 10..1000, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while trust(&storage).state != store_fs::PackTrustState::Trusted {
        assert_eq!(trust(&storage).state, store_fs::PackTrustState::Unchecked);
        assert!(
            Instant::now() < deadline,
            "the pack was never checked whole"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = trust(&storage).unchecked_reads;
    let (y, z) = storage
        .run(|| -> mandala::Result<_> {
            job(&storage, 1000..4000, false)?;
            let y = inc(3999)?;
            let z = square(&y)?;
            Ok((y, z))
        })
        .unwrap();
    assert_eq!(storage.unwrap(&z).unwrap(), 4000 * 4000);
    assert_eq!(storage.unwrap(&y).unwrap(), 4000);
    // Every record of the last 3000 calls and the values unwrapped: served unchecked.
    let after = trust(&storage).unchecked_reads;
    assert!(after >= before + 6000, "{before} -> {after}");
    assert_eq!(storage.stats().total.executed, 0);
    drop(storage);
    assert_clean(&s);
}

/// A pack that does not hash to what its index records is never trusted: a handle that
/// checks it whole finds it damaged, keeps checking its entries one by one, and reports the
/// damaged one when it is read.
#[test]
fn a_damaged_pack_is_never_trusted() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let storage = Storage::open(&s).unwrap();
    job(&storage, 0..2000, false).unwrap();
    // square(2000)'s value (the last call's), first met as its entry's id: flip the first
    // byte of its content.
    let z = storage.run(|| square(&inc(1999)?)).unwrap().cid();
    drop(storage);
    let pack = s.join("packs").join(&packs(&s)[1]);
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes
        .windows(32)
        .position(|w| w == z.0)
        .expect("the value's entry");
    bytes[at + 32 + 4] ^= 0x55;
    std::fs::write(&pack, &bytes).unwrap();

    let storage = Storage::open(&s).unwrap();
    storage.allow_new_calls(false);
    job(&storage, 0..2000, false).unwrap();
    let t = storage.fs().unwrap().pack_trust();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].state, store_fs::PackTrustState::Damaged, "{t:?}");
    assert_eq!(t[0].unchecked_reads, 0);
    let z = storage.run(|| square(&inc(1999)?)).unwrap();
    let e = storage.unwrap(&z).unwrap_err().to_string();
    assert!(e.contains(&pack.display().to_string()), "{e}");
    assert!(e.contains(&format!("entry at offset {}", at - 1)), "{e}");
    assert_eq!(storage.stats().total.executed, 0);
}

/// A version-2 index row holds an id's first 8 bytes and an offset: a row pointed at another
/// entry (here, two value rows with their offsets swapped) makes that value read as damaged
/// — reported with the pack and the offset, never served as the other value — and fsck
/// reports the index; the next run computes the call that made it again.
#[test]
fn a_version_2_index_row_pointing_elsewhere_is_damage_never_another_value() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let (storage, y) = inc_41(&s);
    drop(storage);
    let name = packs(&s)[0].clone();
    assert!(name.ends_with(".idx"));
    let idx_path = s.join("packs").join(&name);
    let pack = idx_path.with_extension("pack");
    let mut idx = std::fs::read(&idx_path).unwrap();
    assert_eq!(idx[12..16], 2u32.to_le_bytes());
    let values = u64::from_le_bytes(idx[48..56].try_into().unwrap()) as usize;
    assert_eq!(values, 2, "41 and 42");
    let row = |i: usize| 72 + i * 16;
    let mine = (0..values)
        .find(|&i| idx[row(i)..row(i) + 8] == y.cid().0[..8])
        .expect("42's row");
    let other = 1 - mine;
    let offset = |idx: &[u8], i: usize| idx[row(i) + 8..row(i) + 16].to_vec();
    let (a, b) = (offset(&idx, mine), offset(&idx, other));
    idx[row(mine) + 8..row(mine) + 16].copy_from_slice(&b);
    idx[row(other) + 8..row(other) + 16].copy_from_slice(&a);
    std::fs::write(&idx_path, &idx).unwrap();
    let at = u64::from_le_bytes(b.try_into().unwrap());

    // fsck finds the index damaged (it no longer hashes to its name).
    let report = Storage::open(&s).unwrap().verify().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == idx_path && p.what.contains("trailing hash does not match")),
        "{:#?}",
        report.problems
    );

    let (storage, y) = inc_41(&s);
    let e = storage.unwrap(&y).unwrap_err().to_string();
    assert!(e.contains(&pack.display().to_string()), "{e}");
    assert!(e.contains(&format!("entry at offset {at}")), "{e}");
    assert!(e.contains("does not match the pack's index"), "{e}");
    drop(storage);
    let (storage, y) = inc_41(&s);
    assert_eq!(storage.unwrap(&y).unwrap(), 42);
    assert_eq!(storage.stats().op("inc").healed, 1);
    drop(storage);
    assert_clean(&s);
    let fresh = Storage::open(&s).unwrap();
    let y = fresh.run(|| inc(41)).unwrap();
    assert_eq!(fresh.unwrap(&y).unwrap(), 42);
    assert_eq!(fresh.stats().op("inc").executed, 0);
}

/// Format 3 keeps each git commit once, in a commit entry its records number: damage to it
/// makes every record that names it damaged — reported by fsck, computed again by the next
/// run — never a record with another commit.
#[test]
fn a_damaged_commit_entry_makes_its_records_damaged_never_wrong() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let storage = Storage::open(&s).unwrap();
    job(&storage, 0..10, false).unwrap();
    let commit = storage.backend().all_calls().unwrap()[0]
        .record
        .git
        .clone()
        .expect("the tests run inside a git repository, so records name a commit");
    drop(storage);
    let pack = s.join("packs").join(&packs(&s)[1]);
    let mut bytes = std::fs::read(&pack).unwrap();
    // The commit entry: kind 3, length 40, the commit's text, once in the whole pack.
    let mut entry = vec![3u8, 40, 0, 0, 0];
    entry.extend_from_slice(commit.as_bytes());
    let at = bytes
        .windows(entry.len())
        .position(|w| w == entry)
        .expect("one commit entry");
    assert_eq!(
        bytes
            .windows(commit.len())
            .filter(|w| *w == commit.as_bytes())
            .count(),
        1
    );
    // Another hex digit: still a commit's text, but not this one.
    let digit = &mut bytes[at + 5];
    *digit = if *digit == b'0' { b'1' } else { b'0' };
    std::fs::write(&pack, &bytes).unwrap();

    let report = Storage::open(&s).unwrap().verify().unwrap();
    let damaged: Vec<&str> = report
        .problems
        .iter()
        .map(|p| p.what.as_str())
        .filter(|w| w.contains("content hashes to"))
        .collect();
    assert_eq!(damaged.len(), 20, "{:#?}", report.problems);

    // A damaged record is an error naming where it is, not a recomputation (as in every
    // format); consolidating leaves the damaged records out, and they are computed again.
    let storage = Storage::open(&s).unwrap();
    let e = job(&storage, 0..10, false).unwrap_err().to_string();
    assert!(e.contains(&pack.display().to_string()), "{e}");
    assert!(e.contains("content hashes to"), "{e}");
    assert_eq!(storage.stats().total.executed, 0);
    let consolidated = storage.fs().unwrap().pack(false).unwrap();
    assert_eq!(consolidated.damaged.len(), 20, "{consolidated:?}");
    job(&storage, 0..10, false).unwrap();
    assert_eq!(
        storage.stats().total.executed,
        20,
        "every record was damaged"
    );
    drop(storage);
    assert_clean(&s);
    assert_all_hits(&s, 0..10);
}

/// Deleting calls that live in packs, then collecting the values no call names: both
/// rewrite the packs, and what was deleted is computed again.
#[test]
fn deleting_packed_calls_and_collecting_packed_values() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    job(&Storage::open(&s).unwrap(), 0..10, false).unwrap();
    // A whole-store query first. A store of packs keeps no call index (index/calls): its
    // packs index every record.
    let all = |s: &Path| {
        Storage::open(s)
            .unwrap()
            .backend()
            .all_calls()
            .unwrap()
            .len()
    };
    assert_eq!(all(&s), 20);
    assert!(!s.join("index").join("calls").exists());
    let storage = Storage::open(&s).unwrap();
    let deleted = storage.cf("square").unwrap().delete_calls().unwrap();
    assert_eq!(deleted, 10);
    // Another process's queries do not see them, whatever its index holds.
    assert_eq!(all(&s), 10);
    let fs = storage.fs().unwrap();
    let report = fs.gc(false, Duration::ZERO).unwrap();
    // The squares of 1..=10 that are not also an input or output of inc (1 is inc(0)'s
    // output; 4, 9 are outputs of inc too): 100, 81, …, 16 → 7 values.
    assert_eq!(report.values.len(), 7, "{:?}", report.values);
    let st = fs.status().unwrap();
    assert_eq!((st.packed_calls, st.packed_values), (10, 11));
    drop(storage);
    assert_clean(&s);
    let again = Storage::open(&s).unwrap();
    job(&again, 0..10, false).unwrap();
    assert_eq!(again.stats().op("square").executed, 10);
    assert_eq!(again.stats().op("inc").executed, 0);
}

/// A log whose last entry was torn by a crash (cut mid-entry, its writer gone): readers skip
/// the torn tail, the next writer seals the whole entries and cuts the tail off.
#[test]
fn a_torn_log_tail_is_cut_off_when_sealed() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    let mut w = spawn(&s, "0 20 wait");
    let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap() == "WAITING"));
    let log = s.join("logs").join(&files(&s.join("logs"))[0]);
    let copy = d.path().join("log");
    std::fs::copy(&log, &copy).unwrap();
    w.kill().unwrap();
    w.wait().unwrap();
    // As if the process had died while appending: a copy of its log with a torn tail.
    std::fs::remove_file(&log).unwrap();
    let bytes = std::fs::read(&copy).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();

    let report = Storage::open(&s).unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert!(
        report.warnings[0].what.contains("not a whole entry"),
        "{:#?}",
        report.warnings
    );
    // Readers: the first 19 are whole (the last call's record is torn).
    let reader = Storage::open(&s).unwrap();
    job(&reader, 0..20, false).unwrap();
    assert_eq!(reader.stats().total.executed, 1, "the torn call only");
    drop(reader);
    assert!(files(&s.join("logs")).is_empty(), "sealed by the writer");
    let report = assert_clean(&s);
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
    assert_all_hits(&s, 0..20);
}

/// `Durability::Sync` in format 2: each append is followed by `fdatasync`, sealing fsyncs the
/// pack, its index and both directories; the store is the same as without.
#[test]
fn a_synced_store_writes_the_same_packs() {
    let d = tempfile::tempdir().unwrap();
    let (synced, plain) = (
        d.path().join("sync.mandala"),
        d.path().join("plain.mandala"),
    );
    let options = mandala::OpenOptions {
        durability: mandala::Durability::Sync,
        ..Default::default()
    };
    job(&Storage::open_with(&synced, options).unwrap(), 0..20, false).unwrap();
    job(&Storage::open(&plain).unwrap(), 0..20, false).unwrap();
    assert_eq!(
        packs(&synced),
        packs(&plain),
        "the same content, the same names"
    );
    assert_clean(&synced);
    assert_all_hits(&synced, 0..20);
}

/// fsck counts what it checks, for the CLI's progress line: every pack entry, and every record
/// once more for the checks all records get.
#[test]
fn verify_counts_what_it_checks() {
    let d = tempfile::tempdir().unwrap();
    let storage = mandala::Storage::open(d.path().join("s.mandala")).unwrap();
    storage
        .run(|| (0..5u64).try_for_each(|i| count_me(i).map(|_| ())))
        .unwrap();
    storage.flush().unwrap();
    let checked = std::sync::atomic::AtomicU64::new(0);
    let report = storage.fs().unwrap().verify_counting(&checked).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.calls, 5);
    assert_eq!(
        checked.load(std::sync::atomic::Ordering::Relaxed),
        report.values + 2 * report.calls
    );
}

#[mandala::op]
fn count_me(i: u64) -> u64 {
    i * 7
}

/// Whole-store queries of packed stores: a format-2 store's call index is written by the
/// first query and not rewritten by the next ones, and no query lists a shard directory the
/// store does not have (each query of a fresh handle listed all 256, and then had the index
/// recomputed); a format-3 store keeps no index, and answers the same.
#[test]
fn queries_of_packed_stores_leave_the_call_index_alone() {
    let d = tempfile::tempdir().unwrap();
    let table = |s: &Path| {
        let storage = Storage::open(s).unwrap();
        let listed = || storage.fs().unwrap().shard_listings();
        let mut cf = storage.cf("square").unwrap();
        cf.expand_all().unwrap();
        let mut rows: Vec<String> = cf
            .df(false)
            .unwrap()
            .values()
            .unwrap()
            .rows
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        rows.sort();
        assert_eq!(listed(), 0, "shard directories listed in {}", s.display());
        rows
    };
    let mut answers = Vec::new();
    for format in [2, 3] {
        let s = d.path().join(format!("f{format}.mandala"));
        job(
            &Storage::open_with(&s, common::format(format)).unwrap(),
            0..10,
            false,
        )
        .unwrap();
        let first = table(&s);
        assert_eq!(first.len(), 10);
        let index = s.join("index").join("calls");
        let stamp = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.ino(), m.mtime(), m.mtime_nsec())
            })
        };
        let written = stamp(&index);
        assert_eq!(written.is_some(), format == 2, "format {format}");
        for _ in 0..3 {
            assert_eq!(table(&s), first);
            assert_eq!(
                stamp(&index),
                written,
                "format {format}: the index was rewritten"
            );
        }
        answers.push(first);
    }
    assert_eq!(answers[0], answers[1]);
}

/// A handle remembers where its last lookups found a call and a value (a hit reads what it
/// just looked up); deleting calls or collecting values in the same handle forgets it, so
/// nothing deleted is served from where it was.
#[test]
fn a_handle_serves_nothing_it_deleted_from_where_it_found_it() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("s.mandala");
    job(&Storage::open(&s).unwrap(), 0..5, false).unwrap();
    let storage = Storage::open(&s).unwrap();
    // Hits: the last one leaves square(25)'s record and value remembered.
    job(&storage, 0..5, false).unwrap();
    assert_eq!(storage.stats().total.executed, 0);
    let backend = storage.backend();
    let last: Vec<_> = backend
        .call_names()
        .unwrap()
        .into_iter()
        .filter(|n| {
            let r = backend.get_call(n).unwrap().unwrap();
            &*r.op == "square"
        })
        .collect();
    assert_eq!(last.len(), 5);
    assert_eq!(storage.cf("square").unwrap().delete_calls().unwrap(), 5);
    for name in &last {
        assert!(
            backend.get_call(name).unwrap().is_none(),
            "{name:?} served after deletion"
        );
    }
    job(&storage, 0..5, false).unwrap();
    assert_eq!(storage.stats().op("square").executed, 5);
    assert_eq!(storage.stats().op("inc").executed, 0);
}

/// `op_counts` and `calls_of_op` (what `mandala status`, `ops` and `calls OP` show) read only
/// the op at the start of each packed record, yet agree with reading every call whole: on a
/// store of overlapping packs of both versions, loose records and a running writer's log,
/// each call counted once. A record whose op cannot be read is an error naming its pack.
#[test]
fn calls_are_counted_by_op_without_reading_them() {
    let d = tempfile::tempdir().unwrap();
    let (a, two, loose, s) = (
        d.path().join("a.mandala"),
        d.path().join("two.mandala"),
        d.path().join("l.mandala"),
        d.path().join("s.mandala"),
    );
    run_child(&a, "0 200");
    Storage::open_with(&two, common::format(2)).unwrap();
    run_child(&two, "100 300");
    Storage::open_with(&loose, common::format1()).unwrap();
    run_child(&loose, "250 350");
    for src in [&a, &two, &loose] {
        common::rsync_into(src, &s);
    }
    std::fs::copy(a.join("mandala.toml"), s.join("mandala.toml")).unwrap();
    assert_eq!(pack_versions(&s), [1, 2]);
    let mut w = spawn(&s, "340 360 wait");
    let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap() == "WAITING"));

    let fs = store_fs::FsBackend::open_existing(&s).unwrap();
    let all = mandala::Backend::all_calls(&fs).unwrap();
    let mut want = std::collections::BTreeMap::new();
    for c in &all {
        *want.entry(c.record.op.to_string()).or_insert(0) += 1;
    }
    let counts = fs.op_counts().unwrap();
    assert_eq!(counts, want);
    assert_eq!(counts.get("inc"), Some(&360), "{counts:?}");
    for op in ["inc", "square"] {
        let mine: Vec<_> = all
            .iter()
            .filter(|c| &*c.record.op == op)
            .cloned()
            .collect();
        assert_eq!(fs.calls_of_op(op).unwrap(), mine, "{op}");
    }
    assert!(fs.calls_of_op("no_such_op").unwrap().is_empty());
    drop(fs);
    // The library's `calls_of`: found so in a fresh process, from the provenance index once
    // a query has made it; the same calls either way.
    let storage = Storage::open(&s).unwrap();
    let mine: Vec<_> = all
        .iter()
        .filter(|c| &*c.record.op == "inc")
        .cloned()
        .collect();
    assert_eq!(storage.calls_of("inc").unwrap(), mine);
    assert_eq!(storage.provenance().unwrap().len(), all.len());
    assert_eq!(storage.calls_of("inc").unwrap(), mine);
    drop(storage);
    drop(w.stdin.take());
    assert!(w.wait().unwrap().success());

    // The op of one of a's records (a version-2 pack: compact records stored as they are,
    // an array whose first item is the op) made a byte string: an error naming the pack.
    let pack: PathBuf = a
        .join("packs")
        .join(packs(&a).iter().find(|n| n.ends_with(".pack")).unwrap());
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| (0x84..=0x86).contains(&w[0]) && w[1..] == [0x63, b'i', b'n', b'c'])
        .expect("a compact record of inc");
    bytes[at + 1] = 0x43;
    std::fs::write(&pack, &bytes).unwrap();
    let fs = store_fs::FsBackend::open_existing(&a).unwrap();
    for e in [
        fs.op_counts().unwrap_err().to_string(),
        fs.calls_of_op("square").unwrap_err().to_string(),
    ] {
        assert!(e.contains(&pack.display().to_string()), "{e}");
        assert!(e.contains("not a call record"), "{e}");
    }
}
