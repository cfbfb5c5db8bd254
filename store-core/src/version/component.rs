//! Components: the ops, `#[track]`ed functions and tracked globals of a program, known at
//! startup from a link-time registry.
//!
//! `#[op]` and `#[track]` register a [`ComponentSpec`] for each item they mark (with the
//! `inventory` crate), carrying the item's content as the macro saw it: its tokens, printed
//! without comments, doc comments or formatting, so that formatting-only and comment-only
//! edits do not change its [content id](ComponentSpec::content_id); and its source text, for
//! display. A tracked global's content is the cid of its value (see [`crate::version::global`]).
//!
//! ```
//! // Every component of the program, whatever crate or module it is in:
//! for c in store_core::version::component::all() {
//!     println!("{:?} {} {}", c.kind, c.name, c.content_id().short(8));
//! }
//! ```

use std::sync::LazyLock;

use crate::format::id::{Id, Kind};

/// What kind of item a component is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// An `#[op]`.
    Op,
    /// A `#[track]`ed function or method.
    Function,
    /// A tracked global (`#[track] static`).
    Global,
}

/// One registered component, as `#[op]` or `#[track]` described it at compile time.
#[derive(Debug)]
pub struct ComponentSpec {
    /// What it is.
    pub kind: ComponentKind,
    /// Its identity: the op name for ops; `module::path::name` (or `module::Type::method`)
    /// for functions and globals.
    pub name: &'static str,
    /// Its content: the item's tokens without comments, doc comments or formatting. Empty for
    /// globals (whose content is their value).
    pub content: &'static str,
    /// Its text for display: the item as written, comments included, where the compiler could
    /// provide it (otherwise the printed tokens).
    pub source: &'static str,
    /// For a global: the cid of its current value.
    pub value_id: Option<fn() -> Id>,
    /// Content id prefixes of earlier versions this one declares itself compatible with
    /// (`cosmetic_of = "…"` on `#[op]` or `#[track]`): a change from one of them is cosmetic.
    pub cosmetic_of: &'static [&'static str],
}

inventory::collect!(ComponentSpec);

impl ComponentSpec {
    /// The content id of a function or op: `H_source(content)`. (A global's content id is the
    /// cid of its value, from [`crate::version::global::Tracked::content_id`].)
    pub fn content_id(&self) -> Id {
        match self.value_id {
            Some(value) => value(),
            None => source_id(self.content),
        }
    }
}

/// The content id of a function's or op's content text.
pub fn source_id(content: &str) -> Id {
    Id::hash(Kind::Source, content.as_bytes())
}

/// The content id the running program has for component `name` (computed once per process),
/// or `None` if the program has no such component.
pub fn current_content_id(name: &str) -> Option<Id> {
    static IDS: LazyLock<std::collections::HashMap<&'static str, Id>> =
        LazyLock::new(|| all().iter().map(|c| (c.name, c.content_id())).collect());
    IDS.get(name).copied()
}

/// Every component linked into this program, sorted by (name, kind).
pub fn all() -> &'static [&'static ComponentSpec] {
    static ALL: LazyLock<Vec<&'static ComponentSpec>> = LazyLock::new(|| {
        let mut v: Vec<&'static ComponentSpec> =
            inventory::iter::<ComponentSpec>.into_iter().collect();
        v.sort_by(|a, b| (a.name, a.kind).cmp(&(b.name, b.kind)));
        v
    });
    &ALL
}

/// The registered component named `name`, if any.
pub fn find(name: &str) -> Option<&'static ComponentSpec> {
    let all = all();
    all.binary_search_by(|c| c.name.cmp(name))
        .ok()
        .map(|i| all[i])
}
