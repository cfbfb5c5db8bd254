//! A full disk: the failing call gets an I/O error naming the file, nothing partial is left in
//! the store, and every call stored before it is still a hit. Runs on a small tmpfs mounted for
//! the test (Linux, as root, as CI runs); where mounting is not permitted it says so and passes.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

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

struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_call_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("full-disk test not run: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Mount(&mnt);
    let store = mnt.join("s.mandala");
    let storage = Storage::open(&store).unwrap();
    let mut stored = 0u64;
    let err = loop {
        match storage.run(|| noise(stored)) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(
            stored < 1_000,
            "a 1 MiB file system cannot hold 1000 values of 54 KB"
        );
    };
    assert!(stored >= 5, "{stored} calls fit before the disk filled");
    match &err {
        Error::Io { path, source, .. } => {
            assert!(path.starts_with(&store), "{err}");
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {err}");
        }
        other => panic!("expected an I/O error, got {other}"),
    }
    // Nothing partial is left behind: no temp file, every object verifies.
    assert_eq!(std::fs::read_dir(store.join("tmp")).unwrap().count(), 0);
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
}
