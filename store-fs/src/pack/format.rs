//! The bytes of packs, logs and pack indexes (docs/FORMAT.md §11): entry headers, the `.idx`
//! tables and their searches. No I/O here.
//!
//! Two versions, both read by every build (a store's format chooses the one it writes:
//! version 1 in format 2, version 2 in format 3).
//!
//! ```text
//! pack / log:  "mandala-pack" u32 version                 16-byte header
//!              entries, back to back:
//!                u8 kind (1 value, 2 call record, 3 git commit (v2); v2: | 0x80 if zstd)
//!                value: cid[32]    record: key[32] hid[32] rid[32]    commit: nothing
//!                u32 content length
//!                content: v1, one zstd frame of canonical CBOR (a format-1 blob);
//!                         v2, the bytes themselves or (kind | 0x80) one zstd frame of them:
//!                         a value's canonical CBOR, a record's compact form, a commit's text
//! .idx v1:     "mandala-idx\n" u32 1
//!              pack hash[32]  (BLAKE3 of the whole .pack file)
//!              u64 values, u64 calls
//!              values × (cid[32] u64 offset u32 length)                  sorted by cid
//!              calls  × (key[32] hid[32] rid[32] u64 offset u32 length)  sorted by name
//!              BLAKE3[32] of everything before it: the pack's name
//! .idx v2:     "mandala-idx\n" u32 2
//!              pack hash[32], u64 values, u64 calls, u64 commits
//!              values  × (cid[..8] u64 offset)   sorted by cid
//!              calls   × (key[..8] u64 offset)   sorted by name
//!              commits × (u64 offset)            in the order records number them
//!              BLAKE3[32] of everything before it: the pack's name
//! ```
//! Integers are little-endian; an offset is where the entry starts in the pack. A version-2
//! row holds an id's first 8 bytes: the entry it points to holds the whole id, which a reader
//! compares (a row whose entry does not match is a damaged index: the object looks missing).

use std::ops::Range;

use store_core::{CallName, Id};

/// The first bytes of a pack and of a log (a log is a pack in the making).
pub(crate) const PACK_MAGIC: &[u8; 12] = b"mandala-pack";
/// The first bytes of a pack index.
pub(crate) const IDX_MAGIC: &[u8; 12] = b"mandala-idx\n";
/// Pack version 1: entries hold zstd frames of canonical CBOR (store format 2).
pub(crate) const V1: u32 = 1;
/// Pack version 2: raw small entries, compact records, indexes of id prefixes (store format
/// 3).
pub(crate) const V2: u32 = 2;
/// The length of a pack's (or log's) header.
pub(crate) const HEADER_LEN: u64 = 16;

/// Entry kind: a value, found by its content id.
pub(crate) const KIND_VALUE: u8 = 1;
/// Entry kind: a call record, found by its call name.
pub(crate) const KIND_CALL: u8 = 2;
/// Entry kind (version 2): a git commit that the pack's records number.
pub(crate) const KIND_COMMIT: u8 = 3;
/// Kind flag (version 2): the content is a zstd frame.
pub(crate) const ZSTD: u8 = 0x80;

/// Bytes of a version-1 index row: a value's, a call's.
const V1_VALUE_ROW: usize = 32 + 8 + 4;
const V1_CALL_ROW: usize = 96 + 8 + 4;
/// Bytes of a version-2 row: an id's first 8 bytes and an offset (a commit's: the offset).
const V2_ROW: usize = 8 + 8;
const V2_COMMIT_ROW: usize = 8;
/// Bytes of an index before its tables.
pub(crate) const IDX_HEAD_V1: usize = 16 + 32 + 16;
const IDX_HEAD_V2: usize = 16 + 32 + 24;

/// The header of a pack or log of `version`.
pub(crate) fn header(version: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..12].copy_from_slice(PACK_MAGIC);
    h[12..].copy_from_slice(&version.to_le_bytes());
    h
}

/// The version of the pack or log whose first bytes are `bytes`, if they are a header this
/// build reads.
pub(crate) fn header_version(bytes: &[u8]) -> Option<u32> {
    let v = bytes.get(..16)?;
    [V1, V2].into_iter().find(|&version| v == header(version))
}

/// What an entry is found by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryId {
    Value(Id),
    Call(CallName),
    /// A git commit (version 2): found by its place among the pack's commits.
    Commit,
}

impl EntryId {
    /// The length of an entry header with this id.
    pub(crate) fn header_len(&self) -> usize {
        1 + match self {
            EntryId::Value(_) => 32,
            EntryId::Call(_) => 96,
            EntryId::Commit => 0,
        } + 4
    }

    /// The id the entry's canonical content hashes to (a record's is its record id).
    pub(crate) fn content_id(&self) -> Option<(store_core::Kind, Id)> {
        match self {
            EntryId::Value(cid) => Some((store_core::Kind::Value, *cid)),
            EntryId::Call(name) => Some((store_core::Kind::CallRecord, name.rid)),
            EntryId::Commit => None,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            EntryId::Value(_) => KIND_VALUE,
            EntryId::Call(_) => KIND_CALL,
            EntryId::Commit => KIND_COMMIT,
        }
    }

    /// The id an index row leads with (all of it, or its first bytes).
    pub(crate) fn row_key(&self) -> &[u8] {
        match self {
            EntryId::Value(cid) => &cid.0,
            EntryId::Call(n) => &n.key.0,
            EntryId::Commit => &[],
        }
    }
}

/// How an entry's content is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Enc {
    /// Version 1: a zstd frame of the canonical CBOR.
    V1,
    /// Version 2: the bytes themselves (a value's canonical CBOR, a record's compact form).
    Raw,
    /// Version 2: a zstd frame of those bytes.
    Zstd,
}

impl Enc {
    /// Whether the content is a zstd frame.
    pub(crate) fn framed(self) -> bool {
        self != Enc::Raw
    }

    /// Whether a call record's content is its compact form.
    pub(crate) fn compact(self) -> bool {
        self != Enc::V1
    }
}

/// Appends one entry (header and content), which starts at `offset` of its file, to `out`,
/// and says where it is.
pub(crate) fn encode_entry(
    id: &EntryId,
    enc: Enc,
    content: &[u8],
    offset: u64,
    out: &mut Vec<u8>,
) -> Located {
    debug_assert!(enc != Enc::V1 || *id != EntryId::Commit);
    out.push(id.kind() | if enc == Enc::Zstd { ZSTD } else { 0 });
    match id {
        EntryId::Value(cid) => out.extend_from_slice(&cid.0),
        EntryId::Call(n) => {
            out.extend_from_slice(&n.key.0);
            out.extend_from_slice(&n.hid.0);
            out.extend_from_slice(&n.rid.0);
        }
        EntryId::Commit => {}
    }
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(content);
    Located {
        id: *id,
        offset,
        len: content.len() as u32,
        enc,
    }
}

/// An entry found in a pack's or log's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) id: EntryId,
    /// Where the entry starts.
    pub(crate) offset: u64,
    /// Its content's length.
    pub(crate) len: u32,
    pub(crate) enc: Enc,
}

impl Located {
    /// Where the entry's content starts.
    pub(crate) fn frame_at(&self) -> u64 {
        self.offset + self.id.header_len() as u64
    }

    /// Where the next entry starts.
    pub(crate) fn end(&self) -> u64 {
        self.frame_at() + u64::from(self.len)
    }

    /// Whether the entry is a call record in its compact form (which needs its file's
    /// commits to expand).
    pub(crate) fn is_compact_record(&self) -> bool {
        self.enc.compact() && matches!(self.id, EntryId::Call(_))
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

/// Parses the entry header at `bytes[at..]` of a pack or log of `version` (`at` is the
/// entry's offset in the file, and `bytes` start at file offset `base`). `Ok(None)` if the
/// bytes end before the entry does (a log being written, or torn by a crash); `Err` with a
/// reason if the header is not one.
pub(crate) fn parse_entry(
    bytes: &[u8],
    base: u64,
    at: u64,
    version: u32,
) -> Result<Option<Located>, String> {
    let entry = parse_header(
        &bytes[((at - base) as usize).min(bytes.len())..],
        at,
        version,
    )?;
    Ok(entry.filter(|e| ((e.end() - base) as usize) <= bytes.len()))
}

/// Parses the entry header at the start of `head` (of a pack or log of `version`), the entry
/// starting at offset `at`, whether or not its content follows in `head`. `Ok(None)` if `head`
/// ends within the header.
pub(crate) fn parse_header(head: &[u8], at: u64, version: u32) -> Result<Option<Located>, String> {
    let Some(&byte) = head.first() else {
        return Ok(None);
    };
    let (kind, enc) = match version {
        V1 => (byte, Enc::V1),
        _ if byte & ZSTD != 0 => (byte & !ZSTD, Enc::Zstd),
        _ => (byte, Enc::Raw),
    };
    let id_len = match kind {
        KIND_VALUE => 32,
        KIND_CALL => 96,
        KIND_COMMIT if version >= V2 => 0,
        _ => return Err(format!("entry at offset {at} has unknown kind {byte}")),
    };
    let Some(head) = head.get(..1 + id_len + 4) else {
        return Ok(None);
    };
    let id = match kind {
        KIND_VALUE => EntryId::Value(id_at(head, 1)),
        KIND_CALL => EntryId::Call(name_at(head, 1)),
        _ => EntryId::Commit,
    };
    let len = u32::from_le_bytes(head[1 + id_len..].try_into().expect("4 bytes"));
    Ok(Some(Located {
        id,
        offset: at,
        len,
        enc,
    }))
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

/// What an index row says of its entry: all of it (version 1), or where it is (version 2:
/// the pack's entry header says the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Row<'a> {
    Entry(Located),
    At { key: &'a [u8], offset: u64 },
}

/// Which table of an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Values,
    Calls,
}

/// A pack index as read: its tables are searched in place.
pub(crate) struct Idx {
    bytes: IdxBytes,
    version: u32,
    values: usize,
    calls: usize,
    commits: usize,
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
        if bytes.len() < IDX_HEAD_V1 + 32 || &bytes[..12] != IDX_MAGIC {
            return Err("not a mandala pack index".into());
        }
        let version = u32::from_le_bytes(bytes[12..16].try_into().expect("4"));
        if version != V1 && version != V2 {
            return Err(format!(
                "pack index version {version}, but this mandala reads versions {V1} and {V2}; upgrade mandala"
            ));
        }
        let count = |at: usize| {
            bytes
                .get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8")) as usize)
        };
        let (values, calls) = (count(48).unwrap_or(0), count(56).unwrap_or(0));
        let (commits, head, value_row, call_row) = if version == V1 {
            (0, IDX_HEAD_V1, V1_VALUE_ROW, V1_CALL_ROW)
        } else {
            (count(64).unwrap_or(0), IDX_HEAD_V2, V2_ROW, V2_ROW)
        };
        let want = values
            .checked_mul(value_row)
            .and_then(|v| calls.checked_mul(call_row).map(|c| (v, c)))
            .and_then(|(v, c)| v.checked_add(c))
            .and_then(|t| commits.checked_mul(V2_COMMIT_ROW).map(|c| (t, c)))
            .and_then(|(t, c)| t.checked_add(c))
            .and_then(|t| t.checked_add(head + 32));
        if want != Some(bytes.len()) {
            let commits = if version == V1 {
                String::new()
            } else {
                format!(" and {commits} commits")
            };
            return Err(format!(
                "{} bytes, but {values} values and {calls} calls{commits} take {}",
                bytes.len(),
                want.map_or("more than a machine can address".into(), |w| w.to_string())
            ));
        }
        Ok(Idx {
            bytes,
            version,
            values,
            calls,
            commits,
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

    /// The version of the index (and of its pack).
    pub(crate) fn version(&self) -> u32 {
        self.version
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

    pub(crate) fn n_commits(&self) -> usize {
        self.commits
    }

    /// Where the pack's `i`th commit entry starts (version 2).
    pub(crate) fn commit_at(&self, i: usize) -> u64 {
        let at = IDX_HEAD_V2 + (self.values + self.calls) * V2_ROW + i * V2_COMMIT_ROW;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8"))
    }

    fn n(&self, table: Table) -> usize {
        match table {
            Table::Values => self.values,
            Table::Calls => self.calls,
        }
    }

    fn row_bytes(&self, table: Table, i: usize) -> &[u8] {
        let (head, value_row, call_row) = match self.version {
            V1 => (IDX_HEAD_V1, V1_VALUE_ROW, V1_CALL_ROW),
            _ => (IDX_HEAD_V2, V2_ROW, V2_ROW),
        };
        let (at, len) = match table {
            Table::Values => (head + i * value_row, value_row),
            Table::Calls => (head + self.values * value_row + i * call_row, call_row),
        };
        &self.bytes[at..at + len]
    }

    /// The length of the id (or id prefix) a row of this index leads with.
    fn key_len(&self) -> usize {
        if self.version == V1 {
            32
        } else {
            8
        }
    }

    /// The leading id bytes of row `i` of `table` (a value's cid, a call's key; the first 8
    /// bytes of it in version 2).
    pub(crate) fn key(&self, table: Table, i: usize) -> &[u8] {
        &self.row_bytes(table, i)[..self.key_len()]
    }

    /// Row `i` of `table`.
    pub(crate) fn row(&self, table: Table, i: usize) -> Row<'_> {
        let row = self.row_bytes(table, i);
        if self.version != V1 {
            return Row::At {
                key: &row[..8],
                offset: u64::from_le_bytes(row[8..16].try_into().expect("8")),
            };
        }
        let (id, n) = match table {
            Table::Values => (EntryId::Value(id_at(row, 0)), 32),
            Table::Calls => (EntryId::Call(name_at(row, 0)), 96),
        };
        Row::Entry(Located {
            id,
            offset: u64::from_le_bytes(row[n..n + 8].try_into().expect("8")),
            len: u32::from_le_bytes(row[n + 8..n + 12].try_into().expect("4")),
            enc: Enc::V1,
        })
    }

    /// The rows of `table` whose leading bytes are those of `id` (a value's cid, a call key):
    /// in version 1 exactly its entries, in version 2 candidates whose entries say.
    pub(crate) fn rows_of(&self, table: Table, id: &Id) -> Range<usize> {
        let k = self.key_len();
        let n = self.n(table);
        let want = &id.0[..k];
        let start = lower_bound(n, |i| self.key(table, i), want);
        let len = (start..n)
            .take_while(|&i| self.key(table, i) == want)
            .count();
        start..start + len
    }
}

/// The first row of `0..n` whose key (`row(i)`, all of one length) is not less than `key`
/// (`n` if none).
fn lower_bound<'a>(n: usize, row: impl Fn(usize) -> &'a [u8], key: &[u8]) -> usize {
    let prefix = |b: &[u8]| u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    interpolation_search(n, |i| prefix(row(i)), prefix(key), |i| row(i) < key)
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

/// The bytes of the index (of `version`) of a pack whose file hashes to `pack_hash` and holds
/// `entries` in file order (first occurrence of each id kept), and the pack's name (the hash
/// of those bytes minus the trailing hash, which is that hash).
pub(crate) fn encode_idx(version: u32, pack_hash: &[u8; 32], entries: &[Located]) -> (Vec<u8>, Id) {
    let mut values: Vec<&Located> = Vec::new();
    let mut calls: Vec<&Located> = Vec::new();
    let mut commits: Vec<u64> = Vec::new();
    for e in entries {
        match e.id {
            EntryId::Value(_) => values.push(e),
            EntryId::Call(_) => calls.push(e),
            EntryId::Commit => commits.push(e.offset),
        }
    }
    debug_assert!(version != V1 || commits.is_empty());
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
    let mut out = Vec::with_capacity(
        IDX_HEAD_V1 + values.len() * V1_VALUE_ROW + calls.len() * V1_CALL_ROW + 32,
    );
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(pack_hash);
    out.extend_from_slice(&(values.len() as u64).to_le_bytes());
    out.extend_from_slice(&(calls.len() as u64).to_le_bytes());
    if version == V1 {
        for e in values.iter().chain(&calls) {
            match e.id {
                EntryId::Value(cid) => out.extend_from_slice(&cid.0),
                EntryId::Call(n) => {
                    out.extend_from_slice(&n.key.0);
                    out.extend_from_slice(&n.hid.0);
                    out.extend_from_slice(&n.rid.0);
                }
                EntryId::Commit => unreachable!("split above"),
            }
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
        }
    } else {
        out.extend_from_slice(&(commits.len() as u64).to_le_bytes());
        for e in values.iter().chain(&calls) {
            out.extend_from_slice(&e.id.row_key()[..8]);
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        for offset in commits {
            out.extend_from_slice(&offset.to_le_bytes());
        }
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    (out, Id(*hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes an entry at the end of `bytes`.
    fn append(bytes: &mut Vec<u8>, id: EntryId, enc: Enc, content: &[u8]) {
        let at = bytes.len() as u64;
        encode_entry(&id, enc, content, at, bytes);
    }

    fn entries_of(bytes: &[u8], version: u32) -> Vec<Located> {
        let mut at = HEADER_LEN;
        let mut found = Vec::new();
        while let Some(e) = parse_entry(bytes, 0, at, version).unwrap() {
            at = e.end();
            found.push(e);
        }
        assert_eq!(at, bytes.len() as u64);
        found
    }

    /// The entry a row is, reading the pack's bytes when the row says only where it is.
    fn resolve(row: Row, bytes: &[u8], version: u32) -> Located {
        match row {
            Row::Entry(e) => e,
            Row::At { offset, .. } => parse_entry(bytes, 0, offset, version).unwrap().unwrap(),
        }
    }

    #[test]
    fn entries_and_index_round_trip_in_both_versions() {
        let name = CallName {
            key: Id([7; 32]),
            hid: Id([8; 32]),
            rid: Id([9; 32]),
        };
        for (version, enc) in [(V1, Enc::V1), (V2, Enc::Raw), (V2, Enc::Zstd)] {
            let mut bytes = header(version).to_vec();
            assert_eq!(header_version(&bytes), Some(version));
            append(&mut bytes, EntryId::Value(Id([2; 32])), enc, b"two");
            if version == V2 {
                append(&mut bytes, EntryId::Commit, enc, b"1b92543b");
            }
            append(&mut bytes, EntryId::Call(name), enc, b"record");
            append(&mut bytes, EntryId::Value(Id([1; 32])), enc, b"one");
            let found = entries_of(&bytes, version);
            assert!(found.iter().all(|e| e.enc == enc));
            let last = *found.last().unwrap();
            // A torn tail is "not yet", never an entry.
            assert_eq!(
                parse_entry(&bytes[..bytes.len() - 1], 0, last.offset, version),
                Ok(None)
            );
            assert!(parse_entry(&[9], 0, 0, version).is_err());

            let (idx, id) = encode_idx(version, blake3::hash(&bytes).as_bytes(), &found);
            let idx = Idx::parse(idx, &id).unwrap();
            assert_eq!(idx.version(), version);
            assert_eq!((idx.n_values(), idx.n_calls()), (2, 1));
            let row = |t, i| resolve(idx.row(t, i), &bytes, version);
            assert_eq!(row(Table::Values, 0).id, EntryId::Value(Id([1; 32])));
            assert_eq!(row(Table::Values, 1), found[0]);
            assert_eq!(row(Table::Calls, 0).id, EntryId::Call(name));
            assert_eq!(idx.rows_of(Table::Values, &Id([2; 32])), 1..2);
            assert_eq!(idx.rows_of(Table::Values, &Id([3; 32])).len(), 0);
            assert_eq!(idx.rows_of(Table::Calls, &Id([7; 32])), 0..1);
            assert_eq!(idx.rows_of(Table::Calls, &Id([6; 32])).len(), 0);
            if version == V2 {
                assert_eq!(idx.n_commits(), 1);
                assert_eq!(idx.commit_at(0), found[1].offset);
                assert_eq!(found[1].id, EntryId::Commit);
            }
        }
        // A version-1 pack knows no commit entries.
        let mut v1 = header(V1).to_vec();
        v1.push(KIND_COMMIT);
        v1.extend_from_slice(&[0; 4]);
        assert!(parse_entry(&v1, 0, HEADER_LEN, V1).is_err());
        assert_eq!(
            Idx::parse(vec![0; 200], &Id([0; 32])).err().unwrap(),
            "not a mandala pack index"
        );
        assert_eq!(header_version(&header(3)), None);
    }

    #[test]
    fn version_2_rows_of_one_prefix_are_all_candidates() {
        // Two values whose cids share their first 8 bytes: both rows match the prefix, and
        // the entries say which is which.
        let mut a = [5u8; 32];
        let mut b = [5u8; 32];
        a[31] = 1;
        b[31] = 2;
        let mut bytes = header(V2).to_vec();
        append(&mut bytes, EntryId::Value(Id(b)), Enc::Raw, b"b");
        append(&mut bytes, EntryId::Value(Id(a)), Enc::Raw, b"a");
        let found = entries_of(&bytes, V2);
        let (idx, id) = encode_idx(V2, blake3::hash(&bytes).as_bytes(), &found);
        let idx = Idx::parse(idx, &id).unwrap();
        let rows = idx.rows_of(Table::Values, &Id(a));
        assert_eq!(rows, 0..2);
        let ids: Vec<EntryId> = rows
            .map(|i| resolve(idx.row(Table::Values, i), &bytes, V2).id)
            .collect();
        assert_eq!(ids, [EntryId::Value(Id(a)), EntryId::Value(Id(b))]);
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
        let mut probes: Vec<[u8; 32]> = keys.clone();
        probes.extend((5000u32..5100).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()));
        probes.push([0x80; 32]);
        for len in [32, 8] {
            let row = |i: usize| &keys[i][..len];
            for p in &probes {
                let want = keys
                    .iter()
                    .position(|k| k[..len] >= p[..len])
                    .unwrap_or(keys.len());
                assert_eq!(lower_bound(keys.len(), row, &p[..len]), want);
            }
            assert_eq!(lower_bound(0, row, &[1; 32][..len]), 0);
        }
    }
}
