//! mandala's core: ids, canonical CBOR, refs and call records, the memo engine, and the
//! [`Backend`] trait with its in-memory implementation.
//!
//! Users depend on the `mandala` facade crate; this crate is what it re-exports.
//!
//! Its folders are its layers, each built only on those before it: [`format`](mod@format) (ids,
//! canonical CBOR, call records, the stored shapes of versioning), [`backend`] (the storage
//! contract: the [`Backend`] trait and the in-memory backend), [`version`] (components and
//! their histories), [`engine`] (memoized calls, contexts, refs, provenance) and [`frame`]
//! (ComputationFrames).
//!
//! ```
//! use store_core::{Engine, Id, Kind};
//! let engine = Engine::in_memory();
//! assert_eq!(engine.backend().describe(), "in-memory");
//! assert_eq!(Id::hash(Kind::Value, b"").to_string().len(), 64);
//! ```
//!
//! Glossary: a *value* is data an op takes or returns; its *cid* hashes its content. A *ref*
//! is a value with a *hid*, the hash of its history. A *call* is one execution of an *op*,
//! identified by a call cid (op, input cids, semantic version) and a call hid (op, input hids,
//! semantic version). A *store* keeps values and call records.

// The layers, bottom up; each module uses only those listed before it:
// the format (what is stored and how it is named), the storage contract and its errors,
// versioning (components, their histories), the engine (calls, contexts, refs, provenance),
// and frames (queries over the stored calls).
pub mod format;

pub mod backend;
pub mod error;
pub mod par;

pub mod version;

pub mod engine;

pub mod frame;

pub use backend::{Backend, MemoryBackend, ValueWriter, WriteGuard, LARGE_VALUE};
pub use engine::call::OpName;
pub use engine::collection::{MDict, MList};
pub use engine::context::{ContextGuard, Mode};
pub use engine::pointer::Pointer;
pub use engine::stats::{OpStats, Stats};
pub use engine::value::{Arg, IntoArg, OpValue, Ref, RefIds, Value};
pub use engine::Engine;
pub use error::{CallError, Error, FormatError, FrameError, Result, StoreError, VersioningError};
pub use format::id::{Id, IdMap, IdPrefix, IdSet, IdsMap, Kind, ParseIdError};
pub use format::record::{CallName, CallRecord, Slot, StoredCall};
#[doc(hidden)]
pub use inventory;
pub use version::state::{ChangeReport, ComponentChange, Versioning};
