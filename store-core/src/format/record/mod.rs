//! Call records: what the store keeps of one call, and the ids derived from it.
//!
//! A record names the op, its semantic version, and each input and output by name with its
//! history id (hid) and content id (cid). From a record alone one can recompute the call's cid
//! and hid (which, with the record id, make its file name), each output hid, and the record id,
//! which is what `fsck` checks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::cbor;
use crate::format::id::{Id, Kind};

mod compact;
mod decode;

pub use compact::CommitTable;
pub use decode::op_of;

/// An op's or a slot's name: shared text, because names repeat in every call of an op (a
/// whole-store query decodes each distinct name once). Reads as a `str` and compares with one.
///
/// ```
/// # use store_core::format::record::Name;
/// let name = Name::from("output_0");
/// assert!(name == "output_0" && name.starts_with("output"));
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a static text (an op's or an argument's name): made once per thread and
    /// shared after that, so recording a call allocates no copy of the names it holds.
    ///
    /// ```
    /// # use store_core::format::record::Name;
    /// let (a, b) = (Name::from_static("x"), Name::from_static("x"));
    /// assert!(a == "x" && a == b);
    /// ```
    pub fn from_static(text: &'static str) -> Name {
        const SLOTS: usize = 32;
        type Key = (usize, usize);
        type Recent = [Option<(Key, Name)>; SLOTS];
        type All = std::collections::HashMap<Key, Name>;
        thread_local! {
            static NAMES: std::cell::RefCell<(Recent, All)> =
                std::cell::RefCell::new((std::array::from_fn(|_| None), All::default()));
        }
        // Keyed by address and length: one text is one entry, and the key costs no hashing
        // of the text. The argument names of a program's ops are found in a few slots
        // (direct-mapped by address), the others in a map.
        let key = (text.as_ptr() as usize, text.len());
        let slot = (key.0 >> 3 ^ key.1) % SLOTS;
        NAMES.with_borrow_mut(|(recent, all)| {
            if let Some((k, name)) = &recent[slot] {
                if *k == key {
                    return name.clone();
                }
            }
            let name = all.entry(key).or_insert_with(|| Name::from(text)).clone();
            recent[slot] = Some((key, name.clone()));
            name
        })
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::from(s))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        String::deserialize(d).map(Name::from)
    }
}

/// One named input or output of a call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The argument or output name.
    pub name: Name,
    /// The history id of the ref in this slot.
    pub hid: Id,
    /// The content id of its value.
    pub cid: Id,
}

/// The stored form of a call. Inputs are sorted by name; outputs keep the op's order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The op's name (its identity).
    pub op: Name,
    /// The semantic version of the code that produced the call ([`Id::unversioned`] while
    /// versioning is off).
    pub semver: Id,
    /// Stored inputs, sorted by name (ignored and defaulted arguments are absent).
    pub inputs: Vec<Slot>,
    /// Outputs in the op's order.
    pub outputs: Vec<Slot>,
    /// With versioning: every component the call touched (itself, tracked functions and
    /// globals, nested ops with theirs), by name, with its semantic id at the time (for now
    /// always its content id; see `versions`). Absent (empty) while versioning is off, so
    /// unversioned records are unchanged by it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deps: BTreeMap<String, Id>,
    /// The git commit (HEAD) of the program's repository in the run that computed the call,
    /// when there was one (see `Engine::set_git_commit`). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
}

/// The canonical order of two text map keys: the bytewise order of their CBOR encodings
/// (the head encodes the length, so for keys under 24 bytes shorter keys come first).
pub(crate) fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    // A text head's first byte grows with the length class and the bytes after it hold the
    // length big-endian, so comparing heads is comparing lengths.
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Appends a CBOR text string.
pub(crate) fn put_text(out: &mut Vec<u8>, s: &str) {
    cbor::write_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends an id as a CBOR byte string.
pub(crate) fn put_id(out: &mut Vec<u8>, id: &Id) {
    cbor::write_head(out, 2, 32);
    out.extend_from_slice(id.as_bytes());
}

/// Appends a deps map (`{component name: id}`) in canonical key order.
pub(crate) fn put_deps(out: &mut Vec<u8>, deps: &BTreeMap<String, Id>) {
    let mut deps: Vec<(&String, &Id)> = deps.iter().collect();
    deps.sort_by(|a, b| key_order(a.0, b.0));
    cbor::write_head(out, 5, deps.len() as u64);
    for (name, dep) in deps {
        put_text(out, name);
        put_id(out, dep);
    }
}

/// Writes the canonical CBOR of `[op, {input name: pick(input)}, semver?]` and hashes it,
/// without building intermediate maps (this runs on every call).
fn call_id(
    kind: Kind,
    op: &str,
    inputs: &[Slot],
    pick: fn(&Slot) -> &Id,
    semver: Option<&Id>,
) -> Id {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn put_inputs<'a>(
        out: &mut Vec<u8>,
        slots: impl Iterator<Item = &'a Slot>,
        pick: fn(&Slot) -> &Id,
    ) {
        for s in slots {
            put_text(out, &s.name);
            put_id(out, pick(s));
        }
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        let out = &mut *buf;
        cbor::write_head(out, 4, if semver.is_some() { 3 } else { 2 });
        put_text(out, op);
        cbor::write_head(out, 5, inputs.len() as u64);
        // Inputs usually come in canonical order already (the engine sorts them by name,
        // which for names of one length is the same order): then no list is made.
        if inputs.is_sorted_by(|a, b| key_order(&a.name, &b.name).is_le()) {
            put_inputs(out, inputs.iter(), pick);
        } else {
            let mut order: Vec<&Slot> = inputs.iter().collect();
            order.sort_by(|a, b| key_order(&a.name, &b.name));
            put_inputs(out, order.into_iter(), pick);
        }
        if let Some(v) = semver {
            put_id(out, v);
        }
        Id::hash(kind, out)
    })
}

/// The content id of a call: `H_call_cid([op, {input name: cid}, semver])`.
pub fn call_cid(op: &str, inputs: &[Slot], semver: &Id) -> Id {
    call_id(Kind::CallCid, op, inputs, |s| &s.cid, Some(semver))
}

/// The history id of a call: `H_call_hid([op, {input name: hid}, semver])`.
pub fn call_hid(op: &str, inputs: &[Slot], semver: &Id) -> Id {
    call_id(Kind::CallHid, op, inputs, |s| &s.hid, Some(semver))
}

/// The call key, without any version: `H_call_key([op, {input name: cid}])`.
pub fn call_key(op: &str, inputs: &[Slot]) -> Id {
    call_id(Kind::CallKey, op, inputs, |s| &s.cid, None)
}

/// The history id of output `name` of the call `call_hid`: `H_output_hid([call_hid, name])`.
pub fn output_hid(call_hid: &Id, name: &str) -> Id {
    // `[call_hid, name]` in canonical CBOR, written directly (this runs for every output).
    let mut bytes = Vec::with_capacity(40 + name.len());
    cbor::write_head(&mut bytes, 4, 2);
    put_id(&mut bytes, call_hid);
    put_text(&mut bytes, name);
    Id::hash(Kind::OutputHid, &bytes)
}

/// The semantic version of a call with dependency set `deps`:
/// `H_semver(canonical CBOR of {component name: semantic id})`.
pub fn semantic_version(deps: &BTreeMap<String, Id>) -> Id {
    let bytes = cbor::to_canonical(deps).expect("names and ids always encode");
    Id::hash(Kind::Semver, &bytes)
}

/// The history id of a value passed in from outside: `H_source_hid(cid bytes)`.
///
/// The last few computed on each thread are remembered: a call's inputs get their source
/// hids when they are wrapped, and again when the call's compact record is written or read
/// (which leaves them out), so the second time costs a lookup, not a BLAKE3 compression.
pub fn source_hid(cid: &Id) -> Id {
    const SLOTS: usize = 64;
    thread_local! {
        static RECENT: std::cell::RefCell<[Option<(Id, Id)>; SLOTS]> =
            const { std::cell::RefCell::new([None; SLOTS]) };
    }
    let slot = usize::from(cid.0[0]) % SLOTS;
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        match recent[slot] {
            Some((c, hid)) if c == *cid => hid,
            _ => {
                let hid = Id::hash(Kind::SourceHid, cid.as_bytes());
                recent[slot] = Some((*cid, hid));
                hid
            }
        }
    })
}

impl CallRecord {
    /// Decodes a record from its CBOR bytes (a direct decoder for the canonical form, serde
    /// for anything else).
    pub fn from_cbor(bytes: &[u8]) -> Result<CallRecord, cbor::DecodeError> {
        match decode::decode(bytes) {
            Some(record) => Ok(record),
            None => cbor::from_slice(bytes),
        }
    }

    /// This call's content id.
    pub fn cid(&self) -> Id {
        call_cid(&self.op, &self.inputs, &self.semver)
    }

    /// Where the record is filed: its call key, call hid and record id.
    pub fn name(&self) -> CallName {
        CallName {
            key: self.key(),
            hid: self.hid(),
            rid: self.rid(),
        }
    }

    /// This call's history id.
    pub fn hid(&self) -> Id {
        call_hid(&self.op, &self.inputs, &self.semver)
    }

    /// This call's key: op and input contents, without the version. Records are filed by it,
    /// so that every version of a call is found in one place.
    pub fn key(&self) -> Id {
        call_key(&self.op, &self.inputs)
    }

    /// The canonical CBOR bytes of the record (what the store compresses), written directly
    /// (this runs on every new call): the same bytes as serde's canonical encoding of the
    /// struct, which a test compares.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bound());
        let slots = |out: &mut Vec<u8>, slots: &[Slot]| {
            cbor::write_head(out, 4, slots.len() as u64);
            for s in slots {
                // Keys in canonical order: "cid" < "hid" < "name".
                cbor::write_head(out, 5, 3);
                put_text(out, "cid");
                put_id(out, &s.cid);
                put_text(out, "hid");
                put_id(out, &s.hid);
                put_text(out, "name");
                put_text(out, &s.name);
            }
        };
        let fields = 4 + usize::from(!self.deps.is_empty()) + usize::from(self.git.is_some());
        cbor::write_head(&mut out, 5, fields as u64);
        // Keys in canonical order (length first): op, git, deps, inputs, semver, outputs.
        put_text(&mut out, "op");
        put_text(&mut out, &self.op);
        if let Some(git) = &self.git {
            put_text(&mut out, "git");
            put_text(&mut out, git);
        }
        if !self.deps.is_empty() {
            put_text(&mut out, "deps");
            put_deps(&mut out, &self.deps);
        }
        put_text(&mut out, "inputs");
        slots(&mut out, &self.inputs);
        put_text(&mut out, "semver");
        put_id(&mut out, &self.semver);
        put_text(&mut out, "outputs");
        slots(&mut out, &self.outputs);
        out
    }

    /// At least the size of [`CallRecord::to_cbor`]'s bytes, so that they are written into
    /// one allocation (growing the buffer was 3 % of a new call).
    fn size_bound(&self) -> usize {
        // A slot: a map head, three keys (13 bytes), two ids (68), a name (its length + 9).
        let slots = self.inputs.iter().chain(&self.outputs);
        let slots: usize = slots.map(|s| 90 + s.name.len()).sum();
        let deps: usize = self.deps.keys().map(|k| 9 + k.len() + 34).sum();
        64 + self.op.len() + self.git.as_ref().map_or(0, |g| 13 + g.len()) + slots + deps
    }

    /// The record id: `H_call_record(canonical CBOR of the record)`.
    pub fn rid(&self) -> Id {
        Id::hash(Kind::CallRecord, &self.to_cbor())
    }

    /// The same outcome recorded under other input histories: inputs take `inputs`' hids and
    /// every output hid is derived anew from the new call hid. Used for content reuse.
    pub fn rehistoried(&self, inputs: Vec<Slot>) -> CallRecord {
        let hid = call_hid(&self.op, &inputs, &self.semver);
        CallRecord {
            op: self.op.clone(),
            semver: self.semver,
            inputs,
            outputs: self
                .outputs
                .iter()
                .map(|o| Slot {
                    name: o.name.clone(),
                    hid: output_hid(&hid, &o.name),
                    cid: o.cid,
                })
                .collect(),
            deps: self.deps.clone(),
            git: self.git.clone(),
        }
    }

    /// The output slot named `name`.
    pub fn output(&self, name: &str) -> Option<&Slot> {
        self.outputs.iter().find(|o| *o.name == *name)
    }
}

/// Where a call record is filed, and so how it is named (docs/FORMAT.md §1): its call key
/// (op and input contents), call hid and record id. Ordered by key, then hid, then record id,
/// so a sorted listing keeps a call key's records together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallName {
    /// The call key: where the record is filed.
    pub key: Id,
    /// The call's history id.
    pub hid: Id,
    /// The record id: the hash of the record.
    pub rid: Id,
}

impl fmt::Display for CallName {
    /// `KEY.HID.RID`, as in a record's file name (without the shard split).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.key, self.hid, self.rid)
    }
}

/// A call record as found in a store, with its ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCall {
    /// The call's key (op and input contents): where the record is filed.
    pub key: Id,
    /// The call's content id.
    pub cid: Id,
    /// The call's history id.
    pub hid: Id,
    /// The record id.
    pub rid: Id,
    /// The record.
    pub record: CallRecord,
}

impl StoredCall {
    /// Where the record is filed.
    pub fn name(&self) -> CallName {
        CallName {
            key: self.key,
            hid: self.hid,
            rid: self.rid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, n: u8) -> Slot {
        Slot {
            name: name.into(),
            hid: Id([n; 32]),
            cid: Id([n + 1; 32]),
        }
    }

    #[test]
    fn cid_ignores_histories_and_hid_ignores_contents() {
        let a = vec![slot("x", 1)];
        let mut b = a.clone();
        b[0].hid = Id([9; 32]);
        let v = Id::unversioned();
        assert_eq!(call_cid("inc", &a, &v), call_cid("inc", &b, &v));
        assert_ne!(call_hid("inc", &a, &v), call_hid("inc", &b, &v));
        assert_ne!(call_cid("inc", &a, &v), call_cid("dec", &a, &v));
        assert_ne!(call_cid("inc", &a, &v), call_cid("inc", &a, &Id([0; 32])));
    }

    #[test]
    fn the_direct_preimage_encoder_equals_the_generic_one() {
        use std::collections::BTreeMap;
        struct ByKey(BTreeMap<String, Id>);
        impl Serialize for ByKey {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in &self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let names = [
            "x",
            "tol",
            "b",
            "aa",
            "a_very_long_argument_name_beyond_23_bytes",
            "zz",
        ];
        let inputs: Vec<Slot> = names
            .iter()
            .enumerate()
            .map(|(i, n)| slot(n, i as u8 * 3))
            .collect();
        let v = Id::unversioned();
        let map = ByKey(inputs.iter().map(|s| (s.name.to_string(), s.hid)).collect());
        let generic = Id::hash(
            Kind::CallHid,
            &cbor::to_canonical(&("op", map, &v)).unwrap(),
        );
        assert_eq!(call_hid("op", &inputs, &v), generic);
        let map = ByKey(inputs.iter().map(|s| (s.name.to_string(), s.cid)).collect());
        let generic = Id::hash(Kind::CallKey, &cbor::to_canonical(&("op", map)).unwrap());
        assert_eq!(call_key("op", &inputs), generic);
        // Inputs already in canonical order take the path that makes no list: same ids.
        let mut sorted = inputs.clone();
        sorted.sort_by(|a, b| key_order(&a.name, &b.name));
        assert_eq!(call_key("op", &sorted), generic);
        assert_eq!(call_hid("op", &sorted, &v), call_hid("op", &inputs, &v));
    }

    #[test]
    fn the_direct_output_hid_preimage_equals_serde() {
        let hid = Id([3; 32]);
        for name in [
            "output_0",
            "",
            "a_name_of_more_than_23_bytes_for_a_longer_head",
        ] {
            let generic = Id::hash(Kind::OutputHid, &cbor::to_canonical(&(&hid, name)).unwrap());
            assert_eq!(output_hid(&hid, name), generic, "{name}");
        }
    }

    #[test]
    fn the_direct_record_encoder_equals_serde() {
        let mut rec = CallRecord {
            op: "train_a_model_with_a_long_name".into(),
            semver: Id([5; 32]),
            inputs: vec![
                slot("x", 1),
                slot("a_very_long_argument_name_beyond_23_bytes", 4),
            ],
            outputs: vec![slot("output_0", 7), slot("b", 9)],
            deps: BTreeMap::new(),
            git: None,
        };
        // serde's bytes, written into one buffer of the size bound (never grown).
        let check = |rec: &CallRecord| {
            let bytes = rec.to_cbor();
            assert_eq!(bytes, cbor::to_canonical(rec).unwrap());
            assert!(bytes.len() <= rec.size_bound(), "{} bytes", bytes.len());
        };
        check(&rec);
        rec.git = Some("0123456789abcdef0123456789abcdef01234567".into());
        check(&rec);
        for name in [
            "zz",
            "a",
            "helper::mix",
            "b",
            "a_name_of_more_than_23_bytes!",
            "ab",
        ] {
            rec.deps.insert(name.into(), Id([name.len() as u8; 32]));
        }
        check(&rec);
        rec.git = None;
        rec.inputs.clear();
        check(&rec);
    }

    #[test]
    fn the_op_is_read_from_either_form_without_the_rest() {
        let mut rec = CallRecord {
            op: "an_op_name_of_more_than_23_bytes".into(),
            semver: Id([5; 32]),
            inputs: vec![slot("x", 1)],
            outputs: vec![slot("output_0", 7)],
            deps: BTreeMap::new(),
            git: None,
        };
        let mut commits = CommitTable::default();
        for step in 0..3 {
            match step {
                1 => rec.git = Some("0123456789abcdef0123456789abcdef01234567".into()),
                2 => {
                    rec.deps.insert("helper".into(), Id([2; 32]));
                    rec.op = "f".into();
                }
                _ => {}
            }
            let cbor = rec.to_cbor();
            let compact = rec.to_compact(&mut commits);
            assert_eq!(op_of(&cbor), Some(&*rec.op), "canonical, step {step}");
            assert_eq!(op_of(&compact), Some(&*rec.op), "compact, step {step}");
            // Only the start is read: a record cut after its op still gives it.
            let cut = cbor.len() - 40;
            assert_eq!(op_of(&cbor[..cut]), Some(&*rec.op));
            // Cut within the op: nothing.
            assert_eq!(op_of(&compact[..2]), None);
        }
        // Other shapes: a value, a map whose first key is not "op", an array of 3.
        assert_eq!(op_of(&cbor::to_canonical(&42u64).unwrap()), None);
        let other: BTreeMap<&str, &str> =
            [("id", "x"), ("xy", "z"), ("abc", "d"), ("abcd", "e")].into();
        assert_eq!(op_of(&cbor::to_canonical(&other).unwrap()), None);
        assert_eq!(op_of(&cbor::to_canonical(&("f", 1, 2)).unwrap()), None);
        assert_eq!(op_of(&[]), None);
    }

    #[test]
    fn input_order_does_not_matter() {
        let v = Id::unversioned();
        let ab = [slot("a", 1), slot("b", 2)];
        let ba = [slot("b", 2), slot("a", 1)];
        assert_eq!(call_hid("f", &ab, &v), call_hid("f", &ba, &v));
    }

    #[test]
    fn rehistoried_keeps_contents_and_derives_output_hids() {
        let rec = CallRecord {
            op: "inc".into(),
            semver: Id::unversioned(),
            inputs: vec![slot("x", 1)],
            outputs: vec![slot("output_0", 3)],
            deps: BTreeMap::new(),
            git: None,
        };
        let mut x = slot("x", 1);
        x.hid = Id([7; 32]);
        let new = rec.rehistoried(vec![x]);
        assert_eq!(new.cid(), rec.cid());
        assert_ne!(new.hid(), rec.hid());
        assert_eq!(new.outputs[0].cid, rec.outputs[0].cid);
        assert_eq!(new.outputs[0].hid, output_hid(&new.hid(), "output_0"));
    }
}
