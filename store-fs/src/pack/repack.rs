//! Consolidation: merging packs (and, in format 2, loose small objects) into one pack, and
//! removing what it superseded — `mandala pack`, the automatic threshold, `gc` of packed
//! values, deleting packed calls, and `mandala upgrade`.
//!
//! # Guarantees
//! - It runs under the collection lock held exclusively (see the `lock` module): no writer
//!   is between checking that a value is stored and writing the record that names it.
//! - The new pack is complete and visible before anything it supersedes is removed, so a
//!   consolidation killed at any moment loses nothing (at worst objects are in two packs,
//!   which is harmless, and the next consolidation merges them).
//! - Readers that have a superseded pack open keep reading it (its file stays readable while
//!   open); readers that listed it and find it gone look at `packs/` again.
//! - Every entry is verified as it is copied: a damaged one is left out and reported, never
//!   propagated.
//! - The new pack's entries are sorted (values by id, then calls by name), so two stores that
//!   consolidate the same objects make the same pack, under the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use store_core::{CallName, Error, Id, Result};

use super::format::{self, Enc, EntryId, Located};
use super::{entry_content, read_stored, Found, NewEntry, Pack, PACK_VALUE_MAX};
use crate::lock::ExclusiveLock;
use crate::{blob, layout, write, FsBackend};

/// Above this many packs, sealing a log (on `flush()` and when the last handle is dropped)
/// consolidates them, as `git gc --auto` does.
pub const AUTO_PACKS: usize = 32;

/// What a consolidation did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackReport {
    /// Packs merged (and removed, unless a dry run).
    pub packs: usize,
    /// Loose small objects packed (and removed).
    pub loose: usize,
    /// Logs of dead writers sealed first.
    pub logs: usize,
    /// Values in the new pack.
    pub values: usize,
    /// Call records in the new pack.
    pub calls: usize,
    /// Bytes of the packs and loose files it replaces.
    pub bytes_before: u64,
    /// Bytes of the new pack and its index.
    pub bytes_after: u64,
    /// Values left out (collected by `gc`).
    pub dropped_values: usize,
    /// Call records left out (deleted).
    pub dropped_calls: usize,
    /// Damaged entries left out, each with where it was and why.
    pub damaged: Vec<String>,
    /// The new pack's name, if one was written.
    pub pack: Option<Id>,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// What to leave out, and what to take in.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) drop_values: BTreeSet<Id>,
    pub(crate) drop_calls: BTreeSet<CallName>,
    /// Pack loose small objects too (format 2 only).
    pub(crate) absorb_loose: bool,
    /// Leave the largest pack alone if it holds more than half of the bytes (automatic runs:
    /// each object is then copied O(log N) times over the life of a store, not O(N)).
    pub(crate) geometric: bool,
    pub(crate) dry_run: bool,
    /// Rewrite even a single pack (to leave damaged entries out).
    pub(crate) repair: bool,
}

/// Where an object to copy is.
enum Source {
    Pack(usize, Located),
    Loose(PathBuf),
}

impl FsBackend {
    /// Consolidates the store's packs into one, with the loose small objects of a format-2
    /// store, under the collection lock (waiting for running writers to finish the call they
    /// are writing). `dry_run` reports what it would do and changes nothing.
    pub fn pack(&self, dry_run: bool) -> Result<PackReport> {
        let plan = Plan {
            absorb_loose: self.format() >= 2,
            dry_run,
            ..Plan::default()
        };
        if dry_run {
            return self.repack(None, plan);
        }
        let lock = ExclusiveLock::acquire(&self.lock_path())?;
        self.repack(Some(&lock), plan)
    }

    /// Seals this handle's log into a pack now (it is sealed anyway at a threshold and when
    /// the last handle is dropped; until then its calls are already safe and visible to
    /// other processes), then, if this handle ever sealed one and there are more than
    /// [`AUTO_PACKS`] packs, consolidates them. A handle that only read changes nothing.
    pub fn flush(&self) -> Result<()> {
        let many = {
            let mut packs = self.packs();
            self.seal_own(&mut packs)?;
            packs.sealed && packs.packs.len() > AUTO_PACKS
        };
        if many {
            self.auto_pack();
        }
        Ok(())
    }

    /// Consolidates if no one holds the collection lock; a busy lock or a failure only
    /// postpones it (reported on stderr).
    pub(crate) fn auto_pack(&self) {
        if let Ok(Some(lock)) = ExclusiveLock::try_acquire(&self.lock_path()) {
            let plan = Plan {
                geometric: true,
                ..Plan::default()
            };
            if let Err(e) = self.repack(Some(&lock), plan) {
                eprintln!("mandala: warning: automatic consolidation of packs failed: {e}");
            }
        }
    }

    /// Converts a store to the newest format ([`crate::FORMAT_VERSION`]): `mandala.toml` says
    /// so first (so that an older mandala stops writing into it: one that reads format 1 or 2
    /// only refuses it with its "upgrade mandala" message), then every loose small object and
    /// every pack is repacked into one pack of the version the format writes.
    pub fn upgrade(&self) -> Result<PackReport> {
        let lock = ExclusiveLock::acquire(&self.lock_path())?;
        let target = crate::FORMAT_VERSION;
        if self.format() < target {
            let config = crate::Config {
                format: target,
                ..self.inner.config.clone()
            };
            let root = &self.inner.root;
            let d = crate::Durability::Sync;
            for (path, text) in [
                (root.join(".gitignore"), crate::GITIGNORE.to_string()),
                (root.join(layout::CONFIG), config.to_toml()),
            ] {
                write::write_with(&self.inner.tmp, &path, d, |f, tmp| {
                    f.write_all(text.as_bytes())
                        .map_err(|e| Error::io("write", tmp, e))
                })?;
            }
            self.inner
                .format
                .store(target, std::sync::atomic::Ordering::SeqCst);
        }
        self.repack(
            Some(&lock),
            Plan {
                absorb_loose: true,
                ..Plan::default()
            },
        )
    }

    /// Consolidates under `lock` (`None` only for a dry run) following `plan`.
    pub(crate) fn repack(&self, lock: Option<&ExclusiveLock>, plan: Plan) -> Result<PackReport> {
        let mut report = PackReport {
            dry_run: plan.dry_run,
            ..PackReport::default()
        };
        let mut chosen: Vec<Arc<Pack>> = {
            let mut packs = self.packs();
            if !plan.dry_run {
                self.seal_own(&mut packs)?;
                report.logs = self.recover_dead_logs(&mut packs)?;
            }
            packs.refresh(&self.inner.root, true, true)?;
            packs.packs.clone()
        };
        if plan.geometric {
            let total: u64 = chosen.iter().map(|p| p.size).sum();
            chosen.sort_by_key(|p| std::cmp::Reverse(p.size));
            if chosen.first().is_some_and(|p| p.size * 2 > total) {
                chosen.remove(0);
            }
        }
        // Values by id, then calls by name, each with every copy: the first sound one is
        // copied.
        let mut values: BTreeMap<Id, Vec<Source>> = BTreeMap::new();
        let mut calls: BTreeMap<CallName, Vec<Source>> = BTreeMap::new();
        for (i, p) in chosen.iter().enumerate() {
            report.bytes_before += p.size + idx_size(&self.inner.root, &p.name);
            // A row that names no matching entry is damage fsck reports: nothing to copy.
            for e in p.entries().flatten() {
                match e.id {
                    EntryId::Value(cid) => values.entry(cid).or_default().push(Source::Pack(i, e)),
                    EntryId::Call(name) => calls.entry(name).or_default().push(Source::Pack(i, e)),
                    EntryId::Commit => {}
                }
            }
        }
        let mut absorbed: Vec<PathBuf> = Vec::new();
        if plan.absorb_loose {
            for (cid, path) in self.loose_small_values()? {
                values
                    .entry(cid)
                    .or_default()
                    .push(Source::Loose(path.clone()));
                absorbed.push(path);
            }
            for name in self.loose_call_names()? {
                let path = layout::call_path(&self.inner.root, &name);
                calls
                    .entry(name)
                    .or_default()
                    .push(Source::Loose(path.clone()));
                absorbed.push(path);
            }
            for p in &absorbed {
                report.bytes_before += fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            }
            report.loose = absorbed.len();
        }
        report.packs = chosen.len();
        let before = (values.len(), calls.len());
        values.retain(|cid, _| !plan.drop_values.contains(cid));
        calls.retain(|name, _| !plan.drop_calls.contains(name));
        report.dropped_values = before.0 - values.len();
        report.dropped_calls = before.1 - calls.len();
        let nothing_to_do = !plan.repair
            && report.dropped_values == 0
            && report.dropped_calls == 0
            && absorbed.is_empty()
            && chosen.len() <= 1
            && chosen
                .iter()
                .all(|p| p.idx.version() == self.pack_version())
            // A lone pack that does not hash to what its index records is rewritten without
            // its damaged entries (hashed only here, when it would otherwise be left alone).
            && chosen.iter().all(|p| p.hash_matches().unwrap_or(false));
        if plan.dry_run || nothing_to_do {
            report.values = values.len();
            report.calls = calls.len();
            report.pack = chosen.first().filter(|_| nothing_to_do).map(|p| p.name);
            return Ok(report);
        }
        let Some(lock) = lock else {
            unreachable!("only a dry run goes without the lock")
        };

        // The new pack, written in tmp/ with every entry verified as it is copied.
        let tmp = self
            .inner
            .tmp
            .join(format!("{}.pack", write::unique_name()));
        let written = self.write_pack(&tmp, &chosen, values, calls, &mut report);
        let (entries, hash) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let (idx, id) = format::encode_idx(self.pack_version(), hash.as_bytes(), &entries);
        let root = &self.inner.root;
        let idx_path = layout::pack_path(root, &id, "idx");
        let pack_path = layout::pack_path(root, &id, "pack");
        let durability = self.inner.durability;
        let installed = (|| {
            if !crate::open::is_regular(&idx_path) {
                write::write_with(&self.inner.tmp, &idx_path, durability, |f, t| {
                    f.write_all(&idx).map_err(|e| Error::io("write", t, e))
                })?;
            }
            fs::rename(&tmp, &pack_path).map_err(|e| Error::io("rename into place", &pack_path, e))
        })();
        if let Err(e) = installed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        report.pack = Some(id);
        report.bytes_after =
            fs::metadata(&pack_path).map(|m| m.len()).unwrap_or(0) + idx.len() as u64;

        // Only now what it supersedes goes: values left out (collected, or damaged) move
        // the epoch on first.
        if report.dropped_values > 0 || !report.damaged.is_empty() {
            lock.bump_epoch()?;
        }
        for p in &chosen {
            if p.name == id {
                continue;
            }
            for ext in ["idx", "pack"] {
                let path = layout::pack_path(root, &p.name, ext);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete", &path, e)),
                }
            }
        }
        for path in &absorbed {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", path, e)),
            }
        }
        if !absorbed.is_empty() {
            self.forget_listings();
        }
        self.packs().refresh(root, true, true)?;
        Ok(report)
    }

    /// Writes the entries of `values` then `calls` into a new pack file at `tmp` (of the
    /// version this store writes), verifying each; returns their locations and the file's
    /// hash. An entry already stored as a version-1 frame goes into a version-1 pack as it
    /// is; any other is encoded anew (a record of a version-2 pack numbers its commit in the
    /// new pack's table).
    fn write_pack(
        &self,
        tmp: &std::path::Path,
        chosen: &[Arc<Pack>],
        values: BTreeMap<Id, Vec<Source>>,
        calls: BTreeMap<CallName, Vec<Source>>,
        report: &mut PackReport,
    ) -> Result<(Vec<Located>, blake3::Hash)> {
        let file = fs::File::create_new(tmp).map_err(|e| Error::io("create temp file", tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, write::FaultySink::new(file));
        let mut hasher = blake3::Hasher::new();
        let mut offset = format::HEADER_LEN;
        let mut entries = Vec::with_capacity(values.len() + calls.len());
        let mut buf = Vec::new();
        let version = self.pack_version();
        let level = self.inner.config.zstd_level;
        let mut commits = store_core::format::record::CommitTable::default();
        let mut new: Vec<NewEntry> = Vec::with_capacity(2);
        let header = format::header(version);
        out.write_all(&header)
            .map_err(|e| Error::io("write", tmp, e))?;
        hasher.update(&header);
        let items = values
            .into_iter()
            .map(|(cid, s)| (EntryId::Value(cid), s))
            .chain(calls.into_iter().map(|(n, s)| (EntryId::Call(n), s)));
        for (id, sources) in items {
            let mut sound = None;
            for source in sources {
                match check_copy(chosen, &id, source) {
                    Ok(copy) => {
                        sound = Some(copy);
                        break;
                    }
                    Err(e) => report.damaged.push(format!("{}: {}", describe(&id), e)),
                }
            }
            let Some(copy) = sound else {
                continue; // every copy damaged: left out (fsck reported it)
            };
            new.clear();
            match copy.frame {
                Some(frame) if version == format::V1 => new.push((id, Enc::V1, frame)),
                _ => super::encode_object(
                    version,
                    level,
                    id,
                    &copy.cbor,
                    None,
                    &mut commits,
                    &mut new,
                )?,
            }
            for (id, enc, content) in new.drain(..) {
                buf.clear();
                entries.push(format::encode_entry(&id, enc, &content, offset, &mut buf));
                out.write_all(&buf)
                    .map_err(|e| Error::io("write", tmp, e))?;
                hasher.update(&buf);
                offset += buf.len() as u64;
                match id {
                    EntryId::Value(_) => report.values += 1,
                    EntryId::Call(_) => report.calls += 1,
                    EntryId::Commit => {}
                }
            }
        }
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", tmp, e.into_error()))?
            .into_inner();
        if self.inner.durability == crate::Durability::Sync {
            file.sync_all().map_err(|e| Error::io("fsync", tmp, e))?;
        }
        Ok((entries, hasher.finalize()))
    }

    /// Loose values small enough for a pack (their CBOR under [`PACK_VALUE_MAX`]), with
    /// their paths.
    fn loose_small_values(&self) -> Result<Vec<(Id, PathBuf)>> {
        let mut out = Vec::new();
        for cid in self.loose_value_ids()? {
            let path = layout::value_path(&self.inner.root, &cid);
            let Some((mut file, len)) = crate::open::open_regular(&path)? else {
                continue;
            };
            if len >= PACK_VALUE_MAX as u64 {
                continue; // its CBOR is at least as long (zstd frames of small data grow)
            }
            let mut head = [0u8; 18];
            let n = std::io::Read::read(&mut file, &mut head).unwrap_or(0);
            match blob::claimed_size(&head[..n], &path) {
                Ok(size) if size < PACK_VALUE_MAX as u64 => out.push((cid, path)),
                _ => {} // large, or damaged: left loose (fsck reports damage)
            }
        }
        Ok(out)
    }
}

/// One sound copy of an object: its canonical CBOR, and its stored bytes when they are a
/// version-1 frame (a loose file's too), which a version-1 pack takes as they are.
struct Copy {
    cbor: Vec<u8>,
    frame: Option<Vec<u8>>,
}

/// One copy of `id`, checked: it decompresses (and expands) and hashes to its id.
fn check_copy(chosen: &[Arc<Pack>], id: &EntryId, source: Source) -> Result<Copy> {
    match source {
        Source::Pack(i, e) => {
            let found = Found::in_pack(&chosen[i], e);
            let stored = read_stored(found.at())?;
            let commits = found.commits.as_deref();
            let cbor = entry_content(&e, &stored, commits, &chosen[i].path, true)?;
            let frame = (e.enc == Enc::V1).then_some(stored);
            Ok(Copy { cbor, frame })
        }
        Source::Loose(path) => {
            let frame = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let e = Located {
                id: *id,
                offset: 0,
                len: frame.len() as u32,
                enc: Enc::V1,
            };
            let cbor = entry_content(&e, &frame, None, &path, true)?;
            Ok(Copy {
                cbor,
                frame: Some(frame),
            })
        }
    }
}

fn idx_size(root: &std::path::Path, id: &Id) -> u64 {
    fs::metadata(layout::pack_path(root, id, "idx"))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn describe(id: &EntryId) -> String {
    match id {
        EntryId::Value(cid) => format!("value {}", cid.short(12)),
        EntryId::Call(n) => format!("call record {}", n.rid.short(12)),
        EntryId::Commit => "a commit".into(),
    }
}
