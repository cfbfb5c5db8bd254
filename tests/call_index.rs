//! The call index `index/calls`: a new process answers whole-store queries from it, and it
//! never hides a change to the store (new calls from another writer, an rsync merge that
//! keeps directory times, a damaged index file).

/// These tests are about format 1's loose files.
fn format1() -> mandala::OpenOptions {
    mandala::OpenOptions {
        format: 1,
        ..Default::default()
    }
}

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use mandala::{op, Storage};

#[op]
fn sq(x: u64) -> u64 {
    x * x
}

fn run(store: &Path, xs: std::ops::Range<u64>) {
    Storage::open_with(store, format1())
        .unwrap()
        .run(|| xs.clone().try_for_each(|x| sq(x).map(|_| ())))
        .unwrap();
}

/// Sets every call shard directory's modification time to `t` (as if long quiet).
fn set_shard_times(store: &Path, t: SystemTime) {
    for e in std::fs::read_dir(store.join("calls")).unwrap() {
        let dir = e.unwrap().path();
        std::fs::File::open(&dir).unwrap().set_modified(t).unwrap();
    }
}

/// `rsync -a FROM/ TO/`: copies files with their times (directories' too).
fn rsync(from: &Path, to: &Path) {
    let status = Command::new("rsync")
        .args([
            "-a",
            &format!("{}/", from.display()),
            &format!("{}/", to.display()),
        ])
        .status()
        .expect("rsync runs");
    assert!(status.success());
}

/// The number of rows of sq's table, read by a fresh handle on the store.
fn rows(store: &Path) -> usize {
    Storage::open_with(store, format1())
        .unwrap()
        .cf("sq")
        .unwrap()
        .df(false)
        .unwrap()
        .len()
}

#[test]
fn the_call_index_serves_new_processes_and_never_hides_changes() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("a.mandala");
    run(&store, 0..50);
    let past = SystemTime::now() - Duration::from_secs(60);
    set_shard_times(&store, past);
    assert_eq!(rows(&store), 50);
    let index = store.join("index/calls");
    let bytes = std::fs::read(&index).expect("a whole-store query writes the index");
    assert!(bytes.starts_with(b"mandala index 3\n"));

    // An index of another version (an older mandala's) is ignored and replaced.
    let mut older = bytes.clone();
    older[..16].copy_from_slice(b"mandala index 2\n");
    std::fs::write(&index, &older).unwrap();
    assert_eq!(rows(&store), 50);
    assert_eq!(std::fs::read(&index).unwrap(), bytes, "rewritten as it was");

    // A damaged index is ignored (and rewritten).
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&index, &bad).unwrap();
    assert_eq!(rows(&store), 50);
    assert_ne!(std::fs::read(&index).unwrap(), bad, "rewritten");

    // Records come from the index: a record file overwritten in place (its directory
    // unchanged) does not stop a table, while fsck, which reads the files, reports it.
    let shard = std::fs::read_dir(store.join("calls"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record = std::fs::read_dir(&shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let original = std::fs::read(&record).unwrap();
    std::fs::write(&record, b"garbage").unwrap();
    std::fs::File::open(&shard)
        .unwrap()
        .set_modified(past)
        .unwrap();
    assert_eq!(rows(&store), 50);
    let report = Storage::open_with(&store, format1())
        .unwrap()
        .verify()
        .unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == record),
        "{:?}",
        report.problems
    );
    std::fs::write(&record, &original).unwrap();

    // Another writer's calls are seen by the next query of an open handle and by new ones.
    let reader = Storage::open_with(&store, format1()).unwrap();
    assert_eq!(reader.cf("sq").unwrap().df(false).unwrap().len(), 50);
    run(&store, 50..60);
    assert_eq!(reader.cf("sq").unwrap().df(false).unwrap().len(), 60);
    assert_eq!(rows(&store), 60);

    // An rsync merge keeps the source's directory times: here the same times on both sides,
    // so only the change time (which rsync cannot set) tells the shards changed.
    let other = d.path().join("b.mandala");
    rsync(&store, &other);
    run(&other, 60..80);
    set_shard_times(&store, past);
    set_shard_times(&other, past);
    assert_eq!(rows(&store), 60, "the index is trusted again");
    // The merge itself: calls and values, as an `rsync -a` of a colleague's store does.
    for dir in ["calls", "values"] {
        rsync(&other.join(dir), &store.join(dir));
    }
    assert_eq!(rows(&store), 80);
    assert!(Storage::open_with(&store, format1())
        .unwrap()
        .verify()
        .unwrap()
        .is_clean());
}

static CUBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[op]
fn cube(x: u64) -> u64 {
    CUBES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    x * x * x
}

#[test]
fn calls_deleted_by_another_handle_are_recomputed_not_served() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let cubes = |s: &Storage| {
        s.run(|| (0..10u64).try_for_each(|x| cube(x).map(|_| ())))
            .unwrap()
    };
    cubes(&Storage::open_with(&store, format1()).unwrap());
    assert_eq!(CUBES.load(std::sync::atomic::Ordering::SeqCst), 10);
    // A reader lists every shard and loads the call index.
    let reader = Storage::open_with(&store, format1()).unwrap();
    assert_eq!(reader.cf("cube").unwrap().df(false).unwrap().len(), 10);
    // Another handle deletes the calls on x < 5.
    let deleter = Storage::open_with(&store, format1()).unwrap();
    let small: Vec<u64> = (0..5).collect();
    let n = deleter
        .cf("cube")
        .unwrap()
        .isin("x", &small)
        .unwrap()
        .delete_calls()
        .unwrap();
    assert_eq!(n, 5);
    // The reader's listings are stale, but a listed record that is gone is a miss.
    cubes(&reader);
    assert_eq!(CUBES.load(std::sync::atomic::Ordering::SeqCst), 15);
    assert_eq!(reader.stats().op("cube").executed, 5);
    assert_eq!(reader.stats().op("cube").hits, 5);
    assert_eq!(reader.cf("cube").unwrap().df(false).unwrap().len(), 10);
    assert!(reader.verify().unwrap().is_clean());
}

/// The byte ranges, in the index file's bytes, of each value entry's copy: (cid, start, len).
fn index_values(bytes: &[u8]) -> Vec<(mandala::Id, usize, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 16;
    for _ in 0..256 {
        at += if bytes[at] == 1 { 41 } else { 1 };
    }
    let n = u64_at(at);
    let records = at + 8;
    at = records + n * 136;
    let m = u64_at(at);
    let values = at + 8;
    let heap = values + m * 40 + 8;
    (0..m)
        .map(|i| {
            let e = values + i * 40;
            let cid = mandala::Id(bytes[e..e + 32].try_into().unwrap());
            (cid, heap + u32_at(e + 32), u32_at(e + 36))
        })
        .collect()
}

/// Regression (issue 9, item 3): the index's copies of small values were served without
/// being checked, so an altered copy (re-sealed with a valid trailer) was printed by programs,
/// `cat` and `calls`. Now each copy served is checked against its cid; a bad one is reported,
/// read from its file instead, and the index is rewritten; fsck reports it meanwhile.
#[test]
fn an_altered_copy_in_the_call_index_is_never_served() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("a.mandala");
    run(&store, 0..20);
    let storage = Storage::open_with(&store, format1()).unwrap();
    let y = storage.run(|| sq(7)).unwrap();
    let cid = y.cid();
    // A whole-store query that reads the values writes them into the index.
    storage
        .cf("sq")
        .unwrap()
        .df(false)
        .unwrap()
        .values()
        .unwrap();
    drop(storage);
    let index = store.join("index/calls");
    let mut bytes = std::fs::read(&index).unwrap();
    let (_, at, len) = index_values(&bytes)
        .into_iter()
        .find(|(c, _, _)| *c == cid)
        .expect("sq(7)'s output is in the index");
    assert_eq!(&bytes[at..at + len], [0x18, 49], "CBOR of 49");
    bytes[at + 1] = 50;
    // Re-sealed: the trailer is the BLAKE3 hash of everything before it.
    let body = bytes.len() - 32;
    let seal = *blake3::hash(&bytes[..body]).as_bytes();
    bytes[body..].copy_from_slice(&seal);
    std::fs::write(&index, &bytes).unwrap();

    let report = Storage::open_with(&store, format1())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert!(
        report.problems[0]
            .what
            .contains(&format!("copy of value {} is damaged", cid.short(12))),
        "{:?}",
        report.problems
    );

    let storage = Storage::open_with(&store, format1()).unwrap();
    let table = storage.cf("sq").unwrap().df(false).unwrap();
    let outputs: Vec<u64> = table
        .column::<u64>("sq")
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert!(
        outputs.contains(&49) && !outputs.contains(&50),
        "{outputs:?}"
    );
    assert_eq!(storage.load_value::<u64>(&cid).unwrap(), 49);
    drop((table, storage));
    // Repaired: the index was rewritten from the files.
    let report = Storage::open_with(&store, format1())
        .unwrap()
        .verify()
        .unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let bytes = std::fs::read(&index).unwrap();
    let (_, at, _) = index_values(&bytes)
        .into_iter()
        .find(|(c, _, _)| *c == cid)
        .unwrap();
    assert_eq!(bytes[at + 1], 49);
}
