//! mandala's on-disk store: a directory of write-once, content-named files — one per object
//! (format 1), or packs of small objects written through per-process logs (format 2; format
//! 3, the default, with packs of version 2; docs/FORMAT.md §11).
//!
//! ```
//! use store_core::Backend;
//! let dir = tempfile::tempdir().unwrap();
//! let store = store_fs::FsBackend::open(&dir.path().join("s.mandala")).unwrap();
//! assert!(dir.path().join("s.mandala/mandala.toml").exists());
//! assert!(store.all_calls().unwrap().is_empty());
//! ```
//!
//! # Guarantees
//! - **Write-once**: every file is created complete by an atomic rename and never modified.
//! - **Merge by union**: a file's name is the hash of its content (values), or names both the
//!   ids it is found by and the hash of its content (calls: `CID.HID.RID`), so the union of two
//!   stores' files is a valid store holding the calls of both, with no conflicting paths.
//! - **Verifiable**: every object re-hashes to its name; [`FsBackend::verify`] checks them all.
//! - **Concurrent writers** never exclude each other: they only ever add files that no one
//!   modifies. They share the collection lock (`tmp/gc.lock`) while they store a call, which
//!   only [`FsBackend::gc`] (and moving a damaged value aside) takes exclusively, so no
//!   interleaving removes a value a record names.
//! - **Hostile files are met at once**: only regular files are read, in bounded memory;
//!   names that are not objects are skipped (and reported by `verify`).
//! - **Readable by standard tools**: blobs are single zstd frames of standard CBOR; a pack
//!   entry's frame is exactly such a blob.
//! - **Format 2**: a call's objects are appended to the writer's log with one `write()` before
//!   its `Ref` is returned; logs become immutable packs named by the hash of their index;
//!   other processes see running writers' logs and new packs on their next miss, without
//!   listing a directory that did not change (see the `pack` module).
//!
//! # Modules, by concern
//! - `objects`: values, version records and decisions, by id — read (only regular files,
//!   verified, in bounded memory), written once, listed.
//! - `calls`: call records, by [`CallName`] — read, written, deleted.
//! - `catalog`: what this process knows the store holds — its listing of each call shard
//!   directory and the call index (`index/calls`), behind one lock.
//! - `census`: the calls of each op, counted without reading them (`status`, `ops`), and
//!   one op's calls found without reading the others.
//! - `pack`: formats 2 and 3 — packs and their indexes, logs and sealing, consolidation.
//! - `layout` (paths and names), `write` (atomic write-once files), `blob` (zstd frames),
//!   `open` (regular files only), `lock` (the collection lock), `config`, `status`,
//!   `verify` (fsck), `gc`.
//!
//! # Limitations
//! - Two stores that compress the same object with different zstd versions or levels may hold
//!   different bytes under one name; a git merge then reports a binary conflict on that file
//!   (either side is correct: keep one).
//! - Without [`Durability::Sync`], a power failure can leave the newest files empty; they are
//!   then reported as corrupt by reads and by `verify`.

mod blob;
mod calls;
mod catalog;
mod census;
mod claims;
pub mod config;
pub mod exchange;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod gc;
mod index;
pub mod layout;
mod lock;
mod objects;
mod open;
mod pack;
mod raw_frame;
pub mod status;
mod value_writer;
pub mod verify;
pub mod write;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use store_core::format::version::{Decision, VersionRecord};
use store_core::{Backend, CallName, CallRecord, Error, Id, Result, StoredCall};

pub use config::{Config, FORMAT_VERSION};
pub use gc::GcReport;
pub use pack::repack::{PackReport, AUTO_PACKS};
pub use pack::{PackTrust, PackTrustState, PACK_VALUE_MAX};
pub use status::{KindStatus, StoreStatus};
pub use verify::{Problem, VerifyReport};
pub use write::Durability;

/// How to open a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Create the store if the directory does not exist or is empty (default `true`).
    pub create: bool,
    /// How writes are flushed (default [`Durability::Flush`]).
    pub durability: Durability,
    /// The zstd level of a store created by this open (default 1); an existing store keeps
    /// the level in its `mandala.toml`.
    pub zstd_level: i32,
    /// The format of a store created by this open (default [`FORMAT_VERSION`], packs); an
    /// existing store keeps its format until `mandala upgrade`. Format 1 (one file per
    /// object) and 2 (packs of version 1) are for stores shared with an older mandala.
    pub format: u32,
    /// Claim each new call across processes before computing it, for this long at most
    /// (`None`, the default: no claims). Processes sharing the store then compute each call
    /// once: the others wait for it. See the `claims` module.
    pub claims: Option<std::time::Duration>,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            create: true,
            durability: Durability::Flush,
            zstd_level: config::DEFAULT_ZSTD_LEVEL,
            format: FORMAT_VERSION,
            claims: None,
        }
    }
}

/// A store directory. Cheap to clone.
#[derive(Clone)]
pub struct FsBackend {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    tmp: PathBuf,
    config: Config,
    durability: Durability,
    /// How long a claim on a call lasts, if claims are on.
    claims: Option<std::time::Duration>,
    /// What this process knows of the store: shard listings and the call index.
    catalog: Mutex<catalog::Catalog>,
    /// This process's shared hold of the collection lock (`tmp/gc.lock`), taken by writers.
    writers: lock::SharedLock,
    /// How many times a call shard directory was listed (see [`FsBackend::shard_listings`]).
    listings: std::sync::atomic::AtomicU64,
    /// The store's format (1 or 2; `upgrade` changes it).
    format: std::sync::atomic::AtomicU32,
    /// What this handle knows of packs and logs, and its own log (format 2).
    packs: Mutex<pack::Packs>,
    /// How many times entries this handle had accepted were lost by a failed append: added
    /// to the collection epoch writers see, so they forget which values they think stored.
    lost_writes: std::sync::atomic::AtomicU64,
    /// Where to look for what this store lacks (a lazy remote), if anywhere.
    fallback: std::sync::RwLock<Option<Arc<dyn exchange::Fallback>>>,
}

/// A writer's share of the collection lock, released when dropped: what it left pending in
/// the handle's log (values stored without a call record) is written first.
struct SharedHold<'a>(&'a FsBackend);

impl Drop for SharedHold<'_> {
    fn drop(&mut self) {
        let mut packs = self.0.packs();
        if packs.own.as_ref().is_some_and(|o| o.has_pending()) {
            if let Err(e) = self.0.commit_log(&mut packs) {
                eprintln!("mandala: warning: {e} (the values are written again when next needed)");
            }
        }
        drop(packs);
        self.0.inner.writers.release();
    }
}

impl Drop for FsBackend {
    /// The last handle of a store seals its log into a pack (consolidating if there are
    /// many), and saves what the process added to a loaded call index (values read for
    /// tables, calls recorded since), so the next process finds them.
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            if let Err(e) = self.flush() {
                eprintln!("mandala: warning: sealing this process's log failed: {e} (the next writer seals it)");
            }
            self.save_index();
        }
    }
}

pub(crate) const GITIGNORE: &str =
    "# Local, derived or in-flight files of a mandala store.\ntmp/\nindex/\nlogs/\n";
const GITATTRIBUTES: &str =
    "# Blobs are zstd-compressed CBOR.\nvalues/** binary\ncalls/** binary\npacks/** binary\n";

impl FsBackend {
    /// Opens the store at `root`, creating it if the directory is missing or empty.
    pub fn open(root: &Path) -> Result<FsBackend> {
        Self::open_with(root, OpenOptions::default())
    }

    /// Opens an existing store; never creates one.
    pub fn open_existing(root: &Path) -> Result<FsBackend> {
        Self::open_with(
            root,
            OpenOptions {
                create: false,
                ..OpenOptions::default()
            },
        )
    }

    /// Opens the store at `root` with `options`.
    pub fn open_with(root: &Path, options: OpenOptions) -> Result<FsBackend> {
        let config_path = root.join(layout::CONFIG);
        let read = open::read_small(&config_path, 1 << 20, "a store config").map(|bytes| {
            bytes.map(|b| {
                String::from_utf8(b).map_err(|_| {
                    Error::Store(store_core::StoreError::BadConfig {
                        path: config_path.clone(),
                        reason: "not UTF-8 text".into(),
                    })
                })
            })
        });
        let config = match read {
            Ok(Some(text)) => Config::parse(&text?, &config_path)?,
            Ok(None) => {
                if !options.create || !Self::can_create_in(root)? {
                    return Err(not_a_store(root, options.create));
                }
                if !(config::OLDEST_FORMAT..=FORMAT_VERSION).contains(&options.format) {
                    return Err(Error::Store(store_core::StoreError::UnsupportedFormat {
                        path: config_path,
                        found: options.format.to_string(),
                        supported: FORMAT_VERSION,
                    }));
                }
                let config = Config {
                    zstd_level: options.zstd_level,
                    format: options.format,
                };
                Self::init(root, &config)?;
                config
            }
            Err(Error::Store(store_core::StoreError::Io { cause, .. }))
                if cause.kind() == ErrorKind::NotADirectory =>
            {
                return Err(not_a_store(root, options.create))
            }
            Err(e) => return Err(e),
        };
        let tmp = root.join(layout::TMP);
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        Ok(FsBackend {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                tmp,
                durability: options.durability,
                claims: options.claims,
                catalog: Mutex::new(catalog::Catalog::new()),
                listings: std::sync::atomic::AtomicU64::new(0),
                writers: lock::SharedLock::default(),
                format: std::sync::atomic::AtomicU32::new(config.format),
                packs: Mutex::new(pack::Packs::default()),
                lost_writes: std::sync::atomic::AtomicU64::new(0),
                fallback: std::sync::RwLock::new(None),
                config,
            }),
        })
    }

    /// A directory can become a store if it is missing, empty, or holds only store files (a
    /// concurrent process may be creating the store right now).
    fn can_create_in(root: &Path) -> Result<bool> {
        match fs::read_dir(root) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(|e| Error::io("list", root, e))?;
                    let name = e.file_name();
                    if !layout::TOP_LEVEL.iter().any(|t| name == *t) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotADirectory => Ok(false),
            Err(e) => Err(Error::io("list", root, e)),
        }
    }

    fn init(root: &Path, config: &Config) -> Result<()> {
        let tmp = root.join(layout::TMP);
        // Format 2 keeps small objects in packs: `values/` and `calls/` appear only if needed.
        let dirs: &[&str] = if config.format >= 2 {
            &[layout::TMP]
        } else {
            &[layout::TMP, layout::VALUES, layout::CALLS]
        };
        for dir in dirs {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(|e| Error::io("create directory", &d, e))?;
        }
        let d = Durability::Sync;
        write::write_once(&tmp, &root.join(".gitignore"), GITIGNORE.as_bytes(), d)?;
        write::write_once(
            &tmp,
            &root.join(".gitattributes"),
            GITATTRIBUTES.as_bytes(),
            d,
        )?;
        // Written last: its presence marks a complete store.
        write::write_once(
            &tmp,
            &root.join(layout::CONFIG),
            config.to_toml().as_bytes(),
            d,
        )?;
        Ok(())
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// How many times this handle listed a call shard directory (a diagnostic: a lookup
    /// lists a shard the first time, and again only when another process changed it or
    /// after 64 of this process's own writes into it; a new call never needs one of its own).
    pub fn shard_listings(&self) -> u64 {
        self.inner
            .listings
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store's settings (as opened: see [`FsBackend::format`] after an upgrade).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store's format: 1 (one file per object) or 2 (packs).
    pub fn format(&self) -> u32 {
        self.inner.format.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What this handle knows of packs and logs, locked.
    pub(crate) fn packs(&self) -> std::sync::MutexGuard<'_, pack::Packs> {
        self.inner.packs.lock().unwrap()
    }

    /// The collection lock file (`tmp/gc.lock`, see the `lock` module).
    pub(crate) fn lock_path(&self) -> PathBuf {
        self.inner.tmp.join(lock::LOCK_FILE)
    }
}

/// The storage contract (`store_core::backend`), by concern: objects by id (`objects`), call
/// records (`calls`), and what the store holds (`catalog`).
impl Backend for FsBackend {
    fn describe(&self) -> String {
        self.inner.root.display().to_string()
    }

    fn has_value(&self, cid: &Id) -> Result<bool> {
        if self.value_exists(cid)? {
            return Ok(true);
        }
        match self.fallback() {
            Some(f) => f.has_value(self, cid),
            None => Ok(false),
        }
    }

    fn get_value(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        let found = self.load_value(cid)?;
        if found.is_some() {
            return Ok(found);
        }
        match self.fallback() {
            Some(f) if f.fetch_value(self, cid)? => self.load_value(cid),
            _ => Ok(None),
        }
    }

    fn stream_value(&self, cid: &Id, sink: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.stream_value_file(cid, sink)
    }

    fn get_values(&self, cids: &[Id]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut found = self.load_values(cids)?;
        if let Some(f) = self.fallback() {
            for (cid, v) in cids.iter().zip(found.iter_mut()) {
                if v.is_none() && f.fetch_value(self, cid)? {
                    *v = self.load_value(cid)?;
                }
            }
        }
        Ok(found)
    }

    fn begin_writes(&self) -> Result<store_core::WriteGuard<'_>> {
        let epoch = self.inner.writers.acquire(&self.lock_path())?;
        let hold = SharedHold(self);
        {
            // The packs this handle knows may have been listed before a collection removed
            // values (lookups list them outside any hold): the first hold, and the first
            // after a collection, list them again, so that a removed pack never answers
            // "stored". Within one epoch no pack loses a value.
            let mut packs = self.packs();
            if packs.epoch != Some(epoch) {
                packs.refresh(&self.inner.root, true, true)?;
                packs.epoch = Some(epoch);
            }
        }
        let lost = self
            .inner
            .lost_writes
            .load(std::sync::atomic::Ordering::SeqCst);
        Ok(store_core::WriteGuard::new(
            epoch.wrapping_add(lost),
            Some(Box::new(hold)),
        ))
    }

    fn flush(&self) -> Result<()> {
        FsBackend::flush(self)
    }

    fn delete_calls(&self, names: &[CallName]) -> Result<()> {
        self.remove_calls(names)
    }

    fn put_value(&self, cid: &Id, cbor: &[u8]) -> Result<()> {
        self.store_value(cid, cbor)
    }

    fn value_writer(
        &self,
        len: u64,
        first: &[u8],
    ) -> Result<Option<Box<dyn store_core::ValueWriter>>> {
        self.large_value_writer(len, first)
    }

    fn list_calls(&self, key: &Id) -> Result<Vec<CallName>> {
        let found = self.records_of_key(key)?;
        if !found.is_empty() {
            return Ok(found);
        }
        match self.fallback() {
            Some(f) if f.calls_missed(self)? => {
                // Packs were just taken in: look at packs/ now, not at the next due time.
                self.packs().refresh(&self.inner.root, true, true)?;
                self.records_of_key(key)
            }
            _ => Ok(found),
        }
    }

    fn get_call(&self, name: &CallName) -> Result<Option<CallRecord>> {
        self.read_call(name)
    }

    fn get_stored_call(&self, name: &CallName) -> Result<Option<StoredCall>> {
        self.read_stored_call(name)
    }

    fn get_stored_calls(&self, names: &[CallName]) -> Result<Vec<Option<Arc<StoredCall>>>> {
        self.read_stored_calls(names)
    }

    fn put_call(&self, record: &CallRecord) -> Result<()> {
        self.write_call(record)
    }

    fn put_call_keyed(&self, record: &CallRecord, key: &Id, hid: &Id) -> Result<()> {
        self.write_call_keyed(record, key, hid)
    }

    fn all_calls(&self) -> Result<Vec<StoredCall>> {
        self.every_call()
    }

    fn calls_of_op(&self, op: &str) -> Result<Vec<StoredCall>> {
        FsBackend::calls_of_op(self, op)
    }

    fn call_names(&self) -> Result<Vec<CallName>> {
        self.list_all_calls()
    }

    fn save_index(&self) {
        self.write_index()
    }

    fn all_values(&self) -> Result<Vec<Id>> {
        self.value_ids()
    }

    fn delete_call(&self, name: &CallName) -> Result<()> {
        self.remove_call(name)
    }

    fn put_version(&self, version: &VersionRecord) -> Result<()> {
        self.store_version(version)
    }

    fn all_versions(&self) -> Result<Vec<VersionRecord>> {
        self.version_records()
    }

    fn put_decision(&self, decision: &Decision) -> Result<()> {
        self.store_decision(decision)
    }

    fn decisions(&self) -> Result<Vec<Decision>> {
        self.decision_list()
    }

    fn put_tag(&self, tag: &store_core::format::tag::TagRecord) -> Result<()> {
        self.store_tag(tag)
    }

    fn claim_call(&self, key: &Id) -> Result<store_core::backend::CallClaim> {
        match self.inner.claims {
            Some(lease) => self.claim(key, lease),
            None => Ok(store_core::backend::CallClaim::Unsupported),
        }
    }

    fn release_call(&self, key: &Id) -> Result<()> {
        match self.inner.claims {
            Some(_) => self.release(key),
            None => Ok(()),
        }
    }

    fn tag_records(&self) -> Result<Vec<store_core::format::tag::TagRecord>> {
        self.tag_list()
    }
}

/// Why `root` is not a store, with a hint that fits: a missing path, a file, a directory inside
/// a store ("did you mean …?"), or a directory without `mandala.toml` (`creating`: one that is
/// not empty, so no store is created in it).
fn not_a_store(root: &Path, creating: bool) -> Error {
    let is_dir = fs::metadata(root).map(|m| m.is_dir());
    let store = root
        .ancestors()
        .skip(1)
        .find(|a| a.join(layout::CONFIG).is_file());
    let why = match (is_dir, store) {
        (Ok(false), _) => "it is a file, not a directory".to_string(),
        (_, Some(store)) => format!(
            "it is inside the store {}; did you mean {}?",
            store.display(),
            store.display()
        ),
        (Err(_), None) => {
            "the path does not exist; create a store there with `mandala init PATH`".to_string()
        }
        (Ok(true), None) if creating => "the directory is not empty and holds no mandala.toml; create a store in an empty or new directory".to_string(),
        (Ok(true), None) => "the directory holds no mandala.toml; create a store with `mandala init PATH`, or name a store's directory".to_string(),
    };
    Error::Store(store_core::StoreError::NotAStore {
        path: root.to_path_buf(),
        why,
    })
}
