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
    /// The store's format (1: one file per object; 2: packs).
    pub format: u32,
    /// Loose values (one file each).
    pub values: KindStatus,
    /// Loose call records (one file each).
    pub calls: KindStatus,
    /// Packs (`count` packs; `bytes` of their `.pack` and `.idx` files).
    pub packs: KindStatus,
    /// Values in packs, as their indexes count them (an object in two packs counts twice).
    pub packed_values: u64,
    /// Call records in packs, likewise.
    pub packed_calls: u64,
    /// Logs of writers, running or ended, not yet sealed into packs.
    pub logs: KindStatus,
    /// Values in logs (whole entries).
    pub logged_values: u64,
    /// Call records in logs (whole entries).
    pub logged_calls: u64,
    /// Files waiting in tmp/.
    pub temp: KindStatus,
}

impl StoreStatus {
    /// Values in loose files, packs and logs (a value stored in two places counts twice).
    pub fn value_count(&self) -> u64 {
        self.values.count + self.packed_values + self.logged_values
    }

    /// Call records in loose files, packs and logs (likewise).
    pub fn call_count(&self) -> u64 {
        self.calls.count + self.packed_calls + self.logged_calls
    }
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
        let mut st = StoreStatus {
            format: self.format(),
            ..StoreStatus::default()
        };
        // Packs: counted from their indexes' headers, without reading the tables.
        let packs = root.join(layout::PACKS);
        for name in Self::list_dir(&packs)? {
            let path = packs.join(&name);
            if let Some(id) = layout::parse_pack_name(&name, "idx") {
                let pack = layout::pack_path(root, &id, "pack");
                let (Some(n_idx), Some(n_pack)) = (size(&path)?, size(&pack)?) else {
                    continue; // half a pack: not part of the store yet
                };
                st.packs.count += 1;
                st.packs.bytes += n_idx + n_pack;
                if let Some((values, calls)) = crate::pack::idx_counts(&path) {
                    st.packed_values += values;
                    st.packed_calls += calls;
                }
            }
        }
        let logs = root.join(layout::LOGS);
        for name in Self::list_dir(&logs)? {
            let path = logs.join(name);
            if let Some(n) = size(&path)? {
                st.logs.count += 1;
                st.logs.bytes += n;
                let (values, calls) = crate::pack::log_counts(&path);
                st.logged_values += values;
                st.logged_calls += calls;
            }
        }
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
