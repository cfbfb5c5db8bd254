//! Storing and loading collections: the structural calls that build an argument and take an
//! output apart, the shapes, and the `OpValue` implementations of `MList` and `MDict` (one
//! implementation for both, through the `Collection` trait).

use std::collections::BTreeMap;

use super::{MDict, MList};
use crate::engine::call::{encode_error, not_loaded, CallBuilder, Pending};
use crate::engine::value::{Arg, OpValue, Ref, RefIds, Value};
use crate::engine::Engine;
use crate::error::{Error, FormatError, Result};
use crate::format::cbor::{self, DecodeError, EncodeError};
use crate::format::collection::{self as shape, Shape, Structural};
use crate::format::id::{Id, Kind};
use crate::format::record::Name;

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
            let value = r.value().expect("a ref has ids or a value");
            let bytes = cbor::encode_value(value).map_err(|c| encode_error(op, what(), c))?;
            let ids = RefIds::source(Id::hash(Kind::Value, &bytes));
            r.set_ids(ids);
            Ok((ids, Some(Pending::Bytes(ids.cid, bytes))))
        }
    }
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
        if let Some(rec) = self.find_structural(s)? {
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
        let mut shapes = Vec::new();
        let mut elements = Vec::new();
        let mut out = Vec::with_capacity(cids.len());
        for (cid, bytes) in cids.iter().zip(&bytes) {
            let bytes = bytes.as_deref().ok_or_else(|| self.missing_value(cid))?;
            if let Some(shape) = Shape::decode(bytes) {
                elements.extend(shape.element_cids());
                shapes.push((out.len(), shape));
                out.push(ciborium::Value::Null);
            } else if let Some(name) = shape::pointer_name(bytes) {
                out.push(crate::engine::pointer::pointer_cell(name));
            } else {
                out.push(cbor::decode_value(bytes).map_err(|cause| {
                    Error::Format(FormatError::Decode {
                        cid: cid.to_string(),
                        ty: "a value",
                        cause,
                    })
                })?);
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
        let bytes = self
            .backend()
            .get_value(cid)?
            .ok_or_else(|| self.missing_value(cid))?;
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

/// What a list and a dict share, so one implementation stores and loads both: element refs
/// under keys (positions or names), a shape, the structural call that builds one from element
/// refs, and the get-item call of each element.
trait Collection<T: Value>: Clone + Sized {
    /// What an element is found by: its position, or its name.
    type Key: Clone;
    /// The collection as errors name it.
    const TYPE: &'static str;

    /// The elements with their keys, in order.
    fn entries(&self) -> Vec<(Self::Key, &Ref<T>)>;
    /// The collection of these elements.
    fn from_entries(entries: Vec<(Self::Key, Ref<T>)>) -> Self;
    /// An element as errors name it ("element 3", "entry \"a\"").
    fn describe(key: &Self::Key) -> String;
    /// The shape of elements with these content ids.
    fn shape(entries: Vec<(Self::Key, Id)>) -> Shape;
    /// The elements' keys and content ids, if `shape` is this kind of collection's.
    fn keyed(shape: Shape) -> Option<Vec<(Self::Key, Id)>>;
    /// The structural call that builds the collection from elements `(key, cid, hid)`.
    fn builder(elements: Vec<(Self::Key, Id, Id)>) -> Structural;
    /// The get-item call of element `key` of the collection `(cid, hid)`, and the value of
    /// its key input.
    fn item(collection: (Id, Id), key: &Self::Key) -> (Structural, Vec<u8>);
}

impl<T: Value> Collection<T> for MList<T> {
    type Key = usize;
    const TYPE: &'static str = "a list (MList)";

    fn entries(&self) -> Vec<(usize, &Ref<T>)> {
        self.items.iter().enumerate().collect()
    }
    fn from_entries(entries: Vec<(usize, Ref<T>)>) -> Self {
        MList {
            items: entries.into_iter().map(|(_, r)| r).collect(),
        }
    }
    fn describe(key: &usize) -> String {
        format!("element {key}")
    }
    fn shape(entries: Vec<(usize, Id)>) -> Shape {
        Shape::List(entries.into_iter().map(|(_, cid)| cid).collect())
    }
    fn keyed(shape: Shape) -> Option<Vec<(usize, Id)>> {
        match shape {
            Shape::List(cids) => Some(cids.into_iter().enumerate().collect()),
            Shape::Dict(_) => None,
        }
    }
    fn builder(elements: Vec<(usize, Id, Id)>) -> Structural {
        let pairs: Vec<(Id, Id)> = elements.into_iter().map(|(_, c, h)| (c, h)).collect();
        Structural::make_list(&pairs)
    }
    fn item(list: (Id, Id), key: &usize) -> (Structural, Vec<u8>) {
        (Structural::list_item(list, *key), shape::index_value(*key))
    }
}

impl<T: Value> Collection<T> for MDict<T> {
    type Key = String;
    const TYPE: &'static str = "a dict (MDict)";

    fn entries(&self) -> Vec<(String, &Ref<T>)> {
        self.entries.iter().map(|(k, r)| (k.clone(), r)).collect()
    }
    fn from_entries(entries: Vec<(String, Ref<T>)>) -> Self {
        MDict {
            entries: entries.into_iter().collect(),
        }
    }
    fn describe(key: &String) -> String {
        format!("entry {key:?}")
    }
    fn shape(entries: Vec<(String, Id)>) -> Shape {
        Shape::Dict(entries)
    }
    fn keyed(shape: Shape) -> Option<Vec<(String, Id)>> {
        match shape {
            Shape::Dict(entries) => Some(entries),
            Shape::List(_) => None,
        }
    }
    fn builder(elements: Vec<(String, Id, Id)>) -> Structural {
        Structural::make_dict(&elements)
    }
    fn item(dict: (Id, Id), key: &String) -> (Structural, Vec<u8>) {
        (Structural::dict_item(dict, key), shape::key_value(key))
    }
}

/// Argument `name` of `call`: the ids of a collection ref, or of the collection `arg` holds
/// built by its structural call (recorded now, unless stored).
fn declare<T: Value, C: Collection<T> + OpValue>(
    arg: &Arg<C>,
    call: &mut CallBuilder,
    name: &'static str,
) -> Result<()> {
    let value = match arg {
        Arg::Ref(r) => match r.known_ids() {
            Some(ids) => {
                call.push_input(Name::from_static(name), ids);
                return Ok(());
            }
            None => r.value().expect("a ref has ids or a value"),
        },
        Arg::Value(v) => v,
        Arg::Pointer(_) => return Err(pointer_to_collection(call.op(), name)),
    };
    let op = call.op();
    let mut pending = Vec::new();
    let mut elements = Vec::new();
    for (key, r) in value.entries() {
        let what = || format!("{} of argument '{name}'", C::describe(&key));
        let (ids, p) = element_ids(r, op, &what)?;
        pending.extend(p);
        elements.push((key, ids.cid, ids.hid));
    }
    let shape = C::shape(elements.iter().map(|(k, c, _)| (k.clone(), *c)).collect());
    let s = C::builder(elements);
    let ids = call.engine_ref().structural_call(&s, &shape, pending)?;
    call.push_input(Name::from_static(name), ids);
    Ok(())
}

/// The collection an argument passes to the body, every element loaded.
fn into_body<T: Value, C: Collection<T> + OpValue>(
    arg: Arg<C>,
    engine: Option<&Engine>,
) -> Result<C> {
    let value = match arg {
        Arg::Value(v) => v,
        Arg::Ref(r) => value_of(&r, engine)?,
        Arg::Pointer(p) => p.into_value(),
    };
    ensure_loaded(value.entries().into_iter().map(|(_, r)| r), engine)?;
    Ok(value)
}

/// The collection of a collection ref: loaded, or its shape read through `engine`.
fn value_of<T: Value, C: Collection<T> + OpValue>(
    r: &Ref<C>,
    engine: Option<&Engine>,
) -> Result<C> {
    if let Some(value) = r.value() {
        return Ok(value.clone());
    }
    let Some(engine) = engine else {
        return Err(not_loaded(r));
    };
    let ids = r.known_ids().expect("a lazy ref has ids");
    let loaded = from_store::<T, C>(ids, engine, false)?;
    // Kept in `r`: its shape is read once.
    Ok(r.fill(loaded.value().expect("loaded").clone()).clone())
}

/// Records `value` as output `i` of the executed `call`: its elements' values, its shape, and
/// one get-item call per element, which gives each element its history.
fn record<T: Value, C: Collection<T> + OpValue>(
    value: C,
    call: &mut CallBuilder,
    i: usize,
) -> Result<Ref<C>> {
    let (name, hid) = call.output_slot(i);
    let op = call.op();
    let entries = value.entries();
    let mut cids = Vec::with_capacity(entries.len());
    for (key, r) in &entries {
        let what = || format!("{} of output '{name}'", C::describe(key));
        let (ids, pending) = element_ids(r, op, &what)?;
        if let Some(p) = pending {
            call.push_pending(p);
        }
        cids.push(ids.cid);
    }
    let shape = C::shape(
        entries
            .iter()
            .map(|(k, _)| k.clone())
            .zip(cids.iter().copied())
            .collect(),
    );
    let bytes = shape.encode();
    let ids = RefIds {
        cid: Id::hash(Kind::Value, &bytes),
        hid,
    };
    call.push_output(ids, Pending::Bytes(ids.cid, bytes));
    let git = call
        .engine()
        .and_then(|e| e.git_commit())
        .map(str::to_string);
    let mut items = Vec::with_capacity(cids.len());
    for ((key, r), cid) in entries.into_iter().zip(cids) {
        let (s, key_bytes) = C::item((ids.cid, ids.hid), &key);
        call.push_pending(Pending::Bytes(s.inputs_key_cid(), key_bytes));
        call.push_structural(s.record(cid, git.clone()), s.key, s.hid);
        let elt = RefIds {
            cid,
            hid: s.output_hid,
        };
        let r = match r.value() {
            Some(v) => Ref::loaded(elt, v.clone()),
            None => Ref::lazy(elt),
        };
        items.push((key, r));
    }
    Ok(Ref::loaded(ids, C::from_entries(items)))
}

/// The ref of the stored collection `ids`: its shape read, its elements lazy refs whose hids
/// follow from it. `reused`: found under another history, whose get-item calls are recorded.
fn from_store<T: Value, C: Collection<T>>(
    ids: RefIds,
    engine: &Engine,
    reused: bool,
) -> Result<Ref<C>> {
    let keyed = C::keyed(engine.load_shape(&ids.cid, C::TYPE)?)
        .ok_or_else(|| shape_error(&ids.cid, C::TYPE, "the shape of another kind of collection"))?;
    let mut items = Vec::with_capacity(keyed.len());
    let mut calls = Vec::new();
    for (key, cid) in keyed {
        let (s, key_bytes) = C::item((ids.cid, ids.hid), &key);
        items.push((
            key,
            Ref::lazy(RefIds {
                cid,
                hid: s.output_hid,
            }),
        ));
        if reused {
            calls.push((s, cid, key_bytes));
        }
    }
    engine.store_items(&calls)?;
    Ok(Ref::loaded(ids, C::from_entries(items)))
}

/// The ids of a collection passed in from outside: its shape's cid, a source hid.
fn detached_ids<T: Value, C: Collection<T>>(value: &C) -> std::result::Result<RefIds, EncodeError> {
    let cids = value
        .entries()
        .into_iter()
        .map(|(k, r)| r.try_ids().map(|ids| (k, ids.cid)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RefIds::source(C::shape(cids).cid()))
}

/// `OpValue` for a collection type: every method is the generic function above of the same
/// name; unwrapping gives `$plain` through `$to_plain`.
macro_rules! collection_op_value {
    ($ty:ident, $plain:ty, $to_plain:ident) => {
        impl<T: Value> OpValue for $ty<T> {
            type Plain = $plain;

            fn declare(arg: &Arg<Self>, call: &mut CallBuilder, name: &'static str) -> Result<()> {
                declare(arg, call, name)
            }
            fn into_body(arg: Arg<Self>, engine: Option<&Engine>) -> Result<Self> {
                into_body(arg, engine)
            }
            fn record(value: Self, call: &mut CallBuilder, i: usize) -> Result<Ref<Self>> {
                record(value, call, i)
            }
            fn from_store(ids: RefIds, engine: &Engine, reused: bool) -> Result<Ref<Self>> {
                from_store(ids, engine, reused)
            }
            fn unwrap_ref(r: &Ref<Self>, engine: Option<&Engine>) -> Result<$plain> {
                Ok(into_body(Arg::Ref(r.clone()), engine)?.$to_plain())
            }
            fn detached_ids(value: &Self) -> std::result::Result<RefIds, EncodeError> {
                detached_ids(value)
            }
        }
    };
}

collection_op_value!(MList, Vec<T>, to_vec);
collection_op_value!(MDict, BTreeMap<String, T>, to_map);
