//! Tracked globals: statics whose reads become dependencies of the op call reading them.
//!
//! `#[track] static N_CLASS: u32 = 2;` becomes a [`Tracked`] static; `*N_CLASS` (or
//! `N_CLASS.get()`) reads the value and reports the read. The global's content id is the cid
//! of its value, computed once per process on first use, so even a large global is hashed once
//! per run.

use std::ops::Deref;
use std::sync::OnceLock;

use serde::Serialize;

use crate::format::id::{Id, Kind};

/// A global whose reads are recorded as dependencies. Created by `#[track]` on a `static`.
pub struct Tracked<T: 'static> {
    name: &'static str,
    value: T,
    content: OnceLock<Id>,
}

impl<T: Serialize + Sync + 'static> Tracked<T> {
    /// A tracked global named `name` (its `module::path::NAME`).
    pub const fn new(name: &'static str, value: T) -> Tracked<T> {
        Tracked {
            name,
            value,
            content: OnceLock::new(),
        }
    }

    /// The global's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The cid of the value: the global's content id.
    ///
    /// # Panics
    /// If the value's `Serialize` implementation fails (a global must be serializable to be
    /// tracked).
    pub fn content_id(&self) -> Id {
        *self
            .content
            .get_or_init(|| match crate::format::cbor::to_canonical(&self.value) {
                Ok(bytes) => Id::hash(Kind::Value, &bytes),
                Err(e) => panic!("tracked global {} cannot be serialized: {e}", self.name),
            })
    }

    /// Reads the value, recording the read for the op call executing on this thread.
    #[inline]
    pub fn get(&self) -> &T {
        crate::version::deps::touch(self.name, || self.content_id());
        &self.value
    }
}

impl<T: Serialize + Sync + 'static> Deref for Tracked<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static N: Tracked<u32> = Tracked::new("tests::N", 7);

    #[test]
    fn reads_are_recorded_only_inside_a_recording() {
        assert_eq!(*N, 7);
        let rec = crate::version::deps::start();
        assert_eq!(*N + 1, 8);
        let set = rec.finish();
        assert_eq!(set.get("tests::N"), Some(&N.content_id()));
        let cid = Id::hash(
            Kind::Value,
            &crate::format::cbor::to_canonical(&7u32).unwrap(),
        );
        assert_eq!(N.content_id(), cid);
    }
}
