//! The multi-pack index, in memory: one sorted table of every pack's values and one of every
//! pack's calls, so that a lookup searches once however many packs the store has (git's
//! `multi-pack-index`, built as packs are opened rather than stored).
//!
//! An entry is 8 bytes: the first 4 bytes of the id (a value's cid, a call's key) and where its
//! row is (pack number, 8 bits; row in that pack's index, 24 bits). Equal prefixes are rare
//! and resolved by comparing the full id in the pack's own index. Large packs are not merged
//! (a consolidated store is one large pack, whose index is searched directly in a few probes,
//! and opening it then reads nothing in advance); packs beyond what an entry can name are
//! searched one by one too (`mandala pack` consolidates them).

use super::Pack;
use std::sync::Arc;

/// Packs beyond this many are searched one by one.
pub(crate) const MAX_PACKS: usize = 255;
/// Packs with more rows than this in a table are searched on their own.
const MAX_ROWS: usize = 1 << 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    prefix: u32,
    at: u32,
}

impl Entry {
    fn pack(&self) -> usize {
        (self.at >> 24) as usize
    }

    fn row(&self) -> usize {
        (self.at & 0x00ff_ffff) as usize
    }
}

pub(crate) use super::format::Table;

/// One sorted table, with a fan-out of its leading bits: `fanout[b]` is the first entry whose
/// prefix's top `bits` bits are `b` or more, so a search reads two fan-out slots and a bucket
/// of a few entries (about two cache misses, where a search of the whole table takes one per
/// probe).
#[derive(Default)]
struct Sorted {
    entries: Vec<Entry>,
    bits: u32,
    fanout: Vec<u32>,
}

impl Sorted {
    fn new(entries: Vec<Entry>) -> Sorted {
        // About four entries a bucket: 1 to 4 bytes of fan-out an entry.
        let bits = (usize::BITS - (entries.len() / 4).leading_zeros()).min(20);
        let mut fanout = vec![0u32; (1 << bits) + 1];
        for e in &entries {
            fanout[(u64::from(e.prefix) >> (32 - bits)) as usize + 1] += 1;
        }
        for b in 1..fanout.len() {
            fanout[b] += fanout[b - 1];
        }
        Sorted {
            entries,
            bits,
            fanout,
        }
    }

    /// The entries whose prefix is `want`.
    fn equal(&self, want: u32) -> &[Entry] {
        if self.entries.is_empty() {
            return &[];
        }
        let b = (u64::from(want) >> (32 - self.bits)) as usize;
        let bucket = &self.entries[self.fanout[b] as usize..self.fanout[b + 1] as usize];
        let start = bucket.partition_point(|e| e.prefix < want);
        let len = bucket[start..].partition_point(|e| e.prefix == want);
        &bucket[start..start + len]
    }
}

/// The merged tables of a handle's packs, but the large ones.
#[derive(Default)]
pub(crate) struct Midx {
    values: Sorted,
    calls: Sorted,
    /// The packs (positions in the handle's list) searched on their own: large ones (merging
    /// one would cost a pass over it in every process that opens the store; its own index is
    /// searched in a few probes) and any beyond what an entry can name.
    pub(crate) alone: Vec<usize>,
}

/// Packs with at least this many objects are searched on their own (see [`Midx::alone`]).
const LARGE: usize = 1 << 18;

fn prefix(id: &[u8]) -> u32 {
    u32::from_be_bytes(id[..4].try_into().expect("4 bytes"))
}

impl Midx {
    /// Tables covering `packs` from scratch.
    pub(crate) fn build(packs: &[Arc<Pack>]) -> Midx {
        let mut m = Midx::default();
        for (i, p) in packs.iter().enumerate() {
            m.add(i, p);
        }
        m
    }

    /// Merges pack `p`, at position `at` of the handle's list, into the tables, or lists it
    /// among those searched alone.
    pub(crate) fn add(&mut self, at: usize, p: &Pack) {
        let (nv, nc) = (p.idx.n_values(), p.idx.n_calls());
        if at >= MAX_PACKS || nv >= MAX_ROWS || nc >= MAX_ROWS || nv + nc >= LARGE {
            self.alone.push(at);
            return;
        }
        let tag = (at as u32) << 24;
        let values = (0..nv).map(|i| Entry {
            prefix: prefix(p.idx.key(Table::Values, i)),
            at: tag | i as u32,
        });
        self.values = Sorted::new(merge(&self.values.entries, values));
        let calls = (0..nc).map(|i| Entry {
            prefix: prefix(p.idx.key(Table::Calls, i)),
            at: tag | i as u32,
        });
        self.calls = Sorted::new(merge(&self.calls.entries, calls));
    }

    /// The (pack, row) of every entry of `table` whose id starts with the first 4 bytes of
    /// `key`, in table order (the caller compares full ids).
    pub(crate) fn candidates<'a>(
        &'a self,
        table: Table,
        key: &[u8],
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        let entries = match table {
            Table::Values => &self.values,
            Table::Calls => &self.calls,
        };
        entries
            .equal(prefix(key))
            .iter()
            .map(|e| (e.pack(), e.row()))
    }
}

/// `a` and the sorted `b`, merged (both sorted by prefix).
fn merge(a: &[Entry], b: impl Iterator<Item = Entry>) -> Vec<Entry> {
    let b: Vec<Entry> = b.collect();
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].prefix <= b[j].prefix {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_search_agree_with_a_scan() {
        let mk = |seed: u32, n: u32| -> Vec<Entry> {
            let mut v: Vec<Entry> = (0..n)
                .map(|i| Entry {
                    prefix: prefix(
                        blake3::hash(&(seed * 100_000 + i / 2).to_le_bytes()).as_bytes(),
                    ),
                    at: (seed << 24) | i,
                })
                .collect();
            v.sort_by_key(|e| e.prefix);
            v
        };
        let a = mk(0, 3000);
        let merged = merge(&a, mk(1, 2000).into_iter());
        assert_eq!(merged.len(), 5000);
        assert!(merged.windows(2).all(|w| w[0].prefix <= w[1].prefix));
        for n in [0, 1, 3, 5000] {
            let sorted = Sorted::new(merged[..n].to_vec());
            let probes = merged.iter().map(|e| e.prefix).chain([0, u32::MAX, 12345]);
            for want in probes {
                let scan: Vec<Entry> = merged[..n]
                    .iter()
                    .copied()
                    .filter(|e| e.prefix == want)
                    .collect();
                assert_eq!(sorted.equal(want), &scan[..], "{n} entries, prefix {want}");
            }
        }
    }
}
