//! The compact form of a call record (store format 3's proposal, docs/FORMAT3.md item 3): the
//! same record in fewer bytes, for pack entries. Nothing on disk uses it yet.
//!
//! A record's canonical CBOR (what its record id hashes) is a map with text keys, each slot a
//! map of three, and ids that can be re-derived: 336 bytes for a two-input call. The compact
//! form is a CBOR array in a fixed order that leaves out what the record's other fields
//! determine, and puts back exactly that when decoded, so a compact record always expands to
//! the record it was made from (tests: every record shape, and every record of the golden
//! stores):
//!
//! ```text
//! [op, semver, inputs, outputs]                   + [deps]  + [git]
//! op       text
//! semver   bytes(32), or null for Id::unversioned() (versioning off)
//! inputs   array of [name, cid] when the input's hid is H_source_hid(cid) (a value passed
//!          in from outside), else [name, cid, hid]; in the record's order
//! outputs  array of [name, cid] when the output's hid is H_output_hid([call hid, name]) (as
//!          every output the engine records), else [name, cid, hid]; in the record's order
//! deps     map {component name: id} in canonical key order: present when the record has
//!          deps, or as {} when git follows
//! git      uint: the commit's index in a table kept beside the records (a pack's), so that a
//!          commit named by thousands of calls is stored once
//! ```
//!
//! Ids are as in docs/FORMAT.md §3; no id, and no record id, changes.

use std::collections::{BTreeMap, HashMap};

use crate::format::cbor::{self, DecodeError};
use crate::format::id::Id;
use crate::format::record::decode::{intern, Reader};
use crate::format::record::{
    call_hid, output_hid, put_deps, put_id, put_text, source_hid, CallRecord, Slot,
};

/// The git commits named by a set of compact records, each stored once: records hold an
/// index into it.
///
/// ```
/// # use store_core::format::record::CommitTable;
/// let mut commits = CommitTable::default();
/// assert_eq!(commits.index_of("1b92543b"), 0);
/// assert_eq!(commits.index_of("0c7d2e11"), 1);
/// assert_eq!(commits.index_of("1b92543b"), 0);
/// assert_eq!(commits.get(1), Some("0c7d2e11"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitTable {
    list: Vec<String>,
    index: HashMap<String, u64>,
}

impl CommitTable {
    /// A table of these commits, in this order (as read back from where it is stored).
    pub fn from_list(list: Vec<String>) -> CommitTable {
        let mut index = HashMap::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            index.entry(c.clone()).or_insert(i as u64);
        }
        CommitTable { list, index }
    }

    /// The index of `commit`, added at the end if it is new.
    pub fn index_of(&mut self, commit: &str) -> u64 {
        if let Some(&i) = self.index.get(commit) {
            return i;
        }
        let i = self.list.len() as u64;
        self.list.push(commit.to_owned());
        self.index.insert(commit.to_owned(), i);
        i
    }

    /// Appends `commit` (a reader taking in a stored table in order: its position is its
    /// index, as the records that number it were written).
    pub fn push(&mut self, commit: String) {
        let i = self.list.len() as u64;
        self.index.entry(commit.clone()).or_insert(i);
        self.list.push(commit);
    }

    /// The commit at `index`.
    pub fn get(&self, index: u64) -> Option<&str> {
        self.list
            .get(usize::try_from(index).ok()?)
            .map(String::as_str)
    }

    /// The commits in index order (what to store beside the records).
    pub fn list(&self) -> &[String] {
        &self.list
    }
}

/// CBOR's `null`.
const NULL: u8 = 0xf6;

impl CallRecord {
    /// The record's compact form; its git commit, if any, is added to `commits`.
    ///
    /// ```
    /// # use store_core::format::record::{CallRecord, CommitTable, Slot};
    /// # use store_core::{Id, Kind};
    /// let cid = Id::hash(Kind::Value, b"\x07");
    /// let rec = CallRecord {
    ///     op: "inc".into(),
    ///     semver: Id::unversioned(),
    ///     inputs: vec![Slot { name: "x".into(), hid: store_core::format::record::source_hid(&cid), cid }],
    ///     outputs: vec![],
    ///     deps: Default::default(),
    ///     git: None,
    /// };
    /// let mut commits = CommitTable::default();
    /// let bytes = rec.to_compact(&mut commits);
    /// assert_eq!((bytes.len(), rec.to_cbor().len()), (45, 150)); // compact, canonical
    /// assert_eq!(CallRecord::from_compact(&bytes, &commits, None).unwrap(), rec);
    /// ```
    pub fn to_compact(&self, commits: &mut CommitTable) -> Vec<u8> {
        self.to_compact_with_hid(commits, &self.hid())
    }

    /// [`CallRecord::to_compact`] with the call hid outputs' hids are derived from given
    /// (`self.hid()`, which a writer has from the call's name: computing it again costs a
    /// hash). Any hid round-trips, if the reader passes the same one to
    /// [`CallRecord::from_compact`]: an output whose hid it does not derive is spelled out.
    pub fn to_compact_with_hid(&self, commits: &mut CommitTable, hid: &Id) -> Vec<u8> {
        let hid = *hid;
        let mut out = Vec::with_capacity(self.size_bound() / 2);
        let tail = if self.git.is_some() {
            2
        } else {
            usize::from(!self.deps.is_empty())
        };
        cbor::write_head(&mut out, 4, 4 + tail as u64);
        put_text(&mut out, &self.op);
        if self.semver == Id::unversioned() {
            out.push(NULL);
        } else {
            put_id(&mut out, &self.semver);
        }
        let slots = |out: &mut Vec<u8>, slots: &[Slot], derived: &dyn Fn(&Slot) -> Id| {
            cbor::write_head(out, 4, slots.len() as u64);
            for s in slots {
                let implied = derived(s) == s.hid;
                cbor::write_head(out, 4, if implied { 2 } else { 3 });
                put_text(out, &s.name);
                put_id(out, &s.cid);
                if !implied {
                    put_id(out, &s.hid);
                }
            }
        };
        slots(&mut out, &self.inputs, &|s| source_hid(&s.cid));
        slots(&mut out, &self.outputs, &|s| output_hid(&hid, &s.name));
        if tail > 0 {
            put_deps(&mut out, &self.deps);
        }
        if let Some(git) = &self.git {
            cbor::write_head(&mut out, 0, commits.index_of(git));
        }
        out
    }

    /// Expands a compact record made by [`CallRecord::to_compact`]; `commits` is the table
    /// its git index refers to. `hid`, when the caller already knows the call's history id
    /// (from a checked index row), saves computing it to derive the output hids; a wrong one
    /// yields wrong output hids, which the record id check catches.
    pub fn from_compact(
        bytes: &[u8],
        commits: &CommitTable,
        hid: Option<&Id>,
    ) -> Result<CallRecord, DecodeError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let fail = |r: &Reader, what: &str| {
            DecodeError(format!("compact call record: {what} at byte {}", r.pos))
        };
        let n = r.head(4).ok_or_else(|| fail(&r, "not an array"))?;
        if !(4..=6).contains(&n) {
            return Err(fail(&r, &format!("an array of {n} items, not 4 to 6")));
        }
        let op = intern(r.text().ok_or_else(|| fail(&r, "no op name"))?);
        let semver = if r.buf.get(r.pos) == Some(&NULL) {
            r.pos += 1;
            Id::unversioned()
        } else {
            r.id().ok_or_else(|| fail(&r, "no semantic version"))?
        };
        // A slot whose hid is left out gets the one it is derived from: an input's from its
        // cid, an output's from the call hid, which the inputs (read first) determine.
        let slots = |r: &mut Reader,
                     what: &str,
                     derived: &mut dyn FnMut(&Slot) -> Id|
         -> Result<Vec<Slot>, DecodeError> {
            let n = r
                .head(4)
                .ok_or_else(|| fail(r, &format!("no {what} array")))?;
            let mut out = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                let items = r.head(4).filter(|n| (2..=3).contains(n));
                let items = items.ok_or_else(|| fail(r, &format!("not an {what} slot")))?;
                let name = intern(r.text().ok_or_else(|| fail(r, "no slot name"))?);
                let cid = r.id().ok_or_else(|| fail(r, "no slot content id"))?;
                let mut slot = Slot {
                    name,
                    hid: Id([0; 32]),
                    cid,
                };
                slot.hid = match items {
                    3 => r.id().ok_or_else(|| fail(r, "no slot history id"))?,
                    _ => derived(&slot),
                };
                out.push(slot);
            }
            Ok(out)
        };
        let inputs = slots(&mut r, "input", &mut |s| source_hid(&s.cid))?;
        // Computed only if an output needs it.
        let mut call = hid.copied();
        let outputs = slots(&mut r, "output", &mut |s| {
            let hid = *call.get_or_insert_with(|| call_hid(&op, &inputs, &semver));
            output_hid(&hid, &s.name)
        })?;
        let mut deps = BTreeMap::new();
        if n >= 5 {
            let m = r.head(5).ok_or_else(|| fail(&r, "no deps map"))?;
            for _ in 0..m {
                let name = r.text().ok_or_else(|| fail(&r, "no component name"))?;
                let id = r.id().ok_or_else(|| fail(&r, "no component id"))?;
                if deps.insert(name.to_owned(), id).is_some() {
                    return Err(fail(&r, &format!("component {name:?} twice")));
                }
            }
        }
        let git = if n == 6 {
            let i = r.head(0).ok_or_else(|| fail(&r, "no commit index"))?;
            let commit = commits.get(i as u64).ok_or_else(|| {
                fail(
                    &r,
                    &format!("commit {i}, but the table has {}", commits.list().len()),
                )
            })?;
            Some(commit.to_owned())
        } else {
            None
        };
        if r.pos != bytes.len() {
            return Err(fail(&r, "bytes after the record"));
        }
        Ok(CallRecord {
            op,
            semver,
            inputs,
            outputs,
            deps,
            git,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::id::Kind;

    fn value(n: u64) -> Id {
        Id::hash(Kind::Value, &cbor::to_canonical(&n).unwrap())
    }

    /// A record as the engine makes it: source inputs, derived outputs.
    fn engine_record(op: &str, inputs: &[(&str, u64)], outputs: &[&str]) -> CallRecord {
        let inputs: Vec<Slot> = inputs
            .iter()
            .map(|(name, v)| Slot {
                name: (*name).into(),
                hid: source_hid(&value(*v)),
                cid: value(*v),
            })
            .collect();
        let semver = Id::unversioned();
        let hid = call_hid(op, &inputs, &semver);
        let outputs = outputs
            .iter()
            .enumerate()
            .map(|(i, name)| Slot {
                name: (*name).into(),
                hid: output_hid(&hid, name),
                cid: value(100 + i as u64),
            })
            .collect();
        CallRecord {
            op: op.into(),
            semver,
            inputs,
            outputs,
            deps: BTreeMap::new(),
            git: None,
        }
    }

    fn round_trip(rec: &CallRecord, commits: &mut CommitTable) -> usize {
        let bytes = rec.to_compact(commits);
        let back = CallRecord::from_compact(&bytes, commits, None).unwrap();
        assert_eq!(&back, rec);
        assert_eq!(back.rid(), rec.rid());
        // With the call hid given (as from an index row): the same record.
        let given = CallRecord::from_compact(&bytes, commits, Some(&rec.hid())).unwrap();
        assert_eq!(&given, rec);
        bytes.len()
    }

    #[test]
    fn every_record_shape_expands_to_itself() {
        let mut commits = CommitTable::default();
        let mut rec = engine_record("add2", &[("a", 1), ("b", 7)], &["output_0"]);
        let small = round_trip(&rec, &mut commits);
        assert_eq!((small, rec.to_cbor().len()), (127, 326));
        // An input from another call keeps its hid; so does an output whose hid is not the
        // derived one (a record made by hand, or by a future version).
        rec.inputs[0].hid = Id([4; 32]);
        round_trip(&rec, &mut commits);
        rec.outputs[0].hid = Id([5; 32]);
        round_trip(&rec, &mut commits);
        // Versioned, with deps, with git, with both, no inputs, several outputs.
        rec.semver = Id([6; 32]);
        round_trip(&rec, &mut commits);
        rec.git = Some("1b92543b14e46695cd2994f09ae94db5c7c4a277".into());
        round_trip(&rec, &mut commits);
        rec.deps.insert("helper::mix".into(), Id([8; 32]));
        rec.deps
            .insert("a_component_name_beyond_23_bytes".into(), Id([9; 32]));
        rec.deps.insert("z".into(), Id([10; 32]));
        round_trip(&rec, &mut commits);
        rec.git = None;
        round_trip(&rec, &mut commits);
        let mut rec = engine_record("gen", &[], &["x", "y", "a_long_output_name_of_30_bytes"]);
        round_trip(&rec, &mut commits);
        rec.git = Some("0c7d2e11".into());
        round_trip(&rec, &mut commits);
        // Inputs out of canonical order stay in their order.
        let mut rec = engine_record("f", &[("zz", 1), ("a", 2)], &[]);
        round_trip(&rec, &mut commits);
        rec.inputs.reverse();
        round_trip(&rec, &mut commits);
        // The table holds each commit once.
        assert_eq!(commits.list().len(), 2);
    }

    #[test]
    fn a_commit_is_stored_once_per_table() {
        let mut commits = CommitTable::default();
        let mut a = engine_record("f", &[("x", 1)], &["output_0"]);
        a.git = Some("1b92543b14e46695cd2994f09ae94db5c7c4a277".into());
        let mut b = engine_record("f", &[("x", 2)], &["output_0"]);
        b.git = a.git.clone();
        let (ba, bb) = (a.to_compact(&mut commits), b.to_compact(&mut commits));
        assert_eq!(commits.list(), [a.git.clone().unwrap()]);
        // Stored once in the table; a record holds its index (one byte, and `{}` for the deps
        // before it), where the canonical form holds the commit's 45 bytes.
        let mut plain = a.clone();
        plain.git = None;
        assert_eq!(
            ba.len(),
            plain.to_compact(&mut CommitTable::default()).len() + 2
        );
        let read = CommitTable::from_list(commits.list().to_vec());
        assert_eq!(CallRecord::from_compact(&bb, &read, None).unwrap(), b);
        // Against a table without the commit: an error naming the index.
        let err = CallRecord::from_compact(&bb, &CommitTable::default(), None).unwrap_err();
        assert!(err.0.contains("commit 0, but the table has 0"), "{}", err.0);
    }

    #[test]
    fn damaged_bytes_are_an_error_never_another_record() {
        let mut commits = CommitTable::default();
        let mut rec = engine_record("add2", &[("a", 1), ("b", 7)], &["output_0"]);
        rec.deps.insert("helper".into(), Id([8; 32]));
        rec.git = Some("1b92543b".into());
        let bytes = rec.to_compact(&mut commits);
        for cut in 0..bytes.len() {
            assert!(
                CallRecord::from_compact(&bytes[..cut], &commits, None).is_err(),
                "truncated at {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        let err = CallRecord::from_compact(&extra, &commits, None).unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "compact call record: bytes after the record at byte {}",
                bytes.len()
            )
        );
        // The canonical form is not a compact record.
        assert!(CallRecord::from_compact(&rec.to_cbor(), &commits, None).is_err());
        // Any flipped byte: an error or another record, whose record id then differs.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            if let Ok(other) = CallRecord::from_compact(&b, &commits, None) {
                assert_ne!(other.rid(), rec.rid(), "byte {i}");
            }
        }
    }
}
