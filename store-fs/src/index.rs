//! The call index `index/calls`: a cache, in one file, of every call record and of the small
//! values, so that a new process answers whole-store queries (provenance, ComputationFrames)
//! without opening one file per call.
//!
//! The index is derived data: it is never needed, may be deleted at any time, and is ignored
//! by git (the store's `.gitignore`). A file that is missing, of another version, or damaged
//! (its trailing BLAKE3 hash does not match) is ignored and rebuilt.
//!
//! It is trusted shard by shard: with each call shard directory it keeps the directory's
//! stamp (modification and change times, inode) taken before the listing the index was made
//! from. A shard whose stamp is unchanged holds exactly the records the index lists for it;
//! any other shard is listed again (the records it still holds come from the index, keyed by
//! their full names, as records never change). A stamp is kept only for a listing made when
//! the directory had been quiet for a while (see `QUIET` in the crate root), so a change made
//! within the file system's clock tick after a listing is never hidden. `rsync -a` and
//! `git pull` change a directory's change time (which no tool can set), so merged stores
//! are always listed again.
//!
//! The file is used as read: its entry tables are sorted, and lookups search them in place
//! (interpolation on the keys' leading hash bytes; loading builds no map and copies no
//! record); what the process adds or removes afterwards is kept beside it (see [`Section`]).
//! Offsets are 32-bit: a store whose records and small values exceed 4 GiB (some 9 million
//! calls) gets no index file, and its queries read the record files.
//!
//! Layout (little-endian):
//! ```text
//! "mandala index 3\n"
//! 256 × shard:  u8 trusted, then if 1: 5 × u64 stamp
//! u64 n, n × record entry: key[32] hid[32] rid[32] cid[32] u32 offset u32 len   (sorted by name)
//! u64 m, m × value entry:  cid[32] u32 offset u32 len                            (sorted by cid)
//! u64 heap length, heap: the canonical CBOR of each record and value, at its entry's offset
//! BLAKE3 hash[32] of everything before it
//! ```
//! (A record entry's cid is the call's content id, which would otherwise be hashed anew.)

use std::fs;
use std::path::Path;
use std::sync::Arc;

use store_core::format::id::IdHasher;
use store_core::Id;

/// The file's first bytes (and version).
const MAGIC: &[u8; 16] = b"mandala index 3\n";

/// Values whose CBOR is at most this long are kept in the index.
pub(crate) const SMALL_VALUE: usize = 96;

/// A directory's identity and change stamps: a different stamp means it may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(pub [u64; 5]);

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Stamp([
                meta.mtime() as u64,
                meta.mtime_nsec() as u64,
                meta.ctime() as u64,
                meta.ctime_nsec() as u64,
                meta.ino(),
            ])
        }
        #[cfg(not(unix))]
        {
            let m = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .unwrap_or_default();
            Stamp([m.as_secs(), m.subsec_nanos() as u64, 0, 0, 0])
        }
    }

    /// How long ago the directory last changed (its modification time).
    pub(crate) fn age(&self) -> std::time::Duration {
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(self.0[0], self.0[1].min(999_999_999) as u32);
        std::time::SystemTime::now()
            .duration_since(changed)
            .unwrap_or_default()
    }
}

pub(crate) use store_core::CallName;

/// A key of an index section: a call's full name, or a value's content id.
pub(crate) trait Key: Copy + Ord + std::hash::Hash + 'static {
    /// Its length in an entry.
    const LEN: usize;
    /// Reads it from the first `LEN` bytes of `b`.
    fn read(b: &[u8]) -> Self;
    fn write(&self, out: &mut Vec<u8>);
    /// Its first 8 bytes as a number (big-endian, so ordered as the key).
    fn prefix(&self) -> u64;
}

fn id_at(b: &[u8], at: usize) -> Id {
    Id(b[at..at + 32].try_into().expect("32 bytes"))
}

impl Key for Id {
    const LEN: usize = 32;
    fn read(b: &[u8]) -> Id {
        id_at(b, 0)
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn prefix(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl Key for CallName {
    const LEN: usize = 96;
    fn read(b: &[u8]) -> CallName {
        CallName {
            key: id_at(b, 0),
            hid: id_at(b, 32),
            rid: id_at(b, 64),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        for id in [&self.key, &self.hid, &self.rid] {
            out.extend_from_slice(&id.0);
        }
    }
    fn prefix(&self) -> u64 {
        self.key.prefix()
    }
}

/// One section of the index (records, or small values): the file's entries (a sorted table
/// in the file's bytes, searched in place), with what was added and removed since. Each
/// entry has bytes and, for records, an id (the call's content id).
pub(crate) struct Section<K: Key> {
    file: Arc<Vec<u8>>,
    /// Where the entry table starts, how many entries it has, and the width of an entry's
    /// id (32 for records, 0 for values).
    table: usize,
    n: usize,
    aux: usize,
    heap: usize,
    added: std::collections::HashMap<K, (Box<[u8]>, Id), std::hash::BuildHasherDefault<IdHasher>>,
    removed: std::collections::HashSet<K, std::hash::BuildHasherDefault<IdHasher>>,
}

impl<K: Key> Section<K> {
    fn empty(aux: usize) -> Section<K> {
        Section {
            file: Arc::default(),
            table: 0,
            n: 0,
            aux,
            heap: 0,
            added: Default::default(),
            removed: Default::default(),
        }
    }

    fn width(&self) -> usize {
        K::LEN + self.aux + 8
    }

    fn entry(&self, i: usize) -> &[u8] {
        let w = self.width();
        &self.file[self.table + i * w..self.table + (i + 1) * w]
    }

    fn key_at(&self, i: usize) -> K {
        K::read(self.entry(i))
    }

    /// The bytes and id of entry `i` of the file.
    fn value_at(&self, i: usize) -> (&[u8], Id) {
        let e = self.entry(i);
        let at = K::LEN + self.aux;
        let off = u32::from_le_bytes(e[at..at + 4].try_into().expect("4 bytes")) as usize;
        let len = u32::from_le_bytes(e[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let aux = if self.aux == 32 {
            id_at(e, K::LEN)
        } else {
            Id([0; 32])
        };
        (&self.file[self.heap + off..self.heap + off + len], aux)
    }

    /// The first 8 bytes of entry `i`'s key, as a number (keys begin with a hash).
    fn prefix_at(&self, i: usize) -> u64 {
        u64::from_be_bytes(self.entry(i)[..8].try_into().expect("8 bytes"))
    }

    /// The entry of `k` in the file's table. Keys begin with a hash, so their first bytes are
    /// spread evenly: an interpolation search finds one in a few probes, where halving takes
    /// log2(n) cache misses; every other probe halves, which bounds the worst case.
    fn find(&self, k: &K) -> Option<usize> {
        let want = k.prefix();
        let (mut lo, mut hi) = (0, self.n);
        let mut halve = false;
        while lo < hi {
            let mid = if halve {
                lo + (hi - lo) / 2
            } else {
                let (a, b) = (self.prefix_at(lo), self.prefix_at(hi - 1));
                if want < a || want > b {
                    return None;
                }
                let span = u128::from(b - a).max(1);
                lo + (u128::from(want - a) * (hi - 1 - lo) as u128 / span) as usize
            };
            halve = !halve;
            match self.key_at(mid).cmp(k) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// What the changes made since loading say of `k`: `Some(entry, or None if removed)`, or
    /// `None` when the file decides.
    fn changed(&self, k: &K) -> Option<Option<(&[u8], Id)>> {
        if !self.added.is_empty() {
            if let Some((bytes, id)) = self.added.get(k) {
                return Some(Some((bytes, *id)));
            }
        }
        (!self.removed.is_empty() && self.removed.contains(k)).then_some(None)
    }

    /// The bytes and id under `k`.
    pub(crate) fn get(&self, k: &K) -> Option<(&[u8], Id)> {
        self.changed(k)
            .unwrap_or_else(|| self.find(k).map(|i| self.value_at(i)))
    }

    /// [`Section::get`] for many keys at once: when they are many and sorted (a listing),
    /// one walk along the table instead of a search each.
    pub(crate) fn get_many(&self, keys: &[K]) -> Vec<Option<(&[u8], Id)>> {
        if keys.len() < self.n / 16 || !keys.is_sorted() {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        let mut i = 0;
        keys.iter()
            .map(|k| {
                if let Some(v) = self.changed(k) {
                    return v;
                }
                while i < self.n && self.key_at(i) < *k {
                    i += 1;
                }
                (i < self.n && self.key_at(i) == *k).then(|| self.value_at(i))
            })
            .collect()
    }

    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    pub(crate) fn insert(&mut self, k: K, bytes: impl Into<Box<[u8]>>, id: Id) {
        self.removed.remove(&k);
        self.added.insert(k, (bytes.into(), id));
    }

    /// Removes `k`; whether it was there.
    pub(crate) fn remove(&mut self, k: &K) -> bool {
        let added = self.added.remove(k).is_some();
        let in_file = self.find(k).is_some() && self.removed.insert(*k);
        added || in_file
    }

    /// The keys of the file's entries, sorted (whatever was added or removed since).
    pub(crate) fn file_keys(&self) -> impl Iterator<Item = K> + '_ {
        (0..self.n).map(|i| self.key_at(i))
    }

    /// Every entry, sorted by key.
    pub(crate) fn entries(&self) -> Vec<(K, &[u8], Id)> {
        let mut out: Vec<(K, &[u8], Id)> = (0..self.n)
            .map(|i| (self.key_at(i), i))
            .filter(|(k, _)| !self.removed.contains(k) && !self.added.contains_key(k))
            .map(|(k, i)| {
                let (b, id) = self.value_at(i);
                (k, b, id)
            })
            .collect();
        out.extend(self.added.iter().map(|(k, (b, id))| (*k, &**b, *id)));
        out.sort_unstable_by_key(|e| e.0);
        out
    }

    /// The table of entries at `r`'s position (its count first); [`Section::check`] checks
    /// it once the heap is known, and the heap's start is set then.
    fn read(r: &mut Reader, file: &Arc<Vec<u8>>, aux: usize) -> Option<Section<K>> {
        let n = usize::try_from(r.u64()?).ok()?;
        let mut s = Section::empty(aux);
        s.file = file.clone();
        s.table = r.pos;
        s.n = n;
        r.take(n.checked_mul(s.width())?)?;
        Some(s)
    }

    /// Whether the table is sorted and every entry's bytes lie in a heap of `heap_len` bytes
    /// (a file whose hash matches was written by us, but a lookup must never panic).
    fn check(&self, heap_len: usize) -> Option<()> {
        for i in 0..self.n {
            if i > 0 && self.key_at(i - 1) >= self.key_at(i) {
                return None;
            }
            let e = self.entry(i);
            let at = K::LEN + self.aux;
            let off = u32::from_le_bytes(e[at..at + 4].try_into().ok()?) as usize;
            let len = u32::from_le_bytes(e[at + 4..at + 8].try_into().ok()?) as usize;
            (off.checked_add(len)? <= heap_len).then_some(())?;
        }
        Some(())
    }
}

impl Default for Section<CallName> {
    fn default() -> Self {
        Section::empty(32)
    }
}

impl Default for Section<Id> {
    fn default() -> Self {
        Section::empty(0)
    }
}

/// The contents of an index file.
pub(crate) struct IndexFile {
    pub shards: Vec<Option<Stamp>>,
    pub records: Section<CallName>,
    pub values: Section<Id>,
}

impl Default for IndexFile {
    fn default() -> IndexFile {
        IndexFile {
            shards: vec![None; 256],
            records: Section::default(),
            values: Section::default(),
        }
    }
}

/// Reads the index at `path`; `None` if it is missing, of another version or damaged.
pub(crate) fn load(path: &Path) -> Option<IndexFile> {
    // A cache: anything but a regular file of a sane size is ignored (and replaced when the
    // index is next written).
    let bytes = crate::open::read_small(path, 1 << 34, "the call index").ok()??;
    parse(Arc::new(bytes))
}

fn parse(file: Arc<Vec<u8>>) -> Option<IndexFile> {
    let bytes: &[u8] = &file;
    let body_len = bytes.len().checked_sub(32)?;
    let (body, hash) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != hash || !body.starts_with(MAGIC) {
        return None;
    }
    let mut r = Reader {
        buf: body,
        pos: MAGIC.len(),
    };
    let mut shards = Vec::with_capacity(256);
    for _ in 0..256 {
        shards.push(match r.u8()? {
            0 => None,
            _ => {
                let mut s = [0u64; 5];
                for x in &mut s {
                    *x = r.u64()?;
                }
                Some(Stamp(s))
            }
        });
    }
    let mut records = Section::<CallName>::read(&mut r, &file, 32)?;
    let mut values = Section::<Id>::read(&mut r, &file, 0)?;
    let heap_len = usize::try_from(r.u64()?).ok()?;
    let heap = r.pos;
    r.take(heap_len)?;
    (r.pos == body.len()).then_some(())?;
    records.check(heap_len)?;
    values.check(heap_len)?;
    records.heap = heap;
    values.heap = heap;
    Some(IndexFile {
        shards,
        records,
        values,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
}

/// The bytes of an index file: `shards` (256 stamps), the records and the values, each
/// sorted by key (as [`Section::entries`] gives them); `None` if they are too many for 32-bit
/// offsets.
pub(crate) fn encode(
    shards: &[Option<Stamp>],
    records: &[(CallName, &[u8], Id)],
    values: &[(Id, &[u8], Id)],
) -> Option<Vec<u8>> {
    let heap_len: usize = records.iter().map(|e| e.1.len()).sum::<usize>()
        + values.iter().map(|e| e.1.len()).sum::<usize>();
    if u32::try_from(heap_len).is_err() {
        return None;
    }
    let mut out = Vec::with_capacity(
        16 + 256 * 41 + 24 + records.len() * 136 + values.len() * 40 + heap_len + 32,
    );
    out.extend_from_slice(MAGIC);
    for s in shards {
        match s {
            None => out.push(0),
            Some(Stamp(s)) => {
                out.push(1);
                for x in s {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    let mut off = 0usize;
    let mut entry = |out: &mut Vec<u8>, len: usize| {
        out.extend_from_slice(&(off as u32).to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        off += len;
    };
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for (name, bytes, cid) in records {
        name.write(&mut out);
        out.extend_from_slice(&cid.0);
        entry(&mut out, bytes.len());
    }
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for (cid, bytes, _) in values {
        cid.write(&mut out);
        entry(&mut out, bytes.len());
    }
    out.extend_from_slice(&(heap_len as u64).to_le_bytes());
    for (_, bytes, _) in records {
        out.extend_from_slice(bytes);
    }
    for (_, bytes, _) in values {
        out.extend_from_slice(bytes);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name3(key: u8, hid: u8, rid: u8) -> CallName {
        CallName {
            key: Id([key; 32]),
            hid: Id([hid; 32]),
            rid: Id([rid; 32]),
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut shards = vec![None; 256];
        shards[7] = Some(Stamp([1, 2, 3, 4, 5]));
        let name = name3(1, 2, 3);
        let later = name3(1, 2, 4);
        let rec = vec![0xa0u8, 1, 2];
        let val = vec![0x01u8];
        let bytes = encode(
            &shards,
            &[
                (name, rec.as_slice(), Id([4; 32])),
                (later, [7u8].as_slice(), Id([5; 32])),
            ],
            &[(Id([9; 32]), val.as_slice(), Id([0; 32]))],
        )
        .expect("small enough");
        let mut back = parse(Arc::new(bytes.clone())).expect("parses");
        assert_eq!(back.shards, shards);
        let (r, cid) = back.records.get(&name).expect("record");
        assert_eq!((r, cid), (rec.as_slice(), Id([4; 32])));
        assert_eq!(back.records.get(&later).unwrap().0, [7]);
        assert_eq!(back.values.get(&Id([9; 32])).unwrap().0, val);
        assert!(back.values.get(&Id([8; 32])).is_none());
        assert_eq!(back.records.file_keys().collect::<Vec<_>>(), [name, later]);
        // Changes made since are seen, and kept in order by `entries`.
        assert!(back.records.remove(&name));
        assert!(!back.records.remove(&name));
        assert!(back.records.get(&name).is_none());
        let first = name3(0, 0, 0);
        back.records.insert(first, [8u8].as_slice(), Id([6; 32]));
        let keys: Vec<CallName> = back.records.entries().iter().map(|e| e.0).collect();
        assert_eq!(keys, [first, later]);
        for i in [0, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                parse(Arc::new(bad)).is_none(),
                "damage at byte {i} must be noticed"
            );
        }
        assert!(parse(Arc::new(bytes[..bytes.len() - 1].to_vec())).is_none());
        assert!(parse(Arc::new(Vec::new())).is_none());
    }
}
