//! Injected faults, for tests (cargo feature `fault-injection`, off by default): writes into
//! the store fail as on a full disk once a budget of bytes is spent, the way redb's crash
//! tests inject I/O errors through their storage backend.
//!
//! ```
//! store_fs::faults::fail_writes_after(1024); // the next 1 KiB is written, then ENOSPC
//! store_fs::faults::clear();
//! ```
//!
//! The budget is global to the process (every store, every thread): tests that use it run in
//! a test binary of their own.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// `u64::MAX`: no fault.
static BUDGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// From now on, writes of blobs and files into stores fail with "no space left on device"
/// once `bytes` more bytes have been written (a write that crosses the budget writes what
/// fits, as a file system does, and the next one fails).
pub fn fail_writes_after(bytes: u64) {
    BUDGET.store(bytes, Ordering::SeqCst);
}

/// Writes no longer fail.
pub fn clear() {
    BUDGET.store(u64::MAX, Ordering::SeqCst);
}

/// The part of `buf` the budget allows, or the full-disk error if it is spent.
pub(crate) fn take(buf: &[u8]) -> io::Result<&[u8]> {
    let want = buf.len() as u64;
    let mut left = BUDGET.load(Ordering::SeqCst);
    loop {
        if left == u64::MAX {
            return Ok(buf);
        }
        if left == 0 && want > 0 {
            return Err(full());
        }
        let n = want.min(left);
        match BUDGET.compare_exchange(left, left - n, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Ok(&buf[..n as usize]),
            Err(now) => left = now,
        }
    }
}

fn full() -> io::Error {
    #[cfg(unix)]
    {
        io::Error::from_raw_os_error(28) // ENOSPC
    }
    #[cfg(not(unix))]
    {
        io::Error::from(io::ErrorKind::StorageFull)
    }
}
