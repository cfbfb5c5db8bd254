//! Inspecting versions: the history of a component, the versions of an op (each with the
//! components its calls depended on and their texts), and diffs between versions. Works on any
//! backend, so the CLI shows the same as the library without the user's program.

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::cbor;
use crate::format::id::{Id, IdPrefix};
use crate::version::history::{SemanticIds, VersionRecord};

/// One version of a component, with its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version id.
    pub id: Id,
    /// The record.
    pub record: VersionRecord,
    /// The version's text.
    pub text: String,
}

/// One semantic version of an op: the components its calls depended on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpVersion {
    /// The semantic version (the hash of `deps`).
    pub semver: Id,
    /// Component → semantic id.
    pub deps: BTreeMap<String, Id>,
    /// Stored calls of the op with this version.
    pub calls: usize,
    /// Component → text of a version with that semantic id (the oldest such), if known.
    pub texts: BTreeMap<String, String>,
}

/// The text stored as value `cid` (empty if missing or not text).
pub(crate) fn text_of(backend: &dyn Backend, cid: &Id) -> String {
    backend
        .get_value(cid)
        .ok()
        .flatten()
        .and_then(|b| cbor::from_slice::<String>(&b).ok())
        .unwrap_or_default()
}

/// The history of `component`, parents before children (ties by id).
pub fn source_history(backend: &dyn Backend, component: &str) -> Result<Vec<VersionInfo>> {
    let mut left: BTreeMap<Id, VersionRecord> = backend
        .all_versions()?
        .into_iter()
        .filter(|v| v.component == component)
        .map(|v| (v.id(), v))
        .collect();
    let mut out: Vec<VersionInfo> = Vec::new();
    let mut done: BTreeSet<Id> = BTreeSet::new();
    while !left.is_empty() {
        let ready: Vec<Id> = left
            .iter()
            .filter(|(_, v)| {
                v.parents
                    .iter()
                    .all(|p| done.contains(p) || !left.contains_key(p))
            })
            .map(|(id, _)| *id)
            .collect();
        // Hash-named records cannot form a cycle; if damaged ones do, list them as they are.
        let ready = if ready.is_empty() {
            left.keys().copied().collect()
        } else {
            ready
        };
        for id in ready {
            let record = left.remove(&id).expect("listed");
            let text = text_of(backend, &record.source);
            done.insert(id);
            out.push(VersionInfo { id, record, text });
        }
    }
    Ok(out)
}

/// The semantic versions of `op` among its stored calls, by semver.
pub fn op_versions(backend: &dyn Backend, op: &str) -> Result<Vec<OpVersion>> {
    let mut by_semver: BTreeMap<Id, OpVersion> = BTreeMap::new();
    for c in backend.all_calls()? {
        if c.record.op != op {
            continue;
        }
        let v = by_semver
            .entry(c.record.semver)
            .or_insert_with(|| OpVersion {
                semver: c.record.semver,
                deps: c.record.deps.clone(),
                calls: 0,
                texts: BTreeMap::new(),
            });
        v.calls += 1;
    }
    if by_semver.is_empty() {
        return Err(Error::Versioning(crate::error::VersioningError::NotFound {
            what: "op",
            name: op.to_string(),
            store: backend.describe(),
        }));
    }
    let versions = backend.all_versions()?;
    let semantic_ids = SemanticIds::new(&versions);
    for v in by_semver.values_mut() {
        for (name, recorded) in &v.deps {
            // Older records may hold a content id where a semantic id belongs.
            let semantic = semantic_ids.resolve(name, recorded);
            let oldest = versions
                .iter()
                .filter(|r| r.component == *name && r.semantic == semantic)
                .min_by_key(|r| r.parents.len());
            if let Some(r) = oldest {
                v.texts.insert(name.clone(), text_of(backend, &r.source));
            }
        }
    }
    Ok(by_semver.into_values().collect())
}

/// The version whose id starts with `prefix`.
pub fn find_version(backend: &dyn Backend, prefix: &str) -> Result<VersionInfo> {
    let p = IdPrefix::parse(prefix)?;
    let found: Vec<VersionRecord> = backend
        .all_versions()?
        .into_iter()
        .filter(|v| p.matches(&v.id()))
        .collect();
    match found.len() {
        0 => Err(Error::Versioning(crate::error::VersioningError::NotFound {
            what: "version",
            name: prefix.to_string(),
            store: backend.describe(),
        })),
        1 => {
            let record = found.into_iter().next().expect("one");
            let text = text_of(backend, &record.source);
            Ok(VersionInfo {
                id: record.id(),
                record,
                text,
            })
        }
        _ => Err(Error::Versioning(
            crate::error::VersioningError::AmbiguousVersion {
                prefix: prefix.to_string(),
                candidates: found
                    .iter()
                    .map(|v| format!("version {} of {}", v.id().short(16), v.component))
                    .collect(),
            },
        )),
    }
}

/// A unified diff between the texts of two versions (by id prefix).
pub fn diff(backend: &dyn Backend, a: &str, b: &str) -> Result<String> {
    let (a, b) = (find_version(backend, a)?, find_version(backend, b)?);
    Ok(
        similar::TextDiff::from_lines(a.text.as_str(), b.text.as_str())
            .unified_diff()
            .header(
                &format!("{} {}", a.record.component, a.id.short(12)),
                &format!("{} {}", b.record.component, b.id.short(12)),
            )
            .to_string(),
    )
}
