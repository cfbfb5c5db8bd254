//! Objects by id: values (`values/`), version records (`versions/`) and decisions
//! (`refs/decisions/`) — reading them (only regular files, verified against their names,
//! in bounded memory), writing them once, and listing them.

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store_core::format::cbor;
use store_core::format::version::{Decision, VersionRecord};
use store_core::{Error, Id, Kind, Result};

use crate::{blob, layout, open, write, FsBackend};

impl FsBackend {
    /// Stores the blob of `cbor` at `dest` unless a file is there; whether this call created it.
    pub(crate) fn put_blob(&self, dest: &Path, cbor: &[u8]) -> Result<bool> {
        Ok(self.put_blob_observed(dest, cbor, || ())?.is_some())
    }

    /// [`Self::put_blob`], running `observe` right before the rename if this call creates the
    /// file (`None` if the file was there).
    pub(crate) fn put_blob_observed<T>(
        &self,
        dest: &Path,
        cbor: &[u8],
        observe: impl FnOnce() -> T,
    ) -> Result<Option<T>> {
        // Names are hashes: a file there has this content. Anything else there (a FIFO, a
        // link to a device) is replaced by the rename.
        if open::is_regular(dest) {
            return Ok(None);
        }
        let level = self.inner.config.zstd_level;
        let (tmp, durability) = (&self.inner.tmp, self.inner.durability);
        let seen = if cbor.len() >= blob::STREAM_THRESHOLD {
            write::write_observed(
                tmp,
                dest,
                durability,
                |f, tmp| blob::compress_to(cbor, level, f, tmp),
                observe,
            )?
        } else {
            let z = blob::compress(cbor, level)?;
            write::write_observed(
                tmp,
                dest,
                durability,
                |f, tmp| f.write_all(&z).map_err(|e| Error::io("write", tmp, e)),
                observe,
            )?
        };
        Ok(Some(seen))
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

    /// See [`store_core::Backend::stream_value`]: a large loose value is decompressed a
    /// mebibyte at a time, each piece hashed and handed to `sink`, so that its reader never
    /// holds the whole content (loading an 80 MB vector fills one fresh buffer instead of
    /// two). Anything else — a small or packed value, a frame that claims far more than its
    /// file holds ([`blob::suspicious`]), a damaged blob — is left to `get_value`.
    pub(crate) fn stream_value_file(&self, cid: &Id, sink: &mut dyn FnMut(&[u8])) -> Result<bool> {
        // A packed value (every small one in format 2) is get_value's, with no file to open.
        if self.packs().find_value(cid).is_some() {
            return Ok(false);
        }
        // Whatever is not a plain large blob here (a missing file, something else where the
        // value belongs, a read that fails) is get_value's to find elsewhere or to report.
        let path = layout::value_path(&self.inner.root, cid);
        let Ok(Some((mut file, len))) = open::open_regular(&path) else {
            return Ok(false);
        };
        if len < (blob::STREAM_THRESHOLD / 4) as u64 {
            return Ok(false);
        }
        let mut head = [0u8; 18];
        let Ok(n) = read_head(&mut file, &mut head) else {
            return Ok(false);
        };
        let Ok(claimed) = blob::claimed_size(&head[..n], &path) else {
            return Ok(false);
        };
        if blob::suspicious(claimed, len) || file.seek(SeekFrom::Start(0)).is_err() {
            return Ok(false);
        }
        let streamed = match blob::stream_raw_frame(&file, len, Kind::Value, sink) {
            Some(read) => Ok(read),
            None => blob::stream_frame(file, &path, Id::hasher(Kind::Value), sink, true)
                .map(|(n, hash)| (n, Id(*hash.as_bytes()))),
        };
        Ok(match streamed {
            Ok((n, id)) => n == claimed && id == *cid,
            Err(_) => false, // get_value reads it again, and reports and handles the damage
        })
    }

    /// Moves the damaged value file at `path` out of the store's objects into `tmp/` (kept
    /// for inspection; `fsck` lists it), so that lookups find the value missing and compute
    /// the call that made it again, which rewrites it. Checked once more first: a writer may
    /// have just replaced the file with a sound one. Returns where it went, if it moved.
    ///
    /// Moving a value out is a removal, as `gc`'s are: it happens under the collection lock
    /// held exclusively, and moves the collection epoch on, so a writer that remembers the
    /// value as stored writes it again rather than naming a missing value. If the lock is
    /// busy (writers at work, or this very process holding it shared), the file is left where
    /// it is: the error is reported all the same, and a later read moves it.
    fn set_aside(&self, path: &Path, cid: &Id) -> Option<PathBuf> {
        let lock = crate::lock::ExclusiveLock::try_acquire(&self.lock_path()).ok()??;
        if !matches!(
            self.read_value(path, cid),
            Err(Error::Store(store_core::StoreError::Corrupt { .. }))
        ) {
            return None;
        }
        lock.bump_epoch().ok()?;
        let aside = self.inner.tmp.join(format!(
            "{}{cid}-{}",
            write::DAMAGED_PREFIX,
            std::process::id()
        ));
        fs::rename(path, &aside).ok()?;
        drop(lock);
        self.forget_value(cid);
        Some(aside)
    }

    /// Rewrites the packs without their damaged entries (keeping a sound copy of each object
    /// where there is one), as moving a damaged loose file aside does: under the collection
    /// lock if it is free, moving the epoch on. Whether it happened.
    fn drop_damaged_entries(&self) -> bool {
        let Ok(Some(lock)) = crate::lock::ExclusiveLock::try_acquire(&self.lock_path()) else {
            return false;
        };
        let plan = crate::pack::repack::Plan {
            repair: true,
            ..Default::default()
        };
        self.repack(Some(&lock), plan)
            .is_ok_and(|r| !r.damaged.is_empty())
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

    /// Value `cid` as the store's files hold it (its loose file, or a pack or log), checked
    /// against its id: never from the call index, and damage is reported, never moved aside or
    /// repaired (for inspection: `mandala cat`, `show`, `calls` show what the store's files
    /// say). `None` if the store does not hold it.
    pub fn read_value_file(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        match self.read_value(&layout::value_path(&self.inner.root, cid), cid)? {
            Some(bytes) => Ok(Some(bytes)),
            None => self.packed_value(cid, true, false),
        }
    }

    /// Reads value `cid` and checks that it hashes to its name.
    pub(crate) fn read_value(&self, path: &Path, cid: &Id) -> Result<Option<Vec<u8>>> {
        self.read_object(path, Kind::Value, cid)
    }

    pub(crate) fn value_exists(&self, cid: &Id) -> Result<bool> {
        {
            let mut packs = self.packs();
            if packs.has_value(cid) {
                return Ok(true);
            }
            if self.format() >= 2 {
                // Packs sealed or taken in since the last look (or never looked at, in a new
                // handle) may hold it.
                packs.refresh(&self.inner.root, true, false)?;
                if packs.has_value(cid) {
                    return Ok(true);
                }
                // No values/ directory when last looked (a millisecond ago at most on a
                // miss): no loose value to stat.
                if !packs.loose_values {
                    return Ok(false);
                }
            }
        }
        // A FIFO, device or directory under a value's name is no value: writing the value
        // replaces it.
        Ok(open::is_regular(&layout::value_path(&self.inner.root, cid)))
    }

    pub(crate) fn load_value(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        let cached = {
            let cat = self.catalog();
            cat.index.values.get(cid).map(|(bytes, _)| bytes.to_vec())
        };
        match cached {
            Some(bytes) if self.index_value_sound(cid, &bytes) => Ok(Some(bytes)),
            _ => self.value_anywhere(cid),
        }
    }

    /// Value `cid` from a log or pack, else from its loose file; packs and logs are looked at
    /// again before answering that it is not stored.
    fn value_anywhere(&self, cid: &Id) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.packed_value(cid, false, true)? {
            return Ok(Some(bytes));
        }
        if let Some(bytes) = self.value_from_file(cid)? {
            return Ok(Some(bytes));
        }
        self.packed_value(cid, true, true)
    }

    /// Value `cid` from a log or pack this handle knows (after looking at `packs/` and
    /// `logs/` again if `miss`, or if it is time to), verified; `None` if none holds it.
    ///
    /// A damaged copy is reported (the error names the pack and the entry's offset) and
    /// passed over from then on by this handle; with `repair`, the packs are rewritten without
    /// it, as a damaged loose file is moved aside: the next run that needs the value computes
    /// the call that made it again.
    pub(crate) fn packed_value(
        &self,
        cid: &Id,
        miss: bool,
        repair: bool,
    ) -> Result<Option<Vec<u8>>> {
        let mut first_error = None;
        let mut refresh = true;
        // Each round reads the first copy not found damaged; a damaged one is marked, so the
        // next round reads another copy, if there is one.
        loop {
            let found = {
                let mut packs = self.packs();
                if refresh {
                    packs.refresh(&self.inner.root, miss, false)?;
                    refresh = false;
                }
                let Some(found) = packs.find_value(cid) else {
                    break;
                };
                self.commit_if_pending(&mut packs, &found)?;
                found
            };
            match crate::pack::read_entry(found.at()) {
                Ok(bytes) => {
                    self.index_small_value(cid, &bytes);
                    return Ok(Some(bytes));
                }
                Err(Error::Store(store_core::StoreError::Corrupt { path, reason })) => {
                    self.packs()
                        .damaged
                        .insert((found.path.clone(), found.entry.offset));
                    let what = if !repair {
                        "reported only (inspection changes nothing)"
                    } else if self.drop_damaged_entries() {
                        "left out of the store's packs"
                    } else {
                        "passed over by this process (the packs are rewritten without it by the next read that finds it while no program writes)"
                    };
                    first_error.get_or_insert(Error::Store(store_core::StoreError::Corrupt {
                        path,
                        reason: format!("{reason}; {what}: the next run that needs this value computes the call that made it again"),
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    pub(crate) fn load_values(&self, cids: &[Id]) -> Result<Vec<Option<Vec<u8>>>> {
        // Small values from the call index under one lock; the others from packs and logs, or
        // their files, on all cores.
        let mut out: Vec<Option<Vec<u8>>> = {
            let cat = self.catalog();
            cat.index
                .values
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
        // Values in packs and logs, looked up and read on all cores.
        let mut rest: Vec<usize> = (0..cids.len()).filter(|i| out[*i].is_none()).collect();
        // A damaged entry is read again below, one by one, which reports and repairs it.
        let read = self.read_packed(
            &rest,
            |packs, i| packs.locate_value(&cids[i]),
            |_, found| crate::pack::read_entry(found).ok(),
        )?;
        for (&i, bytes) in rest.iter().zip(read) {
            if let Some(bytes) = &bytes {
                self.index_small_value(&cids[i], bytes);
            }
            out[i] = bytes;
        }
        // The others (loose files, or damaged entries), one by one.
        rest.retain(|i| out[*i].is_none());
        let read = store_core::par::try_map(&rest, 64, |i| self.value_anywhere(&cids[*i]))?;
        for (i, bytes) in rest.into_iter().zip(read) {
            out[i] = bytes;
        }
        Ok(out)
    }

    pub(crate) fn store_value(&self, cid: &Id, cbor: &[u8]) -> Result<()> {
        if self.format() >= 2 && cbor.len() < crate::PACK_VALUE_MAX {
            if self.packs().find_value(cid).is_none() {
                // Encoded here, not under the lock of the log (compressing takes a while).
                let version = self.pack_version();
                let (enc, content) =
                    crate::pack::encode_value(version, cbor, self.inner.config.zstd_level)?;
                // Within a writer's hold, the value goes out with the call's record, in one
                // write; outside one, now.
                let commit = !self.inner.writers.held();
                let value = crate::pack::log::Append::Value {
                    cid: *cid,
                    cbor,
                    made: Some((version, enc, content)),
                };
                self.log_append(value, commit)?;
            }
        } else {
            self.put_blob(&layout::value_path(&self.inner.root, cid), cbor)?;
        }
        self.index_small_value(cid, cbor);
        Ok(())
    }

    /// Every stored value's id, sorted: loose files, packs and logs.
    pub(crate) fn value_ids(&self) -> Result<Vec<Id>> {
        let mut ids = self.loose_value_ids()?;
        {
            let mut packs = self.packs();
            packs.refresh(&self.inner.root, true, false)?;
            packs.all_values(&mut ids);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The ids of the loose value files, sorted.
    pub(crate) fn loose_value_ids(&self) -> Result<Vec<Id>> {
        self.list_ids(layout::VALUES)
    }

    /// For batch reads: reads each of the items `items` (indices into the caller's list) that
    /// is in a log or pack this handle knows — found with `find`, read with `read` — on all
    /// cores, after one look at the store; `None` for an item found nowhere (or whose `read`
    /// declined it). The packs stay locked meanwhile: lookups and reads share them.
    pub(crate) fn read_packed<R: Send>(
        &self,
        items: &[usize],
        find: impl for<'p> Fn(&'p crate::pack::Packs, usize) -> Option<crate::pack::At<'p>> + Sync,
        read: impl Fn(usize, crate::pack::At<'_>) -> Option<R> + Sync,
    ) -> Result<Vec<Option<R>>> {
        let mut packs = self.packs();
        packs.refresh(&self.inner.root, true, false)?;
        // What this handle has yet to write is written first, so every entry can be read.
        self.commit_log(&mut packs)?;
        let packs = &*packs;
        store_core::par::try_map(items, 256, |&i| {
            Ok(find(packs, i).and_then(|found| read(i, found)))
        })
    }

    /// Writes this handle's pending log entries if `found` is one of them (so it can be read).
    pub(crate) fn commit_if_pending(
        &self,
        packs: &mut crate::pack::Packs,
        found: &crate::pack::Found,
    ) -> Result<()> {
        let pending = packs
            .own
            .as_ref()
            .is_some_and(|o| o.has_pending() && Arc::ptr_eq(&o.view.file, &found.file));
        if pending {
            self.commit_log(packs)?;
        }
        Ok(())
    }

    pub(crate) fn store_version(&self, version: &VersionRecord) -> Result<()> {
        // The text value it names may be pending in this handle's log: written first.
        {
            let mut packs = self.packs();
            if packs.own.as_ref().is_some_and(|o| o.has_pending()) {
                self.commit_log(&mut packs)?;
            }
        }
        let bytes = cbor::to_canonical(version).expect("version records always encode");
        let id = Id::hash(Kind::Version, &bytes);
        let path = layout::sharded(&self.inner.root, layout::VERSIONS, &id);
        self.put_blob(&path, &bytes).map(|_| ())
    }

    pub(crate) fn version_records(&self) -> Result<Vec<VersionRecord>> {
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

    pub(crate) fn store_decision(&self, d: &Decision) -> Result<()> {
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

    pub(crate) fn store_tag(&self, t: &store_core::format::tag::TagRecord) -> Result<()> {
        let path = self
            .inner
            .root
            .join(layout::REFS)
            .join(layout::TAGS)
            .join(t.file_name());
        write::write_once(
            &self.inner.tmp,
            &path,
            t.to_text().as_bytes(),
            self.inner.durability,
        )
        .map(|_| ())
    }

    /// Every tag record under `refs/tags/`; a file whose name or text is not a tag record's is
    /// skipped here and reported by fsck.
    pub(crate) fn tag_list(&self) -> Result<Vec<store_core::format::tag::TagRecord>> {
        let dir = self.inner.root.join(layout::REFS).join(layout::TAGS);
        let mut out = Vec::new();
        for name in Self::list_dir(&dir)? {
            let path = dir.join(&name);
            let Some(bytes) = open::read_small(&path, 1 << 16, "a tag file")? else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            match store_core::format::tag::TagRecord::parse(&text) {
                Some(t) if t.file_name() == name => out.push(t),
                _ => continue,
            }
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn decision_list(&self) -> Result<Vec<Decision>> {
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

    pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
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
    pub(crate) fn list_sharded(&self, top: &str) -> Result<Vec<(String, String)>> {
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
