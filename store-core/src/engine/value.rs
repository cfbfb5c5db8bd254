//! Refs: values with their content id and history id, loaded lazily; and the argument forms
//! an op accepts.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::call::CallBuilder;
use crate::engine::Engine;
use crate::error::Result;
use crate::format::cbor::{self, EncodeError};
use crate::format::id::{Id, Kind};
use crate::format::record::source_hid;

/// What an op argument or output must be: serializable, cloneable and shareable.
///
/// Implemented for every type that qualifies; you never implement it yourself.
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Value for T {}

/// The content id of a value: the hash of its canonical CBOR.
pub(crate) fn value_cid<T: Serialize + 'static>(value: &T) -> std::result::Result<Id, EncodeError> {
    if let Some(cid) = large_value_cid(value) {
        return Ok(cid);
    }
    Ok(Id::hash(Kind::Value, &cbor::to_canonical(value)?))
}

/// The content id of a large numeric vector (`Vec<f64>`, `Vec<f32>` of at least
/// [`crate::LARGE_VALUE`] encoded bytes), hashed as it is encoded a mebibyte at a time, never
/// held encoded whole, the two halves of BLAKE3's tree on two threads: for an 80 MB argument,
/// ~20 ms and no copy instead of 60 ms and a 90 MB buffer. `None` for any other value.
pub(crate) fn large_value_cid<T: 'static>(value: &T) -> Option<Id> {
    const PIECE: usize = 1 << 20;
    let pieces = cbor::fast::FloatPieces::of(value)?;
    let len = pieces.encoded_len();
    if len < crate::LARGE_VALUE as u64 {
        return None;
    }
    // The two halves of BLAKE3's tree are encoded and hashed on two threads.
    let (mut left, mut right) = (pieces.clone(), pieces);
    let cid = Id::hash_halves(
        Kind::Value,
        len,
        move |split, hasher| hash_first_bytes(&mut left, split, hasher),
        |split, hasher| {
            let mut skip = right.seek_byte(split);
            let mut piece = Vec::with_capacity(PIECE + 16);
            while right.next_into(&mut piece, PIECE) {
                hasher.update(&piece[skip..]);
                skip = 0;
                piece.clear();
            }
        },
    );
    Some(cid)
}

/// Feeds `hasher` the first `split` bytes of the encoding `pieces` makes, encoded a mebibyte
/// at a time: the left half of BLAKE3's tree, on a thread of its own.
fn hash_first_bytes(
    pieces: &mut cbor::fast::FloatPieces<'_>,
    split: u64,
    hasher: &mut blake3::Hasher,
) {
    const PIECE: usize = 1 << 20;
    let (mut piece, mut at) = (Vec::with_capacity(PIECE + 16), 0u64);
    while at < split && pieces.next_into(&mut piece, PIECE) {
        hasher.update(Id::split_piece(&piece, at, split).0);
        at += piece.len() as u64;
        piece.clear();
    }
}

/// The buffers of a large value's encoded pieces while they are shared with the threads that
/// write and hash them ([`crate::ValueWriter::write_shared`]): a buffer is reused once this
/// thread holds its only reference again, so a value of any size takes a handful of them.
#[derive(Default)]
pub(crate) struct SharedPieces {
    handed: Vec<Arc<Vec<u8>>>,
}

impl SharedPieces {
    /// Keeps `handed` until the other threads are done with it; a buffer to fill next (one
    /// they are done with, or a new one).
    pub(crate) fn swap(&mut self, handed: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        self.handed.push(handed);
        match self
            .handed
            .iter_mut()
            .position(|b| Arc::get_mut(b).is_some())
        {
            Some(i) => self.handed.swap_remove(i),
            None => Arc::new(Vec::with_capacity((1 << 20) + 16)),
        }
    }

    /// The emptied contents of `piece`, a buffer [`SharedPieces::swap`] gave.
    pub(crate) fn fill<'a>(&self, piece: &'a mut Arc<Vec<u8>>) -> &'a mut Vec<u8> {
        let buf = Arc::get_mut(piece).expect("a buffer no other thread holds");
        buf.clear();
        buf
    }
}

/// What an op parameter or output can be: any [`Value`] (stored whole, as one value) or a
/// collection, [`MList`](crate::MList) or [`MDict`](crate::MDict) (stored per element, each
/// element a ref with its own history).
///
/// Implemented by mandala for exactly those; the methods are the `#[op]` macro's and are not
/// a public API.
pub trait OpValue: Sized + Send + Sync + 'static {
    /// What unwrapping a `Ref<Self>` gives: `Self` for a value, `Vec<T>` for an `MList<T>`,
    /// `BTreeMap<String, T>` for an `MDict<T>`.
    type Plain;

    /// Declares `arg` as the hashed input `name` of `call`.
    #[doc(hidden)]
    fn declare(arg: &Arg<Self>, call: &mut CallBuilder, name: &'static str) -> Result<()>;

    /// The value handed to the op's body, loaded through `engine` where needed.
    #[doc(hidden)]
    fn into_body(arg: Arg<Self>, engine: Option<&Engine>) -> Result<Self>;

    /// [`OpValue::into_body`] for input `name` of `call`, which is about to execute: a value
    /// the call stores, and that it has not kept (a large one, declared by its hash alone), is
    /// written before the body takes it.
    #[doc(hidden)]
    fn into_executed_body(
        arg: Arg<Self>,
        call: &mut CallBuilder,
        name: &'static str,
    ) -> Result<Self> {
        let _ = name;
        Self::into_body(arg, call.engine())
    }

    /// Records `value` as output `i` of the executed `call`.
    #[doc(hidden)]
    fn record(value: Self, call: &mut CallBuilder, i: usize) -> Result<Ref<Self>>;

    /// The ref of a stored output with ids `ids` (`reused`: found under another history, so
    /// its structure is recorded anew under this one).
    #[doc(hidden)]
    fn from_store(ids: RefIds, engine: &Engine, reused: bool) -> Result<Ref<Self>>;

    /// The plain value of `r`, loaded through `engine` where needed (without one, only what
    /// is loaded already).
    #[doc(hidden)]
    fn unwrap_ref(r: &Ref<Self>, engine: Option<&Engine>) -> Result<Self::Plain>;

    /// The ids of `value` as a value passed in from outside.
    #[doc(hidden)]
    fn detached_ids(value: &Self) -> std::result::Result<RefIds, EncodeError>;
}

/// The two ids of a ref.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefIds {
    /// Content id: the hash of the value's canonical CBOR.
    pub cid: Id,
    /// History id: how the value was computed (or "from outside", for source values).
    pub hid: Id,
}

impl RefIds {
    /// The ids of a value passed in from outside with content id `cid`.
    pub fn source(cid: Id) -> RefIds {
        RefIds {
            cid,
            hid: source_hid(&cid),
        }
    }
}

/// A value in the store (or on its way there): content id, history id, and the value itself
/// once loaded. Cloning a `Ref` is cheap (it is shared).
///
/// Refs returned by a memoized call that was found in the store are *lazy*: they hold ids
/// only, and the value is read when unwrapped or needed by a call that executes.
pub struct Ref<T> {
    inner: Arc<RefInner<T>>,
}

struct RefInner<T> {
    ids: OnceLock<RefIds>,
    value: OnceLock<T>,
}

impl<T> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Ref<T> {
    /// A lazy ref: ids known, value not loaded.
    pub fn lazy(ids: RefIds) -> Ref<T> {
        let r = Ref {
            inner: Arc::new(RefInner {
                ids: OnceLock::new(),
                value: OnceLock::new(),
            }),
        };
        let _ = r.inner.ids.set(ids);
        r
    }

    /// A ref with both ids and value.
    pub fn loaded(ids: RefIds, value: T) -> Ref<T> {
        let r = Self::lazy(ids);
        let _ = r.inner.value.set(value);
        r
    }

    /// A ref of a plain value with no history; its ids are computed when first asked for.
    pub fn detached(value: T) -> Ref<T> {
        let r = Ref {
            inner: Arc::new(RefInner {
                ids: OnceLock::new(),
                value: OnceLock::new(),
            }),
        };
        let _ = r.inner.value.set(value);
        r
    }

    /// The value, if it is loaded.
    pub fn value(&self) -> Option<&T> {
        self.inner.value.get()
    }

    /// Whether the value is loaded.
    pub fn in_memory(&self) -> bool {
        self.inner.value.get().is_some()
    }

    /// Stores `value` in this ref (and its clones) if none is loaded yet.
    pub fn fill(&self, value: T) -> &T {
        let _ = self.inner.value.set(value);
        self.inner.value.get().expect("just set")
    }

    /// The ids if already known, without computing anything.
    pub fn known_ids(&self) -> Option<RefIds> {
        self.inner.ids.get().copied()
    }

    /// Sets the ids of a detached ref whose value the caller has just hashed.
    pub(crate) fn set_ids(&self, ids: RefIds) {
        let _ = self.inner.ids.set(ids);
    }

    /// Whether two refs are the same shared ref object.
    pub fn ptr_eq(&self, other: &Ref<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T: OpValue> Ref<T> {
    /// The ids, computing them for a detached ref (which encodes the value).
    pub fn try_ids(&self) -> std::result::Result<RefIds, EncodeError> {
        if let Some(ids) = self.inner.ids.get() {
            return Ok(*ids);
        }
        let value = self.inner.value.get().expect("a ref has ids or a value");
        let ids = T::detached_ids(value)?;
        Ok(*self.inner.ids.get_or_init(|| ids))
    }

    /// Both ids.
    ///
    /// # Panics
    /// Only for a detached ref (made outside a storage context) whose value's `Serialize`
    /// implementation fails; use [`Ref::try_ids`] to get that error instead.
    pub fn ids(&self) -> RefIds {
        match self.try_ids() {
            Ok(ids) => ids,
            Err(e) => panic!("cannot compute the id of a detached ref: {e}"),
        }
    }

    /// The content id. See [`Ref::ids`] for when it can panic.
    pub fn cid(&self) -> Id {
        self.ids().cid
    }

    /// The history id. See [`Ref::ids`] for when it can panic.
    pub fn hid(&self) -> Id {
        self.ids().hid
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Ref");
        if let Some(ids) = self.inner.ids.get() {
            d.field("cid", &ids.cid).field("hid", &ids.hid);
        }
        match self.inner.value.get() {
            Some(v) => d.field("value", v),
            None => d.field("value", &format_args!("<not loaded>")),
        };
        d.finish()
    }
}

/// An op argument: a plain value (a new source ref) or an existing ref (keeping its history).
pub enum Arg<T> {
    /// A plain value passed in from outside.
    Value(T),
    /// A ref, typically an op's output.
    Ref(Ref<T>),
    /// A value under a name (see [`Pointer`](crate::Pointer)).
    Pointer(crate::engine::pointer::Pointer<T>),
}

/// What an op parameter of type `T` accepts: `T`, `Ref<T>`, `&Ref<T>` (and `&str` for
/// `String`).
pub trait IntoArg<T> {
    /// Converts into an [`Arg`].
    fn into_arg(self) -> Arg<T>;
}

impl<T> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Value(self)
    }
}

impl<T> IntoArg<T> for Ref<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self)
    }
}

impl<T> IntoArg<T> for &Ref<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self.clone())
    }
}

impl IntoArg<String> for &str {
    fn into_arg(self) -> Arg<String> {
        Arg::Value(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_refs_get_source_ids() {
        let r = Ref::detached(5u32);
        let cid = Id::hash(Kind::Value, &cbor::to_canonical(&5u32).unwrap());
        assert_eq!(r.cid(), cid);
        assert_eq!(r.hid(), source_hid(&cid));
        assert_eq!(r.value(), Some(&5));
    }

    #[test]
    fn lazy_refs_hold_no_value() {
        let r: Ref<u8> = Ref::lazy(RefIds::source(Id([1; 32])));
        assert!(!r.in_memory());
        assert_eq!(r.clone().fill(3), &3);
        assert_eq!(r.value(), Some(&3), "clones share the loaded value");
    }

    #[test]
    fn a_large_vector_hashed_in_two_halves_has_its_whole_encodings_id() {
        // Elements of 3, 5 and 9 bytes mixed, so that the halves' boundary falls inside
        // elements of every width, in vectors just over the threshold and larger.
        let mixed = |n: usize, phase: usize| -> Vec<f64> {
            (0..n)
                .map(|i| match (i + phase) % 7 {
                    0 => 0.5,              // 3 bytes
                    1 => 1.0e10,           // 5 bytes
                    2 => f64::NAN,         // 3 bytes
                    _ => (i as f64).sin(), // 9 bytes
                })
                .collect()
        };
        let whole = |v: &dyn erased::Encode| Id::hash(Kind::Value, &v.encode());
        for (n, phases) in [(250_000, 7), (250_001, 7), (333_333, 7), (1_500_000, 1)] {
            for phase in 0..phases {
                let v = mixed(n, phase);
                assert_eq!(large_value_cid(&v), Some(whole(&v)), "{n} {phase}");
                let narrow: Vec<f32> = v.iter().map(|x| *x as f32).collect();
                assert_eq!(
                    large_value_cid(&narrow),
                    Some(whole(&narrow)),
                    "{n} {phase}"
                );
            }
        }
        // Under the threshold, and not a float vector: hashed whole elsewhere.
        assert_eq!(large_value_cid(&vec![0.5f64; 1000]), None);
        assert_eq!(large_value_cid(&vec![1u64; 1_000_000]), None);
    }

    mod erased {
        pub trait Encode {
            fn encode(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize + 'static> Encode for T {
            fn encode(&self) -> Vec<u8> {
                crate::format::cbor::encode_value(self).unwrap()
            }
        }
    }
}
