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
        // A file gone since the listing (deleted, or an rsync temp file renamed) is not
        // counted.
        let size = |p: &std::path::Path| -> Result<Option<u64>> {
            match fs::symlink_metadata(p) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io("stat", p, e)),
            }
        };
        let mut st = StoreStatus::default();
        // Only object names count: stray files are skipped (fsck reports them).
        for (s, r) in self.list_sharded(layout::VALUES)? {
            if layout::parse_sharded(&s, &r).is_some() {
                if let Some(n) = size(&root.join(layout::VALUES).join(s).join(r))? {
                    st.values.count += 1;
                    st.values.bytes += n;
                }
            }
        }
        for (s, r) in self.list_sharded(layout::CALLS)? {
            if layout::parse_call_name(&s, &r).is_some() {
                if let Some(n) = size(&root.join(layout::CALLS).join(s).join(r))? {
                    st.calls.count += 1;
                    st.calls.bytes += n;
                }
            }
        }
        for t in crate::write::stray_temp_files(&root.join(layout::TMP))? {
            st.temp.count += 1;
            st.temp.bytes += size(&t).ok().flatten().unwrap_or(0);
        }
        Ok(st)
    }
}
