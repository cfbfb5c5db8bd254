//! What a store shares with other copies of itself (remotes, docs/REMOTES.md): its content
//! files listed by their paths in the store, and files from elsewhere taken in only once they
//! are verified against their names.
//!
//! Content files are exactly those a union of stores is made of: sealed packs (`.pack` and
//! `.idx`), loose values, version records and decisions. Logs of running writers, `tmp/`,
//! `index/`, the lock and `mandala.toml` are not content.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store_core::{Error, Id, Kind, Result};

use crate::{layout, FsBackend};

/// One content file of a store: its path in the store (`/`-separated, e.g.
/// `packs/pack-<64 hex>.idx`, `values/ab/<62 hex>`) and its size.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContentFile {
    /// The path relative to the store's root.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a content path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentName {
    /// A loose value, by its cid.
    Value(Id),
    /// A version record, by its id.
    Version(Id),
    /// A decision file (its name; the file holds the component's name).
    Decision(String),
    /// A tag record (its file name: hashes of the tag's name and of the record).
    Tag(String),
    /// A pack's `.pack` file.
    Pack(Id),
    /// A pack's `.idx` file.
    PackIndex(Id),
}

impl ContentName {
    /// Parses a content path; `None` for anything that is not one (a remote listing may hold
    /// other keys: they are never fetched).
    ///
    /// ```
    /// # use store_fs::exchange::ContentName;
    /// let id = "ab".repeat(32);
    /// assert!(matches!(ContentName::parse(&format!("packs/pack-{id}.idx")), Some(ContentName::PackIndex(_))));
    /// assert_eq!(ContentName::parse("logs/1-2-abc.log"), None);
    /// ```
    pub fn parse(path: &str) -> Option<ContentName> {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [layout::VALUES, shard, rest] => {
                layout::parse_sharded(shard, rest).map(ContentName::Value)
            }
            [layout::VERSIONS, shard, rest] => {
                layout::parse_sharded(shard, rest).map(ContentName::Version)
            }
            [layout::REFS, layout::DECISIONS, name] => {
                layout::parse_decision_name(name, String::new())
                    .map(|_| ContentName::Decision(name.to_string()))
            }
            [layout::REFS, layout::TAGS, name] if layout::is_tag_file_name(name) => {
                Some(ContentName::Tag(name.to_string()))
            }
            [layout::PACKS, name] => layout::parse_pack_name(name, "pack")
                .map(ContentName::Pack)
                .or_else(|| layout::parse_pack_name(name, "idx").map(ContentName::PackIndex)),
            _ => None,
        }
    }
}

/// Where a store looks for what it lacks: a lazy remote (docs/REMOTES.md, "Fetch on
/// demand"). Set with [`FsBackend::set_fallback`]; consulted only after the store itself
/// missed, with no lock of the store held.
pub trait Fallback: Send + Sync {
    /// A lookup by call key found no record here: take in what is new elsewhere (the
    /// remote's packs). `true` if anything was taken in (the lookup is then repeated).
    fn calls_missed(&self, store: &FsBackend) -> Result<bool>;
    /// Whether value `cid`, which this store lacks, is held elsewhere (without fetching it).
    fn has_value(&self, store: &FsBackend, cid: &Id) -> Result<bool>;
    /// Takes value `cid` in (verified, through [`FsBackend::import`]); `true` if it now is here.
    fn fetch_value(&self, store: &FsBackend, cid: &Id) -> Result<bool>;
}

impl FsBackend {
    /// Makes `fallback` the place this store (every clone of this handle) looks for calls and
    /// values it lacks.
    pub fn set_fallback(&self, fallback: Arc<dyn Fallback>) {
        *self.inner.fallback.write().unwrap() = Some(fallback);
    }

    pub(crate) fn fallback(&self) -> Option<Arc<dyn Fallback>> {
        self.inner.fallback.read().unwrap().clone()
    }

    /// Every content file of the store, sorted by path: loose values, version records,
    /// decisions, and sealed packs (a pack is listed only with its index). Calls still in a
    /// log are not content yet: a push seals its own handle's log first
    /// ([`FsBackend::flush`]); those of other running writers are shared once sealed.
    pub fn content_files(&self) -> Result<Vec<ContentFile>> {
        let root = self.root().to_path_buf();
        let mut out = Vec::new();
        let size = |path: &Path| {
            fs::symlink_metadata(path)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
        };
        for top in [layout::VALUES, layout::VERSIONS] {
            for (shard, rest) in self.list_sharded(top)? {
                if layout::parse_sharded(&shard, &rest).is_none() {
                    continue;
                }
                if let Some(n) = size(&root.join(top).join(&shard).join(&rest)) {
                    out.push(ContentFile {
                        path: format!("{top}/{shard}/{rest}"),
                        size: n,
                    });
                }
            }
        }
        let decisions = root.join(layout::REFS).join(layout::DECISIONS);
        for name in Self::list_dir(&decisions)? {
            if layout::parse_decision_name(&name, String::new()).is_some() {
                if let Some(n) = size(&decisions.join(&name)) {
                    out.push(ContentFile {
                        path: format!("{}/{}/{name}", layout::REFS, layout::DECISIONS),
                        size: n,
                    });
                }
            }
        }
        let tags = root.join(layout::REFS).join(layout::TAGS);
        for name in Self::list_dir(&tags)? {
            if layout::is_tag_file_name(&name) {
                if let Some(n) = size(&tags.join(&name)) {
                    out.push(ContentFile {
                        path: format!("{}/{}/{name}", layout::REFS, layout::TAGS),
                        size: n,
                    });
                }
            }
        }
        let packs = root.join(layout::PACKS);
        let names = Self::list_dir(&packs)?;
        for name in &names {
            let Some(id) = layout::parse_pack_name(name, "idx") else {
                continue;
            };
            let pack = layout::pack_file_name(&id, "pack");
            if names.binary_search(&pack).is_err() {
                continue; // being sealed, or left by an interrupted seal
            }
            if let (Some(a), Some(b)) = (size(&packs.join(&pack)), size(&packs.join(name))) {
                out.push(ContentFile {
                    path: format!("{}/{pack}", layout::PACKS),
                    size: a,
                });
                out.push(ContentFile {
                    path: format!("{}/{name}", layout::PACKS),
                    size: b,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether the store holds the content file `path` (a pack: by its index, as readers see
    /// it).
    pub fn has_content(&self, path: &str) -> bool {
        ContentName::parse(path).is_some() && crate::open::is_regular(&self.root().join(path))
    }

    /// A new path in the store's `tmp/` to fetch a file into (then [`FsBackend::import`]).
    pub fn staging_path(&self) -> PathBuf {
        self.inner
            .tmp
            .join(format!("fetch-{}", crate::write::unique_name()))
    }

    /// Takes in `staged` (a file under the store's `tmp/`, e.g. from
    /// [`FsBackend::staging_path`]) as the content file `path`, once its content is verified
    /// against its name; the staged file is consumed either way. Returns `false` if the store
    /// already held the file. A pack is taken in with [`FsBackend::import_pack`] instead.
    ///
    /// Errors: `path` is not a content path, or the content does not match it (the error
    /// names `what` — e.g. the remote key — and why).
    pub fn import(&self, path: &str, staged: &Path, what: &str) -> Result<bool> {
        let result = self.import_inner(path, staged, what);
        let _ = fs::remove_file(staged);
        result
    }

    fn import_inner(&self, path: &str, staged: &Path, what: &str) -> Result<bool> {
        let root = self.root();
        let dest = match ContentName::parse(path) {
            Some(ContentName::Value(cid)) => {
                self.read_object(staged, Kind::Value, &cid)
                    .map_err(|e| refused(what, e))?;
                layout::value_path(root, &cid)
            }
            Some(ContentName::Version(id)) => {
                let bytes = self
                    .read_object(staged, Kind::Version, &id)
                    .map_err(|e| refused(what, e))?
                    .unwrap_or_default();
                store_core::format::cbor::from_slice::<store_core::format::version::VersionRecord>(
                    &bytes,
                )
                .map_err(|e| Error::corrupt(what, format!("not a version record: {e}")))?;
                layout::sharded(root, layout::VERSIONS, &id)
            }
            Some(ContentName::Decision(name)) => {
                let bytes = crate::open::read_small(staged, 1 << 16, "a decision file")?
                    .unwrap_or_default();
                let component = String::from_utf8_lossy(&bytes)
                    .trim_end_matches('\n')
                    .to_string();
                let d = layout::parse_decision_name(&name, component)
                    .ok_or_else(|| Error::corrupt(what, "not a decision file name"))?;
                let dest = layout::decision_path(root, &d);
                if dest.file_name().map(|n| n.to_string_lossy().into_owned()) != Some(name) {
                    return Err(Error::corrupt(
                        what,
                        "the decision file names another component",
                    ));
                }
                dest
            }
            Some(ContentName::Tag(name)) => {
                let bytes =
                    crate::open::read_small(staged, 1 << 16, "a tag file")?.unwrap_or_default();
                let t = store_core::format::tag::TagRecord::parse(&String::from_utf8_lossy(&bytes))
                    .ok_or_else(|| Error::corrupt(what, "not a tag record"))?;
                if t.file_name() != name {
                    return Err(Error::corrupt(
                        what,
                        "the tag record's content does not match its name",
                    ));
                }
                root.join(layout::REFS).join(layout::TAGS).join(name)
            }
            Some(ContentName::Pack(_) | ContentName::PackIndex(_)) => {
                return Err(Error::corrupt(
                    what,
                    "a pack is taken in with its index (import_pack)",
                ))
            }
            None => {
                return Err(Error::corrupt(
                    what,
                    "not the path of a store's content file",
                ))
            }
        };
        place(staged, &dest)
    }

    /// Takes in pack `id` from the staged files `pack` and `idx` once verified: the index
    /// hashes to the pack's name, the pack to what its index records, and every entry to its
    /// id. The `.pack` is moved into place before the `.idx` (readers see a pack by its index).
    /// Both staged files are consumed either way. Returns `false` if the store already held it.
    pub fn import_pack(&self, id: &Id, pack: &Path, idx: &Path, what: &str) -> Result<bool> {
        let result = self.import_pack_inner(id, pack, idx, what);
        let _ = fs::remove_file(pack);
        let _ = fs::remove_file(idx);
        result
    }

    fn import_pack_inner(&self, id: &Id, pack: &Path, idx: &Path, what: &str) -> Result<bool> {
        let root = self.root();
        let dest_idx = layout::pack_path(root, id, "idx");
        if crate::open::is_regular(&dest_idx) {
            return Ok(false);
        }
        let opened = crate::pack::open_pack_at(idx, pack.to_path_buf(), id, true)
            .map_err(|e| refused(what, e))?
            .ok_or_else(|| Error::corrupt(what, "vanished while it was checked"))?;
        if !opened
            .hash_matches()
            .map_err(|e| Error::io("read", pack, e))?
        {
            return Err(Error::corrupt(
                what,
                "the pack does not hash to what its index records (damaged or truncated)",
            ));
        }
        opened
            .read_commits()
            .map_err(|why| refused(what, Error::corrupt(pack, why)))?;
        for e in opened.entries() {
            let e = e.map_err(|why| refused(what, Error::corrupt(pack, why)))?;
            crate::pack::read_entry(crate::pack::Found::in_pack(&opened, e).at())
                .map_err(|e| refused(what, e))?;
        }
        drop(opened);
        place(pack, &layout::pack_path(root, id, "pack"))?;
        place(idx, &dest_idx)
    }
}

/// The error for fetched content that failed its check: it names `what` (e.g. the remote's
/// key), not the staging file.
fn refused(what: &str, e: Error) -> Error {
    Error::corrupt(what, crate::verify::reason_of(e))
}

/// Moves the verified `staged` file to `dest` unless a file is there already.
fn place(staged: &Path, dest: &Path) -> Result<bool> {
    if crate::open::is_regular(dest) {
        return Ok(false);
    }
    let dir = dest.parent().expect("content paths have a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    fs::rename(staged, dest).map_err(|e| Error::io("rename into place", dest, e))?;
    Ok(true)
}
