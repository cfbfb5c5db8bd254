//! Collecting values no call record and no version record names any more (after deleting
//! calls). A dry run lists what would go.
//!
//! Writers store a call's values before its record, so a value is unreferenced for a moment
//! while a call is being written. Collection holds the collection lock exclusively (see the
//! `lock` module), which writers hold shared across exactly that moment, so no interleaving of
//! writers and collections removes a value that a record names, whatever the grace period.
//! The grace period (only values older than it are removed) remains as a second line of
//! defence, for writers of older mandala versions that do not take the lock.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, SystemTime};

use store_core::{Backend, Error, Id, Result};

use crate::{layout, FsBackend};

/// What a collection found (and removed, unless it was a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The unreferenced values, with their sizes on disk.
    pub values: Vec<(Id, u64)>,
    /// Whether they were removed.
    pub removed: bool,
    /// Unreferenced values left because they are younger than the grace period (a writer may
    /// be about to name them): a later collection removes them.
    pub young: usize,
}

impl FsBackend {
    /// Finds the values no call or version names, older than `min_age`; removes them unless
    /// `dry_run`.
    pub fn gc(&self, dry_run: bool, min_age: Duration) -> Result<GcReport> {
        // While this is held no writer is between checking a value and writing the record
        // that names it, and records written before are in the listing below. A dry run
        // removes nothing and takes no lock.
        let lock = if dry_run {
            None
        } else {
            Some(crate::lock::ExclusiveLock::acquire(&self.lock_path())?)
        };
        let mut referenced: BTreeSet<Id> = BTreeSet::new();
        for c in self.all_calls()? {
            referenced.extend(
                c.record
                    .inputs
                    .iter()
                    .chain(&c.record.outputs)
                    .map(|s| s.cid),
            );
        }
        referenced.extend(self.all_versions()?.into_iter().map(|v| v.source));
        // What tags name stays, with a tagged collection's elements.
        for t in self.tag_list()? {
            referenced.insert(t.cid);
            // A large tagged value is not read whole to learn it is no collection.
            if !self.may_be_shape(&t.cid) {
                continue;
            }
            if let Some(bytes) = self.get_value(&t.cid)? {
                if let Some(shape) = store_core::format::collection::Shape::decode(&bytes) {
                    referenced.extend(shape.element_cids());
                }
            }
        }
        let now = SystemTime::now();
        let mut report = GcReport {
            values: Vec::new(),
            removed: !dry_run,
            young: 0,
        };
        // Packed values no record names, in packs older than `min_age` (the age of the pack
        // stands for its values'): left out of a consolidation of the packs below.
        let age_of = |path: &std::path::Path| {
            fs::metadata(path)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default()
        };
        let mut young_packed: BTreeSet<Id> = BTreeSet::new();
        let packed: BTreeSet<(Id, u64)> = {
            let mut packs = self.packs();
            packs.refresh(self.root(), true, true)?;
            for p in packs.packs.iter().filter(|p| age_of(&p.path) < min_age) {
                for i in 0..p.idx.n_values() {
                    if let Some(crate::pack::format::EntryId::Value(cid)) = p.value(i).map(|e| e.id)
                    {
                        if !referenced.contains(&cid) {
                            young_packed.insert(cid);
                        }
                    }
                }
            }
            packs
                .packs
                .iter()
                .filter(|p| age_of(&p.path) >= min_age)
                .flat_map(|p| (0..p.idx.n_values()).filter_map(move |i| p.value(i)))
                .filter_map(|e| match e.id {
                    crate::pack::format::EntryId::Value(cid) if !referenced.contains(&cid) => {
                        Some((cid, u64::from(e.len)))
                    }
                    _ => None,
                })
                .collect()
        };
        for cid in self.loose_value_ids()? {
            if referenced.contains(&cid) {
                continue;
            }
            let path = layout::value_path(self.root(), &cid);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age >= min_age {
                report.values.push((cid, meta.len()));
            } else {
                report.young += 1;
            }
        }
        let loose: Vec<Id> = report.values.iter().map(|(cid, _)| *cid).collect();
        let mut dropped: BTreeSet<Id> = BTreeSet::new();
        for (cid, len) in packed {
            if dropped.insert(cid) {
                report.values.push((cid, len));
            }
        }
        report.values.sort();
        report.values.dedup_by_key(|(cid, _)| *cid);
        report.young += young_packed
            .iter()
            .filter(|c| {
                report
                    .values
                    .binary_search_by_key(*c, |(cid, _)| *cid)
                    .is_err()
            })
            .count();
        if let Some(lock) = &lock {
            if !dropped.is_empty() {
                let plan = crate::pack::repack::Plan {
                    drop_values: dropped.clone(),
                    ..Default::default()
                };
                self.repack(Some(lock), plan)?;
                for cid in &dropped {
                    self.forget_value(cid);
                }
            }
            if !loose.is_empty() {
                // First, so that a collection interrupted halfway still makes writers that
                // remember which values are stored forget them.
                lock.bump_epoch()?;
            }
            for cid in &loose {
                let path = layout::value_path(self.root(), cid);
                self.forget_value(cid);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete", &path, e)),
                }
            }
            if !report.values.is_empty() {
                self.save_index();
            }
        }
        Ok(report)
    }
}

impl FsBackend {
    /// Whether value `cid` may be a collection's shape: a loose value's first bytes (one
    /// block decompressed, whatever its size) start with a shape's tag; a packed value (small)
    /// is read to tell.
    fn may_be_shape(&self, cid: &Id) -> bool {
        use std::io::Read;
        let Ok(file) = fs::File::open(layout::value_path(self.root(), cid)) else {
            return true; // packed, or missing: the caller reads it (or finds nothing)
        };
        let mut head = [0u8; 5];
        zstd::stream::read::Decoder::new(file)
            .and_then(|mut d| d.read_exact(&mut head))
            .map_or(true, |()| {
                store_core::format::collection::is_shape_head(&head)
            })
    }
}
