//! Call records (`calls/<shard>/<key>.<hid>.<rid>`): reading one (from its file, or for
//! whole-store queries from the call index), writing one, deleting one, and the records of
//! one call key. What this process knows of the shard directories is in the catalog.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store_core::{CallName, CallRecord, Error, Id, Kind, Result, StoredCall};

use crate::{blob, layout, FsBackend};

/// A record found: where, the record, and its canonical CBOR if reading made it.
type Found = (PathBuf, CallRecord, Option<Vec<u8>>);

impl FsBackend {
    /// The canonical CBOR of the record at `path`, checked against its record id `rid`;
    /// `None` if there is no such file.
    pub(crate) fn read_call_bytes(&self, path: &Path, rid: &Id) -> Result<Option<Vec<u8>>> {
        // Records are small: read without asking the file's size first. Without blocking (a
        // FIFO reads as empty, so as a damaged record) and at most a record's worth (a link
        // to /dev/zero is not read forever).
        let file = match crate::open::open_nonblocking(path) {
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
    /// when the index knows it; `None` if neither has it.
    fn read_indexed_call(&self, name: &CallName) -> Result<Option<(CallRecord, Option<Id>)>> {
        let damaged = {
            let cat = self.catalog();
            match cat.index.records.get(name) {
                Some((bytes, cid)) => match self.decode_indexed(name, bytes)? {
                    Some(record) => return Ok(Some((record, Some(cid)))),
                    None => true,
                },
                None => false,
            }
        };
        if damaged {
            self.index_damaged(&format!("call record {}", name.rid.short(12)));
        }
        self.call_from_file(name)
    }

    /// A call record read from its file, added to the call index if this process has loaded
    /// it (with the call's content id, then known); `None` if there is no such file.
    fn call_from_file(&self, name: &CallName) -> Result<Option<(CallRecord, Option<Id>)>> {
        let Some((_, record, bytes)) = self.call_anywhere(name)? else {
            return Ok(None);
        };
        let mut cat = self.catalog();
        if !cat.index.loaded {
            return Ok(Some((record, None)));
        }
        let cid = record.cid();
        let bytes = bytes.unwrap_or_else(|| record.to_cbor());
        cat.index.records.insert(*name, bytes, cid);
        cat.index.dirty = true;
        Ok(Some((record, Some(cid))))
    }

    /// Decodes a record the call index holds; `None` if the index's copy does not hash to its
    /// record id (the index is damaged: the caller reports it with [`Self::index_damaged`]
    /// once it holds no lock, and reads the file instead).
    fn decode_indexed(&self, name: &CallName, bytes: &[u8]) -> Result<Option<CallRecord>> {
        if Id::hash(Kind::CallRecord, bytes) != name.rid {
            return Ok(None);
        }
        CallRecord::from_cbor(bytes).map(Some).map_err(|e| {
            let path = layout::call_path(&self.inner.root, name);
            Error::corrupt(path, format!("not a call record (from the index): {e}"))
        })
    }

    /// One record, read from its file (never from the call index: a lookup must not be
    /// served a record another process deleted); `None` if there is none.
    pub(crate) fn read_call(&self, name: &CallName) -> Result<Option<CallRecord>> {
        Ok(self.call_anywhere(name)?.map(|(_, record, _)| record))
    }

    /// A record, verified, from a log or pack, else from its loose file, with where it was
    /// found and its canonical CBOR if reading made it; packs and logs are looked at again
    /// before answering `None`.
    fn call_anywhere(&self, name: &CallName) -> Result<Option<Found>> {
        if let Some(found) = self.packed_call(name, false)? {
            return Ok(Some(found));
        }
        let path = layout::call_path(&self.inner.root, name);
        if let Some(bytes) = self.read_call_bytes(&path, &name.rid)? {
            let record = Self::decode_call(&path, &bytes)?;
            return Ok(Some((path, record, Some(bytes))));
        }
        self.packed_call(name, true)
    }

    /// A record from a log or pack this handle knows (after looking at `packs/` and `logs/`
    /// again if `miss`, or if it is time to).
    fn packed_call(&self, name: &CallName, miss: bool) -> Result<Option<Found>> {
        let found = {
            let mut packs = self.packs();
            packs.refresh(&self.inner.root, miss, false)?;
            let Some(found) = packs.find_call(name) else {
                return Ok(None);
            };
            self.commit_if_pending(&mut packs, &found)?;
            found
        };
        let (record, bytes) = crate::pack::read_record(found.at())?;
        Ok(Some((found.path.to_path_buf(), record, bytes)))
    }

    /// One record with its ids, for whole-store queries (from the call index if it has it).
    pub(crate) fn read_stored_call(&self, name: &CallName) -> Result<Option<StoredCall>> {
        Ok(self
            .read_indexed_call(name)?
            .map(|read| stored_call(name, read)))
    }

    /// Many records with their ids, for whole-store queries: those the call index holds are
    /// decoded on all cores under one lock (workers taking it for each record would contend
    /// for it); then the others, from their files.
    pub(crate) fn read_stored_calls(
        &self,
        names: &[CallName],
    ) -> Result<Vec<Option<Arc<StoredCall>>>> {
        let (mut out, damaged) = {
            let cat = self.catalog();
            let cached = cat.index.records.get_many(names);
            let items: Vec<_> = names.iter().zip(cached).collect();
            let out = store_core::par::try_map(&items, 1024, |(name, cached)| {
                let Some((bytes, cid)) = cached else {
                    return Ok(None);
                };
                // A damaged copy gives None: read from its file below.
                Ok::<_, Error>(
                    self.decode_indexed(name, bytes)?
                        .map(|record| Arc::new(stored_call(name, (record, Some(*cid))))),
                )
            })?;
            let damaged: Vec<Id> = items
                .iter()
                .zip(&out)
                .filter(|((_, cached), read)| cached.is_some() && read.is_none())
                .map(|((name, _), _)| name.rid)
                .collect();
            (out, damaged)
        };
        for rid in &damaged {
            self.index_damaged(&format!("call record {}", rid.short(12)));
        }
        // Records in packs and logs, looked up and read on all cores. Kept in the call index
        // if it is loaded (a store with loose records), for the next process's queries: that
        // needs each record's canonical CBOR, which a compact record from a trusted pack is
        // otherwise served without.
        let mut rest: Vec<usize> = (0..names.len()).filter(|i| out[*i].is_none()).collect();
        let indexing = self.catalog().index.loaded;
        let read = self.read_packed(
            &rest,
            |packs, i| packs.locate_call(&names[i]),
            |i, found| {
                // A damaged entry gives None: read below, one by one, which reports it.
                let (record, bytes) = crate::pack::read_record(found).ok()?;
                let bytes = indexing.then(|| bytes.unwrap_or_else(|| record.to_cbor()));
                let cid = record.cid();
                Some((Arc::new(stored_call(&names[i], (record, Some(cid)))), bytes))
            },
        )?;
        if indexing {
            let mut cat = self.catalog();
            for (&i, read) in rest.iter().zip(&read) {
                if let Some((call, Some(bytes))) = read {
                    cat.index
                        .records
                        .insert(names[i], bytes.as_slice(), call.cid);
                    cat.index.dirty = true;
                }
            }
        }
        for (&i, read) in rest.iter().zip(read) {
            out[i] = read.map(|(call, _)| call);
        }
        // The others (loose files, or damaged entries), one by one.
        rest.retain(|i| out[*i].is_none());
        let read = store_core::par::try_map(&rest, 64, |i| {
            let name = &names[*i];
            let read = self.call_from_file(name)?;
            Ok::<_, Error>(read.map(|read| Arc::new(stored_call(name, read))))
        })?;
        for (i, call) in rest.into_iter().zip(read) {
            out[i] = call;
        }
        Ok(out)
    }

    /// Stores a record (write-once), and adds it to this process's listing of its shard and,
    /// if loaded, to the call index.
    pub(crate) fn write_call(&self, record: &CallRecord) -> Result<()> {
        self.write_call_keyed(record, &record.key(), &record.hid())
    }

    /// [`FsBackend::write_call`] of a record whose call key and hid are known.
    pub(crate) fn write_call_keyed(&self, record: &CallRecord, key: &Id, hid: &Id) -> Result<()> {
        debug_assert!(*key == record.key() && *hid == record.hid());
        let bytes = record.to_cbor();
        let name = CallName {
            key: *key,
            hid: *hid,
            rid: Id::hash(Kind::CallRecord, &bytes),
        };
        if self.format() >= 2 {
            if self.packs().find_call(&name).is_none() {
                let call = crate::pack::log::Append::Call {
                    name,
                    record,
                    cbor: &bytes,
                };
                self.log_append(call, true)?;
            }
            let cat = &mut *self.catalog();
            if cat.index.loaded {
                cat.index.records.insert(name, bytes, record.cid());
                cat.index.dirty = true;
            }
            return Ok(());
        }
        let path = layout::call_path(&self.inner.root, &name);
        let shard = name.key.0[0];
        // The shard directory's stamp right before and right after the rename: this
        // process's listing takes its own write in without listing the directory again (see
        // `catalog::ShardCache`).
        let before = self.put_blob_observed(&path, &bytes, || self.shard_stamp(shard))?;
        let stamps = match before {
            Some(Ok(before)) => Some((before, self.shard_stamp(shard)?)),
            Some(Err(_)) | None => None,
        };
        let cat = &mut *self.catalog();
        if cat.index.loaded {
            cat.index.records.insert(name, bytes, record.cid());
            cat.index.dirty = true;
        }
        if let Some(cache) = &mut cat.shards[shard as usize] {
            match stamps {
                Some((before, after)) => cache.own_write(name, before, after),
                None => cache.insert(name),
            }
        }
        Ok(())
    }

    /// Deletes a record (deleting what is not there is not an error).
    pub(crate) fn remove_call(&self, name: &CallName) -> Result<()> {
        let path = layout::call_path(&self.inner.root, name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &path, e)),
        }
        let cat = &mut *self.catalog();
        if cat.index.records.remove(name) {
            cat.index.dirty = true;
        }
        if let Some(cache) = &mut cat.shards[name.key.0[0] as usize] {
            cache.remove(name);
        }
        Ok(())
    }

    /// Deletes records wherever they are: loose files are removed; records in packs are left
    /// out of a consolidation of the packs (under the collection lock), after this handle's
    /// log is sealed. A record in the log of another running writer cannot be removed: it is
    /// reported (it comes back when that log is sealed), and the others are deleted.
    pub(crate) fn remove_calls(&self, names: &[CallName]) -> Result<()> {
        for name in names {
            self.remove_call(name)?;
        }
        let (packed, running): (Vec<CallName>, Vec<CallName>) = {
            let mut packs = self.packs();
            packs.refresh(&self.inner.root, true, false)?;
            let in_packs = |n: &CallName| packs.packs.iter().any(|p| p.find_call(n).is_some());
            let in_own =
                |n: &CallName| packs.own.as_ref().is_some_and(|o| o.view.call(n).is_some());
            let packed = names
                .iter()
                .filter(|n| in_packs(n) || in_own(n))
                .copied()
                .collect();
            let running = names
                .iter()
                .filter(|n| packs.logs.iter().any(|l| l.call(n).is_some()))
                .copied()
                .collect();
            (packed, running)
        };
        for n in &running {
            eprintln!(
                "mandala: warning: call record {} is in the log of a running writer and cannot be deleted now; delete it again once that program ended",
                n.rid.short(12)
            );
        }
        if packed.is_empty() {
            return Ok(());
        }
        let lock = crate::lock::ExclusiveLock::acquire(&self.lock_path())?;
        let plan = crate::pack::repack::Plan {
            drop_calls: packed.iter().copied().collect(),
            ..Default::default()
        };
        self.repack(Some(&lock), plan)?;
        let cat = &mut *self.catalog();
        for name in &packed {
            if cat.index.records.remove(name) {
                cat.index.dirty = true;
            }
        }
        Ok(())
    }

    /// Every stored call, in name order (a record deleted since the listing is not there).
    pub(crate) fn every_call(&self) -> Result<Vec<StoredCall>> {
        let mut out = Vec::new();
        for name in self.list_all_calls()? {
            out.extend(self.read_stored_call(&name)?);
        }
        self.write_index();
        Ok(out)
    }
}

/// A record with its ids; its content id hashed only if the index did not know it.
fn stored_call(name: &CallName, (record, cid): (CallRecord, Option<Id>)) -> StoredCall {
    StoredCall {
        key: name.key,
        cid: cid.unwrap_or_else(|| record.cid()),
        hid: name.hid,
        rid: name.rid,
        record,
    }
}
