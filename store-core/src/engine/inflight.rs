//! Calls being computed in this process, so that threads reaching the same call at once compute
//! it once: the first claims it (by call key: same content, whatever the history), the others
//! wait until it is stored and then find it. A claim is released when its call is stored, and
//! also if its computation fails or panics (the builder holding it is dropped), so waiters then
//! look again and compute it themselves.
//!
//! A thread never waits for a call whose computing thread is (transitively) waiting for one of
//! its own: it computes instead, so nested ops cannot deadlock.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ThreadId;

use crate::format::id::Id;

/// The calls being computed, and who waits for which.
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Default)]
struct State {
    /// Call key → the thread computing it.
    owner: HashMap<Id, ThreadId>,
    /// Thread → the call key it waits for.
    waits_for: HashMap<ThreadId, Id>,
}

/// What [`InFlight::claim`] decided.
pub(crate) enum Claim {
    /// This thread computes the call; the claim is released when the guard is dropped.
    Mine(ClaimGuard),
    /// Another thread computed (or gave up) the call while this one waited: look again.
    Waited,
    /// Waiting would deadlock (the owner waits, transitively, for this thread): compute.
    Compute,
}

/// Holds a claim; dropping it releases the call and wakes its waiters.
pub(crate) struct ClaimGuard {
    inflight: Arc<InFlight>,
    key: Id,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let mut st = self
            .inflight
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        st.owner.remove(&self.key);
        drop(st);
        self.inflight.released.notify_all();
    }
}

impl InFlight {
    /// Claims call `key` for this thread, or waits for the thread computing it.
    pub(crate) fn claim(self: &Arc<Self>, key: Id) -> Claim {
        let me = std::thread::current().id();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&owner) = st.owner.get(&key) else {
            st.owner.insert(key, me);
            return Claim::Mine(ClaimGuard {
                inflight: self.clone(),
                key,
            });
        };
        if owner == me {
            return Claim::Compute; // the call calls itself: nothing to wait for
        }
        // Follow the owner's waits: reaching this thread would be a deadlock.
        let mut t = owner;
        for _ in 0..st.owner.len() + 1 {
            let Some(next) = st.waits_for.get(&t).and_then(|k| st.owner.get(k)) else {
                break;
            };
            if *next == me {
                return Claim::Compute;
            }
            t = *next;
        }
        st.waits_for.insert(me, key);
        while st.owner.get(&key) == Some(&owner) {
            st = self.released.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waits_for.remove(&me);
        Claim::Waited
    }
}
