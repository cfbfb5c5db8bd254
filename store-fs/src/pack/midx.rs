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

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// Which table.
#[derive(Clone, Copy)]
pub(crate) enum Table {
    Values,
    Calls,
}

/// The merged tables of a handle's packs, but the large ones.
#[derive(Default)]
pub(crate) struct Midx {
    values: Vec<Entry>,
    calls: Vec<Entry>,
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
            prefix: prefix(&p.idx.value_key(i)[..4]),
            at: tag | i as u32,
        });
        self.values = merge(&self.values, values);
        let calls = (0..nc).map(|i| Entry {
            prefix: prefix(&p.idx.call_key(i)[..4]),
            at: tag | i as u32,
        });
        self.calls = merge(&self.calls, calls);
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
        let want = prefix(key);
        let start = lower_bound(entries, want);
        entries[start..]
            .iter()
            .take_while(move |e| e.prefix == want)
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

/// The first entry whose prefix is not less than `want`.
fn lower_bound(entries: &[Entry], want: u32) -> usize {
    super::format::interpolation_search(
        entries.len(),
        |i| u64::from(entries[i].prefix),
        u64::from(want),
        |i| entries[i].prefix < want,
    )
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
        let probes = merged.iter().map(|e| e.prefix).chain([0, u32::MAX, 12345]);
        for want in probes {
            let scan = merged
                .iter()
                .position(|e| e.prefix >= want)
                .unwrap_or(merged.len());
            assert_eq!(lower_bound(&merged, want), scan);
        }
        assert_eq!(lower_bound(&[], 7), 0);
    }
}
