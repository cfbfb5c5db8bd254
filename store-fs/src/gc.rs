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
        let now = SystemTime::now();
        let mut report = GcReport {
            values: Vec::new(),
            removed: !dry_run,
        };
        for cid in self.all_values()? {
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
            }
        }
        if let Some(lock) = &lock {
            if !report.values.is_empty() {
                // First, so that a collection interrupted halfway still makes writers that
                // remember which values are stored forget them.
                lock.bump_epoch()?;
            }
            for (cid, _) in &report.values {
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
