//! Counts and sizes of what a store holds, per kind of object.

use std::fs;

use store_core::{Error, Result};

use crate::{layout, FsBackend};

/// How many objects of one kind a store holds and their size on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStatus {
    /// Number of files.
    pub count: u64,
    /// Total bytes of those files (compressed).
    pub bytes: u64,
}

/// Counts per kind of object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// Values.
    pub values: KindStatus,
    /// Call records.
    pub calls: KindStatus,
    /// Files waiting in tmp/.
    pub temp: KindStatus,
}

impl FsBackend {
    /// Counts files and bytes per kind, without reading any file.
    pub fn status(&self) -> Result<StoreStatus> {
        let root = self.root();
        let size = |p: &std::path::Path| -> Result<u64> {
            fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| Error::io("stat", p, e))
        };
        let mut st = StoreStatus::default();
        for (s, r) in self.list_sharded(layout::VALUES)? {
            st.values.count += 1;
            st.values.bytes += size(&root.join(layout::VALUES).join(s).join(r))?;
        }
        for (s, r) in self.list_sharded(layout::CALLS)? {
            st.calls.count += 1;
            st.calls.bytes += size(&root.join(layout::CALLS).join(s).join(r))?;
        }
        for t in crate::write::stray_temp_files(&root.join(layout::TMP))? {
            st.temp.count += 1;
            st.temp.bytes += size(&t).unwrap_or(0);
        }
        Ok(st)
    }
}
