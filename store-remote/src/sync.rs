//! Push, fetch and pull: list both sides, transfer what the other side lacks, several files
//! at once, in the order that keeps every state of the destination valid (values, version
//! records and decisions before packs; a pack's `.idx` after its `.pack`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store_core::{Error, Id, Result, StoreError};
use store_fs::exchange::{ContentFile, ContentName};
use store_fs::{layout, FsBackend};

use crate::config::Remotes;
use crate::transport::{open_transport, Transport, TransportError};

/// How to transfer.
pub struct SyncOptions<'a> {
    /// Files transferred at once (default 8).
    pub jobs: usize,
    /// Called after each file (from the transferring threads).
    pub progress: Option<&'a (dyn Fn(&Progress) + Sync)>,
}

impl Default for SyncOptions<'_> {
    fn default() -> Self {
        SyncOptions {
            jobs: 8,
            progress: None,
        }
    }
}

/// Where a transfer stands.
#[derive(Clone, Debug)]
pub struct Progress {
    /// `push`, `fetch` or `pull`.
    pub action: &'static str,
    /// Files transferred so far, of `files_total`.
    pub files: usize,
    /// Files to transfer.
    pub files_total: usize,
    /// Bytes transferred so far, of `bytes_total`.
    pub bytes: u64,
    /// Bytes to transfer.
    pub bytes_total: u64,
    /// Since the transfer started.
    pub elapsed: Duration,
}

/// What a push, fetch or pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files transferred.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files found on both sides (not transferred), or created on the remote by another
    /// pusher in the meantime.
    pub already: usize,
    /// Requests made to the remote (listings, uploads, downloads).
    pub requests: u64,
}

/// The remote `name` of `store`, opened.
pub(crate) fn remote(store: &FsBackend, name: &str) -> Result<Box<dyn Transport>> {
    let remotes = Remotes::load(store.root())?;
    open_transport(name, remotes.get(name)?)
}

pub(crate) fn remote_error(name: &str, t: &dyn Transport, reason: String) -> Error {
    Error::Store(StoreError::Remote {
        remote: name.to_string(),
        url: t.url().to_string(),
        reason,
    })
}

/// A request retried a bounded number of times when it fails (not when the key is absent).
fn retried<T>(
    mut request: impl FnMut() -> std::result::Result<T, TransportError>,
) -> std::result::Result<T, TransportError> {
    let mut wait = Duration::from_millis(100);
    for _ in 0..3 {
        match request() {
            Err(TransportError::Failed(_)) => {
                std::thread::sleep(wait);
                wait *= 4;
            }
            done => return done,
        }
    }
    request()
}

/// The keys under each of `prefixes`, listed in that order, with their sizes.
fn list_remote(name: &str, t: &dyn Transport, prefixes: &[&str]) -> Result<BTreeMap<String, u64>> {
    let mut keys = BTreeMap::new();
    for prefix in prefixes {
        let listed = retried(|| t.list(prefix))
            .map_err(|e| remote_error(name, t, format!("cannot list {prefix}: {e}")))?;
        keys.extend(listed);
    }
    Ok(keys)
}

/// The remote key of pack `id`'s `.pack` or `.idx` (`ext`).
fn pack_key(id: &Id, ext: &str) -> String {
    format!("{}/{}", layout::PACKS, layout::pack_file_name(id, ext))
}

/// What a push or pull transferred, over all its phases (progress is reported on the whole).
struct Tally {
    files: AtomicUsize,
    already: AtomicUsize,
    bytes: AtomicU64,
    files_total: usize,
    bytes_total: u64,
    started: Instant,
}

impl Tally {
    fn new(files_total: usize, bytes_total: u64) -> Tally {
        Tally {
            files: AtomicUsize::new(0),
            already: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            files_total,
            bytes_total,
            started: Instant::now(),
        }
    }

    fn into_report(self, requests: u64) -> SyncReport {
        SyncReport {
            files: self.files.into_inner(),
            bytes: self.bytes.into_inner(),
            already: self.already.into_inner(),
            requests,
        }
    }
}

/// Runs `job` on every item, `jobs` at once, counting into `tally` and reporting progress;
/// every item is tried (unless the remote fails outright), and the errors are returned.
fn transfer<T: Sync>(
    action: &'static str,
    items: &[(T, u64)],
    options: &SyncOptions,
    tally: &Tally,
    job: impl Fn(&T) -> Result<bool> + Sync,
) -> Vec<Error> {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..options.jobs.clamp(1, 64).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let (item, size) = &items[i];
                match job(item) {
                    Ok(true) => {
                        tally.files.fetch_add(1, Ordering::Relaxed);
                        tally.bytes.fetch_add(*size, Ordering::Relaxed);
                    }
                    Ok(false) => {
                        tally.already.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // An unreachable remote fails every request: stop at the first of
                        // those; a refused object does not stop the others.
                        if !matches!(e, Error::Store(StoreError::Corrupt { .. })) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        errors.lock().unwrap().push(e);
                    }
                }
                if let Some(report) = options.progress {
                    report(&Progress {
                        action,
                        files: tally.files.load(Ordering::Relaxed)
                            + tally.already.load(Ordering::Relaxed),
                        files_total: tally.files_total,
                        bytes: tally.bytes.load(Ordering::Relaxed),
                        bytes_total: tally.bytes_total,
                        elapsed: tally.started.elapsed(),
                    });
                }
            });
        }
    });
    errors.into_inner().unwrap()
}

fn first_error(mut errors: Vec<Error>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let others = errors.len() - 1;
    let first = errors.swap_remove(0);
    if others == 0 {
        return Err(first);
    }
    Err(match first {
        Error::Store(StoreError::Remote {
            remote,
            url,
            reason,
        }) => Error::Store(StoreError::Remote {
            remote,
            url,
            reason: format!("{reason} (and {others} more failed)"),
        }),
        Error::Store(StoreError::Corrupt { path, reason }) => Error::corrupt(
            path,
            format!("{reason} (and {others} more objects were refused)"),
        ),
        e => e,
    })
}

/// Pushes every content file of `store` that remote `name` lacks: values, version records,
/// decisions and `.pack` files first, then the `.idx` of each pack, oldest first and one at a
/// time (a pack is visible by its index, and a record may name a value in an older pack, so an
/// interrupted push leaves nothing half-visible; the next push completes it).
/// Uploads are create-only: a file another store pushed meanwhile is left as it is.
///
/// This handle's log is sealed into a pack first; calls still in the logs of other running
/// processes are pushed once those are sealed.
pub fn push(store: &FsBackend, name: &str, options: &SyncOptions) -> Result<SyncReport> {
    let t = remote(store, name)?;
    let t = &*t;
    if store.format() < 2 {
        return Err(remote_error(
            name,
            t,
            "pushing needs store format 2 (packs): run `mandala upgrade` on this store first"
                .into(),
        ));
    }
    ensure_remote_store(name, t, store)?;
    // What this handle wrote is pushed too: its log sealed into a pack.
    store.flush()?;
    let local = store.content_files()?;
    // `refs/`: decisions and tags, in one listing.
    let there = list_remote(name, t, &["values/", "versions/", "refs/", "packs/"])?;
    let missing: Vec<&ContentFile> = local
        .iter()
        .filter(|f| !there.contains_key(&f.path))
        .collect();
    // Tags go up last: what they name is on the remote by then.
    let (tags, missing): (Vec<&ContentFile>, Vec<&ContentFile>) = missing
        .into_iter()
        .partition(|f| matches!(ContentName::parse(&f.path), Some(ContentName::Tag(_))));
    let (mut indexes, first): (Vec<&ContentFile>, Vec<&ContentFile>) =
        missing.into_iter().partition(|f| f.path.ends_with(".idx"));
    // A record may name a value stored once in an older pack of this store, so indexes go up
    // oldest first, one at a time: whenever the push stops, the packs the remote shows are
    // closed under what their records name (a pull never gets a record without its values).
    let age = |f: &ContentFile| {
        std::fs::metadata(store.root().join(&f.path))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut aged: Vec<_> = indexes.iter().map(|f| (age(f), f.path.clone())).collect();
    aged.sort();
    let order: BTreeMap<String, usize> = aged
        .into_iter()
        .enumerate()
        .map(|(i, (_, p))| (p, i))
        .collect();
    indexes.sort_by_key(|f| order[&f.path]);
    let both_sides = local.len() - first.len() - indexes.len() - tags.len();
    let tally = Tally::new(
        first.len() + indexes.len() + tags.len(),
        first
            .iter()
            .chain(&indexes)
            .chain(&tags)
            .map(|f| f.size)
            .sum(),
    );
    let upload = |f: &&ContentFile| -> Result<bool> {
        let src = store.root().join(&f.path);
        if !src.is_file() {
            return Ok(false); // consolidated or collected since the listing
        }
        retried(|| t.put_new(&f.path, &src))
            .map_err(|e| remote_error(name, t, format!("cannot upload {}: {e}", f.path)))
    };
    let one_at_a_time = SyncOptions {
        jobs: 1,
        progress: options.progress,
    };
    for (phase, options) in [(first, options), (indexes, &one_at_a_time), (tags, options)] {
        let items: Vec<(&ContentFile, u64)> = phase.iter().map(|f| (*f, f.size)).collect();
        first_error(transfer("push", &items, options, &tally, upload))?;
    }
    let mut report = tally.into_report(t.requests());
    report.already += both_sides;
    Ok(report)
}

/// Makes sure the remote is a store layout this mandala reads: its `mandala.toml` is created
/// on the first push (create-only), and checked otherwise.
fn ensure_remote_store(name: &str, t: &dyn Transport, store: &FsBackend) -> Result<()> {
    let staged = store.staging_path();
    let found = retried(|| t.get(layout::CONFIG, &staged));
    let result = match found {
        Ok(_) => {
            let text = std::fs::read_to_string(&staged).unwrap_or_default();
            store_fs::Config::parse(&text, Path::new(&format!("{}/mandala.toml", t.url())))
                .map(|_| ())
        }
        Err(TransportError::NotFound) => {
            let config = store_fs::Config {
                format: 2,
                ..store.config().clone()
            };
            std::fs::write(&staged, config.to_toml())
                .map_err(|e| Error::io("write", &staged, e))?;
            retried(|| t.put_new(layout::CONFIG, &staged))
                .map(|_| ())
                .map_err(|e| remote_error(name, t, format!("cannot create mandala.toml: {e}")))
        }
        Err(e) => Err(remote_error(
            name,
            t,
            format!("cannot read mandala.toml: {e}"),
        )),
    };
    let _ = std::fs::remove_file(&staged);
    result
}

/// What to download.
enum Download {
    File(String),
    Pack(Id),
}

/// Fetches from remote `name` what `store` lacks of its calls and their history: packs
/// (records and small values), version records and decisions — not the large loose values,
/// which [`pull`] fetches too. Every file is verified against its name before it enters the
/// store; one that fails is refused and reported with its key.
pub fn fetch(store: &FsBackend, name: &str, options: &SyncOptions) -> Result<SyncReport> {
    sync_down(store, name, options, false)
}

/// [`fetch`], and the large values the store lacks, so every fetched call can be loaded.
pub fn pull(store: &FsBackend, name: &str, options: &SyncOptions) -> Result<SyncReport> {
    sync_down(store, name, options, true)
}

fn sync_down(
    store: &FsBackend,
    name: &str,
    options: &SyncOptions,
    values: bool,
) -> Result<SyncReport> {
    let t = remote(store, name)?;
    let mut report = fetch_from(store, name, &*t, options, Values::All(values))?;
    report.requests = t.requests();
    Ok(report)
}

/// Which values a fetch takes, and what it tells of the rest.
pub(crate) enum Values<'a> {
    /// All the store lacks (`true`, pull) or none (`false`, fetch).
    All(bool),
    /// None, but the remote's value ids are listed into this set (fetch on demand).
    List(&'a mut BTreeSet<Id>),
}

/// [`fetch`] or [`pull`] through the transport `t` of remote `name`.
pub(crate) fn fetch_from(
    store: &FsBackend,
    name: &str,
    t: &dyn Transport,
    options: &SyncOptions,
    mut values: Values,
) -> Result<SyncReport> {
    let action = match values {
        Values::All(true) => "pull",
        _ => "fetch",
    };
    // Packs before values: a pusher uploads a pack's values before the pack, so the values
    // listed after a pack include every value its calls name (listed the other way round, a
    // push completing between the two listings brings a pack without its large values).
    // `refs/`: decisions and tags, in one listing.
    let mut sizes = list_remote(name, t, &["packs/", "versions/", "refs/"])?;
    match &mut values {
        Values::All(false) => {}
        Values::All(true) => sizes.extend(list_remote(name, t, &["values/"])?),
        Values::List(ids) => {
            ids.extend(list_remote(name, t, &["values/"])?.keys().filter_map(|k| {
                match ContentName::parse(k) {
                    Some(ContentName::Value(cid)) => Some(cid),
                    _ => None,
                }
            }))
        }
    }
    let mut already = 0;
    // Values, version records and decisions first: packs name them.
    let (mut loose, mut packs) = (Vec::new(), Vec::new());
    for (key, size) in &sizes {
        // One look per remote file, not a listing of the whole store (a lazy store looks
        // on misses).
        if store.has_content(key) {
            already += 1;
            continue;
        }
        match ContentName::parse(key) {
            Some(ContentName::PackIndex(id)) => {
                if let Some(pack_size) = sizes.get(&pack_key(&id, "pack")) {
                    packs.push((Download::Pack(id), size + pack_size));
                }
            }
            Some(ContentName::Pack(_)) | None => {} // with its index; or not content
            Some(_) => loose.push((Download::File(key.clone()), *size)),
        }
    }
    let download = |d: &Download| -> Result<bool> {
        let get = |key: &str| -> Result<std::path::PathBuf> {
            let staged = store.staging_path();
            retried(|| t.get(key, &staged))
                .map_err(|e| remote_error(name, t, format!("cannot download {key}: {e}")))?;
            Ok(staged)
        };
        match d {
            Download::File(key) => {
                let staged = get(key)?;
                store.import(key, &staged, &format!("{}/{key}", t.url()))
            }
            Download::Pack(id) => {
                let idx_key = pack_key(id, "idx");
                let idx = get(&idx_key)?;
                let pack = match get(&pack_key(id, "pack")) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = std::fs::remove_file(&idx);
                        return Err(e);
                    }
                };
                store.import_pack(id, &pack, &idx, &format!("{}/{idx_key}", t.url()))
            }
        }
    };
    let tally = Tally::new(
        loose.len() + packs.len(),
        loose.iter().chain(&packs).map(|(_, n)| n).sum(),
    );
    let mut errors = Vec::new();
    for phase in [loose, packs] {
        errors.extend(transfer(action, &phase, options, &tally, download));
    }
    first_error(errors)?;
    let mut got = tally.into_report(0);
    got.already += already;
    Ok(got)
}

/// Downloads value `cid` from remote `name` into `store`, verified; `false` if the remote
/// does not hold it.
pub(crate) fn fetch_value(
    store: &FsBackend,
    name: &str,
    t: &dyn Transport,
    cid: &Id,
) -> Result<bool> {
    let (shard, rest) = layout::shard(cid);
    let key = format!("{}/{shard}/{rest}", layout::VALUES);
    let staged = store.staging_path();
    match retried(|| t.get(&key, &staged)) {
        Ok(_) => store
            .import(&key, &staged, &format!("{}/{key}", t.url()))
            .map(|_| true),
        Err(TransportError::NotFound) => Ok(false),
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            Err(remote_error(name, t, format!("cannot download {key}: {e}")))
        }
    }
}
