//! The provenance index: which call created a ref, which calls consumed it, and the content id
//! of every ref, over all stored calls.
//!
//! The index lives in the engine and is refreshed before each query: the backend lists the ids
//! of its call records (cheap: no record is read), and only records the index has not seen are
//! read. If a record it knew has gone, it is rebuilt from scratch. Lookups are then hash-map
//! reads. Choices are deterministic: the creator of a ref is the call with the smallest
//! (call key, hid, record id) among those that output it (several only after merging stores in which
//! a non-deterministic op diverged), and consumers are listed in that order.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::Backend;
use crate::error::Result;
use crate::id::{Id, IdMap};
use crate::record::StoredCall;

type Key = (Id, Id, Id);

#[derive(Default)]
pub(crate) struct Provenance {
    known: BTreeMap<Key, usize>,
    calls: Vec<StoredCall>,
    creator: IdMap<usize>,
    consumers: IdMap<Vec<usize>>,
    cid_of: IdMap<Id>,
}

fn key(c: &StoredCall) -> Key {
    (c.key, c.hid, c.rid)
}

impl Provenance {
    /// Brings the index up to date with `backend`.
    pub(crate) fn refresh(&mut self, backend: &dyn Backend) -> Result<()> {
        let ids = backend.call_ids()?;
        let listed: BTreeSet<Key> = ids.iter().copied().collect();
        if !self.known.keys().all(|k| listed.contains(k)) {
            *self = Provenance::default();
        }
        for (k, hid, rid) in ids {
            if self.known.contains_key(&(k, hid, rid)) {
                continue;
            }
            let record = backend.get_call(&k, &hid, &rid)?;
            let cid = record.cid();
            self.add(StoredCall {
                key: k,
                cid,
                hid,
                rid,
                record,
            });
        }
        Ok(())
    }

    fn add(&mut self, call: StoredCall) {
        let i = self.calls.len();
        let k = key(&call);
        for s in &call.record.inputs {
            self.consumers.entry(s.hid).or_default().push(i);
            self.cid_of.insert(s.hid, s.cid);
        }
        for s in &call.record.outputs {
            self.cid_of.insert(s.hid, s.cid);
            let current = self.creator.get(&s.hid).map(|j| key(&self.calls[*j]));
            if current.is_none_or(|c| k < c) {
                self.creator.insert(s.hid, i);
            }
        }
        self.known.insert(k, i);
        self.calls.push(call);
    }

    /// The call that output the ref `hid`.
    pub(crate) fn creator(&self, hid: &Id) -> Option<StoredCall> {
        self.creator.get(hid).map(|i| self.calls[*i].clone())
    }

    /// The calls that took the ref `hid` as an input, ordered by (call key, hid, record id).
    pub(crate) fn consumers(&self, hid: &Id) -> Vec<StoredCall> {
        let mut v: Vec<StoredCall> = self
            .consumers
            .get(hid)
            .map(|v| v.iter().map(|i| self.calls[*i].clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(key);
        v.dedup_by_key(|c| key(c));
        v
    }

    /// The stored call with identity `id` (call key, hid, record id), if indexed.
    pub(crate) fn call(&self, id: &Key) -> Option<&StoredCall> {
        self.known.get(id).map(|i| &self.calls[*i])
    }

    /// Every stored call of op `op`, ordered by (call key, hid, record id).
    pub(crate) fn calls_of(&self, op: &str) -> Vec<StoredCall> {
        let mut v: Vec<StoredCall> = self
            .calls
            .iter()
            .filter(|c| c.record.op == op)
            .cloned()
            .collect();
        v.sort_by_key(key);
        v
    }

    /// The content id of the ref `hid`, if any stored call names it.
    pub(crate) fn cid_of(&self, hid: &Id) -> Option<Id> {
        self.cid_of.get(hid).copied()
    }
}
