//! Collections an op takes or returns per element: [`MList`] and [`MDict`].
//!
//! A collection argument is built by a recorded structural call (`__make_list__` with the
//! elements as inputs, `__make_dict__` with the keys as input names), so each element keeps its
//! history; a collection output is taken apart by one structural get-item call per element, so
//! element `i` of output `o` of call `c` is a ref of its own. The collection's value is its
//! shape (its elements' content ids); each element is a value of its own, stored once however
//! many collections hold it. docs/FORMAT.md §6c has the ids.
//!
//! The `mandala` crate's docs (section *Collections*) show them in use. This file holds the
//! types and what a program does with them; `store` how they are stored and loaded.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Index;
use std::slice::SliceIndex;

use crate::engine::value::{Arg, IntoArg, Ref};

mod store;

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
/// `Ref<MDict<T>>` whose entries are refs (`r["key"]`, `r.get(key)`, `r.keys()`, `r.iter()`).
pub struct MDict<T> {
    entries: BTreeMap<String, Ref<T>>,
}

fn loaded<'r, T>(r: &'r Ref<T>, what: fmt::Arguments<'_>) -> &'r T {
    r.value().unwrap_or_else(|| {
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
        self.value().expect(NOT_LOADED_LIST)
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
    pub fn get(&self, i: usize) -> Option<&Ref<T>> {
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
        self.value().expect(NOT_LOADED_LIST)
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
    pub fn get(&self, key: &str) -> Option<&Ref<T>> {
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

/// `r["key"]` is the ref of entry `key`; panics if there is none (use `get` to ask).
impl<T> Index<&str> for Ref<MDict<T>> {
    type Output = Ref<T>;
    fn index(&self, key: &str) -> &Ref<T> {
        match self.dict().entries.get(key) {
            Some(r) => r,
            None => panic!("no entry {key:?} in this dict"),
        }
    }
}
