//! The storage contract: the [`Backend`] trait the memo engine stores through, and the
//! in-memory backend.
//!
//! A backend keeps four kinds of object: values (canonical CBOR bytes by content id), call
//! records (named by a [`CallName`]: call key, call hid, record id), version records (by
//! version id) and decisions. Every object is written once and never changed, so backends
//! need no transactions: writers order their writes (values before the call record that names
//! them, under a [`WriteGuard`]) and readers never see a call whose values are missing.
//!
//! # The contract
//! - **Absent is `Ok(None)`.** A read of an object the backend does not hold — never stored,
//!   or deleted since a listing named it — answers `Ok(None)`; errors are for failures
//!   (I/O, damage), never for absence.
//! - **Objects are verified.** What a read returns hashes to the id it was asked for; a
//!   damaged object is an error naming it, never returned.
//! - **Writes are idempotent and write-once.** Storing what is stored is a no-op.
//! - **Methods come in three groups**: objects by id (values, versions, decisions), calls by
//!   name (a call key's records, one record, storing and deleting one), and whole-store
//!   batches for queries (every call name, many records or values at once), which a backend
//!   may serve from a cache as long as the answers are the same.
//! - **Large values may go in pieces, both ways.** A backend that keeps large values as
//!   streams can hand one out a piece at a time ([`Backend::stream_value`]) and take one in as
//!   it is encoded ([`Backend::value_writer`]), so that an 80 MB vector is never held encoded
//!   whole. Both are optional (the defaults say "not in pieces"), and a value taken in pieces
//!   is stored exactly as [`Backend::put_value`] would store it whole.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::format::id::Id;
use crate::format::record::{CallName, CallRecord, StoredCall};
use crate::format::version::{Decision, VersionRecord};

/// Held by a writer while it stores one call (or one batch of versions): from its first "is
/// this value stored?" to the moment the record that names the values is in place. A backend
/// that can remove values (the file store's `gc`) never does so while a guard is held, so a
/// record never names a value that a collection removed. Dropping the guard releases it.
#[must_use = "the guard protects writes only while it lives"]
pub struct WriteGuard<'a> {
    epoch: u64,
    _hold: Option<Box<dyn Send + 'a>>,
}

impl<'a> WriteGuard<'a> {
    /// A guard at collection epoch `epoch`, released when `hold` is dropped.
    pub fn new(epoch: u64, hold: Option<Box<dyn Send + 'a>>) -> WriteGuard<'a> {
        WriteGuard { epoch, _hold: hold }
    }

    /// The store's collection epoch when the guard was taken. It changes whenever a collection
    /// removed values: a writer that remembers which values are stored must forget them then.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Values whose encoding is at least this large may be written in pieces
/// ([`Backend::value_writer`]).
pub const LARGE_VALUE: usize = 1 << 20;

/// A large value being written as it is encoded (see [`Backend::value_writer`]).
///
/// Dropping a writer without committing it leaves nothing behind; until it is committed, no
/// reader sees the value.
pub trait ValueWriter {
    /// Appends the next piece of the value's canonical CBOR.
    fn write(&mut self, piece: &[u8]) -> Result<()>;

    /// [`ValueWriter::write`] of a piece the writer may keep (and read from another thread)
    /// until it is written, instead of copying it; the caller reuses the buffer once it holds
    /// the only reference again.
    fn write_shared(&mut self, piece: &std::sync::Arc<Vec<u8>>) -> Result<()> {
        self.write(piece)
    }

    /// Completes the value and makes it visible under `cid`, the content id of everything
    /// written (which the caller hashed as it wrote). Fails if fewer or more bytes than the
    /// announced length were written; a value already stored under `cid` stays as it is.
    fn commit(self: Box<Self>, cid: &Id) -> Result<()>;
}

/// Where calls and values live. Implementations: [`MemoryBackend`], and `store_fs::FsBackend`.
pub trait Backend: Send + Sync {
    /// A short description for messages: the store's path, or `in-memory`.
    fn describe(&self) -> String;

    /// Whether the value `cid` is stored.
    fn has_value(&self, cid: &Id) -> Result<bool>;

    /// The canonical CBOR bytes of value `cid`, verified against `cid`, or `None`.
    fn get_value(&self, cid: &Id) -> Result<Option<Vec<u8>>>;

    /// Value `cid` handed to `sink` in pieces, in order, without holding it whole, for a
    /// backend that keeps large values as streams (the file store's loose blobs): `Ok(true)`
    /// once every piece was handed and the whole checked against `cid`. `Ok(false)` means not
    /// streamed — a value kept another way, a backend that does not stream (the default), or
    /// a damaged blob (which [`Backend::get_value`] then reports) — and the caller then uses
    /// `get_value`. What `sink` made of the pieces is to be used only after `Ok(true)`.
    fn stream_value(&self, cid: &Id, sink: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let _ = (cid, sink);
        Ok(false)
    }

    /// The bytes of the values `cids` as [`Backend::get_value`] returns them, in the order of
    /// `cids`: tables read thousands at once, spread here over the cores; a backend with a
    /// cache of values can also look them all up at once.
    fn get_values(&self, cids: &[Id]) -> Result<Vec<Option<Vec<u8>>>> {
        crate::par::try_map(cids, 1024, |cid| self.get_value(cid))
    }

    /// Guards a writer's checks and writes against a concurrent collection (see
    /// [`WriteGuard`]). The default, for backends that never remove values, guards nothing.
    fn begin_writes(&self) -> Result<WriteGuard<'_>> {
        Ok(WriteGuard::new(0, None))
    }

    /// Stores a value's canonical CBOR bytes under its content id. Storing an existing value is
    /// a no-op.
    fn put_value(&self, cid: &Id, cbor: &[u8]) -> Result<()>;

    /// Starts writing a large value (`len` bytes of canonical CBOR, at least
    /// [`LARGE_VALUE`]) as it is encoded, before its id is known: the caller hands every
    /// piece to the writer, `first` included, hashes them, and commits the writer under the
    /// id they hashed to. An 80 MB vector is then encoded, hashed and written in one pass,
    /// never held whole. `Ok(None)` (the default) means the backend takes values whole only
    /// ([`Backend::put_value`]).
    ///
    /// `first` is the first piece, at least [`LARGE_VALUE`] bytes: a backend that compresses
    /// may choose how from it, so that the value is stored exactly as `put_value` would
    /// store it.
    fn value_writer(&self, len: u64, first: &[u8]) -> Result<Option<Box<dyn ValueWriter>>> {
        let _ = (len, first);
        Ok(None)
    }

    /// The (call hid, record id) pairs stored under call key `key`, sorted.
    fn list_calls(&self, key: &Id) -> Result<Vec<CallName>>;

    /// Reads one call record, verified against its record id; `None` if the store does not
    /// hold it (never listed, or deleted since a listing named it). Whether the record belongs
    /// at (`key`, `hid`) is for the caller to check (the engine compares it with the call it
    /// looks up; `fsck` recomputes the ids).
    fn get_call(&self, name: &CallName) -> Result<Option<CallRecord>>;

    /// A call record with its ids, the call's content id included (a backend that caches it
    /// saves hashing it anew); `None` if the store does not hold it.
    fn get_stored_call(&self, name: &CallName) -> Result<Option<StoredCall>> {
        Ok(self.get_call(name)?.map(|record| StoredCall {
            key: name.key,
            cid: record.cid(),
            hid: name.hid,
            rid: name.rid,
            record,
        }))
    }

    /// The records `ids` as [`Backend::get_stored_call`] returns them, in the order of `ids`:
    /// whole-store queries read thousands at once (decoding them is most of the cost of a
    /// first query), so this spreads them over the cores; a backend with a cache of records
    /// can also look them all up at once. Shared (`Arc`): queries keep them as they come.
    fn get_stored_calls(&self, names: &[CallName]) -> Result<Vec<Option<Arc<StoredCall>>>> {
        crate::par::try_map(names, 1024, |name| {
            Ok(self.get_stored_call(name)?.map(Arc::new))
        })
    }

    /// Stores a call record (its values must already be stored). Idempotent.
    fn put_call(&self, record: &CallRecord) -> Result<()>;

    /// [`put_call`](Self::put_call) of a record whose call key and call hid the caller has
    /// computed already (the engine has, for every new call): a backend that files records
    /// by them need not hash them again. `key` and `hid` must be `record.key()` and
    /// `record.hid()`.
    fn put_call_keyed(&self, record: &CallRecord, key: &Id, hid: &Id) -> Result<()> {
        let _ = (key, hid);
        self.put_call(record)
    }

    /// Every stored call, in a deterministic order (by call key, hid, record id).
    fn all_calls(&self) -> Result<Vec<StoredCall>>;

    /// Every stored call of op `op`, in the order of [`Backend::all_calls`]. The default reads
    /// every call; a backend that can find one op's calls without decoding the others (the
    /// file store reads the op at the start of each record) answers in time proportional to
    /// the store's size at a small fraction of the cost, and in memory proportional to what
    /// it returns.
    fn calls_of_op(&self, op: &str) -> Result<Vec<StoredCall>> {
        let mut calls = self.all_calls()?;
        calls.retain(|c| c.record.op == op);
        Ok(calls)
    }

    /// The (call key, hid, record id) of every stored call, sorted, without reading records:
    /// cheap enough to ask before every provenance query.
    fn call_names(&self) -> Result<Vec<CallName>>;

    /// Saves what this process learned about the store's calls in a persistent cache, if the
    /// backend keeps one (the file store's `index/calls`), after a whole-store query. Never
    /// fails: a cache that cannot be written costs only speed.
    fn save_index(&self) {}

    /// The content ids of every stored value, sorted.
    fn all_values(&self) -> Result<Vec<Id>>;

    /// Deletes a call record (maintenance: deleting calls and their dependents). Deleting a
    /// record that is not there is not an error.
    fn delete_call(&self, name: &CallName) -> Result<()>;

    /// Deletes many call records at once (a backend whose records share files rewrites them
    /// once for all). The default deletes them one by one.
    fn delete_calls(&self, names: &[CallName]) -> Result<()> {
        names.iter().try_for_each(|n| self.delete_call(n))
    }

    /// Makes what this handle wrote durable in the store's long-term form (the file store
    /// seals its log into a pack); a no-op for backends without one. What was written is
    /// already safe and visible before: this only tidies.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Stores a version record of a component history (idempotent).
    fn put_version(&self, version: &VersionRecord) -> Result<()>;

    /// Every stored version record, sorted by id.
    fn all_versions(&self) -> Result<Vec<VersionRecord>>;

    /// Records a decision about a pending change (idempotent).
    fn put_decision(&self, decision: &Decision) -> Result<()>;

    /// Every recorded decision, sorted.
    fn decisions(&self) -> Result<Vec<Decision>>;

    /// Claims call `key` for this process against other processes sharing the store, before
    /// computing it (opt-in: a backend without claims answers [`CallClaim::Unsupported`]).
    fn claim_call(&self, _key: &Id) -> Result<CallClaim> {
        Ok(CallClaim::Unsupported)
    }

    /// Releases this process's claim on call `key` (stored, or given up).
    fn release_call(&self, _key: &Id) -> Result<()> {
        Ok(())
    }

    /// Records a tag record (idempotent; see [`crate::format::tag`]).
    fn put_tag(&self, tag: &crate::format::tag::TagRecord) -> Result<()>;

    /// Every tag record, sorted.
    fn tag_records(&self) -> Result<Vec<crate::format::tag::TagRecord>>;
}

/// What [`Backend::claim_call`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallClaim {
    /// The backend does not claim calls (or claims are off).
    Unsupported,
    /// This process holds the claim: compute the call, then release it.
    Acquired,
    /// Another live process holds it (described): wait for its result.
    HeldElsewhere(String),
}

/// A backend that keeps everything in memory, for tests and throwaway sessions.
#[derive(Default)]
pub struct MemoryBackend {
    values: Mutex<HashMap<Id, Vec<u8>>>,
    calls: Mutex<BTreeMap<CallName, CallRecord>>,
    versions: Mutex<BTreeMap<Id, VersionRecord>>,
    decisions: Mutex<std::collections::BTreeSet<Decision>>,
    tags: Mutex<std::collections::BTreeSet<crate::format::tag::TagRecord>>,
}

impl MemoryBackend {
    /// An empty in-memory store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        "in-memory".into()
    }

    fn has_value(&self, cid: &Id) -> Result<bool> {
        Ok(self.values.lock().unwrap().contains_key(cid))
    }

    fn get_value(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        Ok(self.values.lock().unwrap().get(cid).cloned())
    }

    fn put_value(&self, cid: &Id, cbor: &[u8]) -> Result<()> {
        self.values
            .lock()
            .unwrap()
            .entry(*cid)
            .or_insert_with(|| cbor.to_vec());
        Ok(())
    }

    fn list_calls(&self, key: &Id) -> Result<Vec<CallName>> {
        let calls = self.calls.lock().unwrap();
        let bound = |b: u8| CallName {
            key: *key,
            hid: Id([b; 32]),
            rid: Id([b; 32]),
        };
        Ok(calls
            .range(bound(0)..=bound(0xff))
            .map(|(n, _)| *n)
            .collect())
    }

    fn get_call(&self, name: &CallName) -> Result<Option<CallRecord>> {
        Ok(self.calls.lock().unwrap().get(name).cloned())
    }

    fn put_call(&self, record: &CallRecord) -> Result<()> {
        self.calls
            .lock()
            .unwrap()
            .entry(record.name())
            .or_insert_with(|| record.clone());
        Ok(())
    }

    fn all_calls(&self) -> Result<Vec<StoredCall>> {
        Ok(self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(name, record)| StoredCall {
                key: name.key,
                cid: record.cid(),
                hid: name.hid,
                rid: name.rid,
                record: record.clone(),
            })
            .collect())
    }

    fn call_names(&self) -> Result<Vec<CallName>> {
        Ok(self.calls.lock().unwrap().keys().copied().collect())
    }

    fn all_values(&self) -> Result<Vec<Id>> {
        let mut v: Vec<Id> = self.values.lock().unwrap().keys().copied().collect();
        v.sort();
        Ok(v)
    }

    fn delete_call(&self, name: &CallName) -> Result<()> {
        self.calls.lock().unwrap().remove(name);
        Ok(())
    }

    fn put_version(&self, version: &VersionRecord) -> Result<()> {
        self.versions
            .lock()
            .unwrap()
            .entry(version.id())
            .or_insert_with(|| version.clone());
        Ok(())
    }

    fn all_versions(&self) -> Result<Vec<VersionRecord>> {
        Ok(self.versions.lock().unwrap().values().cloned().collect())
    }

    fn put_decision(&self, decision: &Decision) -> Result<()> {
        self.decisions.lock().unwrap().insert(decision.clone());
        Ok(())
    }

    fn decisions(&self) -> Result<Vec<Decision>> {
        Ok(self.decisions.lock().unwrap().iter().cloned().collect())
    }

    fn put_tag(&self, tag: &crate::format::tag::TagRecord) -> Result<()> {
        self.tags.lock().unwrap().insert(tag.clone());
        Ok(())
    }

    fn tag_records(&self) -> Result<Vec<crate::format::tag::TagRecord>> {
        Ok(self.tags.lock().unwrap().iter().cloned().collect())
    }
}
