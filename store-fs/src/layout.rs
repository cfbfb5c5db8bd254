//! Where each object lives in a store directory, and how names parse back into ids.
//!
//! ```text
//! mandala.toml                       format version and settings
//! remotes.toml                       the remotes of the store (no secrets; docs/REMOTES.md)
//! values/ab/cdef…(62 hex)            a value, named by its cid
//! calls/ab/cdef…(62 hex).HID.RID     a call record: call key (sharded like values),
//!                                    call hid and record id (64 hex each)
//! versions/ab/cdef…(62 hex)          a version record of a component, named by its id
//! packs/pack-<64 hex>.pack, .idx     format 2: packs of small objects and their indexes
//! logs/<pid>-<n>-<12 hex>.log         format 2: the log each writing process appends to
//! tmp/                               staging for atomic writes (ignored by git)
//! index/                             derived caches (ignored by git)
//! ```

use std::path::{Path, PathBuf};

use store_core::{CallName, Id};

/// Top-level names of a store, in the order `status` shows them.
pub const VALUES: &str = "values";
/// Directory of call records.
pub const CALLS: &str = "calls";
/// Staging directory for atomic writes.
pub const TMP: &str = "tmp";
/// Derived, rebuildable caches.
pub const INDEX: &str = "index";
/// Reserved for named refs (component heads, in a later format revision of version 1).
pub const REFS: &str = "refs";
/// The config file.
pub const CONFIG: &str = "mandala.toml";
/// Decisions about pending component changes, under `refs/`.
pub const DECISIONS: &str = "decisions";
/// Under `refs/`: tag records (docs/FORMAT.md §6e).
pub const TAGS: &str = "tags";
/// Version records of component histories (versioning).
pub const VERSIONS: &str = "versions";
/// Packs and their indexes (format 2).
pub const PACKS: &str = "packs";
/// Logs of writing processes (format 2).
pub const LOGS: &str = "logs";
/// Every name that may appear at the top of a store (`sources` is reserved).
pub const TOP_LEVEL: &[&str] = &[
    CONFIG,
    "remotes.toml",
    ".gitignore",
    ".gitattributes",
    VALUES,
    CALLS,
    VERSIONS,
    PACKS,
    LOGS,
    "sources",
    REFS,
    TMP,
    INDEX,
    ".git",
];

/// Splits an id into its shard directory (2 hex) and the rest (62 hex).
pub fn shard(id: &Id) -> (String, String) {
    let hex = id.to_string();
    (hex[..2].to_string(), hex[2..].to_string())
}

fn sharded_path(root: &Path, top: &str, id: &Id, extra: usize) -> PathBuf {
    let mut buf = [0u8; 64];
    let hex = id.hex_into(&mut buf);
    let mut p = PathBuf::with_capacity(root.as_os_str().len() + top.len() + 68 + extra);
    p.push(root);
    p.push(top);
    p.push(&hex[..2]);
    p.push(&hex[2..]);
    p
}

/// The path of the object `id` in the sharded directory `top` (`values`, `versions`).
pub fn sharded(root: &Path, top: &str, id: &Id) -> PathBuf {
    sharded_path(root, top, id, 0)
}

/// The path of value `cid` under `root`.
pub fn value_path(root: &Path, cid: &Id) -> PathBuf {
    sharded_path(root, VALUES, cid, 0)
}

/// The shard directory holding the calls whose call key starts with byte `shard`.
pub fn call_shard(root: &Path, shard: u8) -> PathBuf {
    let mut p = root.join(CALLS);
    p.push(format!("{shard:02x}"));
    p
}

/// The path of a call record: `calls/ab/<62 hex of the call key>.<hid>.<rid>`.
pub fn call_path(root: &Path, name: &CallName) -> PathBuf {
    let mut p = sharded_path(root, CALLS, &name.key, 130);
    p.as_mut_os_string().push(".");
    p.as_mut_os_string().push(name.hid.hex_into(&mut [0; 64]));
    p.as_mut_os_string().push(".");
    p.as_mut_os_string().push(name.rid.hex_into(&mut [0; 64]));
    p
}

/// Parses the file name of a call record in shard directory `shard`.
pub fn parse_call_name(shard: &str, name: &str) -> Option<CallName> {
    let mut parts = name.split('.');
    let (rest, hid, rid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(CallName {
        key: parse_sharded(shard, rest)?,
        hid: hid.parse().ok()?,
        rid: rid.parse().ok()?,
    })
}

/// The file recording a decision: `refs/decisions/<16 hex of the component name's hash>.
/// <content prefix>.<cosmetic|semantic>` (the file holds the component's name). Different
/// decisions are different files, so merged stores keep both.
pub fn decision_path(root: &Path, d: &store_core::version::history::Decision) -> PathBuf {
    let name_hash = Id::hash(store_core::Kind::Source, d.component.as_bytes()).short(16);
    let kind = match d.change {
        store_core::version::history::Change::Cosmetic => "cosmetic",
        store_core::version::history::Change::Semantic => "semantic",
    };
    root.join(REFS)
        .join(DECISIONS)
        .join(format!("{name_hash}.{}.{kind}", d.content))
}

/// Whether `name` is a tag record's file name: `<16 hex>.<16 hex>.tag`.
pub fn is_tag_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tag") else {
        return false;
    };
    let mut parts = stem.split('.');
    let hex16 = |p: Option<&str>| {
        p.is_some_and(|p| {
            p.len() == 16
                && p.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
    };
    hex16(parts.next()) && hex16(parts.next()) && parts.next().is_none()
}

/// Parses a decision file name, given the component name the file holds.
pub fn parse_decision_name(
    name: &str,
    component: String,
) -> Option<store_core::version::history::Decision> {
    let mut parts = name.split('.');
    let (_hash, content, kind) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || content.len() < 8
        || !content.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let change = match kind {
        "cosmetic" => store_core::version::history::Change::Cosmetic,
        "semantic" => store_core::version::history::Change::Semantic,
        _ => return None,
    };
    Some(store_core::version::history::Decision {
        component,
        content: content.to_ascii_lowercase(),
        change,
    })
}

/// The file name of pack `id`'s `.pack` or `.idx` (`ext`).
pub fn pack_file_name(id: &Id, ext: &str) -> String {
    format!("pack-{id}.{ext}")
}

/// The path of pack `id`'s `.pack` or `.idx` (`ext`).
pub fn pack_path(root: &Path, id: &Id, ext: &str) -> PathBuf {
    root.join(PACKS).join(pack_file_name(id, ext))
}

/// Parses `pack-<64 hex>.<ext>`.
pub fn parse_pack_name(name: &str, ext: &str) -> Option<Id> {
    let hex = name
        .strip_prefix("pack-")?
        .strip_suffix(ext)?
        .strip_suffix('.')?;
    if hex.len() != 64 {
        return None;
    }
    hex.parse().ok()
}

/// Parses a shard directory name and a file name back into an id.
pub fn parse_sharded(shard: &str, rest: &str) -> Option<Id> {
    if shard.len() != 2 || rest.len() != 62 {
        return None;
    }
    format!("{shard}{rest}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_pinned() {
        let id: Id = "3fa9c2d1000000000000000000000000000000000000000000000000000000ff"
            .parse()
            .unwrap();
        assert_eq!(
            value_path(Path::new("s"), &id),
            Path::new("s/values/3f/a9c2d1000000000000000000000000000000000000000000000000000000ff")
        );
        let (hid, rid) = (Id([0x11; 32]), Id([0; 32]));
        let call = CallName { key: id, hid, rid };
        let p = call_path(Path::new("s"), &call);
        assert_eq!(
            p,
            Path::new(&format!("s/calls/3f/a9c2d1000000000000000000000000000000000000000000000000000000ff.{hid}.{rid}"))
        );
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 192);
        assert_eq!(parse_call_name("3f", name), Some(call));
        assert_eq!(parse_call_name("3f", &name[..100]), None);
        assert_eq!(parse_sharded("3f", &id.to_string()[2..]), Some(id));
        assert_eq!(parse_sharded("3", "x"), None);
    }
}
