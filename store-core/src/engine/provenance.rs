//! The provenance index: which call created a ref, which calls consumed it, and the content id
//! of every ref, over all stored calls.
//!
//! The index lives in the engine and is refreshed before each query: the backend lists the ids
//! of its call records (cheap: no record is read), and only records the index has not seen are
//! read. If a record it knew has gone, it is rebuilt from scratch. Lookups are then hash-map
//! reads. Choices are deterministic: the creator of a ref is the call with the smallest
//! (call key, hid, record id) among those that output it (several only after merging stores in which
//! a non-deterministic op diverged), and consumers are listed in that order.

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::Result;
use crate::format::id::{Id, IdMap};
use crate::format::record::{CallName, StoredCall};

type Key = CallName;

/// The provenance index over every stored call (see the module docs). Obtained, brought up
/// to date, from [`crate::Engine::provenance`].
#[derive(Default)]
pub struct Provenance {
    /// The backend's listing at the last refresh, sorted: the calls indexed (an unchanged
    /// listing: nothing to do).
    listed: Vec<Key>,
    /// The place in `calls` of each call of `listed`.
    at: Vec<u32>,
    calls: Vec<Arc<StoredCall>>,
    creator: IdMap<usize>,
    /// Consumers of each ref as linked lists in `consumer_links` (call, next; `u32::MAX`
    /// ends a list): no allocation per ref.
    consumer_head: IdMap<u32>,
    consumer_links: Vec<(u32, u32)>,
    /// The content id of every ref, built on first use (only `load_ref` needs it).
    cid_of: std::sync::OnceLock<IdMap<Id>>,
}

fn key(c: &StoredCall) -> Key {
    c.name()
}

/// Matches the sorted listing `now` against the previous one, `before` (sorted, with the
/// place of each of its calls in `at`): the names new in `now`, and the place of each name of
/// `now` — known ones where they were, new ones numbered from `first` in listing order.
/// `None` if a name of `before` is gone from `now`.
fn match_listing(
    before: &[Key],
    at: &[u32],
    now: &[Key],
    first: u32,
) -> Option<(Vec<Key>, Vec<u32>)> {
    let mut added = Vec::new();
    let mut places = Vec::with_capacity(now.len());
    let mut old = before.iter().zip(at).peekable();
    for k in now {
        match old.peek() {
            Some((o, i)) if *o == k => {
                places.push(**i);
                old.next();
            }
            Some((o, _)) if *o < k => return None,
            _ => {
                places.push(first + added.len() as u32);
                added.push(*k);
            }
        }
    }
    old.next().is_none().then_some((added, places))
}

impl Provenance {
    /// How many calls it indexes.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether it indexes no call.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Brings the index up to date with `backend`.
    pub(crate) fn refresh(&mut self, backend: &dyn Backend) -> Result<()> {
        // A record can vanish between the listing and its reading (another process deleted
        // it): then the listing is stale, and is taken again.
        for _ in 0..3 {
            let mut ids = backend.call_names()?;
            if ids == self.listed {
                return Ok(());
            }
            if !ids.is_sorted() {
                ids.sort_unstable();
            }
            let first = self.calls.len() as u32;
            let (added, at) = match match_listing(&self.listed, &self.at, &ids, first) {
                Some(matched) => matched,
                // A call has gone (deleted by another process): from scratch.
                None => {
                    *self = Provenance::default();
                    match_listing(&[], &[], &ids, 0).expect("nothing can be gone")
                }
            };
            let Some(calls) = backend
                .get_stored_calls(&added)?
                .into_iter()
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let n = calls.len();
            self.calls.reserve(n);
            self.creator.reserve(n);
            self.consumer_head.reserve(n);
            self.consumer_links.reserve(2 * n);
            for call in calls {
                self.add(call);
            }
            backend.save_index();
            self.listed = ids;
            self.at = at;
            return Ok(());
        }
        Err(crate::Error::corrupt(
            backend.describe(),
            "call records vanished while they were read, three times in a row (another process is deleting calls); try again",
        ))
    }

    fn add(&mut self, call: Arc<StoredCall>) {
        if self.cid_of.get().is_some() {
            self.cid_of = std::sync::OnceLock::new();
        }
        let i = self.calls.len();
        let k = key(&call);
        for s in &call.record.inputs {
            let link = self.consumer_links.len() as u32;
            let head = self.consumer_head.entry(s.hid).or_insert(u32::MAX);
            self.consumer_links.push((i as u32, *head));
            *head = link;
        }
        for s in &call.record.outputs {
            let current = self.creator.get(&s.hid).map(|j| key(&self.calls[*j]));
            if current.is_none_or(|c| k < c) {
                self.creator.insert(s.hid, i);
            }
        }
        self.calls.push(call);
    }

    /// The call that output the ref `hid`.
    pub fn creator(&self, hid: &Id) -> Option<Arc<StoredCall>> {
        self.creator.get(hid).map(|i| self.calls[*i].clone())
    }

    /// The calls that took the ref `hid` as an input, ordered by (call key, hid, record id).
    pub fn consumers(&self, hid: &Id) -> Vec<Arc<StoredCall>> {
        let mut v: Vec<Arc<StoredCall>> = self.consumers_unordered(hid).cloned().collect();
        v.sort_by_key(|c| key(c));
        v.dedup_by_key(|c| key(c));
        v
    }

    /// The calls that took the ref `hid` as an input, in no particular order (possibly
    /// repeated): for callers that filter most of them out before sorting.
    pub fn consumers_unordered(&self, hid: &Id) -> impl Iterator<Item = &Arc<StoredCall>> {
        let mut next = self.consumer_head.get(hid).copied().unwrap_or(u32::MAX);
        std::iter::from_fn(move || {
            if next == u32::MAX {
                return None;
            }
            let (call, after) = self.consumer_links[next as usize];
            next = after;
            Some(&self.calls[call as usize])
        })
    }

    /// The stored call with identity `id` (call key, hid, record id), if indexed.
    pub fn call(&self, id: &CallName) -> Option<&Arc<StoredCall>> {
        let pos = self.listed.binary_search(id).ok()?;
        Some(&self.calls[self.at[pos] as usize])
    }

    /// Every stored call of op `op`, ordered by (call key, hid, record id).
    pub fn calls_of(&self, op: &str) -> Vec<&Arc<StoredCall>> {
        let mut v: Vec<&Arc<StoredCall>> =
            self.calls.iter().filter(|c| c.record.op == op).collect();
        // Calls are indexed in listing order, which is sorted unless calls were added later.
        if !v.is_sorted_by_key(|c| key(c)) {
            v.sort_by_key(|c| key(c));
        }
        v
    }

    /// The content id of the ref `hid`, if any stored call names it.
    pub fn cid_of(&self, hid: &Id) -> Option<Id> {
        self.cid_of
            .get_or_init(|| {
                let mut map = IdMap::default();
                for c in &self.calls {
                    for s in c.record.inputs.iter().chain(&c.record.outputs) {
                        map.insert(s.hid, s.cid);
                    }
                }
                map
            })
            .get(hid)
            .copied()
    }
}
