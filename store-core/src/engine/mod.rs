//! The memo engine: looks calls up, records new ones, loads values, answers provenance.
//!
//! An [`Engine`] wraps one [`Backend`]. It is cheap to clone (shared) and safe to use from
//! several threads; `#[op]` calls reach it through the thread's current context
//! ([`Engine::run`], [`Engine::noop`]).
//!
//! # Guarantees
//! - A call found in the store is never executed: first by call hid (same history), then by
//!   call cid (same content, other history), which is recorded under the new hid.
//! - Every write goes to the backend as the call completes, values before the record that
//!   names them, so calls completed before an error or a panic are stored.
//! - Hits are lazy: no value is read until it is unwrapped or a call that executes needs it.

pub mod call;
pub mod collection;
pub mod context;
mod inflight;
pub mod pointer;
pub mod provenance;
pub mod stats;
pub mod tags;
pub mod value;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, MemoryBackend};
use crate::engine::call::encode_whole;
use crate::engine::context::{ContextGuard, Mode};
use crate::engine::provenance::Provenance;
use crate::engine::stats::Stats;
use crate::engine::value::{OpValue, Ref, RefIds, Value};
use crate::error::{Error, Result};
use crate::format::cbor;
use crate::format::id::{Id, IdMap, IdSet};
use crate::format::record::{CallName, CallRecord, Slot, StoredCall};
use crate::version::state::{ChangeReport, VersionState, Versioning};

/// The memo engine over one backend. See the module docs.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    memo: Mutex<Memo>,
    allow_new_calls: AtomicBool,
    stats: Mutex<Stats>,
    provenance: Mutex<Provenance>,
    versioning: std::sync::OnceLock<VersionState>,
    git_commit: std::sync::OnceLock<Option<String>>,
    /// Where the git commit comes from, if it is looked up lazily.
    git_source: std::sync::OnceLock<fn() -> Option<String>>,
    /// Calls being computed by this process's threads (see `inflight`).
    inflight: Arc<inflight::InFlight>,
}

impl Drop for Inner {
    /// A large memo table (one record per call the process met) is freed on a thread of its
    /// own: a program that ends does not wait for a hundred thousand frees (0.7 µs a call),
    /// and one that goes on gets the memory back a moment later.
    fn drop(&mut self) {
        let memo = std::mem::take(self.memo.get_mut().unwrap_or_else(|e| e.into_inner()));
        let provenance =
            std::mem::take(self.provenance.get_mut().unwrap_or_else(|e| e.into_inner()));
        if memo.by_hid.len() + provenance.len() >= BACKGROUND_DROP {
            // If no thread can be made, the closure (and so the tables) is dropped here.
            let _ = std::thread::Builder::new()
                .name("mandala-free".into())
                .spawn(move || drop((memo, provenance)));
        }
    }
}

/// From how many remembered calls the tables are freed on a thread of their own.
const BACKGROUND_DROP: usize = 4096;

#[derive(Default)]
struct Memo {
    /// Records seen or written by this process, by call hid.
    by_hid: IdMap<Arc<CallRecord>>,
    /// Values known to be stored (valid while the store's collection epoch is `epoch`).
    values: IdSet,
    /// The collection epoch under which `values` was learned (`None`: not read yet).
    epoch: Option<u64>,
}

/// How a lookup found a call.
pub(crate) enum Found {
    /// Same history: a plain hit.
    Hit(Arc<CallRecord>),
    /// Same content under another history: recorded anew under the caller's hid.
    Reused(Arc<CallRecord>),
}

impl Found {
    pub(crate) fn record(&self) -> &Arc<CallRecord> {
        match self {
            Found::Hit(r) | Found::Reused(r) => r,
        }
    }
}

impl Engine {
    /// An engine over `backend`.
    pub fn new(backend: Box<dyn Backend>) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                backend,
                memo: Mutex::new(Memo::default()),
                allow_new_calls: AtomicBool::new(true),
                stats: Mutex::new(Stats::default()),
                provenance: Mutex::new(Provenance::default()),
                versioning: std::sync::OnceLock::new(),
                git_commit: std::sync::OnceLock::new(),
                git_source: std::sync::OnceLock::new(),
                inflight: Arc::default(),
            }),
        }
    }

    /// An engine over a fresh in-memory backend.
    pub fn in_memory() -> Engine {
        Engine::new(Box::new(MemoryBackend::new()))
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    /// Puts what this engine wrote into the store's long-term form now (the file store seals
    /// its log into a pack, which it also does at a threshold and when the store is dropped).
    /// Calls are safe and visible to other processes before this: it is never needed for
    /// correctness, only to tidy before a `git commit` of a store a program still has open.
    pub fn flush(&self) -> Result<()> {
        self.inner.backend.flush()
    }

    /// Turns versioning on: brings the histories of the program's components up to date in
    /// the store (committing changed ones as `versioning` decides) and returns what changed.
    /// From then on calls record the components they touch, and a stored call is a hit only
    /// if each of them has the same semantic id now. Set once, before the first call.
    pub fn enable_versioning(&self, versioning: Versioning) -> Result<&ChangeReport> {
        if let Some(state) = self.inner.versioning.get() {
            if state.config != versioning {
                return Err(Error::Versioning(
                    crate::error::VersioningError::AlreadyOn {
                        store: self.inner.backend.describe(),
                        current: format!("{:?}", state.config),
                    },
                ));
            }
            return Ok(&state.report);
        }
        let state =
            crate::version::state::sync(&*self.inner.backend, versioning, self.git_commit())?;
        Ok(&self.inner.versioning.get_or_init(|| state).report)
    }

    /// Records `commit` (the program's git HEAD, read once per process by the facade) with
    /// every call and version this engine stores from now on. Set once; later calls are ignored.
    pub fn set_git_commit(&self, commit: Option<String>) {
        let _ = self.inner.git_commit.set(commit);
    }

    /// Like [`set_git_commit`](Self::set_git_commit), with the commit found by `find` when
    /// first needed (when a call or version is first recorded): a process that only reads
    /// never looks for a repository.
    pub fn set_git_commit_with(&self, find: fn() -> Option<String>) {
        let _ = self.inner.git_source.set(find);
    }

    /// The git commit recorded with new calls and versions, if any.
    pub fn git_commit(&self) -> Option<&str> {
        self.inner
            .git_commit
            .get_or_init(|| self.inner.git_source.get().and_then(|find| find()))
            .as_deref()
    }

    /// The versioning state, if versioning is on.
    pub fn versioning(&self) -> Option<&VersionState> {
        self.inner.versioning.get()
    }

    /// Records in the store that the pending change of `component` to the content whose id
    /// starts with `content` (at least 8 hex digits, as the change report and strict mode show
    /// it) is `change`. The next process that turns versioning on with that content applies
    /// it; a collaborator pulling the store gets the same answer.
    pub fn mark(
        &self,
        component: &str,
        content: &str,
        change: crate::version::history::Change,
    ) -> Result<()> {
        let prefix = crate::format::id::IdPrefix::parse(content)?;
        if prefix.as_str().len() < 8 {
            return Err(Error::Format(crate::error::FormatError::BadId(
                crate::format::id::ParseIdError::BadLength {
                    input: content.to_string(),
                    len: content.len(),
                    min: 8,
                },
            )));
        }
        self.inner
            .backend
            .put_decision(&crate::version::history::Decision {
                component: component.to_string(),
                content: prefix.as_str().to_string(),
                change,
            })
    }

    /// The history of component `name`, parents before children.
    pub fn source_history(&self, name: &str) -> Result<Vec<crate::version::inspect::VersionInfo>> {
        crate::version::inspect::source_history(&*self.inner.backend, name)
    }

    /// The semantic versions of op `name` among its stored calls, each with the components
    /// its calls depended on and their texts.
    pub fn versions(&self, name: &str) -> Result<Vec<crate::version::inspect::OpVersion>> {
        crate::version::inspect::op_versions(&*self.inner.backend, name)
    }

    /// A unified diff between two versions, by version id prefix.
    pub fn diff(&self, a: &str, b: &str) -> Result<String> {
        crate::version::inspect::diff(&*self.inner.backend, a, b)
    }

    /// What changed in the program's components when versioning was turned on.
    pub fn changes(&self) -> Option<&ChangeReport> {
        self.versioning().map(|v| &v.report)
    }

    /// Runs `f` with this engine as the current context: `#[op]` calls inside are memoized.
    /// Contexts nest. Every call completed inside is stored, whether `f` returns an error,
    /// panics, or succeeds. `f` returns `mandala::Result`, so a closure of several statements
    /// using `?` needs no annotation; for another error type use [`Engine::run_with`].
    ///
    /// ```
    /// # use mandala::{op, Storage};
    /// #[op]
    /// fn inc(x: u64) -> u64 { x + 1 }
    /// let storage = Storage::in_memory();
    /// let b = storage.run(|| {
    ///     let a = inc(1)?;
    ///     inc(&a)
    /// })?;
    /// assert_eq!(storage.unwrap(&b)?, 3);
    /// # Ok::<(), mandala::Error>(())
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.run_with(f)
    }

    /// [`Engine::run`] for a closure returning another error type, one that `mandala::Error`
    /// converts into (an op's own error type, `anyhow::Error`, `Box<dyn Error>`).
    ///
    /// ```
    /// # use mandala::Storage;
    /// let storage = Storage::in_memory();
    /// let n = storage.run_with(|| -> Result<u32, Box<dyn std::error::Error>> { Ok("2".parse()?) });
    /// assert_eq!(n.unwrap(), 2);
    /// ```
    pub fn run_with<R, E: From<Error>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        let _guard = self.enter(Mode::Run);
        f()
    }

    /// Runs `f` with ops executing as plain calls: nothing is looked up or stored.
    pub fn noop<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        self.noop_with(f)
    }

    /// [`Engine::noop`] for a closure returning another error type.
    pub fn noop_with<R, E: From<Error>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        let _guard = self.enter(Mode::Noop);
        f()
    }

    /// The mode of this thread's current context (`None` outside any).
    pub fn current_mode() -> Option<Mode> {
        context::current().map(|(_, mode)| mode)
    }

    /// Makes this engine the current context (in `mode`) until the guard is dropped.
    pub fn enter(&self, mode: Mode) -> ContextGuard {
        ContextGuard::push(self.clone(), mode)
    }

    /// With `false`, a call that is not in the store fails with [`CallError::NewCallNotAllowed`](crate::CallError::NewCallNotAllowed)
    /// instead of executing; stored calls still return.
    pub fn allow_new_calls(&self, allow: bool) {
        self.inner.allow_new_calls.store(allow, Ordering::Relaxed);
    }

    pub(crate) fn new_calls_allowed(&self) -> bool {
        self.inner.allow_new_calls.load(Ordering::Relaxed)
    }

    /// What the engine did since it was created (or since [`Engine::reset_stats`]).
    pub fn stats(&self) -> Stats {
        self.inner.stats.lock().unwrap().clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        *self.inner.stats.lock().unwrap() = Stats::default();
    }

    pub(crate) fn count(&self, op: &str, f: impl Fn(&mut crate::engine::stats::OpStats)) {
        self.inner.stats.lock().unwrap().count(op, f);
    }

    /// The value of `r`, loading it from the store if needed (and keeping it in `r`): for a
    /// collection, its elements as a plain `Vec` or `BTreeMap`.
    pub fn unwrap<T: OpValue>(&self, r: &Ref<T>) -> Result<T::Plain> {
        T::unwrap_ref(r, Some(self))
    }

    /// Loads the value of `r` into it if it is lazy, and returns a reference to it.
    pub fn attach<'r, T: Value>(&self, r: &'r Ref<T>) -> Result<&'r T> {
        if let Some(v) = r.value() {
            return Ok(v);
        }
        let ids = r.known_ids().expect("a ref without a value has ids");
        Ok(r.fill(self.load_value(&ids.cid)?))
    }

    /// Stores `value` outside any call, as an op's output is stored, and returns its content
    /// id ([`Engine::load_value`] reads it back; `gc` keeps it only while a call names it).
    /// A large numeric vector is encoded, hashed and written in one pass.
    ///
    /// ```
    /// let engine = mandala::Engine::in_memory();
    /// let cid = engine.save_value(&vec![1.5f64, 2.5]).unwrap();
    /// assert_eq!(engine.load_value::<Vec<f64>>(&cid).unwrap(), [1.5, 2.5]);
    /// ```
    pub fn save_value<T: Value>(&self, value: &T) -> Result<Id> {
        let written = self.write_large(value, None)?;
        let _guard = self.writing()?;
        match written {
            Some((cid, writer)) => {
                self.commit_value(&cid, writer)?;
                Ok(cid)
            }
            None => {
                let (cid, bytes) = encode_whole(value, "(none)", || {
                    format!("a {} saved with save_value", std::any::type_name::<T>())
                })?;
                self.store_value(&cid, &bytes)?;
                Ok(cid)
            }
        }
    }

    /// Reads and decodes the value with content id `cid`. A large numeric vector kept as a
    /// stream is decoded from the pieces as they are read (and checked), never held whole.
    pub fn load_value<T: Value>(&self, cid: &Id) -> Result<T> {
        // (`decode_pieces` asks for the pieces only if `T` has a path that takes them.)
        let mut streamed = Ok(false);
        let decoded = cbor::fast::decode_pieces::<T>(|sink| {
            streamed = self.inner.backend.stream_value(cid, sink);
        });
        // Not streamed, or not the shape the fast path takes: read it whole below.
        if streamed? {
            if let Some(v) = decoded {
                return Ok(v);
            }
        }
        self.decode_read(cid, self.inner.backend.get_value(cid)?.as_deref())
    }

    /// The value `cid` decoded from `bytes` as the backend returned them (`None`: missing).
    fn decode_read<T: Value>(&self, cid: &Id, bytes: Option<&[u8]>) -> Result<T> {
        let bytes = bytes.ok_or_else(|| self.missing_value(cid))?;
        // A pointer's placeholder stands for the value bound to its name.
        if let Some(name) = crate::format::collection::pointer_name(bytes) {
            let target = self.pointer_target(cid, &name)?;
            return self.load_value(&target);
        }
        cbor::decode_value(bytes).map_err(|cause| {
            Error::Format(crate::error::FormatError::Decode {
                cid: cid.to_string(),
                ty: std::any::type_name::<T>(),
                cause,
            })
        })
    }

    /// Reads and decodes the values `cids` (in that order): one batch from the backend, decoded
    /// on all cores when there are many.
    pub fn load_values<T: Value>(&self, cids: &[Id]) -> Result<Vec<T>> {
        let bytes = self.inner.backend.get_values(cids)?;
        let items: Vec<(&Id, Option<Vec<u8>>)> = cids.iter().zip(bytes).collect();
        crate::par::try_map(&items, 2048, |(cid, bytes)| {
            self.decode_read(cid, bytes.as_deref())
        })
    }

    /// A lazy ref for history id `hid`, found among the inputs and outputs of stored calls
    /// (a collection's shape is loaded, its elements are not).
    pub fn load_ref<T: OpValue>(&self, hid: &Id) -> Result<Ref<T>> {
        let index = self.provenance()?;
        let cid = index.cid_of(hid).ok_or_else(|| {
            Error::Store(crate::error::StoreError::NotFound {
                what: "ref",
                id: hid.to_string(),
                store: self.inner.backend.describe(),
            })
        })?;
        T::from_store(RefIds { cid, hid: *hid }, self, false)
    }

    /// The call that created `r` (`None` for a value passed in from outside).
    pub fn get_ref_creator<T: OpValue>(&self, r: &Ref<T>) -> Result<Option<StoredCall>> {
        self.creator_of(&self.ids_of(r)?.hid)
    }

    /// Every stored call that took `r` as an input, in a deterministic order.
    pub fn get_consumers<T: OpValue>(&self, r: &Ref<T>) -> Result<Vec<StoredCall>> {
        self.consumers_of(&self.ids_of(r)?.hid)
    }

    /// The call that created the ref `hid` (by history id).
    pub fn creator_of(&self, hid: &Id) -> Result<Option<StoredCall>> {
        Ok(self.provenance()?.creator(hid).map(Arc::unwrap_or_clone))
    }

    /// The calls that consumed the ref `hid`.
    pub fn consumers_of(&self, hid: &Id) -> Result<Vec<StoredCall>> {
        Ok(self
            .provenance()?
            .consumers(hid)
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect())
    }

    /// Deletes the calls `names` and every call downstream of them (consumers of their
    /// outputs, transitively), and returns all deleted. This process stops serving them at
    /// once; other processes do on their next lookup of a changed shard (a process that
    /// already holds one in memory keeps serving it until it restarts).
    pub fn delete_calls(&self, names: &[CallName]) -> Result<Vec<CallName>> {
        let mut doomed: std::collections::BTreeSet<CallName> = names.iter().copied().collect();
        {
            let index = self.provenance()?;
            let mut todo: Vec<CallName> = names.to_vec();
            while let Some(id) = todo.pop() {
                // The index just refreshed holds every record: no second read of the store.
                let Some(call) = index.call(&id) else {
                    continue;
                };
                for out in &call.record.outputs {
                    for consumer in index.consumers_unordered(&out.hid) {
                        let name = consumer.name();
                        if doomed.insert(name) {
                            todo.push(name);
                        }
                    }
                }
            }
        }
        let list: Vec<CallName> = doomed.iter().copied().collect();
        self.inner.backend.delete_calls(&list)?;
        let mut memo = self.inner.memo.lock().unwrap();
        for name in &doomed {
            memo.by_hid.remove(&name.hid);
        }
        memo.values.clear(); // values may be collected next; re-check the store before skipping writes
        drop(memo);
        *self.inner.provenance.lock().unwrap() = Provenance::default();
        Ok(doomed.into_iter().collect())
    }

    /// Every stored call of op `op`, ordered by (call key, hid, record id).
    ///
    /// A process that has indexed every call (a frame or provenance query before) answers
    /// from its index, brought up to date; otherwise the backend finds the op's calls without
    /// decoding the others ([`Backend::calls_of_op`]): a rare op's calls in a store of a
    /// million take a fraction of a second, not the seconds of indexing it all.
    pub fn calls_of(&self, op: &str) -> Result<Vec<StoredCall>> {
        if self.inner.provenance.lock().unwrap().is_empty() {
            return self.inner.backend.calls_of_op(op);
        }
        Ok(self
            .provenance()?
            .calls_of(op)
            .into_iter()
            .map(|c| StoredCall::clone(c))
            .collect())
    }

    fn ids_of<T: OpValue>(&self, r: &Ref<T>) -> Result<RefIds> {
        r.try_ids().map_err(|cause| {
            Error::Format(crate::error::FormatError::Encode {
                op: "(none)".into(),
                what: "a detached ref".into(),
                cause,
            })
        })
    }

    /// The provenance index, brought up to date with the backend (so it also sees calls other
    /// processes stored since the last query; see the `provenance` module): the creator and
    /// consumers of each ref, every call of an op, the content id of each ref. Frames are
    /// built on it. Held locked while the guard lives.
    ///
    /// ```
    /// let engine = mandala::Engine::in_memory();
    /// assert!(engine.provenance().unwrap().calls_of("inc").is_empty());
    /// ```
    pub fn provenance(&self) -> Result<std::sync::MutexGuard<'_, Provenance>> {
        let mut p = self.inner.provenance.lock().unwrap();
        p.refresh(&*self.inner.backend)?;
        Ok(p)
    }

    /// Guards this process's writes of one call against a concurrent collection (see
    /// [`crate::WriteGuard`]). If a collection removed values since this process last
    /// looked, what it remembers about stored values (and calls) is forgotten first.
    pub(crate) fn writing(&self) -> Result<crate::backend::WriteGuard<'_>> {
        let guard = self.inner.backend.begin_writes()?;
        let mut memo = self.inner.memo.lock().unwrap();
        if memo.epoch != Some(guard.epoch()) {
            memo.values.clear();
            if memo.epoch.is_some() {
                memo.by_hid.clear();
            }
            memo.epoch = Some(guard.epoch());
        }
        Ok(guard)
    }

    /// Whether every output value `rec` names is in the store. A record whose output is
    /// gone (removed by hand, or by a collection of a mandala that raced writers) or was
    /// moved aside as damaged is not served: the call is computed again, which rewrites the
    /// value, with a warning on stderr.
    fn outputs_present(&self, rec: &CallRecord) -> Result<bool> {
        for o in &rec.outputs {
            if !self.inner.backend.has_value(&o.cid)? {
                self.inner.memo.lock().unwrap().values.remove(&o.cid);
                eprintln!(
                    "mandala: warning: {}: call {} of op '{}' names output '{}' (value {}), which is missing or damaged; computing the call again",
                    self.inner.backend.describe(),
                    rec.hid().short(12),
                    rec.op,
                    o.name,
                    o.cid.short(12),
                );
                self.count(&rec.op, |s| s.healed += 1);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The error for value `cid`, which the store does not hold.
    pub(crate) fn missing_value(&self, cid: &Id) -> Error {
        Error::Store(crate::error::StoreError::MissingValue {
            cid: cid.to_string(),
            store: self.inner.backend.describe(),
        })
    }

    /// The stored record of the structural call `s` (collections, pointers), if any: seen by
    /// this process, or found in the store.
    pub(crate) fn find_structural(
        &self,
        s: &crate::format::collection::Structural,
    ) -> Result<Option<Arc<CallRecord>>> {
        if let Some(rec) = self.memo_hit(&s.hid) {
            return Ok(Some(rec));
        }
        Ok(self
            .lookup(s.op, &s.key, &s.hid, &Id::unversioned(), &s.inputs)?
            .map(|f| f.record().clone()))
    }

    /// Claims call `key` for this thread, or waits for the thread computing it.
    pub(crate) fn claim(&self, key: Id) -> inflight::Claim {
        self.inner.inflight.claim(key)
    }

    /// A call this process has already seen, by history id.
    pub(crate) fn memo_hit(&self, hid: &Id) -> Option<Arc<CallRecord>> {
        self.inner.memo.lock().unwrap().by_hid.get(hid).cloned()
    }

    /// Finds a stored call among the records filed under its call key; see the module docs.
    pub(crate) fn lookup(
        &self,
        op: &str,
        key: &Id,
        hid: &Id,
        semver: &Id,
        inputs: &[Slot],
    ) -> Result<Option<Found>> {
        let listed = self.inner.backend.list_calls(key)?;
        // Same history first. Several records for one hid only happen when merged stores
        // computed a non-deterministic op differently: the smallest record id wins, everywhere
        // (a record whose outputs are gone is passed over).
        for name in listed.iter().filter(|n| n.hid == *hid) {
            // Gone since the listing (another process deleted it): a miss, never an error.
            let Some(record) = self.inner.backend.get_call(name)? else {
                continue;
            };
            if !self.is_call(&record, op, semver, inputs, true) {
                return Err(self.misfiled(name));
            }
            if !self.outputs_present(&record)? {
                continue;
            }
            let rec = Arc::new(record);
            self.inner
                .memo
                .lock()
                .unwrap()
                .by_hid
                .insert(*hid, rec.clone());
            return Ok(Some(Found::Hit(rec)));
        }
        // Then the same contents and version under another history, in (hid, rid) order.
        for name in listed.iter().filter(|n| n.hid != *hid) {
            let Some(record) = self.inner.backend.get_call(name)? else {
                continue;
            };
            if !self.is_call(&record, op, &record.semver, inputs, false) {
                return Err(self.misfiled(name));
            }
            if record.semver != *semver {
                continue; // another version of the code
            }
            let _guard = self.writing()?;
            if !self.outputs_present(&record)? {
                continue;
            }
            let rec = Arc::new(record.rehistoried(inputs.to_vec()));
            self.inner.backend.put_call(&rec)?;
            self.remember(hid, &rec);
            return Ok(Some(Found::Reused(rec)));
        }
        Ok(None)
    }

    /// With versioning: finds a stored call of `op` on `inputs` (filed under `key`) whose every
    /// recorded dependency has the same content in the running program. Among those, one with
    /// the caller's history is a hit; otherwise one is reused under the caller's history.
    pub(crate) fn lookup_versioned(
        &self,
        op: &str,
        key: &Id,
        inputs: &[Slot],
    ) -> Result<Option<Found>> {
        let mut compatible: Vec<CallRecord> = Vec::new();
        for name in self.inner.backend.list_calls(key)? {
            let Some(record) = self.inner.backend.get_call(&name)? else {
                continue;
            };
            if !self.is_call(&record, op, &record.semver, inputs, false) {
                return Err(self.misfiled(&name));
            }
            let versioning = self.versioning().expect("versioned lookup");
            let current = record
                .deps
                .iter()
                .all(|(name, id)| versioning.is_current(name, id));
            if current && !record.deps.is_empty() {
                compatible.push(record);
            }
        }
        if let Some(at) = compatible.iter().position(|rec| rec.inputs == inputs) {
            if self.outputs_present(&compatible[at])? {
                return Ok(Some(Found::Hit(Arc::new(compatible.swap_remove(at)))));
            }
            compatible.remove(at);
        }
        if compatible.is_empty() {
            return Ok(None);
        }
        let _guard = self.writing()?;
        let mut first = None;
        for rec in compatible {
            if self.outputs_present(&rec)? {
                first = Some(rec);
                break;
            }
        }
        let Some(first) = first else {
            return Ok(None);
        };
        let rec = Arc::new(first.rehistoried(inputs.to_vec()));
        self.inner.backend.put_call(&rec)?;
        self.remember(&rec.hid(), &rec);
        Ok(Some(Found::Reused(rec)))
    }

    /// Whether `record` is a call of `op` on `inputs` (by content, and by history too if
    /// `same_history`) at `semver`. Cheaper than re-hashing, and equivalent: the ids hash
    /// exactly these.
    fn is_call(
        &self,
        record: &CallRecord,
        op: &str,
        semver: &Id,
        inputs: &[Slot],
        same_history: bool,
    ) -> bool {
        record.op == op
            && record.semver == *semver
            && record.inputs.len() == inputs.len()
            && record.inputs.iter().zip(inputs).all(|(a, b)| {
                a.name == b.name && a.cid == b.cid && (!same_history || a.hid == b.hid)
            })
    }

    fn misfiled(&self, name: &CallName) -> Error {
        Error::Store(crate::error::StoreError::Corrupt {
            path: format!(
                "{} call {} (key {})",
                self.inner.backend.describe(),
                name.hid,
                name.key
            )
            .into(),
            reason: "record's call ids do not match its name".into(),
        })
    }

    pub(crate) fn remember(&self, hid: &Id, rec: &Arc<CallRecord>) {
        let mut memo = self.inner.memo.lock().unwrap();
        for s in rec.inputs.iter().chain(&rec.outputs) {
            memo.values.insert(s.cid);
        }
        memo.by_hid.insert(*hid, rec.clone());
    }

    fn value_known(&self, cid: &Id) -> bool {
        self.inner.memo.lock().unwrap().values.contains(cid)
    }

    fn value_stored(&self, cid: &Id) {
        self.inner.memo.lock().unwrap().values.insert(*cid);
    }

    /// Stores a value's bytes unless it is known to be stored.
    pub(crate) fn store_value(&self, cid: &Id, bytes: &[u8]) -> Result<()> {
        debug_assert_eq!(
            Id::hash(crate::format::id::Kind::Value, bytes),
            *cid,
            "a value stored under another value's id"
        );
        if !self.value_known(cid) {
            self.inner.backend.put_value(cid, bytes)?;
            self.value_stored(cid);
        }
        Ok(())
    }

    /// Starts storing `value` if it is a large numeric vector (`Vec<f64>`, `Vec<f32>` of at
    /// least [`crate::LARGE_VALUE`] encoded bytes) and the backend takes values in pieces:
    /// it is encoded a mebibyte at a time and each piece handed to the backend's writer, so
    /// that an 80 MB vector is encoded, hashed and written in one pass and never held encoded
    /// whole (0.127 → 0.07 s for ten million doubles here). The pieces are shared, not
    /// copied: the writer writes them on a thread of its own, a hashing thread hashes those
    /// of the first half (BLAKE3's left subtree), and this thread the rest. Returns its content
    /// id and the writer to commit ([`Self::commit_value`]) once the value may be stored;
    /// `None` for any other value, which is encoded whole. A `known` id (the value was hashed
    /// already) is trusted and returned: the pieces are then not hashed again.
    pub(crate) fn write_large<T: Value>(
        &self,
        value: &T,
        known: Option<Id>,
    ) -> Result<Option<(Id, Box<dyn crate::ValueWriter>)>> {
        const PIECE: usize = 1 << 20;
        let Some(mut pieces) = cbor::fast::FloatPieces::of(value) else {
            return Ok(None);
        };
        let len = pieces.encoded_len();
        if len < crate::LARGE_VALUE as u64 {
            return Ok(None);
        }
        // Each piece is encoded once, into a buffer shared with the backend's writer (which
        // writes it on a thread of its own) and, in the first half of BLAKE3's tree, with a
        // hashing thread; this thread hashes the rest.
        let mut first = Vec::with_capacity(crate::LARGE_VALUE.max(PIECE) + 16);
        pieces.next_into(&mut first, crate::LARGE_VALUE);
        let Some(mut writer) = self.inner.backend.value_writer(len, &first)? else {
            return Ok(None);
        };
        let (to_hasher, hashed) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(4);
        let mut buffers = value::SharedPieces::default();
        let mut piece = Arc::new(first);
        let mut written = Ok(());
        let write_all = |split: u64, hasher: Option<&mut blake3::Hasher>| {
            let (mut at, mut to_hasher, mut hasher) = (0u64, Some(to_hasher), hasher);
            loop {
                let end = at + piece.len() as u64;
                if let Some(to) = to_hasher.as_ref().filter(|_| at < split) {
                    let _ = to.send(piece.clone());
                }
                if end >= split {
                    to_hasher = None; // the hashing thread has all its bytes
                }
                if let Some(hasher) = hasher.as_deref_mut() {
                    hasher.update(Id::split_piece(&piece, at, split).1);
                }
                if let Err(e) = writer.write_shared(&piece) {
                    written = Err(e);
                    return;
                }
                at = end;
                piece = buffers.swap(piece);
                if !pieces.next_into(buffers.fill(&mut piece), PIECE) {
                    return;
                }
            }
        };
        let cid = match known {
            Some(cid) => {
                write_all(0, None); // nothing to hash
                cid
            }
            None => Id::hash_halves(
                crate::format::id::Kind::Value,
                len,
                move |split, hasher| {
                    let mut at = 0u64;
                    for piece in hashed {
                        hasher.update(Id::split_piece(&piece, at, split).0);
                        at += piece.len() as u64;
                    }
                },
                |split, hasher| write_all(split, Some(hasher)),
            ),
        };
        written?;
        Ok(Some((cid, writer)))
    }

    /// Commits a value written by [`Self::write_large`] (dropped unwritten if this process
    /// knows it stored).
    pub(crate) fn commit_value(&self, cid: &Id, writer: Box<dyn crate::ValueWriter>) -> Result<()> {
        if !self.value_known(cid) {
            writer.commit(cid)?;
            self.value_stored(cid);
        }
        Ok(())
    }

    /// Stores a value unless it is stored already; `encode` runs only if it is not.
    pub(crate) fn ensure_value(
        &self,
        cid: &Id,
        encode: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<()> {
        if self.value_known(cid) {
            return Ok(());
        }
        if !self.inner.backend.has_value(cid)? {
            self.inner.backend.put_value(cid, &encode()?)?;
        }
        self.value_stored(cid);
        Ok(())
    }

    /// Stores a new call record (its values must be stored already).
    pub(crate) fn store_call(&self, rec: CallRecord, key: &Id, hid: &Id) -> Result<()> {
        self.inner.backend.put_call_keyed(&rec, key, hid)?;
        self.remember(hid, &Arc::new(rec));
        Ok(())
    }
}
