//! Collecting values no call record and no version record names any more (after deleting
//! calls). A dry run lists what would go.
//!
//! Writers store a call's values before its record, so a value can be unreferenced for a
//! moment while a call is being written: only values older than a grace period are collected.

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
            let meta = fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age < min_age {
                continue;
            }
            if !dry_run {
                self.forget_value(&cid);
                fs::remove_file(&path).map_err(|e| Error::io("delete", &path, e))?;
            }
            report.values.push((cid, meta.len()));
        }
        if !dry_run && !report.values.is_empty() {
            self.save_index();
        }
        Ok(report)
    }
}
