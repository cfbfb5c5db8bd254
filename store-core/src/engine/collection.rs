//! Collections an op takes or returns per element: [`MList`] and [`MDict`].
//!
//! A collection argument is built by a recorded structural call (`__make_list__` with the
//! elements as inputs, `__make_dict__` with the keys as input names), so each element keeps its
//! history; a collection output is taken apart by one structural get-item call per element, so
//! element `i` of output `o` of call `c` is a ref of its own. The collection's value is its
//! shape (its elements' content ids); each element is a value of its own, stored once however
//! many collections hold it. docs/FORMAT.md §6c has the ids.
//!
//! The `mandala` crate's docs (section *Collections*) show them in use.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Index;
use std::slice::SliceIndex;

use crate::engine::call::{encode_error, not_loaded, CallBuilder, Pending};
use crate::engine::value::{Arg, IntoArg, OpValue, Ref, RefIds, Value};
use crate::engine::Engine;
use crate::error::{Error, FormatError, Result};
use crate::format::cbor::{self, DecodeError, EncodeError};
use crate::format::collection::{self as shape, Shape, Structural};
use crate::format::id::{Id, Kind};
use crate::format::record::Name;

/// A list whose elements are stored, hashed and tracked one by one. As an op parameter it
/// accepts a `Vec<T>`, a `Vec<Ref<T>>` or a slice `&[Ref<T>]` (elements keep their histories),
/// or another list's ref; as an op's return type it gives a `Ref<MList<T>>` whose elements
/// are refs (`r[i]`, `&r[a..b]`, `r.iter()`, `r.len()`).
///
/// In an op's body every element is loaded: index it, iterate it, or turn it into a `Vec`.
/// Build one to return with `collect()`, `MList::from(vec)` or [`MList::push`].
pub struct MList<T> {
    items: Vec<Ref<T>>,
}

/// A map from strings to values whose entries are stored, hashed and tracked one by one (keys
/// in ascending order). As an op parameter it accepts a `BTreeMap`/`HashMap` of `String` to
/// `T` or to `Ref<T>`, or another dict's ref; as an op's return type it gives a
/// `Ref<MDict<T>>` whose entries are refs (`r["key"]`, `r.item(key)`, `r.keys()`, `r.iter()`).
pub struct MDict<T> {
    entries: BTreeMap<String, Ref<T>>,
}

fn loaded<'r, T>(r: &'r Ref<T>, what: fmt::Arguments<'_>) -> &'r T {
    r.get().unwrap_or_else(|| {
        panic!("{what} is not loaded: in an op's body every element is; outside one, unwrap the element refs")
    })
}

impl<T> MList<T> {
    /// An empty list.
    pub fn new() -> MList<T> {
        MList { items: Vec::new() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends a value.
    pub fn push(&mut self, value: T) {
        self.items.push(Ref::detached(value));
    }

    /// Appends an element ref (which keeps its history).
    pub fn push_ref(&mut self, r: Ref<T>) {
        self.items.push(r);
    }

    /// The elements as refs.
    pub fn refs(&self) -> &[Ref<T>] {
        &self.items
    }

    /// Element `i`, if there is one.
    ///
    /// # Panics
    /// If the element is not loaded (never in an op's body; see [`MList`]).
    pub fn get(&self, i: usize) -> Option<&T> {
        self.items
            .get(i)
            .map(|r| loaded(r, format_args!("element {i} of this list")))
    }

    /// The elements, in order. Panics as [`MList::get`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.items
            .iter()
            .enumerate()
            .map(|(i, r)| loaded(r, format_args!("element {i} of this list")))
    }
}

impl<T: Clone> MList<T> {
    /// The elements as a `Vec`. Panics as [`MList::get`].
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }

    /// The elements as a `Vec`. Panics as [`MList::get`].
    pub fn into_vec(self) -> Vec<T> {
        self.to_vec()
    }
}

impl<T> Default for MList<T> {
    fn default() -> Self {
        MList::new()
    }
}

impl<T> Clone for MList<T> {
    fn clone(&self) -> Self {
        MList {
            items: self.items.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for MList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

impl<T> From<Vec<T>> for MList<T> {
    fn from(values: Vec<T>) -> Self {
        values.into_iter().collect()
    }
}

impl<T> From<Vec<Ref<T>>> for MList<T> {
    fn from(items: Vec<Ref<T>>) -> Self {
        MList { items }
    }
}

impl<T> FromIterator<T> for MList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        MList {
            items: iter.into_iter().map(Ref::detached).collect(),
        }
    }
}

impl<T> Index<usize> for MList<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        loaded(&self.items[i], format_args!("element {i} of this list"))
    }
}

impl<T: Clone> IntoIterator for MList<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<T> MDict<T> {
    /// An empty dict.
    pub fn new() -> MDict<T> {
        MDict {
            entries: BTreeMap::new(),
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets entry `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: T) {
        self.entries.insert(key.into(), Ref::detached(value));
    }

    /// Sets entry `key` to the ref `r` (which keeps its history).
    pub fn insert_ref(&mut self, key: impl Into<String>, r: Ref<T>) {
        self.entries.insert(key.into(), r);
    }

    /// The keys, ascending.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    /// The entries as refs.
    pub fn refs(&self) -> &BTreeMap<String, Ref<T>> {
        &self.entries
    }

    /// Entry `key`, if there is one.
    ///
    /// # Panics
    /// If the entry is not loaded (never in an op's body; see [`MList`]).
    pub fn get(&self, key: &str) -> Option<&T> {
        self.entries
            .get(key)
            .map(|r| loaded(r, format_args!("entry {key:?} of this dict")))
    }

    /// The entries, by ascending key. Panics as [`MDict::get`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &T)> + '_ {
        self.entries.iter().map(|(k, r)| {
            (
                k.as_str(),
                loaded(r, format_args!("entry {k:?} of this dict")),
            )
        })
    }
}

impl<T: Clone> MDict<T> {
    /// The entries as a `BTreeMap`. Panics as [`MDict::get`].
    pub fn to_map(&self) -> BTreeMap<String, T> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The entries as a `BTreeMap`. Panics as [`MDict::get`].
    pub fn into_map(self) -> BTreeMap<String, T> {
        self.to_map()
    }
}

impl<T> Default for MDict<T> {
    fn default() -> Self {
        MDict::new()
    }
}

impl<T> Clone for MDict<T> {
    fn clone(&self) -> Self {
        MDict {
            entries: self.entries.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for MDict<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(&self.entries).finish()
    }
}

impl<T, K: Into<String>> FromIterator<(K, T)> for MDict<T> {
    fn from_iter<I: IntoIterator<Item = (K, T)>>(iter: I) -> Self {
        MDict {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), Ref::detached(v)))
                .collect(),
        }
    }
}

impl<T> From<BTreeMap<String, T>> for MDict<T> {
    fn from(map: BTreeMap<String, T>) -> Self {
        map.into_iter().collect()
    }
}

impl<T> From<HashMap<String, T>> for MDict<T> {
    fn from(map: HashMap<String, T>) -> Self {
        map.into_iter().collect()
    }
}

impl<T> Index<&str> for MDict<T> {
    type Output = T;
    fn index(&self, key: &str) -> &T {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry {key:?} in this dict"),
        }
    }
}

// ---- What an `MList<T>` / `MDict<T>` parameter accepts -------------------------------------

impl<T> IntoArg<MList<T>> for Vec<T> {
    fn into_arg(self) -> Arg<MList<T>> {
        Arg::Value(self.into())
    }
}

impl<T> IntoArg<MList<T>> for Vec<Ref<T>> {
    fn into_arg(self) -> Arg<MList<T>> {
        Arg::Value(self.into())
    }
}

impl<T> IntoArg<MList<T>> for &[Ref<T>] {
    fn into_arg(self) -> Arg<MList<T>> {
        Arg::Value(self.to_vec().into())
    }
}

impl<T> IntoArg<MList<T>> for &Vec<Ref<T>> {
    fn into_arg(self) -> Arg<MList<T>> {
        Arg::Value(self.clone().into())
    }
}

impl<T> IntoArg<MDict<T>> for BTreeMap<String, T> {
    fn into_arg(self) -> Arg<MDict<T>> {
        Arg::Value(self.into())
    }
}

impl<T> IntoArg<MDict<T>> for HashMap<String, T> {
    fn into_arg(self) -> Arg<MDict<T>> {
        Arg::Value(self.into())
    }
}

impl<T> IntoArg<MDict<T>> for BTreeMap<String, Ref<T>> {
    fn into_arg(self) -> Arg<MDict<T>> {
        Arg::Value(MDict { entries: self })
    }
}

impl<T> IntoArg<MDict<T>> for HashMap<String, Ref<T>> {
    fn into_arg(self) -> Arg<MDict<T>> {
        Arg::Value(MDict {
            entries: self.into_iter().collect(),
        })
    }
}

// ---- The refs of collections ---------------------------------------------------------------

const NOT_LOADED_LIST: &str = "this list ref was made by hand with Ref::lazy and its shape is not loaded; get list refs from ops or Engine::load_ref";

impl<T> Ref<MList<T>> {
    fn list(&self) -> &MList<T> {
        self.get().expect(NOT_LOADED_LIST)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }

    /// The ref of element `i` (with its history: element `i` of the call that made the list).
    pub fn item(&self, i: usize) -> Option<&Ref<T>> {
        self.list().items.get(i)
    }

    /// The element refs, in order; slice it to pass part of the list to another op.
    pub fn items(&self) -> &[Ref<T>] {
        &self.list().items
    }

    /// The element refs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Ref<T>> {
        self.list().items.iter()
    }
}

/// `r[i]` is element `i`'s ref; `&r[a..b]` a slice of element refs.
impl<T, I: SliceIndex<[Ref<T>]>> Index<I> for Ref<MList<T>> {
    type Output = I::Output;
    fn index(&self, i: I) -> &I::Output {
        &self.list().items[i]
    }
}

impl<'a, T> IntoIterator for &'a Ref<MList<T>> {
    type Item = &'a Ref<T>;
    type IntoIter = std::slice::Iter<'a, Ref<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> Ref<MDict<T>> {
    fn dict(&self) -> &MDict<T> {
        self.get().expect(NOT_LOADED_LIST)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.dict().len()
    }

    /// Whether the dict is empty.
    pub fn is_empty(&self) -> bool {
        self.dict().is_empty()
    }

    /// The ref of entry `key`, if there is one.
    pub fn item(&self, key: &str) -> Option<&Ref<T>> {
        self.dict().entries.get(key)
    }

    /// The keys, ascending.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.dict().keys()
    }

    /// The entries as refs, by ascending key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Ref<T>)> + '_ {
        self.dict().entries.iter().map(|(k, r)| (k.as_str(), r))
    }
}

/// `r["key"]` is the ref of entry `key`; panics if there is none (use [`Ref::item`] to ask).
impl<T> Index<&str> for Ref<MDict<T>> {
    type Output = Ref<T>;
    fn index(&self, key: &str) -> &Ref<T> {
        match self.dict().entries.get(key) {
            Some(r) => r,
            None => panic!("no entry {key:?} in this dict"),
        }
    }
}

// ---- Storing and loading -------------------------------------------------------------------

/// The ids of element ref `r`, and what storing it takes (encoding a detached value now,
/// once: its bytes give its ids too).
fn element_ids<T: Value>(
    r: &Ref<T>,
    op: &'static str,
    what: &dyn Fn() -> String,
) -> Result<(RefIds, Option<Pending>)> {
    match r.known_ids() {
        Some(ids) => Ok((
            ids,
            r.in_memory()
                .then(|| Pending::of_ref(ids.cid, r.clone(), op, what())),
        )),
        None => {
            let value = r.get().expect("a ref has ids or a value");
            let bytes = cbor::encode_value(value).map_err(|c| encode_error(op, what(), c))?;
            let ids = RefIds::source(Id::hash(Kind::Value, &bytes));
            r.set_ids(ids);
            Ok((ids, Some(Pending::Bytes(ids.cid, bytes))))
        }
    }
}

/// How a table shows a pointer: `{"pointer": name}`, not the value behind it.
pub fn pointer_cell(name: String) -> ciborium::Value {
    ciborium::Value::Map(vec![(
        ciborium::Value::Text("pointer".into()),
        ciborium::Value::Text(name),
    )])
}

/// A pointer names one value; a collection is stored per element.
fn pointer_to_collection(op: &str, name: &str) -> Error {
    encode_error(
        op,
        format!("argument '{name}'"),
        EncodeError::Custom("a pointer names one value, not a collection; pass the collection, or a pointer where the op takes a Vec or a map".into()),
    )
}

fn shape_error(cid: &Id, ty: &'static str, reason: &str) -> Error {
    Error::Format(FormatError::Decode {
        cid: cid.to_string(),
        ty,
        cause: DecodeError(reason.to_string()),
    })
}

impl Engine {
    /// Runs the structural call `s` (whose one output is the collection `shape`): found in
    /// this process or the store, or stored now with the values `pending` and the shape.
    /// Structural calls compute nothing and are not counted in [`Engine::stats`].
    fn structural_call(
        &self,
        s: &Structural,
        shape: &Shape,
        pending: Vec<Pending>,
    ) -> Result<RefIds> {
        let found = match self.memo_hit(&s.hid) {
            Some(rec) => Some(rec),
            None => self
                .lookup(s.op, &s.key, &s.hid, &Id::unversioned(), &s.inputs)?
                .map(|f| f.record().clone()),
        };
        if let Some(rec) = found {
            return Ok(RefIds {
                cid: rec.outputs[0].cid,
                hid: rec.outputs[0].hid,
            });
        }
        let bytes = shape.encode();
        let cid = Id::hash(Kind::Value, &bytes);
        let _guard = self.writing()?;
        for p in pending {
            p.store(self)?;
        }
        self.store_value(&cid, &bytes)?;
        let rec = s.record(cid, self.git_commit().map(str::to_string));
        self.store_call(rec, &s.key, &s.hid)?;
        Ok(RefIds {
            cid,
            hid: s.output_hid,
        })
    }

    /// Records the get-item calls `items` (element calls of a collection found under another
    /// history) that this process has not seen, with the values of their keys or indexes.
    fn store_items(&self, items: &[(Structural, Id, Vec<u8>)]) -> Result<()> {
        let todo: Vec<_> = items
            .iter()
            .filter(|(s, _, _)| self.memo_hit(&s.hid).is_none())
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let _guard = self.writing()?;
        for (s, elt_cid, key_bytes) in todo {
            self.store_value(&s.inputs_key_cid(), key_bytes)?;
            let rec = s.record(*elt_cid, self.git_commit().map(str::to_string));
            self.store_call(rec, &s.key, &s.hid)?;
        }
        Ok(())
    }

    /// The values `cids` decoded without the program's types, a collection as its elements
    /// (a list as an array of its element values, a dict as a map from its keys) and a
    /// pointer as `{"pointer": name}`: what tables show. One batch read for the values, one for the elements.
    pub fn load_plain_values(&self, cids: &[Id]) -> Result<Vec<ciborium::Value>> {
        let bytes = self.backend().get_values(cids)?;
        let missing = |cid: &Id| {
            Error::Store(crate::error::StoreError::MissingValue {
                cid: cid.to_string(),
                store: self.backend().describe(),
            })
        };
        let mut shapes = Vec::new();
        let mut elements = Vec::new();
        let mut out = Vec::with_capacity(cids.len());
        for (cid, bytes) in cids.iter().zip(&bytes) {
            let bytes = bytes.as_deref().ok_or_else(|| missing(cid))?;
            match Shape::decode(bytes) {
                Some(shape) => {
                    elements.extend(shape.element_cids());
                    shapes.push((out.len(), shape));
                    out.push(ciborium::Value::Null);
                }
                None if shape::pointer_name(bytes).is_some() => {
                    out.push(pointer_cell(shape::pointer_name(bytes).expect("checked")));
                }
                None => out.push(cbor::decode_value(bytes).map_err(|cause| {
                    Error::Format(FormatError::Decode {
                        cid: cid.to_string(),
                        ty: "a value",
                        cause,
                    })
                })?),
            }
        }
        if shapes.is_empty() {
            return Ok(out);
        }
        let mut values = self.load_values::<ciborium::Value>(&elements)?.into_iter();
        for (at, shape) in shapes {
            out[at] = match shape {
                Shape::List(cids) => {
                    ciborium::Value::Array(values.by_ref().take(cids.len()).collect())
                }
                Shape::Dict(entries) => ciborium::Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, _)| {
                            (
                                ciborium::Value::Text(k),
                                values.next().expect("one per entry"),
                            )
                        })
                        .collect(),
                ),
            };
        }
        Ok(out)
    }

    /// The shape stored under `cid`.
    fn load_shape(&self, cid: &Id, ty: &'static str) -> Result<Shape> {
        let bytes = self.backend().get_value(cid)?.ok_or_else(|| {
            Error::Store(crate::error::StoreError::MissingValue {
                cid: cid.to_string(),
                store: self.backend().describe(),
            })
        })?;
        Shape::decode(&bytes).ok_or_else(|| shape_error(cid, ty, "not a collection's shape"))
    }

    /// Loads every element of `refs` that is not loaded (one batch read).
    fn load_elements<'r, T: Value>(&self, refs: impl Iterator<Item = &'r Ref<T>>) -> Result<()> {
        let lazy: Vec<&Ref<T>> = refs.filter(|r| !r.in_memory()).collect();
        if lazy.is_empty() {
            return Ok(());
        }
        let cids: Vec<Id> = lazy
            .iter()
            .map(|r| r.known_ids().expect("lazy refs have ids").cid)
            .collect();
        for (r, v) in lazy.into_iter().zip(self.load_values::<T>(&cids)?) {
            r.fill(v);
        }
        Ok(())
    }
}

impl Structural {
    /// The content id of a get-item call's key or index input.
    fn inputs_key_cid(&self) -> Id {
        self.inputs
            .iter()
            .find(|s| s.name == shape::INDEX_INPUT || s.name == shape::KEY_INPUT)
            .expect("a get-item call has an index or a key")
            .cid
    }
}

/// Loads the elements of `refs` through `engine`, or fails if one is lazy without one.
fn ensure_loaded<'r, T: Value>(
    refs: impl Iterator<Item = &'r Ref<T>> + Clone,
    engine: Option<&Engine>,
) -> Result<()> {
    match engine {
        Some(e) => e.load_elements(refs),
        None => match refs.into_iter().find(|r| !r.in_memory()) {
            Some(r) => Err(not_loaded(r)),
            None => Ok(()),
        },
    }
}

/// The list's value of a list ref: loaded, or its shape read through `engine`.
fn list_of<T: Value>(r: &Ref<MList<T>>, engine: Option<&Engine>) -> Result<MList<T>> {
    if let Some(list) = r.get() {
        return Ok(list.clone());
    }
    let Some(engine) = engine else {
        return Err(not_loaded(r));
    };
    let ids = r.known_ids().expect("a lazy ref has ids");
    Ok(MList::<T>::from_store(ids, engine, false)?.list().clone())
}

fn dict_of<T: Value>(r: &Ref<MDict<T>>, engine: Option<&Engine>) -> Result<MDict<T>> {
    if let Some(dict) = r.get() {
        return Ok(dict.clone());
    }
    let Some(engine) = engine else {
        return Err(not_loaded(r));
    };
    let ids = r.known_ids().expect("a lazy ref has ids");
    Ok(MDict::<T>::from_store(ids, engine, false)?.dict().clone())
}

impl<T: Value> OpValue for MList<T> {
    type Plain = Vec<T>;

    fn declare(arg: &Arg<Self>, call: &mut CallBuilder, name: &'static str) -> Result<()> {
        let ids = match arg {
            Arg::Ref(r) if r.known_ids().is_some() => r.known_ids().expect("checked"),
            Arg::Ref(r) => make_list(call, r.get().expect("a ref has ids or a value"), name)?,
            Arg::Value(list) => make_list(call, list, name)?,
            Arg::Pointer(_) => return Err(pointer_to_collection(call.op(), name)),
        };
        call.push_input(Name::from_static(name), ids);
        Ok(())
    }

    fn into_body(arg: Arg<Self>, engine: Option<&Engine>) -> Result<Self> {
        let list = match arg {
            Arg::Value(list) => list,
            Arg::Ref(r) => list_of(&r, engine)?,
            Arg::Pointer(p) => p.into_value(),
        };
        ensure_loaded(list.items.iter(), engine)?;
        Ok(list)
    }

    fn record(value: Self, call: &mut CallBuilder, i: usize) -> Result<Ref<Self>> {
        let (name, hid) = call.output_slot(i);
        let op = call.op();
        let mut cids = Vec::with_capacity(value.items.len());
        for (k, r) in value.items.iter().enumerate() {
            let (ids, pending) = element_ids(r, op, &|| format!("element {k} of output '{name}'"))?;
            if let Some(p) = pending {
                call.push_pending(p);
            }
            cids.push(ids.cid);
        }
        let shape = Shape::List(cids);
        let bytes = shape.encode();
        let ids = RefIds {
            cid: Id::hash(Kind::Value, &bytes),
            hid,
        };
        call.push_output(ids, bytes);
        let git = call
            .engine()
            .and_then(|e| e.git_commit())
            .map(str::to_string);
        let Shape::List(cids) = shape else {
            unreachable!()
        };
        let mut items = Vec::with_capacity(cids.len());
        for (k, (r, cid)) in value.items.into_iter().zip(cids).enumerate() {
            let s = Structural::list_item((ids.cid, ids.hid), k);
            call.push_pending(Pending::Bytes(s.inputs_key_cid(), shape::index_value(k)));
            call.push_structural(s.record(cid, git.clone()), s.key, s.hid);
            let elt = RefIds {
                cid,
                hid: s.output_hid,
            };
            items.push(match r.get() {
                Some(v) => Ref::loaded(elt, v.clone()),
                None => Ref::lazy(elt),
            });
        }
        Ok(Ref::loaded(ids, MList { items }))
    }

    fn from_store(ids: RefIds, engine: &Engine, reused: bool) -> Result<Ref<Self>> {
        let Shape::List(cids) = engine.load_shape(&ids.cid, "a list (MList)")? else {
            return Err(shape_error(
                &ids.cid,
                "a list (MList)",
                "a dict's shape, not a list's",
            ));
        };
        let mut items = Vec::with_capacity(cids.len());
        let mut calls = Vec::new();
        for (k, cid) in cids.into_iter().enumerate() {
            let s = Structural::list_item((ids.cid, ids.hid), k);
            items.push(Ref::lazy(RefIds {
                cid,
                hid: s.output_hid,
            }));
            if reused {
                calls.push((s, cid, shape::index_value(k)));
            }
        }
        engine.store_items(&calls)?;
        Ok(Ref::loaded(ids, MList { items }))
    }

    fn unwrap_ref(r: &Ref<Self>, engine: Option<&Engine>) -> Result<Vec<T>> {
        let list = list_of(r, engine)?;
        ensure_loaded(list.items.iter(), engine)?;
        Ok(list.to_vec())
    }

    fn detached_ids(value: &Self) -> std::result::Result<RefIds, EncodeError> {
        let cids = value
            .items
            .iter()
            .map(|r| r.try_ids().map(|ids| ids.cid))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RefIds::source(Shape::List(cids).cid()))
    }
}

/// The `__make_list__` call that builds `list`, argument `name` of `call`: its ids.
fn make_list<T: Value>(call: &CallBuilder, list: &MList<T>, name: &'static str) -> Result<RefIds> {
    let op = call.op();
    let mut pending = Vec::new();
    let mut elements = Vec::with_capacity(list.items.len());
    for (k, r) in list.items.iter().enumerate() {
        let (ids, p) = element_ids(r, op, &|| format!("element {k} of argument '{name}'"))?;
        pending.extend(p);
        elements.push((ids.cid, ids.hid));
    }
    let s = Structural::make_list(&elements);
    let shape = Shape::List(elements.iter().map(|(cid, _)| *cid).collect());
    call.engine_ref().structural_call(&s, &shape, pending)
}

/// The `__make_dict__` call that builds `dict`, argument `name` of `call`: its ids.
fn make_dict<T: Value>(call: &CallBuilder, dict: &MDict<T>, name: &'static str) -> Result<RefIds> {
    let op = call.op();
    let mut pending = Vec::new();
    let mut entries = Vec::with_capacity(dict.entries.len());
    for (key, r) in &dict.entries {
        let (ids, p) = element_ids(r, op, &|| format!("entry {key:?} of argument '{name}'"))?;
        pending.extend(p);
        entries.push((key.clone(), ids.cid, ids.hid));
    }
    let s = Structural::make_dict(&entries);
    let shape = Shape::Dict(
        entries
            .iter()
            .map(|(k, cid, _)| (k.clone(), *cid))
            .collect(),
    );
    call.engine_ref().structural_call(&s, &shape, pending)
}

impl<T: Value> OpValue for MDict<T> {
    type Plain = BTreeMap<String, T>;

    fn declare(arg: &Arg<Self>, call: &mut CallBuilder, name: &'static str) -> Result<()> {
        let ids = match arg {
            Arg::Ref(r) if r.known_ids().is_some() => r.known_ids().expect("checked"),
            Arg::Ref(r) => make_dict(call, r.get().expect("a ref has ids or a value"), name)?,
            Arg::Value(dict) => make_dict(call, dict, name)?,
            Arg::Pointer(_) => return Err(pointer_to_collection(call.op(), name)),
        };
        call.push_input(Name::from_static(name), ids);
        Ok(())
    }

    fn into_body(arg: Arg<Self>, engine: Option<&Engine>) -> Result<Self> {
        let dict = match arg {
            Arg::Value(dict) => dict,
            Arg::Ref(r) => dict_of(&r, engine)?,
            Arg::Pointer(p) => p.into_value(),
        };
        ensure_loaded(dict.entries.values(), engine)?;
        Ok(dict)
    }

    fn record(value: Self, call: &mut CallBuilder, i: usize) -> Result<Ref<Self>> {
        let (name, hid) = call.output_slot(i);
        let op = call.op();
        let mut entries = Vec::with_capacity(value.entries.len());
        for (key, r) in &value.entries {
            let (ids, pending) =
                element_ids(r, op, &|| format!("entry {key:?} of output '{name}'"))?;
            if let Some(p) = pending {
                call.push_pending(p);
            }
            entries.push((key.clone(), ids.cid));
        }
        let shape = Shape::Dict(entries);
        let bytes = shape.encode();
        let ids = RefIds {
            cid: Id::hash(Kind::Value, &bytes),
            hid,
        };
        call.push_output(ids, bytes);
        let git = call
            .engine()
            .and_then(|e| e.git_commit())
            .map(str::to_string);
        let Shape::Dict(entries) = shape else {
            unreachable!()
        };
        let mut out = BTreeMap::new();
        for ((key, r), (_, cid)) in value.entries.into_iter().zip(entries) {
            let s = Structural::dict_item((ids.cid, ids.hid), &key);
            call.push_pending(Pending::Bytes(s.inputs_key_cid(), shape::key_value(&key)));
            call.push_structural(s.record(cid, git.clone()), s.key, s.hid);
            let elt = RefIds {
                cid,
                hid: s.output_hid,
            };
            out.insert(
                key,
                match r.get() {
                    Some(v) => Ref::loaded(elt, v.clone()),
                    None => Ref::lazy(elt),
                },
            );
        }
        Ok(Ref::loaded(ids, MDict { entries: out }))
    }

    fn from_store(ids: RefIds, engine: &Engine, reused: bool) -> Result<Ref<Self>> {
        let Shape::Dict(entries) = engine.load_shape(&ids.cid, "a dict (MDict)")? else {
            return Err(shape_error(
                &ids.cid,
                "a dict (MDict)",
                "a list's shape, not a dict's",
            ));
        };
        let mut out = BTreeMap::new();
        let mut calls = Vec::new();
        for (key, cid) in entries {
            let s = Structural::dict_item((ids.cid, ids.hid), &key);
            out.insert(
                key.clone(),
                Ref::lazy(RefIds {
                    cid,
                    hid: s.output_hid,
                }),
            );
            if reused {
                calls.push((s, cid, shape::key_value(&key)));
            }
        }
        engine.store_items(&calls)?;
        Ok(Ref::loaded(ids, MDict { entries: out }))
    }

    fn unwrap_ref(r: &Ref<Self>, engine: Option<&Engine>) -> Result<BTreeMap<String, T>> {
        let dict = dict_of(r, engine)?;
        ensure_loaded(dict.entries.values(), engine)?;
        Ok(dict.to_map())
    }

    fn detached_ids(value: &Self) -> std::result::Result<RefIds, EncodeError> {
        let entries = value
            .entries
            .iter()
            .map(|(k, r)| r.try_ids().map(|ids| (k.clone(), ids.cid)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RefIds::source(Shape::Dict(entries).cid()))
    }
}
