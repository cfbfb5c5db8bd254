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
//! Layout (little-endian):
//! ```text
//! "mandala index 2\n"
//! 256 × shard:  u8 trusted, then if 1: 5 × u64 stamp
//! u64 n, n × record: key[32] hid[32] rid[32] cid[32] u32 len, canonical CBOR of the record
//!                    (cid: the call's content id, which would otherwise be hashed anew)
//! u64 n, n × value:  cid[32] u32 len, canonical CBOR of the value (≤ SMALL_VALUE bytes)
//! BLAKE3 hash[32] of everything before it
//! ```

use std::fs;
use std::path::Path;
use std::sync::Arc;

use store_core::{Id, IdMap, IdsMap};

/// The file's first bytes (and version).
const MAGIC: &[u8; 16] = b"mandala index 2\n";

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

/// A call's full name: (call key, hid, record id).
pub(crate) type CallName = (Id, Id, Id);

/// Bytes kept by the index: a slice of the file as read (no copy per entry), or bytes added
/// since.
#[derive(Clone)]
pub(crate) enum Blob {
    InFile(Arc<Vec<u8>>, usize, usize),
    Owned(Arc<[u8]>),
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::InFile(file, start, len) => &file[*start..*start + *len],
            Blob::Owned(b) => b,
        }
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Blob {
        Blob::Owned(v.into())
    }
}

impl From<&[u8]> for Blob {
    fn from(v: &[u8]) -> Blob {
        Blob::Owned(v.into())
    }
}

/// The contents of an index file.
#[derive(Default)]
pub(crate) struct IndexFile {
    pub shards: Vec<Option<Stamp>>,
    pub records: IdsMap<CallName, (Blob, Id)>,
    /// The records' names in the file's order (sorted).
    pub names: Vec<CallName>,
    pub values: IdMap<Blob>,
}

/// Reads the index at `path`; `None` if it is missing, of another version or damaged.
pub(crate) fn load(path: &Path) -> Option<IndexFile> {
    let bytes = fs::read(path).ok()?;
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
    let mut index = IndexFile::default();
    for _ in 0..256 {
        index.shards.push(match r.u8()? {
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
    let n = r.u64()? as usize;
    index.records.reserve(n.min(body.len() / 100));
    index.names.reserve(n.min(body.len() / 100));
    for _ in 0..n {
        let name = (r.id()?, r.id()?, r.id()?);
        let cid = r.id()?;
        let blob = r.blob(&file)?;
        index.records.insert(name, (blob, cid));
        index.names.push(name);
    }
    let n = r.u64()? as usize;
    index.values.reserve(n.min(body.len() / 36));
    for _ in 0..n {
        let cid = r.id()?;
        let blob = r.blob(&file)?;
        index.values.insert(cid, blob);
    }
    (r.pos == body.len()).then_some(index)
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
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    /// A length-prefixed byte string, as a slice of `file` (whose bytes this reader reads).
    fn blob(&mut self, file: &Arc<Vec<u8>>) -> Option<Blob> {
        let len = self.u32()? as usize;
        let start = self.pos;
        self.take(len)?;
        Some(Blob::InFile(file.clone(), start, len))
    }

    fn id(&mut self) -> Option<Id> {
        self.take(32).map(|b| Id(b.try_into().unwrap()))
    }
}

/// The bytes of an index file: `shards` (256 stamps), the records (sorted by name), the values
/// (sorted by cid).
pub(crate) fn encode<'a>(
    shards: &[Option<Stamp>],
    records: impl IntoIterator<Item = (&'a CallName, &'a Id, &'a [u8])>,
    values: impl IntoIterator<Item = (&'a Id, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 16);
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
    let mut records: Vec<(&CallName, &Id, &[u8])> = records.into_iter().collect();
    records.sort_unstable_by_key(|(n, _, _)| **n);
    out.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for ((k, h, r), cid, bytes) in records {
        for id in [k, h, r, cid] {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let mut values: Vec<(&Id, &[u8])> = values.into_iter().collect();
    values.sort_unstable_by_key(|(c, _)| **c);
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for (cid, bytes) in values {
        out.extend_from_slice(&cid.0);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut shards = vec![None; 256];
        shards[7] = Some(Stamp([1, 2, 3, 4, 5]));
        let name = (Id([1; 32]), Id([2; 32]), Id([3; 32]));
        let rec = vec![0xa0u8, 1, 2];
        let val = vec![0x01u8];
        let bytes = encode(
            &shards,
            [(&name, &Id([4; 32]), rec.as_slice())],
            [(&Id([9; 32]), val.as_slice())],
        );
        let back = parse(Arc::new(bytes.clone())).expect("parses");
        assert_eq!(back.shards, shards);
        assert_eq!(*back.records[&name].0, *rec);
        assert_eq!(back.records[&name].1, Id([4; 32]));
        assert_eq!(*back.values[&Id([9; 32])], *val);
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
