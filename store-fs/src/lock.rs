//! The collection lock (`tmp/gc.lock`): writers and `gc` never overlap.
//!
//! A writer holds the lock *shared* from its first "is this value stored?" to the moment the
//! record naming the value is renamed into place (one call's writes); `gc` holds it
//! *exclusively* from listing the records to removing the last value. So every record that
//! names a value is either seen by `gc` (and the value kept), or written after `gc` finished
//! by a writer that checked the value's presence after `gc` removed it (and wrote it again).
//!
//! The file also holds the *collection epoch*: 8 bytes, little-endian, increased by every `gc`
//! that removed something. A writer that remembers which values are stored (the engine does,
//! to skip a stat per value) forgets them when the epoch it reads under the lock has changed.
//!
//! # Guarantees
//! - Locks are the operating system's (`flock` on Unix, `LockFileEx` on Windows through
//!   `std::fs::File::lock`): a killed process releases them, so there are no stale locks.
//! - Within one process, threads share one shared hold (counted), so a writer thread never
//!   releases another's.
//!
//! # Limitations
//! - Processes of a mandala that predates this lock do not take it; `gc`'s grace period
//!   (default one hour) still protects their writes.
//! - On network file systems the lock is only as good as the server's `flock` support.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use store_core::{Error, Result};

/// The lock file's name under `tmp/`.
pub const LOCK_FILE: &str = "gc.lock";

/// This process's shared hold of one store's lock.
#[derive(Default)]
pub(crate) struct SharedLock {
    state: Mutex<SharedState>,
}

#[derive(Default)]
struct SharedState {
    file: Option<File>,
    holders: usize,
    epoch: u64,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("open the collection lock", path, e))
}

fn read_epoch(file: &File, path: &Path) -> Result<u64> {
    // One positioned read: this runs for every call a writer stores.
    let mut buf = [0u8; 8];
    let mut n = 0;
    while n < 8 {
        match crate::open::read_at(file, &mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io("read the collection epoch from", path, e)),
        }
    }
    Ok(if n == 8 { u64::from_le_bytes(buf) } else { 0 })
}

impl SharedLock {
    /// Takes (or joins) this process's shared hold; returns the collection epoch. Waits while
    /// a `gc` holds the lock.
    pub(crate) fn acquire(&self, path: &Path) -> Result<u64> {
        let mut st = self.state.lock().unwrap();
        if st.holders == 0 {
            if st.file.is_none() {
                st.file = Some(open(path)?);
            }
            let file = st.file.as_ref().expect("opened");
            file.lock_shared()
                .map_err(|e| Error::io("take the collection lock (shared)", path, e))?;
            match read_epoch(file, path) {
                Ok(epoch) => st.epoch = epoch,
                Err(e) => {
                    let _ = file.unlock();
                    return Err(e);
                }
            }
        }
        st.holders += 1;
        Ok(st.epoch)
    }

    /// Whether a thread of this process holds the lock shared now.
    pub(crate) fn held(&self) -> bool {
        self.state.lock().unwrap().holders > 0
    }

    /// Leaves the shared hold; the last holder unlocks the file.
    pub(crate) fn release(&self) {
        let mut st = self.state.lock().unwrap();
        st.holders -= 1;
        if st.holders == 0 {
            if let Some(f) = &st.file {
                let _ = f.unlock();
            }
        }
    }
}

/// `gc`'s exclusive hold of the lock: released when dropped.
pub(crate) struct ExclusiveLock {
    file: File,
    path: PathBuf,
}

impl ExclusiveLock {
    /// Waits until no writer holds the lock, then holds it exclusively.
    pub(crate) fn acquire(path: &Path) -> Result<ExclusiveLock> {
        let file = open(path)?;
        file.lock()
            .map_err(|e| Error::io("take the collection lock (exclusive)", path, e))?;
        Ok(ExclusiveLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Holds the lock exclusively if no one holds it now; `None` if someone does.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<ExclusiveLock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ExclusiveLock {
                file,
                path: path.to_path_buf(),
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io("take the collection lock (exclusive)", path, e))
            }
        }
    }

    /// Increases the collection epoch (before removing values).
    pub(crate) fn bump_epoch(&self) -> Result<()> {
        let next = read_epoch(&self.file, &self.path)?.wrapping_add(1);
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&next.to_le_bytes()))
            .map_err(|e| Error::io("write the collection epoch to", &self.path, e))
    }
}

impl Drop for ExclusiveLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
