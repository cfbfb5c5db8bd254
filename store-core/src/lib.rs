//! mandala's core: ids, canonical CBOR, refs and call records, the memo engine, and the
//! [`Backend`] trait with its in-memory implementation.
//!
//! Users depend on the `mandala` facade crate; this crate is what it re-exports.
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

pub mod backend;
pub mod call;
pub mod cbor;
pub mod component;
pub mod context;
pub mod deps;
pub mod engine;
pub mod error;
pub mod frame;
pub mod global;
pub mod id;
pub mod inspect;
pub mod json;
pub mod par;
mod provenance;
pub mod record;
mod record_decode;
pub mod stats;
pub mod value;
pub mod versioning;
pub mod versions;

pub use backend::{Backend, MemoryBackend, WriteGuard};
pub use context::{ContextGuard, Mode};
pub use engine::Engine;
pub use error::{CallError, Error, FormatError, FrameError, Result, StoreError, VersioningError};
pub use id::{Id, IdMap, IdPrefix, IdSet, IdsMap, Kind, ParseIdError};
#[doc(hidden)]
pub use inventory;
pub use record::{CallRecord, Slot, StoredCall};
pub use stats::{OpStats, Stats};
pub use value::{Arg, IntoArg, Ref, RefIds, Value};
pub use versioning::{ChangeReport, ComponentChange, Versioning};
