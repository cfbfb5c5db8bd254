//! mandala's on-disk store: a directory of write-once, content-named files.
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
//! - **Concurrent writers** need no lock: they only ever add files that no one modifies.
//! - **Readable by standard tools**: blobs are single zstd frames of standard CBOR.
//!
//! # Limitations
//! - Two stores that compress the same object with different zstd versions or levels may hold
//!   different bytes under one name; a git merge then reports a binary conflict on that file
//!   (either side is correct: keep one).
//! - Without [`Durability::Sync`], a power failure can leave the newest files empty; they are
//!   then reported as corrupt by reads and by `verify`.

mod blob;
pub mod config;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod gc;
mod index;
pub mod layout;
mod lock;
mod open;
pub mod status;
pub mod verify;
pub mod write;

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use store_core::format::cbor;
use store_core::version::history::{Decision, VersionRecord};
use store_core::{Backend, CallRecord, Error, Id, Kind, Result, StoredCall};

pub use config::{Config, FORMAT_VERSION};
pub use gc::GcReport;
pub use status::{KindStatus, StoreStatus};
pub use verify::{Problem, VerifyReport};
pub use write::Durability;

use index::{CallName, Stamp};

/// How to open a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Create the store if the directory does not exist or is empty (default `true`).
    pub create: bool,
    /// How writes are flushed (default [`Durability::Flush`]).
    pub durability: Durability,
    /// The zstd level of a store created by this open (default 3); an existing store keeps
    /// the level in its `mandala.toml`.
    pub zstd_level: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            create: true,
            durability: Durability::Flush,
            zstd_level: config::DEFAULT_ZSTD_LEVEL,
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
    /// What this process knows of each call shard directory (see [`ShardCache`]).
    shards: Mutex<Vec<Option<ShardCache>>>,
    /// The call index (`index/calls`), loaded by the first whole-store query. Lock order:
    /// `shards` before `index`.
    index: Mutex<IndexState>,
    /// This process's shared hold of the collection lock (`tmp/gc.lock`), taken by writers.
    writers: lock::SharedLock,
}

/// A writer's share of the collection lock, released when dropped.
struct SharedHold<'a>(&'a lock::SharedLock);

impl Drop for SharedHold<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// This process's copy of the call index (see the `index` module).
#[derive(Default)]
struct IndexState {
    loaded: bool,
    /// The shard stamps of the file as read or last written.
    file_shards: Vec<Option<Stamp>>,
    /// The file's records of each trusted shard, to seed listings.
    file_listing: Vec<Vec<CallName>>,
    /// Canonical CBOR of the records known, by full name, each with its call's content id
    /// (computed once, when first indexed).
    records: index::Section<CallName>,
    /// Canonical CBOR of small values.
    values: index::Section<Id>,
    /// Whether `records` or `values` changed since the file was read or written.
    dirty: bool,
    /// Whether a shard was listed again (its stamp may differ from the file's).
    relisted: bool,
}

/// The listing of one call shard directory: the full names of its records, and the
/// directory's stamp when it was listed. A lookup that finds nothing re-lists the
/// shard if the directory changed since (another process added calls), so a cache never hides
/// a stored call for longer than one stat.
///
/// File systems stamp directories with a coarse clock (a few milliseconds), so a listing made
/// while the directory was still changing may share its stamp with a later change. Such a
/// listing is never trusted: it is redone at every need until the directory has been quiet for
/// [`QUIET`] when listed.
struct ShardCache {
    stamp: Option<Stamp>,
    /// Whether the directory had not changed for [`QUIET`] when it was listed.
    settled: bool,
    /// The records' full names, sorted and distinct (so the listing of the whole store comes
    /// out sorted, and a call key's records are a range). A vector: a shard holds 1/256 of the
    /// store, and listings are built far more often than changed.
    names: Vec<CallName>,
}

/// How long a shard directory must have been unchanged for its listing to be trusted.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

impl ShardCache {
    /// Whether this listing still describes the directory whose modification time is now
    /// `stamp`.
    fn current(&self, stamp: Option<Stamp>) -> bool {
        self.settled && self.stamp.is_some() && stamp == self.stamp
    }

    fn from_names(stamp: Option<Stamp>, settled: bool, mut names: Vec<CallName>) -> ShardCache {
        if !names.is_sorted() {
            names.sort_unstable();
        }
        names.dedup();
        ShardCache {
            stamp,
            settled,
            names,
        }
    }

    fn insert(&mut self, name: CallName) {
        if let Err(at) = self.names.binary_search(&name) {
            self.names.insert(at, name);
        }
    }

    fn remove(&mut self, name: &CallName) {
        if let Ok(at) = self.names.binary_search(name) {
            self.names.remove(at);
        }
    }

    /// The (hid, record id) of the records filed under call key `key`, sorted.
    fn calls_of(&self, key: &Id) -> Vec<(Id, Id)> {
        let start = self.names.partition_point(|n| n.0 < *key);
        self.names[start..]
            .iter()
            .take_while(|n| n.0 == *key)
            .map(|(_, h, r)| (*h, *r))
            .collect()
    }
}

impl Drop for FsBackend {
    /// The last handle of a store saves what the process added to a loaded call index
    /// (values read for tables, calls recorded since), so the next process finds them.
    fn drop(&mut self) {
        if Arc::strong_count(&self.inner) == 1 {
            self.save_index();
        }
    }
}

const GITIGNORE: &str = "# Local, derived or in-flight files of a mandala store.\ntmp/\nindex/\n";
const GITATTRIBUTES: &str =
    "# Blobs are zstd-compressed CBOR.\nvalues/** binary\ncalls/** binary\n";

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
                    return Err(Error::Store(store_core::StoreError::NotAStore {
                        path: root.to_path_buf(),
                    }));
                }
                let config = Config {
                    zstd_level: options.zstd_level,
                    ..Config::default()
                };
                Self::init(root, &config)?;
                config
            }
            Err(Error::Store(store_core::StoreError::Io { cause, .. }))
                if cause.kind() == ErrorKind::NotADirectory =>
            {
                return Err(Error::Store(store_core::StoreError::NotAStore {
                    path: root.to_path_buf(),
                }))
            }
            Err(e) => return Err(e),
        };
        let tmp = root.join(layout::TMP);
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        Ok(FsBackend {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                tmp,
                config,
                durability: options.durability,
                shards: Mutex::new((0..256).map(|_| None).collect()),
                index: Mutex::new(IndexState::default()),
                writers: lock::SharedLock::default(),
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
        for dir in [layout::TMP, layout::VALUES, layout::CALLS] {
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

    /// The store's settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn put_blob(&self, dest: &Path, cbor: &[u8]) -> Result<bool> {
        // Names are hashes: a file there has this content. Anything else there (a FIFO, a
        // link to a device) is replaced by the rename.
        if open::is_regular(dest) {
            return Ok(false);
        }
        let level = self.inner.config.zstd_level;
        if cbor.len() >= blob::STREAM_THRESHOLD {
            write::write_with(&self.inner.tmp, dest, self.inner.durability, |f, tmp| {
                blob::compress_to(cbor, level, f, tmp)
            })?;
        } else {
            let z = blob::compress(cbor, level)?;
            write::write_with(&self.inner.tmp, dest, self.inner.durability, |f, tmp| {
                f.write_all(&z).map_err(|e| Error::io("write", tmp, e))
            })?;
        }
        Ok(true)
    }

    /// Drops a value from the call index (the value is being deleted).
    pub(crate) fn forget_value(&self, cid: &Id) {
        let mut idx = self.index_state();
        if idx.values.remove(cid) {
            idx.dirty = true;
        }
    }

    /// A value read from its file (`None` if there is none), kept in the call index if small.
    /// A damaged file is moved aside (see [`FsBackend::set_aside`]) and reported.
    fn value_from_file(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        let path = layout::value_path(&self.inner.root, cid);
        let found = match self.read_value(&path, cid) {
            Ok(found) => found,
            Err(Error::Store(store_core::StoreError::Corrupt { path, reason })) => {
                let reason = match self.set_aside(&path, cid) {
                    Some(aside) => format!(
                        "{reason}; moved aside to {} (the next run that needs this value computes the call that made it again)",
                        aside.display()
                    ),
                    None => reason,
                };
                return Err(Error::Store(store_core::StoreError::Corrupt {
                    path,
                    reason,
                }));
            }
            Err(e) => return Err(e),
        };
        if let Some(bytes) = &found {
            self.index_small_value(cid, bytes);
        }
        Ok(found)
    }

    /// Moves the damaged value file at `path` out of the store's objects into `tmp/` (kept
    /// for inspection; `fsck` lists it), so that lookups find the value missing and compute
    /// the call that made it again, which rewrites it. Checked once more first: a writer may
    /// have just replaced the file with a sound one. Returns where it went, if it moved.
    fn set_aside(&self, path: &Path, cid: &Id) -> Option<PathBuf> {
        if !matches!(
            self.read_value(path, cid),
            Err(Error::Store(store_core::StoreError::Corrupt { .. }))
        ) {
            return None;
        }
        let aside = self.inner.tmp.join(format!(
            "{}{cid}-{}",
            write::DAMAGED_PREFIX,
            std::process::id()
        ));
        fs::rename(path, &aside).ok()?;
        self.forget_value(cid);
        Some(aside)
    }

    /// Keeps a small value in the call index, if this process has loaded it.
    fn index_small_value(&self, cid: &Id, cbor: &[u8]) {
        if cbor.len() <= index::SMALL_VALUE {
            let mut idx = self.inner.index.lock().unwrap();
            if idx.loaded && !idx.values.contains_key(cid) {
                idx.values.insert(*cid, cbor, Id([0; 32]));
                idx.dirty = true;
            }
        }
    }

    /// Reads the object `id` of kind `kind` (a value or a version record) from `path`,
    /// decompressed and checked against its name; `None` if there is no such file. Only a
    /// regular file is read. Memory: a frame that claims far more than its file could
    /// plausibly hold ([`blob::suspicious`]) is first verified in a streaming pass, so a small
    /// file that decompresses to gigabytes is rejected in constant memory.
    pub(crate) fn read_object(&self, path: &Path, kind: Kind, id: &Id) -> Result<Option<Vec<u8>>> {
        let Some((mut file, len)) = open::open_regular(path)? else {
            return Ok(None);
        };
        let bytes = if len >= (blob::STREAM_THRESHOLD / 4) as u64 {
            let mut head = [0u8; 18];
            let n = read_head(&mut file, &mut head).map_err(|e| Error::io("read", path, e))?;
            if let Ok(claimed) = blob::claimed_size(&head[..n], path) {
                if blob::suspicious(claimed, len) {
                    check_stream(&mut file, path, kind, id, claimed, len)?;
                }
            }
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("seek", path, e))?;
            blob::decompress_from(file, path)?
        } else {
            let mut z = Vec::with_capacity(len as usize);
            file.take(len)
                .read_to_end(&mut z)
                .map_err(|e| Error::io("read", path, e))?;
            // (A file that is no frame at all is reported by `decompress`, precisely.)
            if let Ok(claimed) = blob::claimed_size(&z, path) {
                if blob::suspicious(claimed, len) {
                    check_stream(&z[..], path, kind, id, claimed, len)?;
                }
            }
            blob::decompress(&z, path, blob::MAX_BLOB)?
        };
        let actual = Id::hash(kind, &bytes);
        if actual != *id {
            return Err(Error::corrupt(
                path,
                format!("content hashes to {actual}, not to its name"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Reads value `cid` and checks that it hashes to its name.
    pub(crate) fn read_value(&self, path: &Path, cid: &Id) -> Result<Option<Vec<u8>>> {
        self.read_object(path, Kind::Value, cid)
    }

    /// The canonical CBOR of the record at `path`, checked against its record id `rid`;
    /// `None` if there is no such file.
    fn read_call_bytes(&self, path: &Path, rid: &Id) -> Result<Option<Vec<u8>>> {
        // Records are small: read without asking the file's size first. Without blocking (a
        // FIFO reads as empty, so as a damaged record) and at most a record's worth (a link
        // to /dev/zero is not read forever).
        let mut options = fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let file = match options.open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        // A buffer kept per thread: allocating ≥ 1 KiB each time makes glibc consolidate its
        // free lists on every lookup.
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let bytes = BUF.with(|b| {
            let mut z = b.borrow_mut();
            z.clear();
            file.take(blob::MAX_RECORD)
                .read_to_end(&mut z)
                .map_err(|e| Error::io("read", path, e))?;
            blob::decompress(&z, path, blob::MAX_RECORD)
        })?;
        let actual = Id::hash(Kind::CallRecord, &bytes);
        if actual != *rid {
            return Err(Error::corrupt(
                path,
                format!("record hashes to {actual}, not to its name"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Decodes a record's bytes. Whether it is the call asked for is checked by the engine
    /// (and by verify).
    fn decode_call(path: &Path, bytes: &[u8]) -> Result<CallRecord> {
        CallRecord::from_cbor(bytes)
            .map_err(|e| Error::corrupt(path, format!("not a call record: {e}")))
    }

    /// For whole-store queries: a call record from the call index if it has it, else from its
    /// file (added to the index if this process has loaded it), with the call's content id
    /// when the index knows it. Such a query works from a current listing (stamps), so it
    /// never asks for a record another process deleted.
    fn read_indexed_call(
        &self,
        key: &Id,
        hid: &Id,
        rid: &Id,
    ) -> Result<Option<(CallRecord, Option<Id>)>> {
        let damaged = {
            let idx = self.inner.index.lock().unwrap();
            match idx.records.get(&(*key, *hid, *rid)) {
                Some((bytes, cid)) => match self.decode_indexed(key, hid, rid, bytes)? {
                    Some(record) => return Ok(Some((record, Some(cid)))),
                    None => true,
                },
                None => false,
            }
        };
        if damaged {
            self.index_damaged(&format!("call record {}", rid.short(12)));
        }
        self.call_from_file(key, hid, rid)
    }

    /// A call record read from its file, added to the call index if this process has loaded
    /// it (with the call's content id, then known).
    fn call_from_file(
        &self,
        key: &Id,
        hid: &Id,
        rid: &Id,
    ) -> Result<Option<(CallRecord, Option<Id>)>> {
        let name = (*key, *hid, *rid);
        let path = layout::call_path(&self.inner.root, key, hid, rid);
        let Some(bytes) = self.read_call_bytes(&path, rid)? else {
            return Ok(None);
        };
        let record = Self::decode_call(&path, &bytes)?;
        let mut idx = self.inner.index.lock().unwrap();
        if !idx.loaded {
            return Ok(Some((record, None)));
        }
        let cid = record.cid();
        idx.records.insert(name, bytes, cid);
        idx.dirty = true;
        Ok(Some((record, Some(cid))))
    }

    /// Decodes a record the call index holds; `None` if the index's copy does not hash to its
    /// record id (the index is damaged: the caller reports it with [`Self::index_damaged`]
    /// once it holds no lock, and reads the file instead).
    fn decode_indexed(
        &self,
        key: &Id,
        hid: &Id,
        rid: &Id,
        bytes: &[u8],
    ) -> Result<Option<CallRecord>> {
        if Id::hash(Kind::CallRecord, bytes) != *rid {
            return Ok(None);
        }
        CallRecord::from_cbor(bytes).map(Some).map_err(|e| {
            let path = layout::call_path(&self.inner.root, key, hid, rid);
            Error::corrupt(path, format!("not a call record (from the index): {e}"))
        })
    }

    /// Whether the call index's copy of value `cid` hashes to it (values there are at most
    /// [`index::SMALL_VALUE`] bytes: cheap to check every time one is served). A damaged copy
    /// is reported, dropped, and the value read from its file.
    fn index_value_sound(&self, cid: &Id, bytes: &[u8]) -> bool {
        if Id::hash(Kind::Value, bytes) == *cid {
            return true;
        }
        self.index_damaged(&format!("value {}", cid.short(12)));
        self.forget_value(cid);
        false
    }

    /// Reports a damaged entry of the call index; the entry is read from the store's files
    /// instead, and the index is rewritten by the next whole-store query.
    fn index_damaged(&self, what: &str) {
        eprintln!(
            "mandala: warning: {}: the call index's copy of {what} is damaged; read from the store's files instead (the index is rewritten)",
            self.index_path().display()
        );
        let mut idx = self.inner.index.lock().unwrap();
        idx.dirty = true;
    }

    /// The call index, loaded from `index/calls` on first use.
    fn index_state(&self) -> MutexGuard<'_, IndexState> {
        let mut idx = self.inner.index.lock().unwrap();
        if !idx.loaded {
            let file = index::load(&self.index_path()).unwrap_or_default();
            let mut listing = vec![Vec::new(); 256];
            let mut shards = file.shards;
            shards.resize(256, None);
            // The file lists records sorted, so each shard's come out sorted.
            for name in file.records.file_keys() {
                if shards[name.0 .0[0] as usize].is_some() {
                    listing[name.0 .0[0] as usize].push(name);
                }
            }
            *idx = IndexState {
                loaded: true,
                file_shards: shards,
                file_listing: listing,
                records: file.records,
                values: file.values,
                dirty: false,
                relisted: false,
            };
        }
        idx
    }

    /// The collection lock file (`tmp/gc.lock`, see the `lock` module).
    pub(crate) fn lock_path(&self) -> PathBuf {
        self.inner.tmp.join(lock::LOCK_FILE)
    }

    fn index_path(&self) -> PathBuf {
        self.inner.root.join(layout::INDEX).join("calls")
    }

    fn shard_stamp(&self, shard: u8) -> Result<Option<Stamp>> {
        let dir = layout::call_shard(&self.inner.root, shard);
        match fs::metadata(&dir) {
            Ok(m) => Ok(Some(Stamp::of(&m))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", dir, e)),
        }
    }

    /// Lists one call shard directory (its modification time first, so that a change during
    /// the listing shows as a newer time later).
    fn list_shard(&self, shard: u8) -> Result<ShardCache> {
        let stamp = self.shard_stamp(shard)?;
        let dir = layout::call_shard(&self.inner.root, shard);
        let shard_name = format!("{shard:02x}");
        let mut names = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(ShardCache::from_names(stamp, false, Vec::new()));
            }
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            // Names that are not records (`.DS_Store`, `name~`, rsync's `.name.XXXXXX` while
            // it copies into the store) are not ours: skipped here, reported by fsck.
            if let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|n| layout::parse_call_name(&shard_name, n))
            {
                names.push(name);
            }
        }
        let settled = stamp.is_some_and(|s| s.age() >= QUIET);
        Ok(ShardCache::from_names(stamp, settled, names))
    }

    fn list_dir(dir: &Path) -> Result<Vec<String>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io("list", dir, e))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Every (shard, rest) pair under `dir` (`values`, `calls` or `versions`), sorted; names
    /// that are not well-formed are returned too, for `verify` to report (other callers
    /// skip what does not parse, see [`FsBackend::list_ids`]).
    fn list_sharded(&self, top: &str) -> Result<Vec<(String, String)>> {
        let dir = self.inner.root.join(top);
        let mut out = Vec::new();
        for shard in Self::list_dir(&dir)? {
            let sub = dir.join(&shard);
            if !sub.is_dir() {
                // A stray file where a shard directory belongs: reported by name, never parsed.
                out.push((shard, String::new()));
                continue;
            }
            for rest in Self::list_dir(&sub)? {
                out.push((shard.clone(), rest));
            }
        }
        Ok(out)
    }
}

/// Reads up to `head.len()` bytes from the start of `file`; returns how many.
fn read_head(file: &mut fs::File, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Verifies a frame that claims `claimed` bytes from `len` on disk in a streaming pass (see
/// [`blob::suspicious`]): its content must have that length and hash to `id` under `kind`.
fn check_stream(
    reader: impl Read,
    path: &Path,
    kind: Kind,
    id: &Id,
    claimed: u64,
    len: u64,
) -> Result<()> {
    let (n, hash) = blob::hash_stream(reader, path, Id::hasher(kind))?;
    if n != claimed {
        return Err(Error::corrupt(
            path,
            format!("frame holds {n} bytes but claims {claimed}"),
        ));
    }
    let actual = Id(*hash.as_bytes());
    if actual != *id {
        return Err(Error::corrupt(
            path,
            format!(
                "content hashes to {actual}, not to its name (found in a streaming check before loading: {len} bytes on disk claim {claimed})"
            ),
        ));
    }
    Ok(())
}

impl FsBackend {
    /// The ids of the objects under `top` (`values` or `versions`), sorted: names that are not
    /// object names (`.DS_Store`, editors' `name~`, rsync's `.name.XXXXXX`, a file where a
    /// shard directory belongs) are skipped; `verify` reports them.
    fn list_ids(&self, top: &str) -> Result<Vec<Id>> {
        Ok(self
            .list_sharded(top)?
            .into_iter()
            .filter_map(|(s, r)| layout::parse_sharded(&s, &r))
            .collect())
    }
}

/// A record with its ids; its content id hashed only if the index did not know it.
fn stored_call(
    key: &Id,
    hid: &Id,
    rid: &Id,
    (record, cid): (CallRecord, Option<Id>),
) -> StoredCall {
    StoredCall {
        key: *key,
        cid: cid.unwrap_or_else(|| record.cid()),
        hid: *hid,
        rid: *rid,
        record,
    }
}

impl Backend for FsBackend {
    fn describe(&self) -> String {
        self.inner.root.display().to_string()
    }

    fn has_value(&self, cid: &Id) -> Result<bool> {
        // A FIFO, device or directory under a value's name is no value: writing the value
        // replaces it.
        Ok(open::is_regular(&layout::value_path(&self.inner.root, cid)))
    }

    fn get_value(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        let cached = {
            let idx = self.inner.index.lock().unwrap();
            idx.values.get(cid).map(|(bytes, _)| bytes.to_vec())
        };
        match cached {
            Some(bytes) if self.index_value_sound(cid, &bytes) => Ok(Some(bytes)),
            _ => self.value_from_file(cid),
        }
    }

    fn get_values(&self, cids: &[Id]) -> Result<Vec<Option<Vec<u8>>>> {
        // Small values from the call index under one lock; the others from their files, on
        // all cores.
        let mut out: Vec<Option<Vec<u8>>> = {
            let idx = self.inner.index.lock().unwrap();
            idx.values
                .get_many(cids)
                .into_iter()
                .map(|v| v.map(|(b, _)| b.to_vec()))
                .collect()
        };
        for (cid, bytes) in cids.iter().zip(out.iter_mut()) {
            if bytes
                .as_ref()
                .is_some_and(|b| !self.index_value_sound(cid, b))
            {
                *bytes = None;
            }
        }
        let rest: Vec<usize> = (0..cids.len()).filter(|i| out[*i].is_none()).collect();
        let read = store_core::par::try_map(&rest, 64, |i| self.value_from_file(&cids[*i]))?;
        for (i, bytes) in rest.into_iter().zip(read) {
            out[i] = bytes;
        }
        Ok(out)
    }

    fn begin_writes(&self) -> Result<store_core::WriteGuard<'_>> {
        let epoch = self.inner.writers.acquire(&self.lock_path())?;
        Ok(store_core::WriteGuard::new(
            epoch,
            Some(Box::new(SharedHold(&self.inner.writers))),
        ))
    }

    fn put_value(&self, cid: &Id, cbor: &[u8]) -> Result<()> {
        self.put_blob(&layout::value_path(&self.inner.root, cid), cbor)?;
        self.index_small_value(cid, cbor);
        Ok(())
    }

    fn list_calls(&self, key: &Id) -> Result<Vec<(Id, Id)>> {
        let shard = key.0[0];
        let mut shards = self.inner.shards.lock().unwrap();
        if let Some(cache) = &shards[shard as usize] {
            let found = cache.calls_of(key);
            if !found.is_empty() || cache.current(self.shard_stamp(shard)?) {
                return Ok(found);
            }
        }
        let cache = self.list_shard(shard)?;
        let found = cache.calls_of(key);
        shards[shard as usize] = Some(cache);
        Ok(found)
    }

    fn get_call(&self, key: &Id, hid: &Id, rid: &Id) -> Result<Option<CallRecord>> {
        // Lookups read the file, never the call index: a record another process deleted must
        // not be served from a cache.
        let path = layout::call_path(&self.inner.root, key, hid, rid);
        match self.read_call_bytes(&path, rid)? {
            Some(bytes) => Self::decode_call(&path, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn get_stored_call(&self, key: &Id, hid: &Id, rid: &Id) -> Result<Option<StoredCall>> {
        Ok(self
            .read_indexed_call(key, hid, rid)?
            .map(|read| stored_call(key, hid, rid, read)))
    }

    fn get_stored_calls(&self, ids: &[CallName]) -> Result<Vec<Option<Arc<StoredCall>>>> {
        // The records the index holds, decoded on all cores under one lock (workers taking
        // it for each record would contend for it); then the others, from their files.
        let (mut out, damaged) = {
            let idx = self.inner.index.lock().unwrap();
            let cached = idx.records.get_many(ids);
            let items: Vec<_> = ids.iter().zip(cached).collect();
            let out = store_core::par::try_map(&items, 1024, |((key, hid, rid), cached)| {
                let Some((bytes, cid)) = cached else {
                    return Ok(None);
                };
                // A damaged copy gives None: read from its file below.
                Ok::<_, Error>(
                    self.decode_indexed(key, hid, rid, bytes)?
                        .map(|record| Arc::new(stored_call(key, hid, rid, (record, Some(*cid))))),
                )
            })?;
            let damaged: Vec<Id> = items
                .iter()
                .zip(&out)
                .filter(|((_, cached), read)| cached.is_some() && read.is_none())
                .map(|(((_, _, rid), _), _)| *rid)
                .collect();
            (out, damaged)
        };
        for rid in &damaged {
            self.index_damaged(&format!("call record {}", rid.short(12)));
        }
        let rest: Vec<usize> = (0..ids.len()).filter(|i| out[*i].is_none()).collect();
        let read = store_core::par::try_map(&rest, 64, |i| {
            let (key, hid, rid) = &ids[*i];
            let read = self.call_from_file(key, hid, rid)?;
            Ok::<_, Error>(read.map(|read| Arc::new(stored_call(key, hid, rid, read))))
        })?;
        for (i, call) in rest.into_iter().zip(read) {
            out[i] = call;
        }
        Ok(out)
    }

    fn put_call(&self, record: &CallRecord) -> Result<()> {
        let bytes = record.to_cbor();
        let rid = Id::hash(Kind::CallRecord, &bytes);
        let (key, hid) = (record.key(), record.hid());
        let path = layout::call_path(&self.inner.root, &key, &hid, &rid);
        self.put_blob(&path, &bytes)?;
        let mut shards = self.inner.shards.lock().unwrap();
        {
            let mut idx = self.inner.index.lock().unwrap();
            if idx.loaded {
                idx.records.insert((key, hid, rid), bytes, record.cid());
                idx.dirty = true;
            }
        }
        if let Some(cache) = &mut shards[key.0[0] as usize] {
            cache.insert((key, hid, rid));
        }
        Ok(())
    }

    fn call_ids(&self) -> Result<Vec<(Id, Id, Id)>> {
        let mut shards = self.inner.shards.lock().unwrap();
        let stamps =
            || -> Result<Vec<Option<Stamp>>> { (0..=255u8).map(|i| self.shard_stamp(i)).collect() };
        let (mut idx, stamps) = if self.inner.index.lock().unwrap().loaded {
            (self.index_state(), stamps()?)
        } else {
            // A first query: the shard directories are stamped while the index file is read
            // and checked, its two slow steps, on two cores.
            let (idx, stamps) = std::thread::scope(|s| {
                let stamping = s.spawn(stamps);
                let idx = self.index_state();
                (idx, stamping.join().expect("stamping does not panic"))
            });
            (idx, stamps?)
        };
        let mut changed = false;
        for shard in 0..=255u8 {
            let slot = &mut shards[shard as usize];
            let stamp = stamps[shard as usize];
            let fresh = match slot {
                Some(cache) => cache.current(stamp),
                None => false,
            };
            if !fresh {
                changed = true;
                let from_file = idx.file_listing.get_mut(shard as usize).map(std::mem::take);
                *slot = Some(match (idx.file_shards[shard as usize], from_file) {
                    (Some(s), Some(names)) if Some(s) == stamp => {
                        ShardCache::from_names(stamp, true, names)
                    }
                    _ => {
                        idx.relisted = true;
                        self.list_shard(shard)?
                    }
                });
            }
        }
        if changed {
            // Seeded listings are the file's: its copy is no longer needed.
            idx.file_listing = Vec::new();
        }
        // Shards in order, each sorted: the whole listing is sorted.
        let n = shards.iter().flatten().map(|c| c.names.len()).sum();
        let mut out = Vec::with_capacity(n);
        for cache in shards.iter().flatten() {
            out.extend_from_slice(&cache.names);
        }
        Ok(out)
    }

    fn all_calls(&self) -> Result<Vec<StoredCall>> {
        let mut out = Vec::new();
        for (key, hid, rid) in self.call_ids()? {
            // A record deleted since the listing is simply not there.
            out.extend(self.get_stored_call(&key, &hid, &rid)?);
        }
        self.save_index();
        Ok(out)
    }

    fn save_index(&self) {
        let shards = self.inner.shards.lock().unwrap();
        let mut idx = self.inner.index.lock().unwrap();
        if !idx.loaded || (!idx.dirty && !idx.relisted) {
            return;
        }
        let mut stamps = vec![None; 256];
        let mut records: Vec<(CallName, &[u8], Id)> = Vec::new();
        for (i, cache) in shards.iter().enumerate() {
            let Some(cache) = cache else { continue };
            let before = records.len();
            records.extend(
                cache
                    .names
                    .iter()
                    .filter_map(|n| idx.records.get(n).map(|(b, cid)| (*n, b, cid))),
            );
            let complete = records.len() - before == cache.names.len();
            if cache.settled && complete {
                stamps[i] = cache.stamp;
            }
        }
        if !idx.dirty && stamps == idx.file_shards {
            return;
        }
        let Some(bytes) = index::encode(&stamps, &records, &idx.values.entries()) else {
            return;
        };
        let path = self.index_path();
        // A cache: failing to write it (read-only store, full disk) costs only speed.
        let written = write::write_with(&self.inner.tmp, &path, Durability::Flush, |f, tmp| {
            f.write_all(&bytes).map_err(|e| Error::io("write", tmp, e))
        });
        if written.is_ok() {
            idx.file_shards = stamps;
            idx.dirty = false;
            idx.relisted = false;
        }
    }

    fn all_values(&self) -> Result<Vec<Id>> {
        self.list_ids(layout::VALUES)
    }

    fn delete_call(&self, key: &Id, hid: &Id, rid: &Id) -> Result<()> {
        let path = layout::call_path(&self.inner.root, key, hid, rid);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &path, e)),
        }
        let mut shards = self.inner.shards.lock().unwrap();
        {
            let mut idx = self.inner.index.lock().unwrap();
            if idx.records.remove(&(*key, *hid, *rid)) {
                idx.dirty = true;
            }
        }
        if let Some(cache) = &mut shards[key.0[0] as usize] {
            cache.remove(&(*key, *hid, *rid));
        }
        Ok(())
    }

    fn put_version(&self, version: &VersionRecord) -> Result<()> {
        let bytes = cbor::to_canonical(version).expect("version records always encode");
        let id = Id::hash(Kind::Version, &bytes);
        let path = layout::sharded(&self.inner.root, layout::VERSIONS, &id);
        self.put_blob(&path, &bytes).map(|_| ())
    }

    fn all_versions(&self) -> Result<Vec<VersionRecord>> {
        let mut out = Vec::new();
        for id in self.list_ids(layout::VERSIONS)? {
            let path = layout::sharded(&self.inner.root, layout::VERSIONS, &id);
            let bytes = self
                .read_object(&path, Kind::Version, &id)?
                .ok_or_else(|| Error::corrupt(&path, "vanished"))?;
            out.push(
                cbor::from_slice(&bytes)
                    .map_err(|e| Error::corrupt(&path, format!("not a version record: {e}")))?,
            );
        }
        Ok(out)
    }

    fn put_decision(&self, d: &Decision) -> Result<()> {
        let path = layout::decision_path(&self.inner.root, d);
        let text = format!("{}\n", d.component);
        write::write_once(
            &self.inner.tmp,
            &path,
            text.as_bytes(),
            self.inner.durability,
        )
        .map(|_| ())
    }

    fn decisions(&self) -> Result<Vec<Decision>> {
        let dir = self.inner.root.join(layout::REFS).join(layout::DECISIONS);
        let mut out = Vec::new();
        for name in Self::list_dir(&dir)? {
            // Names that are not decisions are not ours: skipped here, reported by fsck.
            if layout::parse_decision_name(&name, String::new()).is_none() {
                continue;
            }
            let path = dir.join(&name);
            let Some(bytes) = open::read_small(&path, 1 << 16, "a decision file")? else {
                continue; // removed since the listing
            };
            let text = String::from_utf8_lossy(&bytes);
            let component = text.trim_end_matches('\n').to_string();
            let d = layout::parse_decision_name(&name, component).expect("parsed above");
            if layout::decision_path(&self.inner.root, &d) != path {
                return Err(Error::corrupt(
                    &path,
                    "decision file names another component",
                ));
            }
            out.push(d);
        }
        out.sort();
        Ok(out)
    }
}
