//! Pointers: a value passed to an op under a name the user chooses, whose identity is that name
//! instead of its content (mandala's `ValuePointer`), so a large input is neither hashed nor
//! stored again on later runs.
//!
//! The pointer's ref is the *placeholder* `tag("manp", name)`, a small value passed in from
//! outside; a structural `__pointer__` call binds it to the value behind the name, stored once,
//! the first time the name is seen (docs/FORMAT.md §6d). Unwrapping a pointer's ref loads that
//! value; tables and the CLI show the name.

use crate::engine::call::encode_error;
use crate::engine::value::{Arg, IntoArg, RefIds, Value};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::format::cbor;
use crate::format::collection::{self as shape, Structural};
use crate::format::id::{Id, Kind};

/// A value passed to an op under a name: its identity is the name, not its content.
///
/// Passing `Pointer::new("training-set-v3", data)` where an op takes the data's type makes a
/// call whose input is the name: the data is hashed and stored once, the first time the store
/// sees the name, and every later call with that name is found without reading, hashing or
/// storing the data again. The data itself is what the op's body receives.
///
/// **The name is the identity.** Passing other data under a name already stored is a hit for
/// every call on it: the store keeps the first data and calls computed on it. Changing what a
/// name stands for is the user's decision: give new data a new name (`"training-set-v4"`).
/// Stores that stored different data under one name and were merged keep both; lookups use one
/// of them (the binding with the smallest record id) and `mandala fsck` lists the name.
///
/// The `mandala` crate's docs (section *Pointers*) show one in use.
#[derive(Clone, Debug)]
pub struct Pointer<T> {
    name: String,
    value: T,
}

impl<T> Pointer<T> {
    /// The value `value` under the name `name`.
    ///
    /// # Panics
    /// If `name` is empty.
    pub fn new(name: impl Into<String>, value: T) -> Pointer<T> {
        let name = name.into();
        assert!(!name.is_empty(), "a pointer's name cannot be empty");
        Pointer { name, value }
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, taken out.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The ids of the pointer's ref: those of its placeholder, a value passed in from outside.
    pub fn ids(&self) -> RefIds {
        RefIds::source(Id::hash(
            Kind::Value,
            &shape::pointer_placeholder(&self.name),
        ))
    }
}

/// A pointer is accepted wherever its value's type is.
impl<T: Value> IntoArg<T> for Pointer<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Pointer(self)
    }
}

impl Engine {
    /// The ids of pointer `p` (argument `arg` of op `op`), binding its name to its value in the
    /// store if the name is new there: only then is the value encoded, hashed and stored.
    pub(crate) fn bind_pointer<T: Value>(
        &self,
        p: &Pointer<T>,
        op: &'static str,
        arg: &'static str,
    ) -> Result<RefIds> {
        let placeholder = shape::pointer_placeholder(&p.name);
        let ids = RefIds::source(Id::hash(Kind::Value, &placeholder));
        let s = Structural::pointer(ids.cid);
        if self.find_structural(&s)?.is_some() {
            return Ok(ids);
        }
        let bytes = cbor::encode_value(&p.value).map_err(|c| {
            encode_error(
                op,
                format!("the value of pointer '{}' (argument '{arg}')", p.name),
                c,
            )
        })?;
        let cid = Id::hash(Kind::Value, &bytes);
        let _guard = self.writing()?;
        self.store_value(&ids.cid, &placeholder)?;
        self.store_value(&cid, &bytes)?;
        let rec = s.record(cid, self.git_commit().map(str::to_string));
        self.store_call(rec, &s.key, &s.hid)?;
        Ok(ids)
    }

    /// The content id of the value bound to the pointer whose placeholder has content id `cid`.
    pub(crate) fn pointer_target(&self, cid: &Id, name: &str) -> Result<Id> {
        match self.find_structural(&Structural::pointer(*cid))? {
            Some(rec) => Ok(rec.outputs[0].cid),
            None => Err(Error::Store(crate::error::StoreError::NotFound {
                what: "the value of pointer",
                id: format!("'{name}' (placeholder {})", cid.short(12)),
                store: self.backend().describe(),
            })),
        }
    }
}

/// How a table shows a pointer: `{"pointer": name}`, not the value behind it.
pub(crate) fn pointer_cell(name: String) -> ciborium::Value {
    ciborium::Value::Map(vec![(
        ciborium::Value::Text("pointer".into()),
        ciborium::Value::Text(name),
    )])
}
