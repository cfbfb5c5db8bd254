//! A full disk: the failing call gets an I/O error naming the file, nothing partial is left in
//! the store, and every call stored before it is still a hit.
//!
//! The fault is injected (`store_fs::faults`, the `fault-injection` feature): writes fail with
//! ENOSPC once a budget of bytes is spent, so the test runs everywhere, as any user, without
//! mounting anything. The budget is global to this process: this binary holds only these
//! tests, and they take turns ([`one_at_a_time`]).

use mandala::{op, Error, Storage};

/// 6 000 pseudo-random u64s (about 54 KB of CBOR that zstd cannot shrink).
#[op]
fn noise(seed: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(6_000);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..6_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x);
    }
    out
}

/// A large vector (3.6 MB of CBOR), written as it is encoded.
#[op]
fn large(n: u64) -> Vec<f64> {
    (0..400_000)
        .map(|i| (i as f64 * 0.37 + n as f64).sin())
        .collect()
}

/// The tests share the process's budget of bytes: one runs at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Clears the injected fault even if the test fails.
struct Fault;

impl Drop for Fault {
    fn drop(&mut self) {
        store_fs::faults::clear();
    }
}

#[test]
fn a_full_disk_fails_the_call_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = Storage::open(&store).unwrap();
    let _turn = one_at_a_time();
    let _fault = Fault;
    // Room for some calls: the budget runs out in the middle of a value.
    store_fs::faults::fail_writes_after(1 << 20);
    let mut stored = 0u64;
    let err = loop {
        match storage.run(|| noise(stored)) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(
            stored < 1_000,
            "1 MiB of writes cannot hold 1000 values of 54 KB"
        );
    };
    assert!(stored >= 5, "{stored} calls fit before the disk filled");
    match &err {
        Error::Store(mandala::StoreError::Io { path, cause, .. }) => {
            assert!(path.starts_with(&store), "{err}");
            assert_eq!(cause.kind(), std::io::ErrorKind::StorageFull, "{err}");
        }
        other => panic!("expected an I/O error, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&store.display().to_string()), "{message}");
    // The cause is said once.
    assert_eq!(
        message.matches("No space left on device").count(),
        1,
        "{message}"
    );

    // Later calls fail the same way, and the ones before stay stored.
    assert!(storage.run(|| noise(10_000)).is_err());
    store_fs::faults::clear();

    // Nothing partial is left behind: no temp file, every object verifies.
    let temps = store_fs::write::stray_temp_files(&store.join("tmp")).unwrap();
    assert!(temps.is_empty(), "{temps:?}");
    let fresh = Storage::open(&store).unwrap();
    let report = fresh.verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.calls, stored);
    fresh.allow_new_calls(false);
    for seed in 0..stored {
        let v = fresh.run(|| noise(seed)).unwrap();
        assert_eq!(fresh.unwrap(&v).unwrap().len(), 6_000);
    }
    assert_eq!(fresh.stats().total.hits, stored);

    // With room again, the failed call computes and stores.
    let storage = Storage::open(&store).unwrap();
    storage.run(|| noise(stored)).unwrap();
    assert_eq!(storage.stats().total.executed, 1);
}

#[test]
fn a_full_disk_in_the_middle_of_a_large_vector_leaves_nothing_of_it() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.mandala");
    let storage = Storage::open(&store).unwrap();
    let _turn = one_at_a_time();
    let _fault = Fault;
    storage.run(|| large(0)).unwrap();
    // Room for a third of the next vector: its writer fails part-way.
    store_fs::faults::fail_writes_after(1 << 20);
    let err = storage.run(|| large(1)).unwrap_err();
    match &err {
        Error::Store(mandala::StoreError::Io { path, cause, .. }) => {
            assert!(path.starts_with(store.join("tmp")), "{err}");
            assert_eq!(cause.kind(), std::io::ErrorKind::StorageFull, "{err}");
        }
        other => panic!("expected an I/O error, got {other}"),
    }
    store_fs::faults::clear();
    let temps = store_fs::write::stray_temp_files(&store.join("tmp")).unwrap();
    assert!(temps.is_empty(), "{temps:?}");
    let report = Storage::open(&store).unwrap().verify().unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    // The first call: its input and its output.
    assert_eq!((report.calls, report.values), (1, 2), "{report:?}");

    // With room again, the failed call computes and stores; the first is a hit.
    let storage = Storage::open(&store).unwrap();
    let (a, b) = storage.run(|| Ok((large(0)?, large(1)?))).unwrap();
    assert_eq!(storage.stats().total.executed, 1);
    assert_eq!(storage.unwrap(&a).unwrap().len(), 400_000);
    assert_eq!(storage.unwrap(&b).unwrap()[0], 1f64.sin());
}
