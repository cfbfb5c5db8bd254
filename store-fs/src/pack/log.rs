//! Logs (`logs/<pid>-<random>.log`): where a handle of a format-2 or format-3 store appends
//! the objects of each call with one `write()`, and how a log becomes a pack (sealing),
//! including the log of a writer that died. A log has the version of the packs its store
//! writes (format 3: version 2, whose records number their commit in the log's own commit
//! entries).
//!
//! # Guarantees
//! - A log is created complete with its header in `tmp/`, locked (exclusive `flock`, held
//!   while its handle lives), then renamed into `logs/`: no one ever sees a log that is not
//!   locked by a living writer, except the log of a dead one.
//! - Each call's objects (its new values, then its record) are appended with one `write()`;
//!   a failed append is cut off again, so a log is always whole entries, except for the torn
//!   tail a killed process may leave, which readers skip and sealing cuts off.
//! - Sealing writes the index into `packs/` first, then renames the log itself to its pack
//!   name: a pack is visible (both files present) only once complete, and until that rename
//!   the log is still in `logs/`, so no moment loses an entry.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::sync::Arc;

use store_core::{CallName, CallRecord, Error, Id, Result};

use super::format::{self, Enc, EntryId, Located};
use super::{LogView, NewEntry, Pack, Packs};
use crate::open::read_exact_at;
use crate::{layout, write, Durability, FsBackend};

/// A log is sealed into a pack once it holds this many bytes…
pub(crate) const SEAL_BYTES: u64 = 16 << 20;
/// …or this many call records.
pub(crate) const SEAL_CALLS: usize = 20_000;

/// This handle's log.
pub(crate) struct OwnLog {
    pub(crate) view: LogView,
    /// Entries added but not yet written (they are in `view` already, at offsets from
    /// `written` on): written with the next call record, in the same `write()`.
    pending: Vec<u8>,
    /// Bytes in the file.
    written: u64,
}

impl OwnLog {
    /// Drops the entries that were never written (after a failed append).
    fn drop_pending(&mut self) {
        let written = self.written;
        self.pending.clear();
        self.view.truncate(written);
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// An object to append to a log.
pub(crate) enum Append<'a> {
    /// A value (its canonical CBOR), with its entry content if the caller made it already for
    /// a log of the version given (outside the lock: compressing a value takes a while).
    Value {
        cid: Id,
        cbor: &'a [u8],
        made: Option<(u32, Enc, Vec<u8>)>,
    },
    /// A call record (its canonical CBOR).
    Call {
        name: CallName,
        record: &'a CallRecord,
        cbor: &'a [u8],
    },
}

impl FsBackend {
    /// The pack version this handle writes: 2 in a format-3 store, else 1.
    pub(crate) fn pack_version(&self) -> u32 {
        if self.format() >= 3 {
            format::V2
        } else {
            format::V1
        }
    }

    /// Adds an object to this handle's log: written now if `commit`, else with the next
    /// commit (see [`FsBackend::commit_log`]).
    pub(crate) fn log_append(&self, object: Append<'_>, commit: bool) -> Result<()> {
        let mut packs = self.packs();
        if packs.own.is_none() {
            let own = self.open_own_log(&mut packs)?;
            packs.own = Some(own);
        }
        let own = packs.own.as_mut().expect("opened above");
        let version = own.view.version;
        let level = self.inner.config.zstd_level;
        let mut new: Vec<NewEntry> = Vec::with_capacity(2);
        let (id, cbor, record) = match object {
            Append::Value {
                cid,
                made: Some((v, enc, content)),
                ..
            } if v == version => {
                new.push((EntryId::Value(cid), enc, content));
                (EntryId::Value(cid), &[][..], None)
            }
            Append::Value { cid, cbor, .. } => (EntryId::Value(cid), cbor, None),
            Append::Call { name, record, cbor } => (EntryId::Call(name), cbor, Some(record)),
        };
        if new.is_empty() {
            // Numbering a commit changes the log's table: kept as it was if encoding fails.
            let commits = own.view.commits.clone();
            let table = Arc::make_mut(&mut own.view.commits);
            let made = super::encode_object(version, level, id, cbor, record, table, &mut new);
            if let Err(e) = made {
                own.view.commits = commits;
                return Err(e);
            }
        }
        for (id, enc, content) in new {
            let offset = own.written + own.pending.len() as u64;
            // A commit is in the log's table already (numbered by the encoding).
            let e = format::encode_entry(&id, enc, &content, offset, &mut own.pending);
            own.view.add(e);
        }
        if commit {
            self.commit_log(&mut packs)?;
        }
        Ok(())
    }

    /// Writes the pending entries of this handle's log with one `write()`; seals the log if
    /// it reached the threshold. A failed write is cut off the file again and its entries
    /// forgotten (writers then re-check what is stored: see `FsBackend::begin_writes`).
    pub(crate) fn commit_log(&self, packs: &mut Packs) -> Result<()> {
        let Some(own) = packs.own.as_mut() else {
            return Ok(());
        };
        if own.pending.is_empty() {
            return Ok(());
        }
        let path = own.view.path.clone();
        let written = append(&own.view.file, &own.pending).and_then(|()| {
            if self.inner.durability == Durability::Sync {
                own.view.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.inner
                .lost_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let cut = own.view.file.set_len(own.written);
            own.drop_pending();
            if cut.is_err() {
                // The file ends in a torn entry we cannot cut: leave it (readers and sealing
                // skip a torn tail) and start a new log with the next write.
                packs.own = None;
            }
            return Err(Error::io("append to", path, e));
        }
        own.written += own.pending.len() as u64;
        own.pending.clear();
        own.view.read_to = own.written;
        if own.written >= SEAL_BYTES || own.view.counts().1 >= SEAL_CALLS {
            // The calls are safe in the log: a seal that fails is tried again later.
            if let Err(e) = self.seal_own(packs) {
                eprintln!("mandala: warning: sealing a log into a pack failed: {e} (the log is kept and sealed later)");
            }
        }
        Ok(())
    }

    /// Seals this handle's log into a pack (writing what is pending first); the next write
    /// starts a new log.
    pub(crate) fn seal_own(&self, packs: &mut Packs) -> Result<()> {
        self.commit_log(packs)?;
        let Some(own) = packs.own.take() else {
            return Ok(());
        };
        if own.view.entries.is_empty() {
            let _ = fs::remove_file(&own.view.path);
            return Ok(());
        }
        // The pack's hash, of the file as written: hashed whole at sealing (many blocks at
        // once with SIMD), not a few hundred bytes at a time as each call is appended.
        let hash = match super::hash_file(&own.view.file, own.written) {
            Ok(hash) => hash,
            Err(e) => {
                let path = own.view.path.clone();
                packs.own = Some(own);
                return Err(Error::io("read", path, e));
            }
        };
        match self.seal_file(&own.view, hash.as_bytes()) {
            Ok(pack) => {
                let _ = own.view.file.unlock();
                add_pack(packs, pack);
                packs.sealed = true;
                Ok(())
            }
            Err(e) => {
                packs.own = Some(own);
                Err(e)
            }
        }
    }

    /// Makes the log `log` (whole entries, hashing to `hash`) a pack: its index written into
    /// `packs/`, then the log renamed beside it.
    fn seal_file(&self, log: &LogView, hash: &[u8; 32]) -> Result<Pack> {
        let (idx, id) = format::encode_idx(log.version, hash, &log.entries);
        let root = &self.inner.root;
        let durability = self.inner.durability;
        if durability == Durability::Sync {
            log.file
                .sync_all()
                .map_err(|e| Error::io("fsync", &log.path, e))?;
        }
        let idx_path = layout::pack_path(root, &id, "idx");
        if !crate::open::is_regular(&idx_path) {
            write::write_with(&self.inner.tmp, &idx_path, durability, |f, tmp| {
                f.write_all(&idx).map_err(|e| Error::io("write", tmp, e))
            })?;
        }
        let pack_path = layout::pack_path(root, &id, "pack");
        fs::rename(&log.path, &pack_path)
            .map_err(|e| Error::io("rename into place", &pack_path, e))?;
        if durability == Durability::Sync {
            for dir in [root.join(layout::PACKS), root.join(layout::LOGS)] {
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io("fsync directory", &dir, e))?;
            }
        }
        let size = log.file.metadata().map(|m| m.len()).unwrap_or(0);
        let idx = format::Idx::parse(idx, &id).map_err(|r| Error::corrupt(&idx_path, r))?;
        Ok(Pack::new(id, pack_path, log.file.clone(), idx, size))
    }

    /// A new log for this handle: created with its header in `tmp/`, locked, renamed into
    /// `logs/`. The logs of dead writers are sealed first.
    fn open_own_log(&self, packs: &mut Packs) -> Result<OwnLog> {
        if let Err(e) = self.recover_dead_logs(packs) {
            eprintln!("mandala: warning: sealing the log of a dead writer failed: {e}");
        }
        let name = format!("{}.log", write::unique_name());
        let tmp = self.inner.tmp.join(&name);
        let file = File::options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let version = self.pack_version();
        let made = file
            .lock()
            .map_err(|e| Error::io("lock", &tmp, e))
            .and_then(|()| {
                append(&file, &format::header(version)).map_err(|e| Error::io("write", &tmp, e))
            });
        let dir = self.inner.root.join(layout::LOGS);
        let path = dir.join(&name);
        let made = made.and_then(|()| match fs::rename(&tmp, &path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
                fs::rename(&tmp, &path).map_err(|e| Error::io("rename into place", &path, e))
            }
            r => r.map_err(|e| Error::io("rename into place", &path, e)),
        });
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(OwnLog {
            view: LogView::new(name, path, Arc::new(file)).with_version(version),
            pending: Vec::new(),
            written: format::HEADER_LEN,
        })
    }

    /// Seals the logs of writers that are gone (their lock is free): each log's whole,
    /// verified entries become a pack, a torn tail is cut off, an empty log is removed.
    /// Returns how many logs were sealed.
    pub(crate) fn recover_dead_logs(&self, packs: &mut Packs) -> Result<usize> {
        let dir = self.inner.root.join(layout::LOGS);
        let own = packs.own.as_ref().map(|o| o.view.name.clone());
        let mut sealed = 0;
        for name in FsBackend::list_dir(&dir)? {
            if !name.ends_with(".log") || Some(&name) == own.as_ref() {
                continue;
            }
            let path = dir.join(&name);
            let file = match File::options().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open", &path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => continue, // its writer is alive
                Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            if !same_file(&file, &path) || !file.metadata().is_ok_and(|m| m.is_file()) {
                continue; // sealed by another process meanwhile (or not a file at all)
            }
            let Some(whole) = whole_entries(&file, &path)? else {
                continue; // not a log: fsck reports it
            };
            let bytes = whole.bytes;
            let valid = bytes.len() as u64;
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat", &path, e))?
                .len();
            if valid < len {
                file.set_len(valid)
                    .map_err(|e| Error::io("cut the torn tail of", &path, e))?;
            }
            if whole.entries.is_empty() {
                fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
                continue;
            }
            let hash = blake3::hash(&bytes);
            let mut view = LogView::new(name, path, Arc::new(file)).with_version(whole.version);
            view.commits = Arc::new(whole.commits);
            for e in whole.entries {
                view.add(e);
            }
            let pack = self.seal_file(&view, hash.as_bytes())?;
            add_pack(packs, pack);
            packs.logs.retain(|l| l.name != view.name);
            sealed += 1;
        }
        Ok(sealed)
    }
}

/// The whole entries at the start of a log whose content checks, with what they make.
pub(crate) struct WholeEntries {
    pub(crate) version: u32,
    pub(crate) entries: Vec<Located>,
    /// The commits its records number.
    pub(crate) commits: store_core::format::record::CommitTable,
    /// The bytes the entries fill (from the start of the file).
    pub(crate) bytes: Vec<u8>,
}

/// The whole entries at the start of a log whose content checks (each decompresses, expands
/// and hashes to its id); `None` if the file is not a log.
pub(crate) fn whole_entries(file: &File, path: &std::path::Path) -> Result<Option<WholeEntries>> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    let mut bytes = vec![0u8; len as usize];
    read_exact_at(file, &mut bytes, 0).map_err(|e| Error::io("read", path, e))?;
    let Some(version) = format::header_version(&bytes) else {
        return Ok(None);
    };
    let mut at = format::HEADER_LEN;
    let mut entries = Vec::new();
    let mut commits = store_core::format::record::CommitTable::default();
    while let Ok(Some(e)) = format::parse_entry(&bytes, 0, at, version) {
        let stored = &bytes[e.frame_at() as usize..e.end() as usize];
        if e.id == EntryId::Commit {
            match super::commit_text(&e, stored, path) {
                Ok(text) => commits.push(text),
                Err(_) => break,
            }
        } else if super::entry_content(&e, stored, Some(&commits), path, true).is_err() {
            break;
        }
        entries.push(e);
        at = e.end();
    }
    bytes.truncate(at as usize);
    Ok(Some(WholeEntries {
        version,
        entries,
        commits,
        bytes,
    }))
}

fn add_pack(packs: &mut Packs, pack: Pack) {
    packs.add_pack(Arc::new(pack));
}

/// Appends `bytes` to `file` (opened for appending) with one `write()` (and more only if the
/// system writes part of it). With the `fault-injection` feature, the full-disk budget applies.
fn append(mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(feature = "fault-injection")]
    {
        let allowed = crate::faults::take(bytes)?;
        file.write_all(allowed)?;
        if allowed.len() < bytes.len() {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
    #[cfg(not(feature = "fault-injection"))]
    file.write_all(bytes)
}

/// Whether `path` still names the file `file` is open on.
fn same_file(file: &File, path: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        fs::metadata(path).is_ok() && file.metadata().is_ok()
    }
}
