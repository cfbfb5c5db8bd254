//! `fsck` as a library function: re-hash, decode and cross-check every object of a store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::PathBuf;

use store_core::{Backend, CallName, Id, Result};

use crate::{layout, FsBackend};

/// One thing wrong in a store, with the file it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file or directory.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

/// What [`FsBackend::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Values checked.
    pub values: u64,
    /// Call records checked.
    pub calls: u64,
    /// Damage: corrupt, truncated, misnamed or dangling objects, unexpected files.
    pub problems: Vec<Problem>,
    /// Not damage, but worth knowing: calls whose merged stores computed different results
    /// (non-deterministic ops), stray temp files of killed writers.
    pub warnings: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl FsBackend {
    /// Checks every object: values re-hash to their names; call records decompress, decode,
    /// re-hash to their record ids, are filed under their call key and call
    /// hid, and name only stored values. Reports, never repairs.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_counting(&std::sync::atomic::AtomicU64::new(0))
    }

    /// [`FsBackend::verify`], adding one to `checked` for each object checked (values,
    /// records, pack and log entries, versions), for a progress display.
    pub fn verify_counting(&self, checked: &std::sync::atomic::AtomicU64) -> Result<VerifyReport> {
        let tick = || {
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let root = self.root().to_path_buf();
        let mut report = VerifyReport::default();

        for e in fs::read_dir(&root).map_err(|e| store_core::Error::io("list", &root, e))? {
            let e = e.map_err(|e| store_core::Error::io("list", &root, e))?;
            let name = e.file_name();
            if !layout::TOP_LEVEL.iter().any(|t| name == *t) {
                report.warnings.push(Problem {
                    path: e.path(),
                    what: "not part of a store (mandala ignores it)".into(),
                });
            }
        }

        let mut values = BTreeSet::new();
        // Values present, sound or not: a call naming a damaged value is not dangling.
        let mut present = BTreeSet::new();
        for (path, shard, rest) in self.sharded_files(layout::VALUES, &mut report.warnings)? {
            tick();
            let Some(cid) = layout::parse_sharded(&shard, &rest) else {
                report
                    .warnings
                    .push(stray(path, "a value name (2 + 62 hex digits)"));
                continue;
            };
            present.insert(cid);
            // The file itself (never the call index), and nothing moved aside: fsck only reports.
            match self.read_value(&path, &cid) {
                Ok(Some(bytes)) => {
                    match store_core::format::cbor::from_slice::<ciborium::Value>(&bytes) {
                        Ok(_) => {
                            values.insert(cid);
                        }
                        Err(e) => push(&mut report.problems, path, format!("not CBOR: {e}")),
                    }
                }
                Ok(None) => push(&mut report.problems, path, "vanished while checking".into()),
                Err(e) => push(&mut report.problems, path, reason_of(e)),
            }
        }

        // Packs and logs: their files checked whole, their values counted as present, their
        // records checked below with the loose ones.
        let mut records: Vec<(PathBuf, CallName, store_core::CallRecord)> = Vec::new();
        self.verify_packs(&mut report, &mut values, &mut present, &mut records, &tick)?;

        // What each component's contents stand for, to check the ids records hold for their
        // dependencies (docs/FORMAT.md §6).
        let semantic_ids = store_core::version::history::SemanticIds::new(&self.all_versions()?);

        // (call key, semver) → (hid → output cids) to spot divergent results.
        #[allow(clippy::type_complexity)]
        let mut outcomes: BTreeMap<(Id, Id), BTreeMap<Id, BTreeSet<Vec<Id>>>> = BTreeMap::new();
        // Pointer bindings by call key: (placeholder cid, name).
        let mut pointers: BTreeMap<Id, (Id, String)> = BTreeMap::new();
        let mut n_calls = 0;
        for (path, shard, name) in self.sharded_files(layout::CALLS, &mut report.warnings)? {
            let Some(call) = layout::parse_call_name(&shard, &name) else {
                report.warnings.push(stray(
                    path,
                    "a call record name (CID.HID.RID, 62 + 64 + 64 hex digits)",
                ));
                continue;
            };
            let bytes = match self.read_call_bytes(&path, &call.rid) {
                Ok(Some(b)) => b,
                Ok(None) => continue, // deleted since the listing
                Err(e) => {
                    push(&mut report.problems, path, reason_of(e));
                    continue;
                }
            };
            match store_core::CallRecord::from_cbor(&bytes) {
                Ok(rec) => records.push((path, call, rec)),
                Err(e) => push(
                    &mut report.problems,
                    path,
                    format!("not a call record: {e}"),
                ),
            }
        }
        for (path, call, rec) in records {
            tick();
            let (key, hid) = (call.key, call.hid);
            if rec.hid() != hid || rec.key() != key {
                push(
                    &mut report.problems,
                    path,
                    "record's call ids do not match its name".into(),
                );
                continue;
            }
            n_calls += 1;
            for s in rec.inputs.iter().chain(&rec.outputs) {
                if !present.contains(&s.cid) {
                    push(
                        &mut report.problems,
                        path.clone(),
                        format!(
                            "names value {} ({}) which is not in the store",
                            s.cid, s.name
                        ),
                    );
                }
            }
            if !rec.deps.is_empty() {
                if rec.semver != store_core::format::record::semantic_version(&rec.deps) {
                    push(
                        &mut report.problems,
                        path.clone(),
                        "semver is not the hash of the record's deps".into(),
                    );
                }
                for (component, id) in &rec.deps {
                    let semantic = semantic_ids.resolve(component, id);
                    if semantic != *id {
                        report.warnings.push(Problem {
                            path: path.clone(),
                            what: format!(
                                "dependency {component} holds the content id {} of a cosmetic version (written before the semver rule was corrected); lookups read it as its semantic id {}",
                                id.short(12),
                                semantic.short(12)
                            ),
                        });
                    }
                }
            }
            for o in &rec.outputs {
                if o.hid != store_core::format::record::output_hid(&hid, &o.name) {
                    push(
                        &mut report.problems,
                        path.clone(),
                        format!("output '{}' has a wrong history id", o.name),
                    );
                }
            }
            if rec.op == store_core::format::collection::POINTER_OP {
                if let Some(input) = rec.inputs.first() {
                    let name = self
                        .get_value(&input.cid)
                        .ok()
                        .flatten()
                        .and_then(|b| store_core::format::collection::pointer_name(&b))
                        .unwrap_or_else(|| "?".into());
                    pointers.insert(key, (input.cid, name));
                }
            }
            outcomes
                .entry((key, rec.semver))
                .or_default()
                .entry(hid)
                .or_default()
                .insert(rec.outputs.iter().map(|o| o.cid).collect());
        }
        for ((key, _), by_hid) in outcomes {
            let all: BTreeSet<&Vec<Id>> = by_hid.values().flatten().collect();
            if let (true, Some((placeholder, name))) = (all.len() > 1, pointers.get(&key)) {
                let values: Vec<String> = all.iter().map(|v| v[0].short(12)).collect();
                report.warnings.push(Problem {
                    path: layout::call_shard(&root, key.0[0]).join(format!("{}.*", &key.to_string()[2..])),
                    what: format!(
                        "pointer '{name}' (placeholder {}) names {} different values, {} (stores that stored different values under one name were merged); calls on it load the one of the smallest record id",
                        placeholder.short(12),
                        all.len(),
                        values.join(" and ")
                    ),
                });
            } else if all.len() > 1 {
                report.warnings.push(Problem {
                    path: layout::call_shard(&root, key.0[0]).join(format!("{}.*", &key.to_string()[2..])),
                    what: format!(
                        "{} different results for one call (a non-deterministic op computed in merged stores); lookups use the smallest record id",
                        all.len()
                    ),
                });
            }
        }
        for (path, shard, rest) in self.sharded_files(layout::VERSIONS, &mut report.warnings)? {
            tick();
            let Some(id) = layout::parse_sharded(&shard, &rest) else {
                report
                    .warnings
                    .push(stray(path, "a version name (2 + 62 hex digits)"));
                continue;
            };
            match self.read_object(&path, store_core::Kind::Version, &id) {
                Ok(Some(bytes)) => {
                    if let Err(e) = store_core::format::cbor::from_slice::<
                        store_core::version::history::VersionRecord,
                    >(&bytes)
                    {
                        push(
                            &mut report.problems,
                            path,
                            format!("not a version record: {e}"),
                        );
                    }
                }
                Ok(None) => push(&mut report.problems, path, "vanished while checking".into()),
                Err(e) => push(&mut report.problems, path, reason_of(e)),
            }
        }
        // The call index is a cache, but a damaged copy in it must not go unnoticed: every
        // entry must hash to its id (readers check the entries they serve, and repair them).
        let index = self.index_path();
        if let Some(file) = crate::index::load(&index) {
            for (name, bytes, _) in file.records.entries() {
                let rid = name.rid;
                if store_core::Id::hash(store_core::Kind::CallRecord, bytes) != rid {
                    push(&mut report.problems,
                        index.clone(),
                        format!(
                            "the index's copy of call record {} is damaged (readers read the file instead; the next whole-store query rewrites the index)",
                            rid.short(12)
                        ),
                    );
                }
            }
            for (cid, bytes, _) in file.values.entries() {
                if store_core::Id::hash(store_core::Kind::Value, bytes) != cid {
                    push(&mut report.problems,
                        index.clone(),
                        format!(
                            "the index's copy of value {} is damaged (readers read the file instead; the next whole-store query rewrites the index)",
                            cid.short(12)
                        ),
                    );
                }
            }
        }
        let decisions = root.join(layout::REFS).join(layout::DECISIONS);
        for name in FsBackend::list_dir(&decisions)? {
            if layout::parse_decision_name(&name, String::new()).is_none() {
                report.warnings.push(stray(
                    decisions.join(name),
                    "a decision name (NAMEHASH.CONTENT.cosmetic|semantic)",
                ));
            }
        }
        if let Err(e) = self.decisions() {
            let path = match &e {
                store_core::Error::Store(store_core::StoreError::Corrupt { path, .. })
                | store_core::Error::Store(store_core::StoreError::Io { path, .. }) => path.clone(),
                _ => decisions.clone(),
            };
            push(&mut report.problems, path, reason_of(e));
        }
        let tags = root.join(layout::REFS).join(layout::TAGS);
        for name in FsBackend::list_dir(&tags)? {
            let path = tags.join(&name);
            if !layout::is_tag_file_name(&name) {
                report
                    .warnings
                    .push(stray(path, "a tag record name (NAMEHASH.RECORDHASH.tag)"));
                continue;
            }
            let text = crate::open::read_small(&path, 1 << 16, "a tag file")?.unwrap_or_default();
            match store_core::format::tag::TagRecord::parse(&String::from_utf8_lossy(&text)) {
                Some(t) if t.file_name() == name => {
                    if !present.contains(&t.cid) {
                        push(
                            &mut report.problems,
                            path,
                            format!(
                                "tag '{}' names value {} which is not in the store",
                                t.name, t.cid
                            ),
                        );
                    }
                }
                Some(_) => push(
                    &mut report.problems,
                    path,
                    "the tag record's content does not match its name".into(),
                ),
                None => push(&mut report.problems, path, "not a tag record".into()),
            }
        }
        for t in store_core::format::tag::resolve(&self.tag_list()?) {
            if !t.conflicts.is_empty() {
                let others: Vec<String> = t.conflicts.iter().map(|c| c.hid.short(12)).collect();
                report.warnings.push(Problem {
                    path: tags.clone(),
                    what: format!(
                        "tag '{}' was pointed at different refs in stores that were merged: {} (current, the newest) and {}; re-point it with `mandala tag --force`",
                        t.name,
                        t.current.hid.short(12),
                        others.join(", ")
                    ),
                });
            }
        }
        for t in crate::write::stray_temp_files(&root.join(layout::TMP))? {
            let name = t.file_name().unwrap_or_default().to_string_lossy();
            let what = if name.starts_with(crate::write::DAMAGED_PREFIX) {
                "a damaged value moved aside by a reader (kept for inspection; safe to delete)"
            } else {
                "temp file of an interrupted or ongoing write"
            };
            report.warnings.push(Problem {
                path: t,
                what: what.into(),
            });
        }
        report.values = values.len() as u64;
        report.calls = n_calls;
        Ok(report)
    }
}

impl FsBackend {
    /// Checks `packs/` and `logs/`: each pack's index (its hash, its name) and file (its hash
    /// as the index records it), and every entry of both; values found go to `values` (sound)
    /// and `present`, records to `records` for the checks every record gets.
    fn verify_packs(
        &self,
        report: &mut VerifyReport,
        values: &mut BTreeSet<Id>,
        present: &mut BTreeSet<Id>,
        records: &mut Vec<(PathBuf, CallName, store_core::CallRecord)>,
        tick: &dyn Fn(),
    ) -> Result<()> {
        use crate::pack::format::EntryId;
        let root = self.root().to_path_buf();
        let dir = root.join(layout::PACKS);
        let names = FsBackend::list_dir(&dir)?;
        let mut entry = |report: &mut VerifyReport, found: crate::pack::Found| {
            tick();
            let at = format!(
                "{} (entry at offset {})",
                found.path.display(),
                found.entry.offset
            );
            match (crate::pack::read_entry(found.at()), found.entry.id) {
                (Err(e), EntryId::Value(cid)) => {
                    present.insert(cid);
                    report.problems.push(Problem {
                        path: found.path.to_path_buf(),
                        what: reason_of(e),
                    });
                }
                (Err(e), _) => report.problems.push(Problem {
                    path: found.path.to_path_buf(),
                    what: reason_of(e),
                }),
                (Ok(bytes), EntryId::Value(cid)) => {
                    present.insert(cid);
                    match store_core::format::cbor::from_slice::<ciborium::Value>(&bytes) {
                        Ok(_) => {
                            values.insert(cid);
                        }
                        Err(e) => report.problems.push(Problem {
                            path: found.path.to_path_buf(),
                            what: format!("entry at offset {}: not CBOR: {e}", found.entry.offset),
                        }),
                    }
                }
                (Ok(_), EntryId::Commit) => {}
                (Ok(bytes), EntryId::Call(name)) => match store_core::CallRecord::from_cbor(&bytes)
                {
                    Ok(rec) => records.push((PathBuf::from(at), name, rec)),
                    Err(e) => report.problems.push(Problem {
                        path: found.path.to_path_buf(),
                        what: format!(
                            "entry at offset {}: not a call record: {e}",
                            found.entry.offset
                        ),
                    }),
                },
            }
        };
        for name in &names {
            let path = dir.join(name);
            let (id, other) = if let Some(id) = layout::parse_pack_name(name, "idx") {
                (id, layout::pack_file_name(&id, "pack"))
            } else if let Some(id) = layout::parse_pack_name(name, "pack") {
                (id, layout::pack_file_name(&id, "idx"))
            } else {
                report
                    .warnings
                    .push(stray(path, "a pack name (pack-<64 hex>.pack or .idx)"));
                continue;
            };
            if names.binary_search(&other).is_err() {
                report.warnings.push(Problem {
                    path,
                    what: format!("{other} is missing: not part of the store (a pack being sealed, or left by an interrupted one)"),
                });
                continue;
            }
            if !name.ends_with(".idx") {
                continue;
            }
            let pack = match crate::pack::open_pack(&root, &id, true) {
                Ok(Some(p)) => p,
                Ok(None) => continue, // removed since the listing
                Err(e) => {
                    report.problems.push(Problem {
                        path,
                        what: reason_of(e),
                    });
                    continue;
                }
            };
            match pack.hash_matches() {
                Ok(true) => {}
                Ok(false) => report.problems.push(Problem {
                    path: pack.path.to_path_buf(),
                    what: "does not hash to what its index records (damaged or truncated)".into(),
                }),
                Err(e) => report.problems.push(Problem {
                    path: pack.path.to_path_buf(),
                    what: format!("cannot be read: {e}"),
                }),
            }
            if let Err(why) = pack.read_commits() {
                report.problems.push(Problem {
                    path: pack.path.to_path_buf(),
                    what: why,
                });
            }
            for e in pack.entries() {
                match e {
                    Ok(e) => entry(report, crate::pack::Found::in_pack(&pack, e)),
                    Err(why) => report.problems.push(Problem {
                        path: pack.path.to_path_buf(),
                        what: why,
                    }),
                }
            }
        }
        let logs = root.join(layout::LOGS);
        for name in FsBackend::list_dir(&logs)? {
            let path = logs.join(&name);
            let Some((file, len)) = crate::open::open_regular(&path)? else {
                continue;
            };
            let live = name.ends_with(".log")
                && matches!(
                    file.try_lock_shared(),
                    Err(std::fs::TryLockError::WouldBlock)
                );
            let Some(whole) = crate::pack::log::whole_entries(&file, &path)? else {
                report.warnings.push(stray(
                    path,
                    "a log (<pid>-<n>-<hex>.log starting with a pack header)",
                ));
                continue;
            };
            let file = std::sync::Arc::new(file);
            let (n, valid) = (whole.entries.len(), whole.bytes.len() as u64);
            let commits = std::sync::Arc::new(whole.commits);
            let shared: std::sync::Arc<std::path::Path> = path.as_path().into();
            for e in whole.entries {
                if e.id == EntryId::Commit {
                    continue; // checked as the records that number it are
                }
                entry(
                    report,
                    crate::pack::Found {
                        file: file.clone(),
                        map: None,
                        path: shared.clone(),
                        entry: e,
                        trust: None,
                        commits: Some(commits.clone()),
                    },
                );
            }
            // A running writer's log is the normal state of a store in use: not reported.
            if live && valid == len {
                continue;
            }
            let state = if live {
                "the log of a running writer"
            } else {
                "the log of a writer that ended without sealing it (the next writer seals it into a pack)"
            };
            let tail = if valid < len {
                format!(
                    "; its last {} bytes are not a whole entry (being written, or torn by a crash: cut off when sealed)",
                    len - valid
                )
            } else {
                String::new()
            };
            report.warnings.push(Problem {
                path,
                what: format!("{state}: {n} entries{tail}"),
            });
        }
        Ok(())
    }

    /// Every file under `top` (`values`, `calls`, `versions`) as (path, shard, rest of the
    /// name), sorted; a file where a shard directory belongs goes to `warnings` instead.
    fn sharded_files(
        &self,
        top: &str,
        warnings: &mut Vec<Problem>,
    ) -> Result<Vec<(PathBuf, String, String)>> {
        let dir = self.root().join(top);
        let mut out = Vec::new();
        for (shard, rest) in self.list_sharded(top)? {
            if rest.is_empty() {
                warnings.push(stray(dir.join(&shard), "a shard directory (2 hex digits)"));
            } else {
                out.push((dir.join(&shard).join(&rest), shard, rest));
            }
        }
        Ok(out)
    }
}

fn push(problems: &mut Vec<Problem>, path: PathBuf, what: String) {
    problems.push(Problem { path, what });
}

/// A name that is not an object's, where objects live (`.DS_Store`, `name~`, rsync's
/// `.name.XXXXXX`): not damage, since every reader skips it, but worth knowing.
fn stray(path: PathBuf, expected: &str) -> Problem {
    Problem {
        path,
        what: format!("not {expected}: a stray file, ignored by mandala"),
    }
}

/// The reason of a damage error, or the whole message of another.
pub(crate) fn reason_of(e: store_core::Error) -> String {
    match e {
        store_core::Error::Store(store_core::StoreError::Corrupt { reason, .. }) => reason,
        other => other.to_string(),
    }
}
