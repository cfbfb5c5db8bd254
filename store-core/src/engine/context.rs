//! The storage context: which engine (and in which mode) `#[op]` calls on this thread use.
//!
//! Contexts nest as a per-thread stack. An op looks only at the top: `run` memoizes, `noop`
//! executes without reading or writing anything. With no context, an op is a plain function.

use std::cell::RefCell;

use crate::engine::Engine;

/// How ops behave inside a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Memoize: look calls up, execute misses, store new calls.
    Run,
    /// Execute every call; read and write nothing.
    Noop,
}

thread_local! {
    static STACK: RefCell<Vec<(Engine, Mode)>> = const { RefCell::new(Vec::new()) };
}

/// The innermost context on this thread, if any.
pub fn current() -> Option<(Engine, Mode)> {
    STACK.with(|s| s.borrow().last().cloned())
}

/// While alive, `engine` in `mode` is the current context of this thread. Dropping it (also
/// during a panic) restores the previous context.
#[must_use = "the context ends when the guard is dropped"]
pub struct ContextGuard {
    depth: usize,
}

impl ContextGuard {
    pub(crate) fn push(engine: Engine, mode: Mode) -> ContextGuard {
        let depth = STACK.with(|s| {
            let mut s = s.borrow_mut();
            s.push((engine, mode));
            s.len()
        });
        ContextGuard { depth }
    }

    /// How many contexts are active on this thread while this guard lives (1 = outermost).
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            // Guards drop in reverse order of creation; truncating also repairs a guard that
            // was leaked by mem::forget further in.
            s.truncate(self.depth - 1);
        });
    }
}
