//! A direct decoder for call records in their canonical CBOR form: whole-store queries decode
//! every record, and serde's generic path costs ~5× more per record. Anything unexpected
//! (another shape, a duplicate or unknown key, a non-canonical head) returns `None` and the
//! caller falls back to serde, which reports errors; a record decoded here is the one serde
//! would return (tested on every field).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use crate::format::id::Id;
use crate::format::record::{CallRecord, Name, Slot};

thread_local! {
    /// The op and slot names this thread's decoder has seen: they repeat across thousands of
    /// records, so each is allocated once and shared (and stays in cache for the frames that
    /// compare them). Bounded: cleared when it holds `MAX_NAMES`.
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

#[derive(Default)]
struct Names {
    all: HashSet<Name>,
    /// The last name seen in each of a few slots (by length and end bytes): a record's op and
    /// slot names are found here by comparing a few bytes, without hashing them.
    recent: [Option<Name>; RECENT],
}

const MAX_NAMES: usize = 4096;
const RECENT: usize = 16;

/// `s` as a shared name, allocated once per thread.
pub(super) fn intern(s: &str) -> Name {
    let b = s.as_bytes();
    let first = usize::from(*b.first().unwrap_or(&0));
    let last = usize::from(*b.last().unwrap_or(&0));
    let slot = (b.len() ^ (first * 7) ^ (last * 13)) % RECENT;
    NAMES.with_borrow_mut(|names| {
        if let Some(name) = &names.recent[slot] {
            if **name == *s {
                return name.clone();
            }
        }
        let name = match names.all.get(s) {
            Some(name) => name.clone(),
            None => {
                if names.all.len() >= MAX_NAMES {
                    names.all.clear();
                }
                let name = Name::from(s);
                names.all.insert(name.clone());
                name
            }
        };
        names.recent[slot] = Some(name.clone());
        name
    })
}

/// The op of a call record, read from the first bytes of its canonical CBOR
/// ([`CallRecord::to_cbor`]: a map whose first key is `op`) or of its compact form
/// ([`CallRecord::to_compact`]: an array that starts with it), without decoding the rest:
/// what counting the calls of each op needs. `None` if the bytes do not start as a record
/// does. The rest is not checked: a damaged record may still give its op here.
///
/// ```
/// # use store_core::format::record::{op_of, CallRecord};
/// let rec = CallRecord {
///     op: "inc".into(),
///     semver: store_core::Id::unversioned(),
///     inputs: vec![],
///     outputs: vec![],
///     deps: Default::default(),
///     git: None,
/// };
/// assert_eq!(op_of(&rec.to_cbor()), Some("inc"));
/// assert_eq!(op_of(b"not a record"), None);
/// ```
pub fn op_of(bytes: &[u8]) -> Option<&str> {
    let mut r = Reader { buf: bytes, pos: 0 };
    match bytes.first()? >> 5 {
        // Canonical CBOR: a map of 4 to 6 fields, "op" first (the shortest key).
        5 => {
            let n = r.head(5)?;
            ((4..=6).contains(&n) && r.key()? == b"op").then_some(())?;
        }
        // Compact: an array of 4 to 6 items, the op first.
        4 => (4..=6).contains(&r.head(4)?).then_some(())?,
        _ => return None,
    }
    r.text()
}

/// A cursor over CBOR bytes that reads the few item types records are made of, `None` at
/// anything else.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    /// A head of major type `major`: its argument (length or value).
    pub(super) fn head(&mut self, major: u8) -> Option<usize> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        if b >> 5 != major {
            return None;
        }
        let n = match b & 0x1f {
            n @ 0..=23 => u64::from(n),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?)),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().ok()?)),
            27 => u64::from_be_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        };
        usize::try_from(n).ok()
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    pub(super) fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.key()?).ok()
    }

    /// A text's bytes unchecked: for map keys, which are compared with known ASCII names
    /// (anything else is rejected), so checking them as UTF-8 first would be wasted work.
    pub(super) fn key(&mut self) -> Option<&'a [u8]> {
        let n = self.head(3)?;
        self.take(n)
    }

    pub(super) fn id(&mut self) -> Option<Id> {
        if self.head(2)? != 32 {
            return None;
        }
        Some(Id(self.take(32)?.try_into().ok()?))
    }

    fn slots(&mut self) -> Option<Vec<Slot>> {
        let n = self.head(4)?;
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            if self.head(5)? != 3 {
                return None;
            }
            let (mut name, mut hid, mut cid) = (None, None, None);
            for _ in 0..3 {
                match self.key()? {
                    b"name" if name.is_none() => name = Some(intern(self.text()?)),
                    b"hid" if hid.is_none() => hid = Some(self.id()?),
                    b"cid" if cid.is_none() => cid = Some(self.id()?),
                    _ => return None,
                }
            }
            out.push(Slot {
                name: name?,
                hid: hid?,
                cid: cid?,
            });
        }
        Some(out)
    }
}

/// Decodes a call record, or `None` if the bytes are not a record in the expected form.
pub(crate) fn decode(bytes: &[u8]) -> Option<CallRecord> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let n = r.head(5)?;
    let (mut op, mut semver, mut inputs, mut outputs) = (None, None, None, None);
    let (mut deps, mut git) = (None, None);
    for _ in 0..n {
        match r.key()? {
            b"op" if op.is_none() => op = Some(intern(r.text()?)),
            b"semver" if semver.is_none() => semver = Some(r.id()?),
            b"inputs" if inputs.is_none() => inputs = Some(r.slots()?),
            b"outputs" if outputs.is_none() => outputs = Some(r.slots()?),
            b"git" if git.is_none() => git = Some(r.text()?.to_string()),
            b"deps" if deps.is_none() => {
                let m = r.head(5)?;
                let mut d = BTreeMap::new();
                for _ in 0..m {
                    let k = r.text()?.to_string();
                    let v = r.id()?;
                    if d.insert(k, v).is_some() {
                        return None;
                    }
                }
                deps = Some(d);
            }
            _ => return None,
        }
    }
    (r.pos == bytes.len()).then_some(())?;
    Some(CallRecord {
        op: op?,
        semver: semver?,
        inputs: inputs?,
        outputs: outputs?,
        deps: deps.unwrap_or_default(),
        git,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::id::Kind;

    fn slot(name: &str, i: u8) -> Slot {
        Slot {
            name: name.into(),
            hid: Id([i; 32]),
            cid: Id([i + 1; 32]),
        }
    }

    #[test]
    fn decodes_what_serde_decodes() {
        let mut record = CallRecord {
            op: "train_model".into(),
            semver: Id::hash(Kind::Value, b"v"),
            inputs: vec![slot("X", 1), slot("n_estimators", 3), slot("y", 5)],
            outputs: vec![slot("output_0", 7)],
            deps: BTreeMap::new(),
            git: None,
        };
        for _ in 0..2 {
            let bytes = record.to_cbor();
            let serde: CallRecord = crate::format::cbor::from_slice(&bytes).unwrap();
            assert_eq!(decode(&bytes), Some(serde));
            record.deps.insert("crate::helper".into(), Id([9; 32]));
            record.git = Some("1b92543b14e46695cd2994f09ae94db5c7c4a277".into());
        }
        // Long names and many slots take the multi-byte heads.
        record.inputs = (0..30)
            .map(|i| slot(&"x".repeat(300 + i), i as u8))
            .collect();
        let bytes = record.to_cbor();
        assert_eq!(decode(&bytes), Some(record));
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let record = CallRecord {
            op: "inc".into(),
            semver: Id([0; 32]),
            inputs: vec![slot("x", 1)],
            outputs: vec![slot("output_0", 3)],
            deps: BTreeMap::new(),
            git: None,
        };
        let bytes = record.to_cbor();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(decode(&extra), None);
        let other = crate::format::cbor::to_canonical(&BTreeMap::from([("op", "inc")])).unwrap();
        assert_eq!(decode(&other), None);
    }
}
