//! Counters of what the memo engine did: executions, hits, content reuses, per op.
//!
//! Tests assert these directly ("recomputed or reused" is never inferred from timing).

use std::collections::BTreeMap;

/// What happened to the calls of one op (or of all ops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls that ran the op's body and were stored.
    pub executed: u64,
    /// Calls found in the store under the same history (no execution).
    pub hits: u64,
    /// Calls found under another history with the same content: not executed, recorded anew.
    pub reused: u64,
    /// Stored calls passed over because a value they name is missing or damaged (each was
    /// then computed again, rewriting the value).
    pub healed: u64,
    /// Calls found after waiting for another thread of this process, or (with claims) another
    /// process, that was computing them (also counted as hits or reuses).
    pub waited: u64,
}

/// Counters since the engine was created or [`crate::Engine::reset_stats`] was called.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Totals over all ops.
    pub total: OpStats,
    /// Per op name.
    pub per_op: BTreeMap<String, OpStats>,
}

impl Stats {
    /// The counters of op `name` (zero if it was never called).
    pub fn op(&self, name: &str) -> OpStats {
        self.per_op.get(name).copied().unwrap_or_default()
    }

    pub(crate) fn count(&mut self, op: &str, f: impl Fn(&mut OpStats)) {
        f(&mut self.total);
        match self.per_op.get_mut(op) {
            Some(s) => f(s),
            None => f(self.per_op.entry(op.to_string()).or_default()),
        }
    }
}
