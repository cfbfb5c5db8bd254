//! Tags: names a user gives to refs, as git's tags (docs/FORMAT.md §6e). A tag record is a
//! small text file, written once; pointing a name elsewhere writes a new record that says which
//! target it replaces, so the union of two stores' records keeps every target and tells a
//! re-pointed name from one two stores pointed at different refs.
//!
//! ```
//! use store_core::format::tag::TagRecord;
//! use store_core::Id;
//! let t = TagRecord { name: "paper/fig3".into(), hid: Id([1; 32]), cid: Id([2; 32]), time: 7, replaces: None };
//! assert_eq!(TagRecord::parse(&t.to_text()), Some(t));
//! ```

use std::collections::BTreeMap;

use crate::format::id::{Id, Kind};

/// One tag record: `name` points at the ref `hid` (content `cid`) since `time`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagRecord {
    /// The tag's name: `/`-separated parts of letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// The history id of the ref it names.
    pub hid: Id,
    /// The ref's content id (kept by gc while the tag names it).
    pub cid: Id,
    /// When it was written (seconds since the Unix epoch).
    pub time: u64,
    /// The target this record replaced (`--force`), if any.
    pub replaces: Option<Id>,
}

impl TagRecord {
    /// The record's text: `name`, `hid`, `cid`, `time` and optional `replaces` lines.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "name {}\nhid {}\ncid {}\ntime {}\n",
            self.name, self.hid, self.cid, self.time
        );
        if let Some(r) = &self.replaces {
            s.push_str(&format!("replaces {r}\n"));
        }
        s
    }

    /// Parses a record's text (`None` if it is not one).
    pub fn parse(text: &str) -> Option<TagRecord> {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            if fields.insert(k, v).is_some() {
                return None;
            }
        }
        let id = |k: &str| fields.get(k).and_then(|v| v.parse::<Id>().ok());
        let name = fields.get("name")?.to_string();
        check_name(&name).ok()?;
        let known = ["name", "hid", "cid", "time", "replaces"];
        if fields.keys().any(|k| !known.contains(k)) {
            return None;
        }
        Some(TagRecord {
            name,
            hid: id("hid")?,
            cid: id("cid")?,
            time: fields.get("time")?.parse().ok()?,
            replaces: match fields.get("replaces") {
                Some(_) => Some(id("replaces")?),
                None => None,
            },
        })
    }

    /// The record's file name: 16 hex digits of its name's hash, then of its text's.
    pub fn file_name(&self) -> String {
        format!(
            "{}.{}.tag",
            Id::hash(Kind::Source, self.name.as_bytes()).short(16),
            Id::hash(Kind::Source, self.to_text().as_bytes()).short(16)
        )
    }
}

/// Whether `name` can name a tag: non-empty `/`-separated parts of ASCII letters, digits, `.`,
/// `_` and `-`, none empty or starting with `.`; the reason otherwise.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("a tag name has 1 to 200 characters".into());
    }
    for part in name.split('/') {
        if part.is_empty() || part.starts_with('.') {
            return Err("no part of a tag name is empty or starts with '.'".into());
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err("a tag name holds letters, digits, '.', '_', '-' and '/'".into());
        }
    }
    if name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("a tag name cannot look like a hash prefix".into());
    }
    Ok(())
}

/// What a tag name points at, from all its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The name.
    pub name: String,
    /// The current target: the newest record no other record replaced.
    pub current: TagRecord,
    /// Other targets no record replaced: stores that pointed the name at different refs were
    /// merged. Empty normally.
    pub conflicts: Vec<TagRecord>,
}

/// The tags that `records` make, by name.
pub fn resolve(records: &[TagRecord]) -> Vec<Tag> {
    let mut by_name: BTreeMap<&str, Vec<&TagRecord>> = BTreeMap::new();
    for r in records {
        by_name.entry(&r.name).or_default().push(r);
    }
    by_name
        .into_iter()
        .map(|(name, recs)| {
            // A record is replaced by a later one (of this name) that says it replaces its
            // target; the others are heads.
            let mut heads: Vec<&TagRecord> = recs
                .iter()
                .copied()
                .filter(|r| {
                    !recs
                        .iter()
                        .any(|s| s.replaces == Some(r.hid) && s.time >= r.time && s.hid != r.hid)
                })
                .collect();
            heads.sort_by_key(|r| std::cmp::Reverse((r.time, r.hid)));
            let current = heads[0].clone();
            let mut conflicts: Vec<TagRecord> = heads[1..]
                .iter()
                .filter(|r| r.hid != current.hid)
                .map(|r| (*r).clone())
                .collect();
            conflicts.dedup_by_key(|r| r.hid);
            Tag {
                name: name.to_string(),
                current,
                conflicts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hid: u8, time: u64, replaces: Option<u8>) -> TagRecord {
        TagRecord {
            name: "t".into(),
            hid: Id([hid; 32]),
            cid: Id([hid; 32]),
            time,
            replaces: replaces.map(|r| Id([r; 32])),
        }
    }

    #[test]
    fn repointing_replaces_and_forks_conflict() {
        // 1, then re-pointed to 2: current 2, no conflict.
        let t = &resolve(&[rec(1, 10, None), rec(2, 20, Some(1))])[0];
        assert_eq!((t.current.hid, t.conflicts.len()), (Id([2; 32]), 0));
        // Two stores each re-pointed 1: to 2 and to 3 — a conflict, the newer current.
        let t = &resolve(&[rec(1, 10, None), rec(2, 20, Some(1)), rec(3, 30, Some(1))])[0];
        assert_eq!(t.current.hid, Id([3; 32]));
        assert_eq!(t.conflicts.len(), 1);
        // Two stores tagged different refs: a conflict; the same ref twice: none.
        assert_eq!(
            resolve(&[rec(1, 10, None), rec(4, 5, None)])[0]
                .conflicts
                .len(),
            1
        );
        assert_eq!(
            resolve(&[rec(1, 10, None), rec(1, 5, None)])[0]
                .conflicts
                .len(),
            0
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("paper/fig3").is_ok());
        assert!(check_name("v1.2_final-b").is_ok());
        for bad in ["", "a//b", "/a", ".hidden", "a b", "x/../y", "deadbeef"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(TagRecord::parse("name x\nhid 00\n"), None);
    }
}
