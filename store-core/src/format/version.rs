//! The stored shapes of versioning: a version record of a component (named by its hash under
//! `versions/`), and a decision about a pending change (a file under `refs/decisions/`). Data
//! only; the history logic is `crate::version::history`'s, and docs/FORMAT.md §6b the spec.

use serde::{Deserialize, Serialize};

use crate::format::cbor;
use crate::format::id::{Id, Kind};

/// One version of one component.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionRecord {
    /// The component's name.
    pub component: String,
    /// The content id of this version (a function's source, a global's value).
    pub content: Id,
    /// The versions this one was made from, sorted.
    pub parents: Vec<Id>,
    /// The semantic id: equal to a parent's for a cosmetic change, else the content id.
    pub semantic: Id,
    /// The cid of the version's text for display (a CBOR text string stored as a value).
    pub source: Id,
    /// The git commit (HEAD) of the program's repository when the version was committed, if
    /// any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<String>,
}

impl VersionRecord {
    /// The version id: `H_version(canonical CBOR of the record)`.
    pub fn id(&self) -> Id {
        Id::hash(
            Kind::Version,
            &cbor::to_canonical(self).expect("version records always encode"),
        )
    }
}

/// Whether a change of content changes what calls compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Calls recorded with the earlier content must be recomputed (the safe default).
    Semantic,
    /// Calls recorded with the earlier content stay valid.
    Cosmetic,
}

/// A decision recorded in the store (by `mandala mark` or [`crate::Engine::mark`]) about a
/// change not yet committed: the new content of `component` whose id starts with `content`
/// is a semantic or a cosmetic change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decision {
    /// The component.
    pub component: String,
    /// A prefix (at least 8 hex digits) of the new content id.
    pub content: String,
    /// The decision.
    pub change: Change,
}
