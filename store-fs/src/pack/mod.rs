//! Packs (store formats 2 and 3, docs/FORMAT.md §11): small objects — call records, and values
//! whose CBOR is under [`PACK_VALUE_MAX`] — live in pack files instead of one file each. Both
//! pack versions are read everywhere; a store writes the version of its format (see `format`).
//!
//! - Each writing handle appends each call's objects with **one `write()`** to its own log
//!   (`logs/<pid>-<random>.log`, locked while it lives): see `log`.
//! - A log is **sealed** into a pack (`packs/pack-<ID>.pack` with its index `.idx`, both
//!   immutable, named by the hash of the index) at a size or count threshold, on `flush()`,
//!   when the last handle of the store is dropped, and by the next writer that finds the log
//!   of a dead process.
//! - **Readers** know the packs' indexes (sorted tables searched in place) and the entries
//!   of the logs of running processes; they look at `logs/` and `packs/` again (one stat each,
//!   plus one per running writer's log) when a lookup misses, and at most every
//!   [`REFRESH_EVERY`] on hits, never listing a directory that did not change. A lookup
//!   remembers where it found a call key's records and a value, for the read that follows
//!   (forgotten at the next look at the store); reads borrow the entry from its pack ([`At`]).
//! - **Consolidation** (`repack`) merges packs into one under the collection lock: see
//!   `repack`.
//!
//! Everything here is in memory about what is on disk; the bytes are in `format`.

pub(crate) mod format;
pub(crate) mod log;
pub(crate) mod midx;
pub(crate) mod repack;

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use store_core::format::record::CommitTable;
use store_core::{CallName, CallRecord, Error, Id, IdMap, Result};

use crate::index::Stamp;
use crate::open::read_exact_at;
use crate::{blob, layout};
use format::{Enc, EntryId, Idx, Located, Row, Table};

/// Values whose canonical CBOR is shorter than this go into packs (format 2); longer ones
/// stay loose files, as in format 1. Records always go into packs.
pub const PACK_VALUE_MAX: usize = 64 << 10;

/// The largest content an entry of a pack may claim (a damaged or hostile frame header must
/// not make a reader allocate more).
pub(crate) const MAX_ENTRY: u64 = blob::MAX_RECORD;

/// How often a lookup that hits looks for packs removed by a consolidation elsewhere.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_millis(50);

/// How often a lookup that misses looks at `logs/` and `packs/` again: a call another process
/// stored less than this long ago may be computed again here (as when both compute it at the
/// same time), never answered wrongly; in exchange a run of new calls pays two stats per
/// millisecond, not per call.
pub(crate) const MISS_REFRESH_EVERY: Duration = Duration::from_millis(1);

/// How long a directory must have been unchanged for its listing to be trusted while its
/// stamp stays the same (file systems stamp directories with a coarse clock: a change in the
/// same tick as a listing leaves the stamp as it was).
const QUIET: Duration = Duration::from_secs(2);

/// How often a directory listed while it was not yet quiet is listed again although its stamp
/// did not change (a change within its clock tick is seen this late at worst; its cost is a
/// call computed twice, never a wrong answer: writers list again under the collection lock).
const UNSETTLED_EVERY: Duration = Duration::from_millis(20);

/// What a handle knows of one directory (`packs/` or `logs/`): its stamp when listed, and
/// whether that listing can be trusted while the stamp stays the same.
#[derive(Default)]
struct DirState {
    stamp: Option<Stamp>,
    settled: bool,
    listed: Option<Instant>,
}

impl DirState {
    /// Whether the directory, now stamped `stamp`, must be listed again.
    fn stale(&self, stamp: Option<Stamp>, force: bool) -> bool {
        force
            || stamp != self.stamp
            || self.listed.is_none()
            || (!self.settled && self.listed.is_some_and(|t| t.elapsed() >= UNSETTLED_EVERY))
    }

    fn listed(&mut self, stamp: Option<Stamp>) {
        self.stamp = stamp;
        self.settled = stamp.is_none_or(|s| s.age() >= QUIET);
        self.listed = Some(Instant::now());
    }
}

/// One sealed pack: its index in memory, its file open.
pub(crate) struct Pack {
    pub(crate) name: Id,
    /// Shared with every [`Found`] entry of it (made for each lookup: no allocation).
    pub(crate) path: Arc<Path>,
    pub(crate) file: Arc<File>,
    /// The file mapped into memory (entries are then read without a system call each), if
    /// mapping it worked.
    pub(crate) map: Option<Arc<memmap2::Mmap>>,
    pub(crate) idx: Idx,
    /// Size of the `.pack` file.
    pub(crate) size: u64,
    /// Whether this process has checked the pack whole, so that lookups serve its entries
    /// without hashing each.
    pub(crate) trust: Arc<Trust>,
    /// The git commits its compact records number (version 2), read when first needed.
    commits: OnceLock<Arc<CommitTable>>,
}

impl Pack {
    /// A pack whose index is `idx` and whose file (`size` bytes) is open as `file`.
    pub(crate) fn new(name: Id, path: PathBuf, file: Arc<File>, idx: Idx, size: u64) -> Pack {
        Pack {
            name,
            path: path.into(),
            map: map_pack(&file),
            file,
            trust: Trust::new(size, idx.pack_hash()),
            idx,
            size,
            commits: OnceLock::new(),
        }
    }

    /// `len` bytes of the pack file from `offset` (`None` past its end or if unreadable).
    fn bytes_at(&self, offset: u64, len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.size)?;
        if let Some(map) = &self.map {
            return map.get(offset as usize..end as usize).map(Into::into);
        }
        let mut buf = vec![0u8; len];
        read_exact_at(&self.file, &mut buf, offset).ok()?;
        Some(buf.into())
    }

    /// The entry at `offset`, read from its header (`None` if there is no whole entry).
    fn entry_at(&self, offset: u64) -> Option<Located> {
        // The longest header (a call's), or what is left of the file.
        let len = self.size.saturating_sub(offset).min(1 + 96 + 4) as usize;
        let head = self.bytes_at(offset, len)?;
        let e = format::parse_header(&head, offset, self.idx.version()).ok()??;
        (e.end() <= self.size).then_some(e)
    }

    /// The entry row `i` of `table` names, if the row and the entry agree (a version-2 row
    /// holds where the entry is and its id's first bytes; the entry the rest).
    pub(crate) fn row(&self, table: Table, i: usize) -> Option<Located> {
        match self.idx.row(table, i) {
            Row::Entry(e) => Some(e),
            Row::At { key, offset } => self.entry_of_row(table, key, offset),
        }
    }

    /// The entry at `offset`, if it is a whole entry of `table` whose id starts with `key`.
    fn entry_of_row(&self, table: Table, key: &[u8], offset: u64) -> Option<Located> {
        let e = self.entry_at(offset)?;
        let lead: &[u8] = match (table, &e.id) {
            (Table::Values, EntryId::Value(cid)) => &cid.0,
            (Table::Calls, EntryId::Call(n)) => &n.key.0,
            _ => return None,
        };
        (lead[..key.len()] == *key).then_some(e)
    }

    /// The `i`th value entry (by cid order).
    pub(crate) fn value(&self, i: usize) -> Option<Located> {
        self.row(Table::Values, i)
    }

    /// The `i`th call entry (by name order).
    pub(crate) fn call(&self, i: usize) -> Option<Located> {
        self.row(Table::Calls, i)
    }

    /// Row `i` of `table`, if it may be the entry `wanted`: the entry itself, or, when its
    /// row's id bytes match but the entry it points to is not a whole entry with such an id
    /// (the pack or its index is damaged), a copy of `wanted` that reading reports damaged —
    /// as reading a damaged version-1 entry does. `None` if the row is another object's.
    pub(crate) fn candidate(&self, table: Table, i: usize, wanted: &EntryId) -> Option<Located> {
        match self.idx.row(table, i) {
            Row::Entry(e) => (e.id == *wanted).then_some(e),
            Row::At { key, offset } => match self.entry_of_row(table, key, offset) {
                Some(e) => (e.id == *wanted).then_some(e),
                None => (wanted.row_key().get(..key.len()) == Some(key)).then_some(Located {
                    id: *wanted,
                    offset,
                    len: 0,
                    enc: Enc::Raw,
                }),
            },
        }
    }

    /// Value `cid`'s entry, if the pack holds it (or a damaged copy of it: see
    /// [`Pack::candidate`]).
    pub(crate) fn find_value(&self, cid: &Id) -> Option<Located> {
        let wanted = EntryId::Value(*cid);
        self.idx
            .rows_of(Table::Values, cid)
            .find_map(|i| self.candidate(Table::Values, i, &wanted))
    }

    /// The call entries under call key `key`, in name order.
    pub(crate) fn calls_of(&self, key: &Id) -> impl Iterator<Item = (CallName, Located)> + '_ {
        let key = *key;
        self.idx
            .rows_of(Table::Calls, &key)
            .filter_map(|i| self.call(i))
            .filter_map(move |e| match e.id {
                EntryId::Call(n) if n.key == key => Some((n, e)),
                _ => None,
            })
    }

    /// Call `name`'s entry, if the pack holds it.
    pub(crate) fn find_call(&self, name: &CallName) -> Option<Located> {
        self.calls_of(&name.key)
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    /// Every entry its index lists (values, then calls), or for a row whose entry does not
    /// match it, which row it is.
    pub(crate) fn entries(
        &self,
    ) -> impl Iterator<Item = std::result::Result<Located, String>> + '_ {
        let rows = |table, n| {
            (0..n).map(move |i| {
                self.row(table, i).ok_or_else(|| {
                    let what = if table == Table::Values { "value" } else { "call" };
                    format!("{what} row {i} of the index does not name a whole entry of the pack that matches it")
                })
            })
        };
        rows(Table::Values, self.idx.n_values()).chain(rows(Table::Calls, self.idx.n_calls()))
    }

    /// The git commits this pack's compact records number (empty for a version-1 pack).
    pub(crate) fn commits(&self) -> Arc<CommitTable> {
        self.commits_ref().clone()
    }

    fn commits_ref(&self) -> &Arc<CommitTable> {
        self.commits
            .get_or_init(|| Arc::new(self.read_commits().unwrap_or_default()))
    }

    /// Reads the pack's commit entries; an error says which one is damaged.
    pub(crate) fn read_commits(&self) -> std::result::Result<CommitTable, String> {
        let mut list = Vec::with_capacity(self.idx.n_commits());
        for i in 0..self.idx.n_commits() {
            let offset = self.idx.commit_at(i);
            let bad = |why: &str| format!("commit {i} (entry at offset {offset}): {why}");
            let e = self
                .entry_at(offset)
                .filter(|e| e.id == EntryId::Commit)
                .ok_or_else(|| bad("not a whole commit entry"))?;
            let stored = self
                .bytes_at(e.frame_at(), e.len as usize)
                .ok_or_else(|| bad("cut short"))?;
            list.push(
                commit_text(&e, &stored, &self.path)
                    .map_err(|err| bad(&crate::verify::reason_of(err)))?,
            );
        }
        Ok(CommitTable::from_list(list))
    }

    /// Whether the `.pack` file hashes to what its index records (`fsck`, and a pack fetched
    /// from a remote).
    pub(crate) fn hash_matches(&self) -> std::io::Result<bool> {
        let hash = match self
            .map
            .as_deref()
            .and_then(|m| m.get(..self.size as usize))
        {
            Some(bytes) => blake3::hash(bytes),
            None => hash_file(&self.file, self.size)?,
        };
        Ok(hash.as_bytes() == &self.idx.pack_hash())
    }
}

/// The BLAKE3 hash of the first `len` bytes of `file`, read through a map of it (or, if it
/// cannot be mapped, into memory).
pub(crate) fn hash_file(file: &File, len: u64) -> std::io::Result<blake3::Hash> {
    if let Some(map) = map_pack(file) {
        if let Some(bytes) = map.get(..len as usize) {
            return Ok(blake3::hash(bytes));
        }
    }
    let mut bytes = vec![0u8; len as usize];
    read_exact_at(file, &mut bytes, 0)?;
    Ok(blake3::hash(&bytes))
}

/// How far this process trusts a pack's entries (docs/FORMAT.md §11.3). Every entry a lookup
/// serves is checked against its id (its content hashed: 5-6 BLAKE3 compressions for a call
/// record, a seventh of a fresh hit) until the entries checked one by one add up to an eighth
/// of the pack; then the whole pack is hashed once, on a thread of its own for a large one,
/// against the hash its index records — which says that every entry is what was sealed, and
/// sealing checked each. From then on lookups serve its entries without hashing them. A pack
/// that does not match is never trusted: its entries stay checked one by one, and the
/// damaged ones are reported as before. `fsck`, consolidation and fetching from a remote
/// always check every entry.
pub(crate) struct Trust {
    /// The pack's size, and the hash its index records.
    size: u64,
    want: [u8; 32],
    /// Bytes of entries checked one by one so far.
    checked: AtomicU64,
    state: AtomicU8,
    /// Entries served without their own check (on a cache line of its own: threads reading a
    /// trusted pack all count here, and must not disturb their reads of `state`).
    trusted_reads: Padded<AtomicU64>,
}

/// A value alone on its cache line.
#[repr(align(64))]
struct Padded<T>(T);

const UNCHECKED: u8 = 0;
const CHECKING: u8 = 1;
const TRUSTED: u8 = 2;
const DAMAGED: u8 = 3;

/// Packs up to this size are hashed whole by the lookup that reaches the threshold; larger
/// ones on a thread of their own (a mebibyte takes ~0.2 ms here).
const CHECK_INLINE_MAX: u64 = 1 << 20;

impl Trust {
    /// The trust of a pack of `size` bytes whose index records the hash `want`.
    pub(crate) fn new(size: u64, want: [u8; 32]) -> Arc<Trust> {
        Arc::new(Trust {
            size,
            want,
            checked: AtomicU64::new(0),
            state: AtomicU8::new(UNCHECKED),
            trusted_reads: Padded(AtomicU64::new(0)),
        })
    }

    /// Whether the pack was checked whole and matched.
    pub(crate) fn trusted(&self) -> bool {
        self.state.load(Ordering::Acquire) == TRUSTED
    }

    /// What a handle knows of this pack's soundness.
    fn state(&self) -> PackTrustState {
        match self.state.load(Ordering::Acquire) {
            TRUSTED => PackTrustState::Trusted,
            DAMAGED => PackTrustState::Damaged,
            _ => PackTrustState::Unchecked,
        }
    }

    /// Counts `bytes` of an entry checked one by one in the pack mapped as `map`, and checks
    /// the pack whole once they reach an eighth of it.
    fn checked_entry(self: &Arc<Trust>, bytes: usize, map: &Arc<memmap2::Mmap>) {
        let (size, want) = (self.size, self.want);
        let total = self.checked.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if total < size / 8
            || self
                .state
                .compare_exchange(UNCHECKED, CHECKING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let check = {
            let (trust, map) = (self.clone(), map.clone());
            move || {
                let sound = map
                    .get(..size as usize)
                    .is_some_and(|bytes| blake3::hash(bytes).as_bytes() == &want);
                trust
                    .state
                    .store(if sound { TRUSTED } else { DAMAGED }, Ordering::Release);
            }
        };
        if size <= CHECK_INLINE_MAX {
            check();
        } else if std::thread::Builder::new()
            .name("mandala-pack-check".into())
            .spawn(check)
            .is_err()
        {
            // No thread to spare: stay with checking entries one by one.
            self.state.store(UNCHECKED, Ordering::Release);
        }
    }
}

/// Whether a handle has checked a pack whole (see [`FsBackend::pack_trust`](crate::FsBackend::pack_trust)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackTrustState {
    /// Not checked whole yet: its entries are checked one by one as they are read.
    Unchecked,
    /// Checked whole, and it hashes to what its index records: its entries are served
    /// without each being hashed.
    Trusted,
    /// Checked whole, and it does not: its entries stay checked one by one.
    Damaged,
}

/// How far a handle trusts one pack it has opened.
#[derive(Clone, Debug)]
pub struct PackTrust {
    /// The `.pack` file.
    pub path: PathBuf,
    /// Whether it was checked whole, and how that went.
    pub state: PackTrustState,
    /// Entries lookups served from it without hashing them.
    pub unchecked_reads: u64,
}

impl crate::FsBackend {
    /// How far this handle trusts each pack it has opened (docs/FORMAT.md §11.3): a lookup
    /// checks each entry it serves against its id until the entries checked add up to an
    /// eighth of their pack, then checks the pack whole once, and serves the entries of a
    /// pack that matched without hashing each.
    pub fn pack_trust(&self) -> Vec<PackTrust> {
        self.packs()
            .packs
            .iter()
            .map(|p| PackTrust {
                path: p.path.to_path_buf(),
                state: p.trust.state(),
                unchecked_reads: p.trust.trusted_reads.0.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// The entries of a log: one of a running writer (read as it grows), or this handle's own.
pub(crate) struct LogView {
    pub(crate) name: String,
    pub(crate) path: Arc<Path>,
    pub(crate) file: Arc<File>,
    /// Entries end here (a torn or growing tail after it is read again later).
    pub(crate) read_to: u64,
    /// Every entry, in file order (what sealing indexes). The maps below point into it.
    pub(crate) entries: Vec<Located>,
    /// The first entry of each value.
    values: IdMap<u32>,
    /// The last entry of each call key; `same_key[i]` is the entry before `i` with its key
    /// (`NONE` at the first), so a key's records are a short chain.
    keys: IdMap<u32>,
    same_key: Vec<u32>,
    n_calls: usize,
    /// The log's version (0 until its header is read).
    pub(crate) version: u32,
    /// The git commits its compact records number, in the order of its commit entries.
    pub(crate) commits: Arc<CommitTable>,
}

const NONE: u32 = u32::MAX;

impl LogView {
    pub(crate) fn new(name: String, path: PathBuf, file: Arc<File>) -> LogView {
        LogView {
            name,
            path: path.into(),
            file,
            read_to: format::HEADER_LEN,
            entries: Vec::new(),
            values: IdMap::default(),
            keys: IdMap::default(),
            same_key: Vec::new(),
            n_calls: 0,
            version: 0,
            commits: Arc::default(),
        }
    }

    /// A log of `version` (this handle's own, just created).
    pub(crate) fn with_version(mut self, version: u32) -> LogView {
        self.version = version;
        self
    }

    /// Takes in the commit entry `e`, whose text is `commit`.
    pub(crate) fn add_commit(&mut self, e: Located, commit: String) {
        Arc::make_mut(&mut self.commits).push(commit);
        self.add(e);
    }

    /// Takes in the entry `e` (a second copy of an object is kept in `entries`, as it is in
    /// the file, but found through its first copy).
    pub(crate) fn add(&mut self, e: Located) {
        let at = self.entries.len() as u32;
        let mut prev = NONE;
        match e.id {
            EntryId::Value(cid) => {
                self.values.entry(cid).or_insert(at);
            }
            EntryId::Call(name) => {
                if self.call(&name).is_none() {
                    prev = self.keys.insert(name.key, at).unwrap_or(NONE);
                    self.n_calls += 1;
                }
            }
            EntryId::Commit => {}
        }
        self.same_key.push(prev);
        self.entries.push(e);
        self.read_to = self.read_to.max(e.end());
    }

    /// Forgets the entries at or after `offset` (after a failed append).
    pub(crate) fn truncate(&mut self, offset: u64) {
        // Entries are in file order: the ones kept are a prefix, taken in again.
        let entries = std::mem::take(&mut self.entries);
        let keep = entries.partition_point(|e| e.offset < offset);
        let name = std::mem::take(&mut self.name);
        let commits = std::mem::take(&mut self.commits);
        let kept = entries[..keep]
            .iter()
            .filter(|e| e.id == EntryId::Commit)
            .count();
        *self = LogView::new(name, self.path.to_path_buf(), self.file.clone())
            .with_version(self.version);
        let kept = kept.min(commits.list().len());
        self.commits = Arc::new(CommitTable::from_list(commits.list()[..kept].to_vec()));
        for e in &entries[..keep] {
            self.add(*e);
        }
        self.read_to = offset;
    }

    /// The first entry of value `cid`.
    pub(crate) fn value(&self, cid: &Id) -> Option<&Located> {
        self.values.get(cid).map(|&i| &self.entries[i as usize])
    }

    /// The entry of call `name`.
    pub(crate) fn call(&self, name: &CallName) -> Option<&Located> {
        self.key_entries(&name.key)
            .find(|e| e.id == EntryId::Call(*name))
    }

    pub(crate) fn key_entries(&self, key: &Id) -> impl Iterator<Item = &Located> {
        let mut at = self.keys.get(key).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let e = &self.entries[at as usize];
                at = self.same_key[at as usize];
                e
            })
        })
    }

    /// The names of the records under call key `key` (newest first).
    pub(crate) fn calls_of(&self, key: &Id) -> impl Iterator<Item = CallName> + '_ {
        self.key_entries(key).filter_map(|e| match e.id {
            EntryId::Call(n) => Some(n),
            _ => None, // a key's chain holds calls
        })
    }

    /// Every call name (each once).
    pub(crate) fn call_names(&self) -> impl Iterator<Item = CallName> + '_ {
        self.keys.keys().flat_map(|k| self.calls_of(k))
    }

    /// Every value id (each once).
    pub(crate) fn value_ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.values.keys().copied()
    }

    /// How many distinct values and calls.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.values.len(), self.n_calls)
    }

    /// Reads what the log's writer appended since the last time: whole entries only.
    fn catch_up(&mut self) -> Result<()> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len();
        if len <= self.read_to {
            return Ok(());
        }
        // The header too, the first time.
        let base = if self.version == 0 { 0 } else { self.read_to };
        let mut bytes = vec![0u8; (len - base) as usize];
        read_exact_at(&self.file, &mut bytes, base)
            .map_err(|e| Error::io("read", &self.path, e))?;
        if self.version == 0 {
            match format::header_version(&bytes) {
                Some(v) => self.version = v,
                None => return Ok(()), // not (yet) a log: fsck reports it
            }
        }
        let mut at = self.read_to;
        while let Ok(Some(e)) = format::parse_entry(&bytes, base, at, self.version) {
            if e.id == EntryId::Commit {
                let stored = &bytes[(e.frame_at() - base) as usize..(e.end() - base) as usize];
                match commit_text(&e, stored, &self.path) {
                    Ok(commit) => self.add_commit(e, commit),
                    Err(_) => break, // damaged: what follows is not read (fsck reports it)
                }
            } else {
                self.add(e);
            }
            at = e.end();
        }
        Ok(())
    }
}

/// Where an entry is: the file holding it, for messages its path, and the entry.
#[derive(Clone)]
pub(crate) struct Found {
    pub(crate) file: Arc<File>,
    /// The file mapped, for a pack (a log grows: it is read with `pread`).
    pub(crate) map: Option<Arc<memmap2::Mmap>>,
    pub(crate) path: Arc<Path>,
    pub(crate) entry: Located,
    /// For an entry a lookup found in a mapped pack: the pack's trust (see [`Trust`]).
    /// `None`: the entry is always checked.
    pub(crate) trust: Option<Arc<Trust>>,
    /// For a compact record: the commits of its pack or log.
    pub(crate) commits: Option<Arc<CommitTable>>,
}

impl Found {
    /// Where entry `entry` of pack `p` is, to be checked whenever it is read (`fsck`,
    /// consolidation, a fetched pack).
    pub(crate) fn in_pack(p: &Pack, entry: Located) -> Found {
        Found {
            file: p.file.clone(),
            map: p.map.clone(),
            path: p.path.clone(),
            entry,
            trust: None,
            commits: entry.is_compact_record().then(|| p.commits()),
        }
    }

    /// The entry, borrowed from this.
    pub(crate) fn at(&self) -> At<'_> {
        At {
            file: &self.file,
            map: self.map.as_ref(),
            path: &self.path,
            entry: self.entry,
            trust: self.trust.as_ref(),
            commits: self.commits.as_ref(),
        }
    }
}

/// Where an entry is, borrowed from the pack or log that holds it: reading it takes no
/// reference counts (a whole-store query reads thousands of entries on several threads,
/// whose counts of one pack's shared parts would bounce between the cores). [`Found`] owns
/// the same.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub(crate) file: &'a Arc<File>,
    pub(crate) map: Option<&'a Arc<memmap2::Mmap>>,
    pub(crate) path: &'a Arc<Path>,
    pub(crate) entry: Located,
    pub(crate) trust: Option<&'a Arc<Trust>>,
    pub(crate) commits: Option<&'a Arc<CommitTable>>,
}

impl<'a> At<'a> {
    /// Where entry `entry` of pack `p` is, for a lookup: served unchecked once the pack is
    /// trusted (see [`Trust`]).
    pub(crate) fn for_lookup(p: &'a Pack, entry: Located) -> At<'a> {
        At {
            file: &p.file,
            map: p.map.as_ref(),
            path: &p.path,
            entry,
            trust: p.map.is_some().then_some(&p.trust),
            commits: entry.is_compact_record().then(|| p.commits_ref()),
        }
    }

    /// Where entry `entry` of `log` is (always checked: a log is not hashed whole).
    fn in_log(log: &'a LogView, entry: Located) -> At<'a> {
        At {
            file: &log.file,
            map: None,
            path: &log.path,
            entry,
            trust: None,
            commits: entry.is_compact_record().then_some(&log.commits),
        }
    }

    /// The same, owned.
    pub(crate) fn to_found(self) -> Found {
        Found {
            file: self.file.clone(),
            map: self.map.cloned(),
            path: self.path.clone(),
            entry: self.entry,
            trust: self.trust.cloned(),
            commits: self.commits.cloned(),
        }
    }
}

/// What a handle knows of the store's packs and logs.
#[derive(Default)]
pub(crate) struct Packs {
    packs_dir: DirState,
    /// In the order they were opened; `midx` merges their tables.
    pub(crate) packs: Vec<Arc<Pack>>,
    midx: midx::Midx,
    logs_dir: DirState,
    /// Logs of running writers (other processes, or other handles of this one), by name.
    pub(crate) logs: Vec<LogView>,
    /// This handle's log, once it wrote.
    pub(crate) own: Option<log::OwnLog>,
    last_refresh: Option<Instant>,
    /// The collection epoch the pack list was made under (see `lock`).
    pub(crate) epoch: Option<u64>,
    /// Entries found damaged (file, offset): passed over, so the value counts as missing
    /// here and the call that made it is computed again, its value written anew.
    pub(crate) damaged: std::collections::HashSet<(Arc<Path>, u64)>,
    /// Whether the store has a `calls/` directory (loose records: format 1, or merged from a
    /// format-1 store), as of the last refresh.
    pub(crate) loose_calls: bool,
    /// Whether it has a `values/` directory (large values, or loose small ones), likewise.
    pub(crate) loose_values: bool,
    /// Whether this handle sealed a log into a pack: only a handle that wrote consolidates
    /// automatically (a reader, `mandala status` or `fsck`, never changes the store).
    pub(crate) sealed: bool,
    /// The call names of `packs`, as last listed (see [`Packs::all_calls`]).
    pack_calls: PackCalls,
    /// Where the last lookups found things: a hit asks for a call key's records and then
    /// reads one, and asks whether its output is stored and then reads it. The second
    /// question of each pair is answered from here without searching again (entries never
    /// change where they are; a damaged one is still passed over).
    recent_calls: Option<(Id, Vec<(CallName, Found)>)>,
    recent_value: Option<(Id, Found)>,
}

/// The call names of a list of packs, sorted and distinct.
#[derive(Default)]
struct PackCalls {
    /// The packs' names, in the order of [`Packs::packs`].
    packs: Vec<Id>,
    names: Vec<CallName>,
}

impl Packs {
    /// Looks at `packs/` and `logs/` again if the lookup missed (`miss`) or if it has not for
    /// [`REFRESH_EVERY`]; `force` lists both directories whatever their stamps.
    pub(crate) fn refresh(&mut self, root: &Path, miss: bool, force: bool) -> Result<()> {
        let since = self.last_refresh.map(|t| t.elapsed());
        let due = match since {
            None => true,
            Some(since) if miss => since >= MISS_REFRESH_EVERY,
            Some(since) => since >= REFRESH_EVERY,
        };
        if !(due || force) {
            return Ok(());
        }
        self.last_refresh = Some(Instant::now());
        // What was found before may have been removed since (a consolidation or gc of this
        // process or another): looked up anew.
        self.forget_recent();
        self.loose_calls = root.join(layout::CALLS).is_dir();
        self.loose_values = root.join(layout::VALUES).is_dir();
        // Logs before packs: a writer seals its log into a pack (renamed in) before it removes
        // the log, so entries never fall between the two listings.
        self.refresh_logs(root, force)?;
        self.refresh_packs(root, force)
    }

    fn refresh_logs(&mut self, root: &Path, force: bool) -> Result<()> {
        let dir = root.join(layout::LOGS);
        let stamp = dir_stamp(&dir)?;
        if self.logs_dir.stale(stamp, force) {
            let names = crate::FsBackend::list_dir(&dir)?;
            let own = self.own.as_ref().map(|o| o.view.name.clone());
            self.logs.retain(|l| names.binary_search(&l.name).is_ok());
            for name in names {
                if !name.ends_with(".log")
                    || Some(&name) == own.as_ref()
                    || self.logs.iter().any(|l| l.name == name)
                {
                    continue;
                }
                let path = dir.join(&name);
                match crate::open::open_regular(&path)? {
                    Some((file, _)) => {
                        self.logs.push(LogView::new(name, path, Arc::new(file)));
                    }
                    None => continue, // sealed since the listing
                }
            }
            self.logs_dir.listed(stamp);
        }
        for log in &mut self.logs {
            if log.read_to == format::HEADER_LEN && !has_pack_header(&log.file) {
                continue; // not (yet) a log: fsck reports it
            }
            log.catch_up()?;
        }
        Ok(())
    }

    fn refresh_packs(&mut self, root: &Path, force: bool) -> Result<()> {
        let dir = root.join(layout::PACKS);
        let stamp = dir_stamp(&dir)?;
        if !self.packs_dir.stale(stamp, force) {
            return Ok(());
        }
        // A consolidation renames its pack in before it removes the packs it merged: a pack
        // that vanished between the listing and its opening means a newer pack is there, which
        // a second listing finds (a few tries; then what was found is used, and the next
        // lookup that misses looks again).
        for _ in 0..4 {
            let names = crate::FsBackend::list_dir(&dir)?;
            let listed: Vec<Id> = names
                .iter()
                .filter_map(|n| layout::parse_pack_name(n, "idx"))
                .filter(|id| {
                    names
                        .binary_search(&layout::pack_file_name(id, "pack"))
                        .is_ok()
                })
                .collect();
            let before = self.packs.len();
            self.packs.retain(|p| listed.binary_search(&p.name).is_ok());
            if self.packs.len() < before {
                self.midx = midx::Midx::build(&self.packs);
            }
            let mut vanished = false;
            for id in listed {
                if self.packs.iter().any(|p| p.name == id) {
                    continue;
                }
                // A damaged pack is reported by fsck and skipped here, so one bad file never
                // stops a store.
                match open_pack(root, &id, false) {
                    Ok(Some(p)) => self.add_pack(Arc::new(p)),
                    Ok(None) => vanished = true,
                    Err(e) => {
                        eprintln!("mandala: warning: {e} (the pack is skipped; run `mandala fsck`)")
                    }
                }
            }
            if !vanished {
                break;
            }
        }
        self.packs_dir.listed(stamp);
        Ok(())
    }

    /// Adds a pack this handle opened or sealed (once).
    /// Forgets where the last lookups found things (see `recent_calls`).
    fn forget_recent(&mut self) {
        self.recent_calls = None;
        self.recent_value = None;
    }

    pub(crate) fn add_pack(&mut self, pack: Arc<Pack>) {
        self.forget_recent();
        if self.packs.iter().any(|p| p.name == pack.name) {
            return;
        }
        self.midx.add(self.packs.len(), &pack);
        self.packs.push(pack);
    }

    /// The packs the multi-pack index does not cover, searched one by one.
    fn uncovered(&self) -> impl Iterator<Item = &Arc<Pack>> {
        self.midx.alone.iter().map(|&i| &self.packs[i])
    }

    fn sources(&self) -> impl Iterator<Item = &LogView> {
        self.own
            .as_ref()
            .map(|o| &o.view)
            .into_iter()
            .chain(&self.logs)
    }

    /// Whether value `cid` is in a log or pack this handle knows, remembering where for a
    /// [`Packs::find_value`] that follows.
    pub(crate) fn has_value(&mut self, cid: &Id) -> bool {
        let found = self.find_value(cid);
        let has = found.is_some();
        if let Some(f) = found {
            self.recent_value = Some((*cid, f));
        }
        has
    }

    /// Where value `cid` is, if in a log or pack this handle knows (and not found damaged):
    /// the first copy, logs first, then the largest packs (most likely to hold it).
    pub(crate) fn find_value(&self, cid: &Id) -> Option<Found> {
        self.locate_value(cid).map(At::to_found)
    }

    /// [`Packs::find_value`], borrowed from the packs.
    pub(crate) fn locate_value(&self, cid: &Id) -> Option<At<'_>> {
        let sound = |f: &At| {
            self.damaged.is_empty() || !self.damaged.contains(&(f.path.clone(), f.entry.offset))
        };
        if let Some((c, f)) = &self.recent_value {
            if c == cid && sound(&f.at()) {
                return Some(f.at());
            }
        }
        for log in self.sources() {
            if let Some(e) = log.value(cid) {
                let f = At::in_log(log, *e);
                if sound(&f) {
                    return Some(f);
                }
            }
        }
        let covered = self
            .midx
            .candidates(midx::Table::Values, &cid.0)
            .filter_map(|(pack, row)| {
                let p = &self.packs[pack];
                let e = p.candidate(Table::Values, row, &EntryId::Value(*cid))?;
                Some(At::for_lookup(p, e))
            })
            .find(sound);
        covered.or_else(|| {
            self.uncovered().find_map(|p| {
                p.find_value(cid)
                    .map(|e| At::for_lookup(p, e))
                    .filter(sound)
            })
        })
    }

    /// Where call `name` is, if in a log or pack this handle knows.
    pub(crate) fn find_call(&self, name: &CallName) -> Option<Found> {
        self.locate_call(name).map(At::to_found)
    }

    /// [`Packs::find_call`], borrowed from the packs.
    pub(crate) fn locate_call(&self, name: &CallName) -> Option<At<'_>> {
        if let Some((key, found)) = &self.recent_calls {
            if *key == name.key {
                if let Some((_, f)) = found.iter().find(|(n, _)| n == name) {
                    return Some(f.at());
                }
            }
        }
        for log in self.sources() {
            if let Some(e) = log.call(name) {
                return Some(At::in_log(log, *e));
            }
        }
        let covered = self
            .midx
            .candidates(midx::Table::Calls, &name.key.0)
            .find_map(|(pack, row)| {
                let p = &self.packs[pack];
                let e = p.call(row)?;
                (e.id == EntryId::Call(*name)).then(|| At::for_lookup(p, e))
            });
        covered.or_else(|| {
            self.uncovered()
                .find_map(|p| p.find_call(name).map(|e| At::for_lookup(p, e)))
        })
    }

    /// The names of the records under call key `key` in the logs and packs this handle knows,
    /// remembering where each is for a [`Packs::find_call`] that follows (a lookup reads the
    /// record it is after next).
    pub(crate) fn calls_of(&mut self, key: &Id, out: &mut Vec<CallName>) {
        // The last list's room, reused (this runs for every call a program makes).
        let mut located = self
            .recent_calls
            .take()
            .map(|(_, mut v)| {
                v.clear();
                v
            })
            .unwrap_or_default();
        for log in self.sources() {
            located.extend(log.key_entries(key).filter_map(|e| match e.id {
                EntryId::Call(n) => Some((n, At::in_log(log, *e).to_found())),
                _ => None,
            }));
        }
        for (pack, row) in self.midx.candidates(midx::Table::Calls, &key.0) {
            let p = &self.packs[pack];
            if let Some(e) = p.call(row) {
                if let EntryId::Call(n) = e.id {
                    if n.key == *key {
                        located.push((n, At::for_lookup(p, e).to_found()));
                    }
                }
            }
        }
        for p in self.uncovered() {
            located.extend(
                p.calls_of(key)
                    .map(|(n, e)| (n, At::for_lookup(p, e).to_found())),
            );
        }
        out.extend(located.iter().map(|(n, _)| *n));
        self.recent_calls = Some((*key, located));
    }

    /// Every call name in the logs and packs this handle knows (unsorted, may repeat).
    pub(crate) fn all_calls(&mut self, out: &mut Vec<CallName>) {
        for log in self.sources() {
            out.extend(log.call_names());
        }
        // Packs never change: their names are listed once per set of packs (a whole-store
        // query asks before each step, and reading a name from a version-2 pack parses the
        // entry's header).
        let known = &self.pack_calls;
        if known.packs.len() != self.packs.len()
            || known
                .packs
                .iter()
                .zip(&self.packs)
                .any(|(n, p)| *n != p.name)
        {
            let mut names = Vec::new();
            for p in &self.packs {
                names.extend((0..p.idx.n_calls()).filter_map(|i| match p.call(i)?.id {
                    EntryId::Call(n) => Some(n),
                    _ => None,
                }));
            }
            names.sort_unstable();
            names.dedup();
            self.pack_calls = PackCalls {
                packs: self.packs.iter().map(|p| p.name).collect(),
                names,
            };
        }
        out.extend_from_slice(&self.pack_calls.names);
    }

    /// The names of the calls in the logs this handle knows, its own included (unsorted).
    pub(crate) fn logged_call_names(&self) -> Vec<CallName> {
        self.sources().flat_map(|log| log.call_names()).collect()
    }

    /// For each call entry of each pack this handle knows, `add(acc, name, op)`, reading
    /// only the op at the start of each record ([`with_op`]); the packs' rows are split into
    /// runs read on all cores, each into an accumulator made by `new`, returned in order.
    /// A call in several packs is met in each.
    pub(crate) fn each_packed_call_op<A: Send>(
        &self,
        new: impl Fn() -> A + Sync,
        add: impl Fn(&mut A, &CallName, &str) + Sync,
    ) -> Result<Vec<A>> {
        const RUN: usize = 1 << 14;
        let runs: Vec<(&Arc<Pack>, std::ops::Range<usize>)> = self
            .packs
            .iter()
            .flat_map(|p| {
                let n = p.idx.n_calls();
                (0..n.div_ceil(RUN)).map(move |r| (p, r * RUN..n.min((r + 1) * RUN)))
            })
            .collect();
        store_core::par::try_map(&runs, 2, |(p, rows)| {
            let mut acc = new();
            for i in rows.clone() {
                let Some(
                    e @ Located {
                        id: EntryId::Call(name),
                        ..
                    },
                ) = p.call(i)
                else {
                    return Err(Error::corrupt(
                        &*p.path,
                        format!("call row {i} of its index does not name a whole call entry of the pack"),
                    ));
                };
                with_op(At::for_lookup(p, e), |op| add(&mut acc, &name, op))?;
            }
            Ok(acc)
        })
    }

    /// Every value id in the logs and packs this handle knows (unsorted, may repeat).
    pub(crate) fn all_values(&self, out: &mut Vec<Id>) {
        for log in self.sources() {
            out.extend(log.value_ids());
        }
        for p in &self.packs {
            out.extend((0..p.idx.n_values()).filter_map(|i| match p.value(i)?.id {
                EntryId::Value(cid) => Some(cid),
                _ => None,
            }));
        }
    }
}

/// Maps an immutable pack file into memory; `None` if the system will not (then it is read
/// with `pread`).
pub(crate) fn map_pack(file: &File) -> Option<Arc<memmap2::Mmap>> {
    // Safety: packs are immutable once renamed into place (nothing in mandala writes to one)
    // and every entry is checked as it is read. A file another program truncates while it is
    // mapped makes this process fail with SIGBUS, as git's mapped packs do.
    unsafe { memmap2::Mmap::map(file) }.ok().map(Arc::new)
}

/// Opens the pack `id`: its index mapped into memory and its structure checked (and its hash
/// too if `check_hash`: `fsck`); `None` if either file is gone.
pub(crate) fn open_pack(root: &Path, id: &Id, check_hash: bool) -> Result<Option<Pack>> {
    let idx_path = layout::pack_path(root, id, "idx");
    let path = layout::pack_path(root, id, "pack");
    open_pack_at(&idx_path, path, id, check_hash)
}

/// [`open_pack`] of the files `idx_path` and `path` (a pack not yet in place: fetched).
pub(crate) fn open_pack_at(
    idx_path: &Path,
    path: PathBuf,
    id: &Id,
    check_hash: bool,
) -> Result<Option<Pack>> {
    let idx_path = idx_path.to_path_buf();
    let Some((idx_file, _)) = crate::open::open_regular(&idx_path)? else {
        return Ok(None);
    };
    // Safety: pack indexes are immutable once renamed into place (nothing in mandala writes
    // to one), and are checked as they are read. A file another program truncates while it
    // is mapped makes this process fail with SIGBUS, as git's mapped packs do.
    let map =
        unsafe { memmap2::Mmap::map(&idx_file) }.map_err(|e| Error::io("map", &idx_path, e))?;
    let idx = format::Idx::open(format::IdxBytes::Mapped(map))
        .map_err(|reason| Error::corrupt(&idx_path, reason))?;
    if check_hash {
        idx.check_hash(id)
            .map_err(|reason| Error::corrupt(&idx_path, reason))?;
    }
    let Some((file, size)) = crate::open::open_regular(&path)? else {
        return Ok(None);
    };
    Ok(Some(Pack::new(*id, path, Arc::new(file), idx, size)))
}

/// `f` of the op of the call entry `found`, read from the first bytes of its record
/// ([`store_core::format::record::op_of`]): the record is neither decoded nor checked
/// against its id (counting calls by op does not need it; `fsck` checks them).
pub(crate) fn with_op<R>(found: At<'_>, f: impl FnOnce(&str) -> R) -> Result<R> {
    with_entry_bytes(found, |buf| {
        let record = unframed(&found.entry, checked_frame(found, buf)?, found.path)?;
        let op = store_core::format::record::op_of(&record).ok_or_else(|| {
            Error::corrupt(
                found.path,
                format!(
                    "entry at offset {}: not a call record (no op name where a record starts)",
                    found.entry.offset
                ),
            )
        })?;
        Ok(f(op))
    })
}

/// The content of the entry `found`, decompressed and checked against its id.
pub(crate) fn read_entry(found: At<'_>) -> Result<Vec<u8>> {
    read_entry_with(found, |e, stored, check| {
        entry_content(e, stored, found.commits.map(|c| &**c), found.path, check)
    })
}

/// The record of the call entry `found`, checked as [`read_entry`] checks it, with its
/// canonical CBOR when reading made it (to check it, or because the entry holds it): a
/// compact record served from a trusted pack is expanded, and neither encoded nor hashed.
pub(crate) fn read_record(found: At<'_>) -> Result<(CallRecord, Option<Vec<u8>>)> {
    read_entry_with(found, |e, stored, check| {
        record_content(e, stored, found.commits.map(|c| &**c), found.path, check)
    })
}

/// The content of the entry `found`, made by `decode` from the bytes it stores (and
/// whether to check them against its id: unless its pack is trusted).
fn read_entry_with<T>(
    found: At<'_>,
    decode: impl FnOnce(&Located, &[u8], bool) -> Result<T>,
) -> Result<T> {
    with_entry_bytes(found, |buf| check_entry(found, buf, decode))
}

/// `f` of the bytes of the entry `found` (header and frame): from the pack's mapping, or
/// read from its file.
fn with_entry_bytes<T>(found: At<'_>, f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let At {
        file, path, entry, ..
    } = found;
    let len = entry.id.header_len() + entry.len as usize;
    let cut_short = || {
        Error::corrupt(
            path,
            format!(
                "entry at offset {} is cut short (truncated file?)",
                entry.offset
            ),
        )
    };
    if let Some(map) = found.map {
        let at = entry.offset as usize;
        return f(map.get(at..at + len).ok_or_else(cut_short)?);
    }
    let mut buf = vec![0u8; len];
    read_exact_at(file, &mut buf, entry.offset).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            cut_short()
        } else {
            Error::io("read", path, e)
        }
    })?;
    f(&buf)
}

/// The frame of the entry `found` in `buf`, its bytes, once its header is checked against
/// the index's.
fn checked_frame<'b>(found: At<'_>, buf: &'b [u8]) -> Result<&'b [u8]> {
    let At { path, entry, .. } = found;
    let at_offset = |reason: String| {
        Error::corrupt(path, format!("entry at offset {}: {reason}", entry.offset))
    };
    match format::parse_entry(buf, entry.offset, entry.offset, entry_version(&entry)) {
        Ok(Some(e)) if e == entry => Ok(&buf[entry.id.header_len()..]),
        Ok(_) => Err(at_offset("does not match the pack's index".into())),
        Err(reason) => Err(at_offset(reason)),
    }
}

/// The content of the entry `found` from `buf`, its bytes (header and frame), decompressed
/// and checked: the header against the index, the content against its id.
fn check_entry<T>(
    found: At<'_>,
    buf: &[u8],
    decode: impl FnOnce(&Located, &[u8], bool) -> Result<T>,
) -> Result<T> {
    let At { path, entry, .. } = found;
    let at_offset = |reason: String| {
        Error::corrupt(path, format!("entry at offset {}: {reason}", entry.offset))
    };
    let frame = checked_frame(found, buf)?;
    let trust = found.trust;
    let trusted = trust.filter(|t| t.trusted());
    if let Some(t) = trusted {
        t.trusted_reads.0.fetch_add(1, Ordering::Relaxed);
    }
    let content = decode(&entry, frame, trusted.is_none())
        .map_err(|e| at_offset(crate::verify::reason_of(e)))?;
    if let (None, Some(t), Some(map)) = (trusted, trust, found.map) {
        t.checked_entry(buf.len(), map);
    }
    Ok(content)
}

/// An entry to write: what it is found by, how its content is stored, the content.
pub(crate) type NewEntry = (EntryId, Enc, Vec<u8>);

/// How a pack or log of version 2 stores `bytes` (a value's canonical CBOR, a compact
/// record, a commit): as they are under [`blob::RAW_ENTRY_MAX`] bytes (zstd does not shrink a
/// few hundred bytes that are mostly hashes, and a frame around them costs 9 more), else
/// compressed at `level` if that makes them smaller.
pub(crate) fn encode_v2(bytes: &[u8], level: i32) -> Result<(Enc, Vec<u8>)> {
    if bytes.len() < blob::RAW_ENTRY_MAX {
        return Ok((Enc::Raw, bytes.to_vec()));
    }
    let z = blob::compress(bytes, level)?;
    Ok(if z.len() < bytes.len() {
        (Enc::Zstd, z)
    } else {
        (Enc::Raw, bytes.to_vec())
    })
}

/// How a pack or log of `version` stores a value whose canonical CBOR is `cbor`.
pub(crate) fn encode_value(version: u32, cbor: &[u8], level: i32) -> Result<(Enc, Vec<u8>)> {
    if version == format::V1 {
        Ok((Enc::V1, blob::compress_entry(cbor, level)?))
    } else {
        encode_v2(cbor, level)
    }
}

/// The entries that store object `id` (whose canonical CBOR is `cbor`; for a call, the
/// record, if the caller has it decoded) in a pack or log of `version`, appended to `out`. In
/// version 2 a record is stored in its compact form, numbering its commit in `commits`; a
/// commit new to the table gets its own entry first.
pub(crate) fn encode_object(
    version: u32,
    level: i32,
    id: EntryId,
    cbor: &[u8],
    record: Option<&CallRecord>,
    commits: &mut CommitTable,
    out: &mut Vec<NewEntry>,
) -> Result<()> {
    let EntryId::Call(name) = id else {
        let (enc, content) = encode_value(version, cbor, level)?;
        out.push((id, enc, content));
        return Ok(());
    };
    if version == format::V1 {
        out.push((id, Enc::V1, blob::compress_entry(cbor, level)?));
        return Ok(());
    }
    let decoded;
    let record = match record {
        Some(r) => r,
        None => {
            decoded = CallRecord::from_cbor(cbor).map_err(|e| {
                Error::corrupt(format!("call record {}", name.rid.short(12)), e.to_string())
            })?;
            &decoded
        }
    };
    let known = commits.list().len();
    let compact = record.to_compact_with_hid(commits, &name.hid);
    if let Some(commit) = commits.list().get(known) {
        let (enc, content) = encode_v2(commit.as_bytes(), level)?;
        out.push((EntryId::Commit, enc, content));
    }
    let (enc, content) = encode_v2(&compact, level)?;
    out.push((id, enc, content));
    Ok(())
}

/// The version of the pack or log an entry of this encoding is in.
fn entry_version(e: &Located) -> u32 {
    if e.enc == Enc::V1 {
        format::V1
    } else {
        format::V2
    }
}

/// The canonical content of entry `e` (a value's CBOR, a record's canonical CBOR) from the
/// bytes it stores after its header (`stored`, read from `path`): decompressed if a frame, a
/// compact record expanded (its commit numbered in `commits`), and checked to hash to its id
/// if `check`.
pub(crate) fn entry_content(
    e: &Located,
    stored: &[u8],
    commits: Option<&CommitTable>,
    path: &Path,
    check: bool,
) -> Result<Vec<u8>> {
    if e.is_compact_record() {
        let (record, bytes) = record_content(e, stored, commits, path, check)?;
        return Ok(bytes.unwrap_or_else(|| record.to_cbor()));
    }
    let bytes = unframed(e, stored, path)?.into_owned();
    if let (true, Some((kind, want))) = (check, e.id.content_id()) {
        check_hash(kind, &want, &bytes, path)?;
    }
    Ok(bytes)
}

/// The bytes entry `e` stands for, from those it stores (`stored`): decompressed if a frame.
fn unframed<'a>(e: &Located, stored: &'a [u8], path: &Path) -> Result<std::borrow::Cow<'a, [u8]>> {
    Ok(if e.enc.framed() {
        blob::decompress(stored, path, MAX_ENTRY)?.into()
    } else {
        stored.into()
    })
}

/// Checks that `bytes` (read from `path`) hash to `want` as an object of `kind`.
fn check_hash(kind: store_core::Kind, want: &Id, bytes: &[u8], path: &Path) -> Result<()> {
    let actual = Id::hash(kind, bytes);
    if actual != *want {
        return Err(Error::corrupt(
            path,
            format!("content hashes to {actual}, not to {want}"),
        ));
    }
    Ok(())
}

/// [`entry_content`] of a call record entry, as the record (and its canonical CBOR when
/// made: a version-1 entry's, or a compact one's that was checked).
pub(crate) fn record_content(
    e: &Located,
    stored: &[u8],
    commits: Option<&CommitTable>,
    path: &Path,
    check: bool,
) -> Result<(CallRecord, Option<Vec<u8>>)> {
    let EntryId::Call(name) = e.id else {
        return Err(Error::corrupt(path, "not a call record entry"));
    };
    if !e.enc.compact() {
        let bytes = entry_content(e, stored, commits, path, check)?;
        let record = CallRecord::from_cbor(&bytes)
            .map_err(|err| Error::corrupt(path, format!("not a call record: {err}")))?;
        return Ok((record, Some(bytes)));
    }
    let compact = unframed(e, stored, path)?;
    let none = CommitTable::default();
    let record = CallRecord::from_compact(&compact, commits.unwrap_or(&none), Some(&name.hid))
        .map_err(|err| Error::corrupt(path, err.to_string()))?;
    if !check {
        return Ok((record, None));
    }
    let bytes = record.to_cbor();
    check_hash(store_core::Kind::CallRecord, &name.rid, &bytes, path)?;
    Ok((record, Some(bytes)))
}

/// The text of commit entry `e` from the bytes it stores after its header.
pub(crate) fn commit_text(e: &Located, stored: &[u8], path: &Path) -> Result<String> {
    String::from_utf8(unframed(e, stored, path)?.into_owned())
        .map_err(|_| Error::corrupt(path, "a commit that is not UTF-8 text"))
}

/// The stored bytes (after its header) of the entry `found` (consolidation copies them
/// as they are when it can).
pub(crate) fn read_stored(found: At<'_>) -> Result<Vec<u8>> {
    let (at, len) = (found.entry.frame_at(), found.entry.len as usize);
    if let Some(map) = found.map {
        return map
            .get(at as usize..at as usize + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::corrupt(
                    found.path,
                    format!("entry at offset {} is cut short", found.entry.offset),
                )
            });
    }
    let mut buf = vec![0u8; len];
    read_exact_at(found.file, &mut buf, at).map_err(|e| Error::io("read", found.path, e))?;
    Ok(buf)
}

/// The value and call counts in the header of the index at `path` (unchecked: for `status`).
pub(crate) fn idx_counts(path: &Path) -> Option<(u64, u64)> {
    let (file, _) = crate::open::open_regular(path).ok()??;
    let mut head = [0u8; format::IDX_HEAD_V1];
    read_exact_at(&file, &mut head, 0).ok()?;
    if &head[..12] != format::IDX_MAGIC {
        return None;
    }
    Some((
        u64::from_le_bytes(head[48..56].try_into().ok()?),
        u64::from_le_bytes(head[56..64].try_into().ok()?),
    ))
}

/// The whole value and call entries of the log at `path`, by their headers (for `status`).
pub(crate) fn log_counts(path: &Path) -> (u64, u64) {
    let Ok(Some((file, _))) = crate::open::open_regular(path) else {
        return (0, 0);
    };
    if !has_pack_header(&file) {
        return (0, 0);
    }
    let mut view = LogView::new(String::new(), path.to_path_buf(), Arc::new(file));
    if view.catch_up().is_err() {
        return (0, 0);
    }
    let (values, calls) = view.counts();
    (values as u64, calls as u64)
}

fn has_pack_header(file: &File) -> bool {
    let mut h = [0u8; 16];
    read_exact_at(file, &mut h, 0).is_ok() && format::header_version(&h).is_some()
}

fn dir_stamp(dir: &Path) -> Result<Option<Stamp>> {
    match fs::metadata(dir) {
        Ok(m) => Ok(Some(Stamp::of(&m))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat", dir, e)),
    }
}
