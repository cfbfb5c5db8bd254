//! The bytes of packs, logs and pack indexes (docs/FORMAT.md §9): entry headers, the `.idx`
//! tables and their lookups. No I/O here.
//!
//! ```text
//! pack / log:  "mandala-pack" u32 version(1)            16-byte header
//!              entries, back to back:
//!                u8 kind (1 value, 2 call record)
//!                value: cid[32]    record: key[32] hid[32] rid[32]
//!                u32 frame length, then one zstd frame of canonical CBOR (a format-1 blob)
//! .idx:        "mandala-idx\n" u32 version(1)
//!              pack hash[32]  (BLAKE3 of the whole .pack file)
//!              u64 values, u64 calls
//!              values × (cid[32] u64 offset u32 length)                  sorted by cid
//!              calls  × (key[32] hid[32] rid[32] u64 offset u32 length)  sorted by name
//!              BLAKE3[32] of everything before it: the pack's name
//! ```
//! Integers are little-endian; an offset is where the entry starts in the pack, a length its
//! frame's.

use store_core::{CallName, Id};

/// The first bytes of a pack and of a log (a log is a pack in the making).
pub(crate) const PACK_MAGIC: &[u8; 12] = b"mandala-pack";
/// The first bytes of a pack index.
pub(crate) const IDX_MAGIC: &[u8; 12] = b"mandala-idx\n";
/// The version of both layouts.
pub(crate) const VERSION: u32 = 1;
/// The length of a pack's (or log's) header.
pub(crate) const HEADER_LEN: u64 = 16;

/// Entry kind: a value, found by its content id.
pub(crate) const KIND_VALUE: u8 = 1;
/// Entry kind: a call record, found by its call name.
pub(crate) const KIND_CALL: u8 = 2;

/// Bytes of an index row: a value's, a call's.
pub(crate) const VALUE_ROW: usize = 32 + 8 + 4;
pub(crate) const CALL_ROW: usize = 96 + 8 + 4;
/// Bytes of an index before its tables.
pub(crate) const IDX_HEAD: usize = 16 + 32 + 16;

/// The header of a pack or log.
pub(crate) fn header() -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..12].copy_from_slice(PACK_MAGIC);
    h[12..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// What an entry is found by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryId {
    Value(Id),
    Call(CallName),
}

impl EntryId {
    /// The length of an entry header with this id.
    pub(crate) fn header_len(&self) -> usize {
        match self {
            EntryId::Value(_) => 1 + 32 + 4,
            EntryId::Call(_) => 1 + 96 + 4,
        }
    }

    /// The id the entry's content hashes to (a record's is its record id).
    pub(crate) fn content_id(&self) -> (store_core::Kind, Id) {
        match self {
            EntryId::Value(cid) => (store_core::Kind::Value, *cid),
            EntryId::Call(name) => (store_core::Kind::CallRecord, name.rid),
        }
    }
}

/// Appends one entry (header and frame) to `out`.
pub(crate) fn encode_entry(id: &EntryId, frame: &[u8], out: &mut Vec<u8>) {
    match id {
        EntryId::Value(cid) => {
            out.push(KIND_VALUE);
            out.extend_from_slice(&cid.0);
        }
        EntryId::Call(n) => {
            out.push(KIND_CALL);
            out.extend_from_slice(&n.key.0);
            out.extend_from_slice(&n.hid.0);
            out.extend_from_slice(&n.rid.0);
        }
    }
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
}

/// An entry found in a pack's or log's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) id: EntryId,
    /// Where the entry starts.
    pub(crate) offset: u64,
    /// Its frame's length.
    pub(crate) len: u32,
}

impl Located {
    /// Where the entry's frame starts.
    pub(crate) fn frame_at(&self) -> u64 {
        self.offset + self.id.header_len() as u64
    }

    /// Where the next entry starts.
    pub(crate) fn end(&self) -> u64 {
        self.frame_at() + u64::from(self.len)
    }
}

fn id_at(b: &[u8], at: usize) -> Id {
    Id(b[at..at + 32].try_into().expect("32 bytes"))
}

fn name_at(b: &[u8], at: usize) -> CallName {
    CallName {
        key: id_at(b, at),
        hid: id_at(b, at + 32),
        rid: id_at(b, at + 64),
    }
}

/// Parses the entry header at `bytes[at..]` (`at` is the entry's offset in the file, and
/// `bytes` start at file offset `base`). `Ok(None)` if the bytes end before the entry does
/// (a log being written, or torn by a crash); `Err` with a reason if the header is not one.
pub(crate) fn parse_entry(bytes: &[u8], base: u64, at: u64) -> Result<Option<Located>, String> {
    let i = (at - base) as usize;
    let Some(&kind) = bytes.get(i) else {
        return Ok(None);
    };
    let id_len = match kind {
        KIND_VALUE => 32,
        KIND_CALL => 96,
        k => return Err(format!("entry at offset {at} has unknown kind {k}")),
    };
    let Some(head) = bytes.get(i..i + 1 + id_len + 4) else {
        return Ok(None);
    };
    let id = if kind == KIND_VALUE {
        EntryId::Value(id_at(head, 1))
    } else {
        EntryId::Call(name_at(head, 1))
    };
    let len = u32::from_le_bytes(head[1 + id_len..].try_into().expect("4 bytes"));
    let entry = Located {
        id,
        offset: at,
        len,
    };
    if ((entry.end() - base) as usize) > bytes.len() {
        return Ok(None);
    }
    Ok(Some(entry))
}

/// The bytes of a pack index: read (just written, or checked whole), or mapped.
pub(crate) enum IdxBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for IdxBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            IdxBytes::Owned(v) => v,
            IdxBytes::Mapped(m) => m,
        }
    }
}

/// A pack index as read: its tables are searched in place.
pub(crate) struct Idx {
    bytes: IdxBytes,
    values: usize,
    calls: usize,
}

impl Idx {
    /// Checks and wraps the bytes of a `.idx` file named `name`: its structure and its hash
    /// (which is its name).
    pub(crate) fn parse(bytes: Vec<u8>, name: &Id) -> Result<Idx, String> {
        let idx = Idx::open(IdxBytes::Owned(bytes))?;
        idx.check_hash(name)?;
        Ok(idx)
    }

    /// Wraps the bytes of a `.idx` file after checking its structure only (magic, version,
    /// size): what a reader does when it opens a pack, so that opening costs nothing per
    /// object. A damaged row cannot make it serve a wrong object — every entry is checked
    /// against its row and its id when read — and `fsck` checks the hash.
    pub(crate) fn open(bytes: IdxBytes) -> Result<Idx, String> {
        if bytes.len() < IDX_HEAD + 32 || &bytes[..12] != IDX_MAGIC {
            return Err("not a mandala pack index".into());
        }
        let version = u32::from_le_bytes(bytes[12..16].try_into().expect("4"));
        if version != VERSION {
            return Err(format!(
                "pack index version {version}, but this mandala reads version {VERSION}; upgrade mandala"
            ));
        }
        let values = u64::from_le_bytes(bytes[48..56].try_into().expect("8")) as usize;
        let calls = u64::from_le_bytes(bytes[56..64].try_into().expect("8")) as usize;
        let want = values
            .checked_mul(VALUE_ROW)
            .and_then(|v| calls.checked_mul(CALL_ROW).map(|c| (v, c)))
            .and_then(|(v, c)| v.checked_add(c))
            .and_then(|t| t.checked_add(IDX_HEAD + 32));
        if want != Some(bytes.len()) {
            return Err(format!(
                "{} bytes, but {values} values and {calls} calls take {}",
                bytes.len(),
                want.map_or("more than a machine can address".into(), |w| w.to_string())
            ));
        }
        Ok(Idx {
            bytes,
            values,
            calls,
        })
    }

    /// Checks the trailing hash, and that it is the pack's name.
    pub(crate) fn check_hash(&self, name: &Id) -> Result<(), String> {
        let body = self.bytes.len() - 32;
        let hash = blake3::hash(&self.bytes[..body]);
        if hash.as_bytes() != &self.bytes[body..] {
            return Err("its trailing hash does not match its content (damaged)".into());
        }
        if hash.as_bytes() != &name.0 {
            return Err(format!(
                "its content hashes to {}, not to its name",
                hash.to_hex()
            ));
        }
        Ok(())
    }

    /// The BLAKE3 hash of the pack file this index describes.
    pub(crate) fn pack_hash(&self) -> [u8; 32] {
        self.bytes[16..48].try_into().expect("32")
    }

    pub(crate) fn n_values(&self) -> usize {
        self.values
    }

    pub(crate) fn n_calls(&self) -> usize {
        self.calls
    }

    fn value_row(&self, i: usize) -> &[u8] {
        let at = IDX_HEAD + i * VALUE_ROW;
        &self.bytes[at..at + VALUE_ROW]
    }

    fn call_row(&self, i: usize) -> &[u8] {
        let at = IDX_HEAD + self.values * VALUE_ROW + i * CALL_ROW;
        &self.bytes[at..at + CALL_ROW]
    }

    fn located(row: &[u8], id: EntryId, key_len: usize) -> Located {
        Located {
            id,
            offset: u64::from_le_bytes(row[key_len..key_len + 8].try_into().expect("8")),
            len: u32::from_le_bytes(row[key_len + 8..key_len + 12].try_into().expect("4")),
        }
    }

    /// The cid of the `i`th value entry.
    pub(crate) fn value_key(&self, i: usize) -> &[u8] {
        &self.value_row(i)[..32]
    }

    /// The call key of the `i`th call entry.
    pub(crate) fn call_key(&self, i: usize) -> &[u8] {
        &self.call_row(i)[..32]
    }

    /// The `i`th value entry (by cid order).
    pub(crate) fn value(&self, i: usize) -> Located {
        let row = self.value_row(i);
        Self::located(row, EntryId::Value(id_at(row, 0)), 32)
    }

    /// The `i`th call entry (by name order).
    pub(crate) fn call(&self, i: usize) -> Located {
        let row = self.call_row(i);
        Self::located(row, EntryId::Call(name_at(row, 0)), 96)
    }

    /// Value `cid`'s entry, if the pack holds it.
    pub(crate) fn find_value(&self, cid: &Id) -> Option<Located> {
        let at = lower_bound(self.values, |i| self.value_row(i), &cid.0);
        (at < self.values && self.value_row(at)[..32] == cid.0).then(|| self.value(at))
    }

    /// The call entries under call key `key`, in name order.
    pub(crate) fn calls_of(&self, key: &Id) -> impl Iterator<Item = Located> + '_ {
        let key = *key;
        let start = lower_bound(self.calls, |i| self.call_row(i), &key.0);
        (start..self.calls)
            .take_while(move |i| self.call_row(*i)[..32] == key.0)
            .map(|i| self.call(i))
    }

    /// Call `name`'s entry, if the pack holds it.
    pub(crate) fn find_call(&self, name: &CallName) -> Option<Located> {
        self.calls_of(&name.key)
            .find(|l| l.id == EntryId::Call(*name))
    }
}

/// The first row of `0..n` whose leading 32 bytes are not less than `key` (`n` if none).
fn lower_bound<'a>(n: usize, row: impl Fn(usize) -> &'a [u8], key: &[u8; 32]) -> usize {
    let prefix = |b: &[u8]| u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    interpolation_search(
        n,
        |i| prefix(row(i)),
        prefix(key),
        |i| row(i)[..32] < key[..],
    )
}

/// The first of `0..n` sorted items for which `less` is false (`n` if none), where `prefix(i)`
/// is a number ordered like the items (their leading hash bytes) and `want` the searched
/// item's. Hashes are spread evenly, so probes interpolate on the prefixes: a few find the
/// place among millions, where halving takes log2(n) probes, each a cache miss in a large
/// table. A probe that did not at least halve the range makes the next one halve, which
/// bounds the worst case at twice binary search's.
pub(crate) fn interpolation_search(
    n: usize,
    prefix: impl Fn(usize) -> u64,
    want: u64,
    less: impl Fn(usize) -> bool,
) -> usize {
    // Items before `lo` are less than the searched one; items from `hi` on are not.
    let (mut lo, mut hi) = (0, n);
    let mut halve = false;
    while lo < hi {
        let before = hi - lo;
        let mid = if halve {
            lo + (hi - lo) / 2
        } else {
            let (a, b) = (prefix(lo), prefix(hi - 1));
            if want <= a {
                lo
            } else if want > b {
                return hi; // even the last item is less
            } else {
                // In floating point: a u128 division costs more than the probes it saves.
                // Only the probe's quality depends on it, never the answer.
                let frac = (want - a) as f64 / (b - a).max(1) as f64;
                (lo + (frac * (hi - 1 - lo) as f64) as usize).min(hi - 1)
            }
        };
        if less(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
        halve = !halve && (hi - lo) * 2 > before;
    }
    lo
}

/// The bytes of the index of a pack whose file hashes to `pack_hash` and holds `entries`
/// (first occurrence of each id kept), and the pack's name (the hash of those bytes minus
/// the trailing hash, which is that hash).
pub(crate) fn encode_idx(pack_hash: &[u8; 32], entries: &[Located]) -> (Vec<u8>, Id) {
    let mut values: Vec<&Located> = Vec::new();
    let mut calls: Vec<&Located> = Vec::new();
    for e in entries {
        match e.id {
            EntryId::Value(_) => values.push(e),
            EntryId::Call(_) => calls.push(e),
        }
    }
    // By id, then by offset: the first occurrence of a duplicate comes first and is the one
    // kept. (Compared in place: a sort key would copy 96 bytes twice per comparison.)
    let order = |a: &&Located, b: &&Located| {
        let ids = match (&a.id, &b.id) {
            (EntryId::Value(x), EntryId::Value(y)) => x.cmp(y),
            (EntryId::Call(x), EntryId::Call(y)) => x.cmp(y),
            (x, y) => x.header_len().cmp(&y.header_len()), // not mixed: split above
        };
        ids.then(a.offset.cmp(&b.offset))
    };
    values.sort_unstable_by(order);
    calls.sort_unstable_by(order);
    values.dedup_by(|a, b| a.id == b.id);
    calls.dedup_by(|a, b| a.id == b.id);
    let mut out =
        Vec::with_capacity(IDX_HEAD + values.len() * VALUE_ROW + calls.len() * CALL_ROW + 32);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(pack_hash);
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    out.extend_from_slice(&(calls.len() as u64).to_le_bytes());
    for e in values.iter().chain(&calls) {
        match e.id {
            EntryId::Value(cid) => out.extend_from_slice(&cid.0),
            EntryId::Call(n) => {
                out.extend_from_slice(&n.key.0);
                out.extend_from_slice(&n.hid.0);
                out.extend_from_slice(&n.rid.0);
            }
        }
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    (out, Id(*hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_index_round_trip() {
        let name = CallName {
            key: Id([7; 32]),
            hid: Id([8; 32]),
            rid: Id([9; 32]),
        };
        let mut bytes = header().to_vec();
        encode_entry(&EntryId::Value(Id([2; 32])), b"two", &mut bytes);
        encode_entry(&EntryId::Call(name), b"record", &mut bytes);
        encode_entry(&EntryId::Value(Id([1; 32])), b"one", &mut bytes);
        let mut at = HEADER_LEN;
        let mut found = Vec::new();
        while let Some(e) = parse_entry(&bytes, 0, at).unwrap() {
            at = e.end();
            found.push(e);
        }
        assert_eq!(at, bytes.len() as u64);
        assert_eq!(found.len(), 3);
        // A torn tail is "not yet", never an entry.
        assert_eq!(
            parse_entry(&bytes[..bytes.len() - 1], 0, found[2].offset),
            Ok(None)
        );
        assert!(parse_entry(&[9], 0, 0).is_err());

        let (idx, id) = encode_idx(blake3::hash(&bytes).as_bytes(), &found);
        let idx = Idx::parse(idx, &id).unwrap();
        assert_eq!((idx.n_values(), idx.n_calls()), (2, 1));
        assert_eq!(idx.value(0).id, EntryId::Value(Id([1; 32])));
        assert_eq!(idx.find_value(&Id([2; 32])), Some(found[0]));
        assert_eq!(idx.find_value(&Id([3; 32])), None);
        assert_eq!(idx.find_call(&name), Some(found[1]));
        assert_eq!(idx.calls_of(&Id([7; 32])).count(), 1);
        assert_eq!(idx.calls_of(&Id([6; 32])).count(), 0);
        assert_eq!(
            Idx::parse(vec![0; 200], &id).err().unwrap(),
            "not a mandala pack index"
        );
    }

    #[test]
    fn lower_bound_agrees_with_a_linear_scan() {
        // Hash-like keys, with runs of equal keys (a call key's records) and extremes.
        let mut keys: Vec<[u8; 32]> = (0u32..2000)
            .map(|i| *blake3::hash(&(i / 3).to_le_bytes()).as_bytes())
            .collect();
        keys.push([0; 32]);
        keys.push([0xff; 32]);
        keys.sort();
        let row = |i: usize| &keys[i][..];
        let mut probes: Vec<[u8; 32]> = keys.clone();
        probes.extend((5000u32..5100).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()));
        probes.push([0x80; 32]);
        for p in &probes {
            let want = keys.iter().position(|k| k >= p).unwrap_or(keys.len());
            assert_eq!(lower_bound(keys.len(), row, p), want);
        }
        assert_eq!(lower_bound(0, row, &[1; 32]), 0);
    }
}
