//! Atomic, write-once file creation: write a temp file in `tmp/`, then rename it into place.
//!
//! # Guarantees
//! - A file appears in the store complete or not at all, whatever happens to the writing
//!   process; a killed writer leaves at most a stray file in `tmp/`.
//! - An existing file is never rewritten: names are hashes (or deterministic keys), so an
//!   existing file already has the right content.
//! - With [`Durability::Sync`], the data is on disk (file fsync before the rename, directory
//!   fsync after) when the write returns.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use store_core::{Error, Result};

/// How hard a write tries to survive a crash of the machine (a killed process never loses a
/// completed write, whatever the setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Rename without fsync: safe against process crashes; after a power failure the newest
    /// files may be missing or empty, which `fsck` reports and reads treat as corrupt objects.
    #[default]
    Flush,
    /// fsync each file before its rename and its directory after: safe against power loss, at
    /// the cost of a disk flush per file.
    Sync,
}

/// Names in `tmp/` that start with this are damaged objects a reader moved aside.
pub const DAMAGED_PREFIX: &str = "damaged-value-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other write of any process uses: `<pid>-<counter>-<12 hex>`.
pub(crate) fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&nanos.to_le_bytes());
    h.update(&n.to_le_bytes());
    let tag = h.finalize().to_hex();
    format!("{}-{}-{}", std::process::id(), n, &tag[..12])
}

/// Writes `bytes` to `dest` atomically via `tmp_dir`, unless `dest` exists. Returns whether
/// this call created the file.
pub fn write_once(
    tmp_dir: &Path,
    dest: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<bool> {
    if dest.exists() {
        return Ok(false);
    }
    write_with(tmp_dir, dest, durability, |f, tmp| {
        f.write_all(bytes).map_err(|e| Error::io("write", tmp, e))
    })
    .map(|_| true)
}

/// Creates `dest` atomically with the content `fill` writes into a temp file in `tmp_dir`.
/// The caller has checked that `dest` does not exist (if it appears meanwhile, it is
/// replaced by a file of the same content, as names are hashes).
pub fn write_with(
    tmp_dir: &Path,
    dest: &Path,
    durability: Durability,
    fill: impl FnOnce(&mut Sink<'_>, &Path) -> Result<()>,
) -> Result<()> {
    write_observed(tmp_dir, dest, durability, fill, || ())
}

/// [`write_with`], running `observe` right before the rename (once the temp file is
/// complete) and returning what it returns: the call store stats the destination's directory
/// there, as close to its own change as it can be.
pub fn write_observed<T>(
    tmp_dir: &Path,
    dest: &Path,
    durability: Durability,
    fill: impl FnOnce(&mut Sink<'_>, &Path) -> Result<()>,
    observe: impl FnOnce() -> T,
) -> Result<T> {
    let tmp = tmp_dir.join(unique_name());
    let result = write_temp(&tmp, fill, durability).and_then(|_| {
        let seen = observe();
        rename_into(&tmp, dest, durability).map(|_| seen)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Where a write's content goes: the temp file (and, with the `fault-injection` feature, the
/// budget of bytes after which writes fail as on a full disk; see `store_fs::faults`).
pub struct Sink<'a> {
    file: &'a mut File,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "fault-injection")]
        let buf = crate::faults::take(buf)?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file written through the fault-injection budget (see [`Sink`]), owning the file.
pub(crate) struct FaultySink {
    file: File,
}

impl FaultySink {
    pub(crate) fn new(file: File) -> FaultySink {
        FaultySink { file }
    }

    pub(crate) fn into_inner(self) -> File {
        self.file
    }
}

impl Write for FaultySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Sink {
            file: &mut self.file,
        }
        .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn write_temp(
    tmp: &Path,
    fill: impl FnOnce(&mut Sink<'_>, &Path) -> Result<()>,
    durability: Durability,
) -> Result<()> {
    let mut f = File::create_new(tmp).map_err(|e| Error::io("create temp file", tmp, e))?;
    fill(&mut Sink { file: &mut f }, tmp)?;
    if durability == Durability::Sync {
        f.sync_all().map_err(|e| Error::io("fsync", tmp, e))?;
    }
    Ok(())
}

pub(crate) fn rename_into(tmp: &Path, dest: &Path, durability: Durability) -> Result<()> {
    let parent = dest.parent().expect("objects live in directories");
    match fs::rename(tmp, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
            fs::rename(tmp, dest).map_err(|e| Error::io("rename into place", dest, e))?;
        }
        Err(e) => return Err(Error::io("rename into place", dest, e)),
    }
    if durability == Durability::Sync {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The temp files left in `tmp_dir` (by killed writers, or by writers at work right now),
/// and damaged values moved aside there; not the collection lock (`tmp/gc.lock`).
pub fn stray_temp_files(tmp_dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(tmp_dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                let e = e.map_err(|e| Error::io("list", tmp_dir, e))?;
                if e.file_name() != crate::lock::LOCK_FILE {
                    v.push(e.path());
                }
            }
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("list", tmp_dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_creates_parents() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = d.path().join("values/ab/cd");
        assert!(write_once(&tmp, &dest, b"one", Durability::Flush).unwrap());
        assert!(!write_once(&tmp, &dest, b"two", Durability::Sync).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        assert!(stray_temp_files(&tmp).unwrap().is_empty());
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        // The destination's parent is a file: the rename must fail.
        fs::write(d.path().join("blocker"), b"").unwrap();
        let dest = d.path().join("blocker/x");
        let e = write_once(&tmp, &dest, b"x", Durability::Flush).unwrap_err();
        assert!(e.to_string().contains("blocker"), "{e}");
        assert!(stray_temp_files(&tmp).unwrap().is_empty());
    }
}
