//! Collections in the store: the stored shape of a list or a dict (its elements' content ids
//! under a CBOR tag, never the elements themselves) and the structural calls that build a
//! collection from element refs and take one apart into element refs (docs/FORMAT.md §6c);
//! and pointers, values named by the user instead of by their content (§6d).
//!
//! ```
//! use store_core::format::collection::Shape;
//! use store_core::{Id, Kind};
//! let a = Id::hash(Kind::Value, &[1]);
//! let shape = Shape::List(vec![a, a]);
//! let bytes = shape.encode();
//! assert_eq!(&bytes[..6], &[0xda, 0x6d, 0x61, 0x6e, 0x6c, 0x82]); // tag 'manl', 2 elements
//! assert_eq!(Shape::decode(&bytes), Some(shape));
//! assert_eq!(Shape::decode(&[0x01]), None); // any other value is not a collection
//! ```

use crate::format::cbor;
use crate::format::id::{Id, Kind};
use crate::format::record::{self, key_order, put_id, put_text, Name, Slot};

/// The op of the structural call that builds a list from its elements.
pub const MAKE_LIST: &str = "__make_list__";
/// The op of the structural call that builds a dict from its entries.
pub const MAKE_DICT: &str = "__make_dict__";
/// The op of the structural call that takes element `index` out of a list.
pub const LIST_GETITEM: &str = "__list_getitem__";
/// The op of the structural call that takes entry `key` out of a dict.
pub const DICT_GETITEM: &str = "__dict_getitem__";
/// The output name of [`MAKE_LIST`].
pub const LIST_OUTPUT: &str = "list";
/// The output name of [`MAKE_DICT`].
pub const DICT_OUTPUT: &str = "dict";
/// The output name of the get-item calls.
pub const ITEM_OUTPUT: &str = "item";
/// The input of [`LIST_GETITEM`] holding the index (a `u64`).
pub const INDEX_INPUT: &str = "index";
/// The input of [`DICT_GETITEM`] holding the key (a string).
pub const KEY_INPUT: &str = "key";
/// The prefix of [`MAKE_LIST`]'s input names: `elts_0`, `elts_1`, …
pub const ELEMENT_PREFIX: &str = "elts_";

/// The CBOR tag of a list's shape: `0x6d616e6c` ("manl").
pub const LIST_TAG: u64 = 0x6d61_6e6c;
/// The CBOR tag of a dict's shape: `0x6d616e64` ("mand").
pub const DICT_TAG: u64 = 0x6d61_6e64;

/// The op of the structural call that binds a pointer's name to its value.
pub const POINTER_OP: &str = "__pointer__";
/// The input of [`POINTER_OP`]: the pointer's placeholder.
pub const POINTER_INPUT: &str = "name";
/// The output of [`POINTER_OP`]: the value behind the name.
pub const POINTER_OUTPUT: &str = "value";
/// The CBOR tag of a pointer's placeholder: `0x6d616e70` ("manp").
pub const POINTER_TAG: u64 = 0x6d61_6e70;

/// The canonical CBOR of the placeholder of the pointer named `name`: `tag(POINTER_TAG, name)`.
/// Its value cid is the pointer's identity.
pub fn pointer_placeholder(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 14);
    cbor::write_head(&mut out, 6, POINTER_TAG);
    put_text(&mut out, name);
    out
}

/// The pointer name held by a placeholder, or `None` for any other value.
pub fn pointer_name(bytes: &[u8]) -> Option<String> {
    let mut r = Reader(bytes);
    if r.head()? != (6, POINTER_TAG) {
        return None;
    }
    let name = r.text()?;
    r.0.is_empty().then_some(name)
}

/// Whether the first 5 bytes of a value's CBOR are the head of a list's or a dict's shape.
pub fn is_shape_head(head: &[u8; 5]) -> bool {
    [LIST_TAG, DICT_TAG].iter().any(|tag| {
        let mut h = Vec::with_capacity(5);
        cbor::write_head(&mut h, 6, *tag);
        h == head
    })
}

/// Whether `op` is one of the structural ops above (recorded by mandala itself, not by an
/// `#[op]`).
pub fn is_structural(op: &str) -> bool {
    matches!(
        op,
        MAKE_LIST | MAKE_DICT | LIST_GETITEM | DICT_GETITEM | POINTER_OP
    )
}

/// The name of [`MAKE_LIST`]'s input for element `i`.
pub fn element_input(i: usize) -> String {
    format!("{ELEMENT_PREFIX}{i}")
}

/// The element index of a [`MAKE_LIST`] input name (`elts_3` → 3).
pub fn element_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(ELEMENT_PREFIX)?;
    // `elts_03` is not a name mandala writes; refuse it so each index has one name.
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// What a collection value is stored as: the content ids of its elements, in order (a list)
/// or by key (a dict, keys ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `tag(LIST_TAG, [bytes(32), …])`.
    List(Vec<Id>),
    /// `tag(DICT_TAG, {text: bytes(32), …})`, map keys in canonical order; held here sorted by
    /// key as text.
    Dict(Vec<(String, Id)>),
}

impl Shape {
    /// The canonical CBOR of the shape (the bytes stored, and hashed into the collection's cid).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 34 * self.len());
        match self {
            Shape::List(cids) => {
                cbor::write_head(&mut out, 6, LIST_TAG);
                cbor::write_head(&mut out, 4, cids.len() as u64);
                for cid in cids {
                    put_id(&mut out, cid);
                }
            }
            Shape::Dict(entries) => {
                cbor::write_head(&mut out, 6, DICT_TAG);
                cbor::write_head(&mut out, 5, entries.len() as u64);
                let mut order: Vec<&(String, Id)> = entries.iter().collect();
                order.sort_by(|a, b| key_order(&a.0, &b.0));
                for (key, cid) in order {
                    put_text(&mut out, key);
                    put_id(&mut out, cid);
                }
            }
        }
        out
    }

    /// The content id of the collection: the value id of [`Shape::encode`].
    pub fn cid(&self) -> Id {
        Id::hash(Kind::Value, &self.encode())
    }

    /// The shape stored in `bytes`, or `None` if they are not a collection's shape (any other
    /// value, or a damaged shape).
    pub fn decode(bytes: &[u8]) -> Option<Shape> {
        let mut r = Reader(bytes);
        let shape = match r.head()? {
            (6, LIST_TAG) => {
                let (4, n) = r.head()? else { return None };
                let mut cids = Vec::with_capacity((n as usize).min(bytes.len() / 34));
                for _ in 0..n {
                    cids.push(r.id()?);
                }
                Shape::List(cids)
            }
            (6, DICT_TAG) => {
                let (5, n) = r.head()? else { return None };
                let mut entries = Vec::with_capacity((n as usize).min(bytes.len() / 35));
                for _ in 0..n {
                    let key = r.text()?;
                    entries.push((key, r.id()?));
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                    return None;
                }
                Shape::Dict(entries)
            }
            _ => return None,
        };
        r.0.is_empty().then_some(shape)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Shape::List(c) => c.len(),
            Shape::Dict(e) => e.len(),
        }
    }

    /// Whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements' content ids, in order (by key for a dict).
    pub fn element_cids(&self) -> Vec<Id> {
        match self {
            Shape::List(c) => c.clone(),
            Shape::Dict(e) => e.iter().map(|(_, c)| *c).collect(),
        }
    }
}

/// A structural call, fully determined by its inputs: the record's parts and its ids.
#[derive(Clone, Debug)]
pub struct Structural {
    /// The op (one of the four above).
    pub op: &'static str,
    /// Its inputs, sorted by name.
    pub inputs: Vec<Slot>,
    /// Its call hid (unversioned: structural calls have no code version).
    pub hid: Id,
    /// Its call key.
    pub key: Id,
    /// The hid of its one output.
    pub output_hid: Id,
    /// The name of its one output.
    pub output: &'static str,
}

impl Structural {
    fn new(op: &'static str, mut inputs: Vec<Slot>, output: &'static str) -> Structural {
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        let hid = record::call_hid(op, &inputs, &Id::unversioned());
        Structural {
            op,
            key: record::call_key(op, &inputs),
            output_hid: record::output_hid(&hid, output),
            inputs,
            hid,
            output,
        }
    }

    /// `__make_list__` over elements given as `(cid, hid)`, in order.
    pub fn make_list(elements: &[(Id, Id)]) -> Structural {
        let inputs = elements
            .iter()
            .enumerate()
            .map(|(i, (cid, hid))| Slot {
                name: Name::from(element_input(i)),
                hid: *hid,
                cid: *cid,
            })
            .collect();
        Structural::new(MAKE_LIST, inputs, LIST_OUTPUT)
    }

    /// `__make_dict__` over entries `(key, cid, hid)`: each key is an input name.
    pub fn make_dict(entries: &[(String, Id, Id)]) -> Structural {
        let inputs = entries
            .iter()
            .map(|(key, cid, hid)| Slot {
                name: Name::from(key.as_str()),
                hid: *hid,
                cid: *cid,
            })
            .collect();
        Structural::new(MAKE_DICT, inputs, DICT_OUTPUT)
    }

    /// `__list_getitem__`: element `index` of the list `(cid, hid)`. The index is an input
    /// passed from outside: its value is [`index_value`].
    pub fn list_item(list: (Id, Id), index: usize) -> Structural {
        let cid = Id::hash(Kind::Value, &index_value(index));
        Structural::new(
            LIST_GETITEM,
            vec![
                Slot {
                    name: Name::from_static(INDEX_INPUT),
                    hid: record::source_hid(&cid),
                    cid,
                },
                Slot {
                    name: Name::from_static(LIST_OUTPUT),
                    hid: list.1,
                    cid: list.0,
                },
            ],
            ITEM_OUTPUT,
        )
    }

    /// `__dict_getitem__`: entry `key` of the dict `(cid, hid)`. The key is an input passed
    /// from outside: its value is [`key_value`].
    pub fn dict_item(dict: (Id, Id), key: &str) -> Structural {
        let cid = Id::hash(Kind::Value, &key_value(key));
        Structural::new(
            DICT_GETITEM,
            vec![
                Slot {
                    name: Name::from_static(KEY_INPUT),
                    hid: record::source_hid(&cid),
                    cid,
                },
                Slot {
                    name: Name::from_static(DICT_OUTPUT),
                    hid: dict.1,
                    cid: dict.0,
                },
            ],
            ITEM_OUTPUT,
        )
    }

    /// `__pointer__`: the binding of the pointer whose placeholder has content id `cid` (a
    /// value passed in from outside) to the value behind its name.
    pub fn pointer(cid: Id) -> Structural {
        Structural::new(
            POINTER_OP,
            vec![Slot {
                name: Name::from_static(POINTER_INPUT),
                hid: record::source_hid(&cid),
                cid,
            }],
            POINTER_OUTPUT,
        )
    }

    /// The call's record, with its one output of content id `output_cid`.
    pub fn record(&self, output_cid: Id, git: Option<String>) -> record::CallRecord {
        record::CallRecord {
            op: Name::from_static(self.op),
            semver: Id::unversioned(),
            inputs: self.inputs.clone(),
            outputs: vec![Slot {
                name: Name::from_static(self.output),
                hid: self.output_hid,
                cid: output_cid,
            }],
            deps: Default::default(),
            git,
        }
    }
}

/// Reads the few CBOR items a shape holds.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A head: (major type, argument).
    fn head(&mut self) -> Option<(u8, u64)> {
        let first = *self.take(1)?.first()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => info as u64,
            24 => self.take(1)?[0] as u64,
            25 => u16::from_be_bytes(self.take(2)?.try_into().ok()?) as u64,
            26 => u32::from_be_bytes(self.take(4)?.try_into().ok()?) as u64,
            27 => u64::from_be_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        };
        Some((major, arg))
    }

    fn id(&mut self) -> Option<Id> {
        let (2, 32) = self.head()? else { return None };
        Some(Id(self.take(32)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let (3, n) = self.head()? else { return None };
        let bytes = self.take(usize::try_from(n).ok()?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// The canonical CBOR of a list index (a `u64`).
pub fn index_value(index: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    cbor::write_head(&mut out, 0, index as u64);
    out
}

/// The canonical CBOR of a dict key (a text string).
pub fn key_value(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    put_text(&mut out, key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_names_round_trip() {
        assert_eq!(element_input(12), "elts_12");
        assert_eq!(element_index("elts_12"), Some(12));
        assert_eq!(element_index("elts_0"), Some(0));
        assert_eq!(element_index("elts_012"), None);
        assert_eq!(element_index("x"), None);
    }

    #[test]
    fn dict_shapes_are_canonical_and_sorted() {
        let (a, b) = (Id([1; 32]), Id([2; 32]));
        let one = Shape::Dict(vec![("bb".into(), a), ("c".into(), b)]);
        let bytes = one.encode();
        // Canonical order puts the shorter key first, whatever the held order.
        let c_at = bytes.windows(2).position(|w| w == [0x61, b'c']).unwrap();
        let bb_at = bytes
            .windows(3)
            .position(|w| w == [0x62, b'b', b'b'])
            .unwrap();
        assert!(c_at < bb_at);
        assert_eq!(Shape::decode(&bytes), Some(one));
        assert!(is_shape_head(bytes[..5].try_into().unwrap()));
        assert!(!is_shape_head(&[0x85, 1, 2, 3, 4]));
        // The same dict given in another order has the same bytes.
        let other = Shape::Dict(vec![("c".into(), b), ("bb".into(), a)]);
        assert_eq!(other.encode(), bytes);
    }

    #[test]
    fn pointer_placeholders_round_trip() {
        let bytes = pointer_placeholder("training-set-v3");
        assert_eq!(&bytes[..6], &[0xda, 0x6d, 0x61, 0x6e, 0x70, 0x6f]);
        assert_eq!(pointer_name(&bytes).as_deref(), Some("training-set-v3"));
        assert_eq!(pointer_name(&bytes[..bytes.len() - 1]), None);
        assert_eq!(pointer_name(&key_value("training-set-v3")), None);
    }

    #[test]
    fn damaged_shapes_are_not_collections() {
        let mut bytes = Shape::List(vec![Id([1; 32])]).encode();
        bytes.truncate(bytes.len() - 1);
        assert_eq!(Shape::decode(&bytes), None);
        assert_eq!(Shape::decode(&[0xc2, 0x41, 0x01]), None); // a bignum is not a list
    }
}
