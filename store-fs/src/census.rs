//! The calls of each op, counted without reading the calls, and one op's calls found among
//! millions: what `mandala status`, `mandala ops` and `mandala calls OP` show. A packed
//! record's op is read from its first bytes (it starts every record, in both of its forms);
//! records in logs and loose files — few in formats 2 and 3, all of a format-1 store's — are
//! read whole. Each call counts once, however many packs hold it.

use std::collections::{BTreeMap, HashMap};

#[cfg(doc)]
use store_core::Backend;
use store_core::{CallName, Id, Result, StoredCall};

use crate::FsBackend;

/// The calls a scan met: each (record id, number of its op in `ops`). A call stored in
/// several places is met in each.
#[derive(Default)]
struct Tally {
    ops: Vec<String>,
    number: HashMap<String, u32>,
    calls: Vec<(Id, u32)>,
}

impl Tally {
    /// The number of `op`, given it if new.
    fn number(&mut self, op: &str) -> u32 {
        // Calls of one op mostly come in runs: the last op is compared before any hashing.
        if let Some((_, n)) = self
            .calls
            .last()
            .filter(|(_, n)| self.ops[*n as usize] == op)
        {
            return *n;
        }
        if let Some(n) = self.number.get(op) {
            return *n;
        }
        let n = self.ops.len() as u32;
        self.ops.push(op.to_string());
        self.number.insert(op.to_string(), n);
        n
    }

    fn add(&mut self, rid: Id, op: &str) {
        let n = self.number(op);
        self.calls.push((rid, n));
    }

    fn merge(&mut self, other: Tally) {
        let renumber: Vec<u32> = other.ops.iter().map(|op| self.number(op)).collect();
        self.calls
            .extend((other.calls.into_iter()).map(|(rid, n)| (rid, renumber[n as usize])));
    }
}

/// What a scan of the packs leaves: how many packs hold calls, and the names of the calls
/// stored elsewhere (in logs, or loose files).
struct Unpacked {
    packs: usize,
    names: Vec<CallName>,
}

impl FsBackend {
    /// How many stored calls each op has (each call once, wherever it is stored), by op name.
    ///
    /// Packed records are not decoded: only the op name that starts each is read, so a store
    /// of a million calls answers in a fraction of a second with little memory. Records are
    /// not checked against their ids here (`verify` does that).
    pub fn op_counts(&self) -> Result<BTreeMap<String, usize>> {
        let (tallies, unpacked) =
            self.scan_ops(Tally::default, |t, name, op| t.add(name.rid, op))?;
        let mut all = Tally::default();
        for t in tallies {
            all.merge(t);
        }
        let read = self.read_stored_calls(&unpacked.names)?;
        for call in read.iter().flatten() {
            all.add(call.rid, &call.record.op);
        }
        // A call met in two places (packs that overlap after a merge, a log being sealed)
        // counts once.
        if unpacked.packs > 1 || !unpacked.names.is_empty() {
            all.calls.sort_unstable();
            all.calls.dedup_by_key(|(rid, _)| *rid);
        }
        let mut counts: Vec<usize> = vec![0; all.ops.len()];
        for (_, n) in &all.calls {
            counts[*n as usize] += 1;
        }
        Ok(all
            .ops
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    /// Every stored call of `op`, ordered by name (as [`Backend::all_calls`] lists them),
    /// reading whole only the records of `op`: in a store of a million calls, a rare op's
    /// calls are found in a fraction of a second.
    pub fn calls_of_op(&self, op: &str) -> Result<Vec<StoredCall>> {
        let (found, unpacked) = self.scan_ops(Vec::new, |names: &mut Vec<CallName>, name, o| {
            if o == op {
                names.push(*name);
            }
        })?;
        let mut names: Vec<CallName> = found.into_iter().flatten().collect();
        names.extend(unpacked.names);
        names.sort_unstable();
        names.dedup();
        let read = self.read_stored_calls(&names)?;
        Ok(read
            .into_iter()
            .flatten()
            .filter(|c| c.record.op == op)
            .map(std::sync::Arc::unwrap_or_clone)
            .collect())
    }

    /// `add(acc, name, op)` for each call entry of every pack (on all cores, each run of
    /// rows into an accumulator from `new`), and the names of the calls stored elsewhere.
    fn scan_ops<A: Send>(
        &self,
        new: impl Fn() -> A + Sync,
        add: impl Fn(&mut A, &CallName, &str) + Sync,
    ) -> Result<(Vec<A>, Unpacked)> {
        let (packed, with_calls, mut names) = {
            let mut packs = self.packs();
            packs.refresh(&self.inner.root, true, false)?;
            // What this handle has yet to write is written first, so it can be read.
            self.commit_log(&mut packs)?;
            let with_calls = packs.packs.iter().filter(|p| p.idx.n_calls() > 0).count();
            let packed = packs.each_packed_call_op(new, add)?;
            (packed, with_calls, packs.logged_call_names())
        };
        if self.may_have_loose_calls() {
            names.extend(self.loose_call_names()?);
        }
        Ok((
            packed,
            Unpacked {
                packs: with_calls,
                names,
            },
        ))
    }
}
