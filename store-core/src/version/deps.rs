//! Per-call dependency recording: while an op executes, every component it touches (itself,
//! tracked functions it calls, tracked globals it reads, ops it calls) is recorded for that
//! call.
//!
//! Each thread keeps a stack with one frame per op executing on it. `#[track]`ed functions
//! and tracked globals report to the top frame; a nested op's whole dependency set is merged
//! into its caller's frame when it returns (executed or found in the store), so a change in a
//! helper reached only through a nested op is a change of the outer call too. With no op
//! executing the stack is empty, and reporting costs one thread-local access.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::format::id::Id;

/// A call's dependencies: component name → the id of the component as the call saw it (its
/// content id while recording; the semantic id in a stored record, docs/FORMAT.md §6).
pub type DepSet = BTreeMap<String, Id>;

thread_local! {
    static FRAMES: RefCell<Vec<DepSet>> = const { RefCell::new(Vec::new()) };
    /// How many frames FRAMES holds: the one check a tracked function makes when no op is
    /// executing (a `Cell` read, no borrow).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Records dependencies for the op call that is executing while it lives.
#[must_use = "dependencies are recorded only while the guard lives"]
pub struct Recording {
    depth: usize,
}

/// Starts recording the dependencies of an op call that is about to execute.
pub fn start() -> Recording {
    let depth = FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        f.push(DepSet::new());
        f.len()
    });
    DEPTH.set(depth);
    Recording { depth }
}

impl Recording {
    /// Stops recording and returns what the call touched (its nested calls' sets included).
    pub fn finish(self) -> DepSet {
        let set = FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            let set = f.pop().unwrap_or_default();
            f.truncate(self.depth - 1);
            set
        });
        DEPTH.set(self.depth - 1);
        std::mem::forget(self);
        set
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        // The call failed or panicked: discard its frame.
        FRAMES.with(|f| f.borrow_mut().truncate(self.depth - 1));
        DEPTH.set(self.depth - 1);
    }
}

/// Whether an op call is being recorded on this thread.
#[inline]
pub fn active() -> bool {
    DEPTH.get() > 0
}

/// Reports that the executing call touched component `name` with content id `content` (the
/// id is computed only if a call is being recorded).
#[inline]
pub fn touch(name: &str, content: impl FnOnce() -> Id) {
    if DEPTH.get() == 0 {
        return;
    }
    FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        if let Some(top) = f.last_mut() {
            if !top.contains_key(name) {
                top.insert(name.to_string(), content());
            }
        }
    });
}

/// Merges a nested call's dependency set into the executing call's.
pub fn merge(set: &DepSet) {
    FRAMES.with(|f| {
        if let Some(top) = f.borrow_mut().last_mut() {
            for (k, v) in set {
                top.entry(k.clone()).or_insert(*v);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_nest_and_merge() {
        assert!(!active());
        touch("ignored", || panic!("not computed when nothing records"));
        let outer = start();
        touch("a", || Id([1; 32]));
        let inner = start();
        touch("b", || Id([2; 32]));
        let inner_set = inner.finish();
        assert_eq!(inner_set.keys().collect::<Vec<_>>(), ["b"]);
        merge(&inner_set);
        touch("a", || panic!("recorded once"));
        let set = outer.finish();
        assert_eq!(set.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!active());
    }

    #[test]
    fn a_failed_call_leaves_no_frame() {
        let outer = start();
        {
            let _inner = start();
            touch("x", || Id([3; 32]));
        } // dropped: the inner call failed
        assert!(outer.finish().is_empty());
        assert!(!active());
    }
}
