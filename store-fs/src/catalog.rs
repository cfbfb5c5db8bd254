//! The catalog: what this process knows of what the store holds — the listing of each call
//! shard directory (with the directory's stamp, so a change by another process is seen) and
//! the call index (`index/calls`, see the `index` module), behind one lock.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::MutexGuard;

use store_core::{CallName, Error, Id, Kind, Result};

use crate::index::{self, Stamp};
use crate::{layout, write, Durability, FsBackend};

/// What this process knows of the store: one lock for both parts, which most operations
/// touch together.
#[derive(Default)]
pub(crate) struct Catalog {
    /// What this process knows of each call shard directory (see [`ShardCache`]).
    pub(crate) shards: Vec<Option<ShardCache>>,
    /// The call index, loaded by the first whole-store query.
    pub(crate) index: IndexState,
}

impl Catalog {
    pub(crate) fn new() -> Catalog {
        Catalog {
            shards: (0..256).map(|_| None).collect(),
            index: IndexState::default(),
        }
    }
}

/// This process's copy of the call index (see the `index` module).
#[derive(Default)]
pub(crate) struct IndexState {
    pub(crate) loaded: bool,
    /// The shard stamps of the file as read or last written.
    pub(crate) file_shards: Vec<Option<Stamp>>,
    /// The file's records of each trusted shard, to seed listings.
    pub(crate) file_listing: Vec<Vec<CallName>>,
    /// Canonical CBOR of the records known, by full name, each with its call's content id
    /// (computed once, when first indexed).
    pub(crate) records: index::Section<CallName>,
    /// Canonical CBOR of small values.
    pub(crate) values: index::Section<Id>,
    /// Whether `records` or `values` changed since the file was read or written.
    pub(crate) dirty: bool,
    /// Whether a shard was listed again (its stamp may differ from the file's).
    pub(crate) relisted: bool,
}

/// The listing of one call shard directory: the full names of its records, and the
/// directory's stamp when it was listed. A lookup that finds nothing re-lists the
/// shard if the directory changed since (another process added calls).
///
/// File systems stamp directories with a coarse clock (a few milliseconds), so a listing made
/// while the directory was still changing may share its stamp with a later change. Such a
/// listing is not trusted: it is redone at every need until the directory has been quiet for
/// [`QUIET`] when listed.
///
/// **This process's own writes** change the directory's stamp too. Re-listing after each of
/// them would make every new call cost a listing of its shard (O(N) per call); instead, a
/// record this process renames into a shard whose stamp was, just before, the one the listing
/// knew is added to the listing, which takes the new stamp. A record another process renames
/// into the same directory in the same instant (between the two stats, or in the same clock
/// tick) could then go unseen; so a listing is trusted for at most [`OWN_WRITES`] of this
/// process's writes into its shard, and then taken again. The cost of what it could hide is
/// one call computed twice, never a wrong answer.
pub(crate) struct ShardCache {
    stamp: Option<Stamp>,
    /// Whether the listing can be trusted while the stamp is unchanged: the directory had not
    /// changed for [`QUIET`] when it was listed, or the only changes since were this
    /// process's own writes (fewer than [`OWN_WRITES`]).
    settled: bool,
    /// How many of this process's writes the listing took in since it was listed.
    own_writes: u32,
    /// The records' full names, sorted and distinct (so the listing of the whole store comes
    /// out sorted, and a call key's records are a range). A vector: a shard holds 1/256 of the
    /// store, and listings are built far more often than changed.
    names: Vec<CallName>,
}

/// How long a shard directory must have been unchanged for its listing to be trusted.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// How many of its own writes into a shard a process takes into its listing before it lists
/// the shard again (see [`ShardCache`]): bounds what a coincidence with another writer could
/// hide, at 1/64 of a listing per new call.
const OWN_WRITES: u32 = 64;

impl ShardCache {
    /// Whether this listing still describes the directory whose modification time is now
    /// `stamp`.
    fn current(&self, stamp: Option<Stamp>) -> bool {
        // A shard directory that did not exist and still does not holds no records (a format-2
        // store has none): no need to look again until it appears.
        stamp == self.stamp && (stamp.is_none() || self.settled)
    }

    fn from_names(stamp: Option<Stamp>, settled: bool, mut names: Vec<CallName>) -> ShardCache {
        if !names.is_sorted() {
            names.sort_unstable();
        }
        names.dedup();
        ShardCache {
            stamp,
            settled,
            own_writes: 0,
            names,
        }
    }

    /// Takes in a record this process has just renamed into the shard: the directory's stamp
    /// was `before` just before the rename and `after` just after. If `before` is the stamp
    /// the listing knew, the only change since is this one (see the type's docs), and the
    /// listing stays trusted with the new stamp, for at most [`OWN_WRITES`] such writes.
    pub(crate) fn own_write(
        &mut self,
        name: CallName,
        before: Option<Stamp>,
        after: Option<Stamp>,
    ) {
        self.insert(name);
        if self.stamp == before && after.is_some() {
            self.stamp = after;
            self.own_writes += 1;
            self.settled = self.own_writes < OWN_WRITES;
        }
    }

    /// Whether the listing is exactly a listing of the directory, settled, with nothing taken
    /// in since: only such a stamp may be written into the call index file for other
    /// processes to trust.
    fn pure(&self) -> bool {
        self.settled && self.own_writes == 0
    }

    pub(crate) fn insert(&mut self, name: CallName) {
        if let Err(at) = self.names.binary_search(&name) {
            self.names.insert(at, name);
        }
    }

    pub(crate) fn remove(&mut self, name: &CallName) {
        if let Ok(at) = self.names.binary_search(name) {
            self.names.remove(at);
        }
    }

    /// The names of the records filed under call key `key`, sorted.
    pub(crate) fn calls_of(&self, key: &Id) -> Vec<CallName> {
        let start = self.names.partition_point(|n| n.key < *key);
        self.names[start..]
            .iter()
            .take_while(|n| n.key == *key)
            .copied()
            .collect()
    }
}

impl FsBackend {
    /// The catalog, locked.
    pub(crate) fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.inner.catalog.lock().unwrap()
    }

    /// The call index as the file `index/calls` has it (empty if there is none).
    fn read_index_file(&self) -> IndexState {
        let file = index::load(&self.index_path()).unwrap_or_default();
        let mut listing = vec![Vec::new(); 256];
        let mut shards = file.shards;
        shards.resize(256, None);
        // The file lists records sorted, so each shard's come out sorted.
        for name in file.records.file_keys() {
            let shard = name.key.0[0] as usize;
            if shards[shard].is_some() {
                listing[shard].push(name);
            }
        }
        IndexState {
            loaded: true,
            file_shards: shards,
            file_listing: listing,
            records: file.records,
            values: file.values,
            dirty: false,
            relisted: false,
        }
    }

    /// Drops a value from this process's call index, if loaded (the value is being removed;
    /// a copy left in an index file that no process loaded is checked like any other when
    /// served).
    pub(crate) fn forget_value(&self, cid: &Id) {
        let mut cat = self.catalog();
        if cat.index.loaded && cat.index.values.remove(cid) {
            cat.index.dirty = true;
        }
    }

    /// Keeps a small value in the call index, if this process has loaded it.
    pub(crate) fn index_small_value(&self, cid: &Id, cbor: &[u8]) {
        if cbor.len() <= index::SMALL_VALUE {
            let mut cat = self.catalog();
            let idx = &mut cat.index;
            if idx.loaded && !idx.values.contains_key(cid) {
                idx.values.insert(*cid, cbor, Id([0; 32]));
                idx.dirty = true;
            }
        }
    }

    /// Whether the call index's copy of value `cid` hashes to it (values there are at most
    /// [`index::SMALL_VALUE`] bytes: cheap to check every time one is served). A damaged copy
    /// is reported, dropped, and the value read from its file.
    pub(crate) fn index_value_sound(&self, cid: &Id, bytes: &[u8]) -> bool {
        if Id::hash(Kind::Value, bytes) == *cid {
            return true;
        }
        self.index_damaged(&format!("value {}", cid.short(12)));
        self.forget_value(cid);
        false
    }

    /// Reports a damaged entry of the call index; the entry is read from the store's files
    /// instead, and the index is rewritten by the next whole-store query.
    pub(crate) fn index_damaged(&self, what: &str) {
        eprintln!(
            "mandala: warning: {}: the call index's copy of {what} is damaged; read from the store's files instead (the index is rewritten)",
            self.index_path().display()
        );
        self.catalog().index.dirty = true;
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.inner.root.join(layout::INDEX).join("calls")
    }

    pub(crate) fn shard_stamp(&self, shard: u8) -> Result<Option<Stamp>> {
        let dir = layout::call_shard(&self.inner.root, shard);
        match fs::metadata(&dir) {
            Ok(m) => Ok(Some(Stamp::of(&m))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", dir, e)),
        }
    }

    /// Lists one call shard directory (its modification time first, so that a change during
    /// the listing shows as a newer time later).
    pub(crate) fn list_shard(&self, shard: u8) -> Result<ShardCache> {
        self.inner
            .listings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = self.shard_stamp(shard)?;
        let dir = layout::call_shard(&self.inner.root, shard);
        let shard_name = format!("{shard:02x}");
        let mut names = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(ShardCache::from_names(stamp, false, Vec::new()));
            }
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            // Names that are not records (`.DS_Store`, `name~`, rsync's `.name.XXXXXX` while
            // it copies into the store) are not ours: skipped here, reported by fsck.
            if let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| layout::parse_call_name(&shard_name, n))
            {
                names.push(name);
            }
        }
        let settled = stamp.is_some_and(|s| s.age() >= QUIET);
        Ok(ShardCache::from_names(stamp, settled, names))
    }

    /// The names of the records filed under call key `key`, from this process's listing of
    /// its shard; the shard is listed again if it has none of them and the directory changed
    /// since (another process added calls), so a listing never hides a stored call for longer
    /// than one stat.
    pub(crate) fn records_of_key(&self, key: &Id) -> Result<Vec<CallName>> {
        let mut found = Vec::new();
        self.packed_records_of_key(key, false, &mut found)?;
        found.extend(self.loose_records_of_key(key)?);
        if found.is_empty() {
            self.packed_records_of_key(key, true, &mut found)?;
            if found.is_empty() && self.format() >= 2 {
                // (That look at the store may have found a calls/ directory just merged in.)
                found.extend(self.loose_records_of_key(key)?);
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    fn packed_records_of_key(&self, key: &Id, miss: bool, out: &mut Vec<CallName>) -> Result<()> {
        let mut packs = self.packs();
        packs.refresh(&self.inner.root, miss, false)?;
        packs.calls_of(key, out);
        Ok(())
    }

    /// [`Self::records_of_key`] among loose record files.
    fn loose_records_of_key(&self, key: &Id) -> Result<Vec<CallName>> {
        if self.format() >= 2 && !self.packs().loose_calls {
            return Ok(Vec::new()); // no calls/ directory (as of the last look at the store)
        }
        let shard = key.0[0];
        let mut cat = self.catalog();
        if let Some(cache) = &cat.shards[shard as usize] {
            let found = cache.calls_of(key);
            if !found.is_empty() || cache.current(self.shard_stamp(shard)?) {
                return Ok(found);
            }
        }
        let cache = self.list_shard(shard)?;
        let found = cache.calls_of(key);
        cat.shards[shard as usize] = Some(cache);
        Ok(found)
    }

    /// The name of every call record in the store, sorted: shards whose directory has not
    /// changed since this process (or the index file) listed them are not listed again.
    pub(crate) fn list_all_calls(&self) -> Result<Vec<CallName>> {
        // A format-3 store without a calls/ directory (one never merged with a format-1
        // store) has no loose record to list, and no use for the call index: its packs index
        // every record already, and serve them as fast as the index's copies (format 2's
        // packs compress each record: the index still saves decompressing them).
        let mut names = if self.may_have_loose_calls() {
            self.loose_call_names()?
        } else {
            Vec::new()
        };
        let loose = names.len();
        {
            let mut packs = self.packs();
            packs.refresh(&self.inner.root, true, false)?;
            packs.all_calls(&mut names);
        }
        if names.len() > loose {
            names.sort_unstable();
            names.dedup();
        }
        Ok(names)
    }

    /// Whether the store may hold loose call records: a store of format 1 or 2, or of format
    /// 3 with a `calls/` directory (one merged with a format-1 store).
    pub(crate) fn may_have_loose_calls(&self) -> bool {
        self.format() < 3 || self.inner.root.join(layout::CALLS).is_dir()
    }

    /// Forgets the listings of the call shard directories (after loose records were packed
    /// and removed): the next lookup lists them again.
    pub(crate) fn forget_listings(&self) {
        let cat = &mut *self.catalog();
        for s in cat.shards.iter_mut() {
            *s = None;
        }
    }

    /// The name of every loose call record file, sorted.
    pub(crate) fn loose_call_names(&self) -> Result<Vec<CallName>> {
        let stamps =
            || -> Result<Vec<Option<Stamp>>> { (0..=255u8).map(|i| self.shard_stamp(i)).collect() };
        let mut cat = self.catalog();
        let stamps = if cat.index.loaded {
            stamps()?
        } else {
            // A first query: the shard directories are stamped while the index file is read
            // and checked, its two slow steps, on two cores.
            let (index, stamps) = std::thread::scope(|s| {
                let stamping = s.spawn(stamps);
                let index = self.read_index_file();
                (index, stamping.join().expect("stamping does not panic"))
            });
            cat.index = index;
            stamps?
        };
        let cat = &mut *cat;
        let (shards, idx) = (&mut cat.shards, &mut cat.index);
        let mut changed = false;
        for shard in 0..=255u8 {
            let slot = &mut shards[shard as usize];
            let stamp = stamps[shard as usize];
            let fresh = match slot {
                Some(cache) => cache.current(stamp),
                None => false,
            };
            if !fresh {
                changed = true;
                let from_file = idx.file_listing.get_mut(shard as usize).map(std::mem::take);
                *slot = Some(match (idx.file_shards[shard as usize], from_file) {
                    (Some(s), Some(names)) if Some(s) == stamp => {
                        ShardCache::from_names(stamp, true, names)
                    }
                    // No such directory (a packed store has none): no loose records, nothing
                    // to list, and nothing the index file would learn.
                    _ if stamp.is_none() => ShardCache::from_names(None, true, Vec::new()),
                    _ => {
                        idx.relisted = true;
                        self.list_shard(shard)?
                    }
                });
            }
        }
        if changed {
            // Seeded listings are the file's: its copy is no longer needed.
            idx.file_listing = Vec::new();
        }
        // Shards in order, each sorted: the whole listing is sorted.
        let n = shards.iter().flatten().map(|c| c.names.len()).sum();
        let mut out = Vec::with_capacity(n);
        for cache in shards.iter().flatten() {
            out.extend_from_slice(&cache.names);
        }
        Ok(out)
    }

    /// Writes the call index file if this process learned something since it was read or
    /// written. Never fails: a cache that cannot be written (read-only store, full disk)
    /// costs only speed.
    pub(crate) fn write_index(&self) {
        // Packed records are kept in the index too (a query then reads one file, not one
        // entry of a pack per record); they are found by name from the packs' own listings,
        // so a shard that holds any is never marked trusted (its stamp vouches for loose
        // files only).
        {
            let cat = self.catalog();
            if !cat.index.loaded || (!cat.index.dirty && !cat.index.relisted) {
                return; // nothing learned: nothing to list either
            }
        }
        let mut packed = Vec::new();
        self.packs().all_calls(&mut packed);
        packed.sort_unstable();
        packed.dedup();
        let cat = &mut *self.catalog();
        let (shards, idx) = (&cat.shards, &mut cat.index);
        if !idx.loaded || (!idx.dirty && !idx.relisted) {
            return;
        }
        let mut stamps = vec![None; 256];
        let mut records: Vec<(CallName, &[u8], Id)> = Vec::new();
        let mut names: Vec<CallName> = Vec::new();
        for (i, cache) in shards.iter().enumerate() {
            let start = packed.partition_point(|n| (n.key.0[0] as usize) < i);
            let end = packed.partition_point(|n| (n.key.0[0] as usize) <= i);
            let in_packs = &packed[start..end];
            names.clear();
            names.extend_from_slice(in_packs);
            if let Some(cache) = cache {
                names.extend_from_slice(&cache.names);
            }
            names.sort_unstable();
            names.dedup();
            records.extend(
                names
                    .iter()
                    .filter_map(|n| idx.records.get(n).map(|(b, cid)| (*n, b, cid))),
            );
            let Some(cache) = cache else { continue };
            let complete = cache.names.iter().all(|n| idx.records.contains_key(n));
            if cache.pure() && complete && in_packs.is_empty() {
                stamps[i] = cache.stamp;
            }
        }
        if !idx.dirty && stamps == idx.file_shards {
            return;
        }
        let Some(bytes) = index::encode(&stamps, &records, &idx.values.entries()) else {
            return;
        };
        drop(records);
        let path = self.index_path();
        let written = write::write_with(&self.inner.tmp, &path, Durability::Flush, |f, tmp| {
            f.write_all(&bytes).map_err(|e| Error::io("write", tmp, e))
        });
        if written.is_ok() {
            idx.file_shards = stamps;
            idx.dirty = false;
            idx.relisted = false;
        }
    }
}
