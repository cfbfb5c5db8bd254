//! Fetch on demand (docs/REMOTES.md): a store whose lookup misses asks its lazy remote before
//! computing — taking in the remote's new packs (records and small values) — and downloads a
//! large value only when it is loaded.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store_core::{Id, Result};
use store_fs::exchange::Fallback;
use store_fs::FsBackend;

use crate::sync::{self, SyncOptions, SyncReport, Values};
use crate::transport::Transport;

/// How long a look at the remote is trusted: misses within it compute without asking again
/// (a call pushed elsewhere in the meantime may then be computed here too, never answered
/// wrongly), so a run of new calls costs a few listings a minute, not one per call.
pub const LOOK_EVERY: Duration = Duration::from_secs(5);

/// A remote a store falls back on. See [`FsBackend::set_fallback`].
pub struct LazyRemote {
    name: String,
    transport: Box<dyn Transport>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    looked: Option<Instant>,
    /// The remote's large values, as of the last look.
    values: BTreeSet<Id>,
    /// What was downloaded.
    report: SyncReport,
}

impl LazyRemote {
    /// Remote `name` of `store` (as its `remotes.toml` says), ready to be set as its fallback.
    pub fn open(store: &FsBackend, name: &str) -> Result<LazyRemote> {
        Ok(LazyRemote {
            name: name.to_string(),
            transport: sync::remote(store, name)?,
            state: Mutex::new(State::default()),
        })
    }

    /// The remote's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What was downloaded so far, and the requests made.
    pub fn report(&self) -> SyncReport {
        let mut r = self.state.lock().unwrap().report.clone();
        r.requests = self.transport.requests();
        r
    }

    /// Looks at the remote unless it did within [`LOOK_EVERY`]: takes in its new packs,
    /// version records and decisions, and lists its large values. `true` if anything was
    /// taken in.
    fn look(&self, store: &FsBackend) -> Result<bool> {
        let mut state = self.state.lock().unwrap();
        if state.looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return Ok(false);
        }
        state.looked = Some(Instant::now());
        let mut values = BTreeSet::new();
        let got = sync::fetch_from(
            store,
            &self.name,
            &*self.transport,
            &SyncOptions::default(),
            Values::List(&mut values),
        );
        match got {
            Ok(r) => {
                state.values = values;
                state.report.files += r.files;
                state.report.bytes += r.bytes;
                Ok(r.files > 0)
            }
            Err(e) => {
                // An unreachable remote must not stop the program: it computes instead.
                eprintln!("mandala: warning: {e}; computing what the store lacks");
                Ok(false)
            }
        }
    }
}

impl Fallback for LazyRemote {
    fn calls_missed(&self, store: &FsBackend) -> Result<bool> {
        self.look(store)
    }

    fn has_value(&self, store: &FsBackend, cid: &Id) -> Result<bool> {
        if self.state.lock().unwrap().looked.is_none() {
            self.look(store)?;
        }
        Ok(self.state.lock().unwrap().values.contains(cid))
    }

    fn fetch_value(&self, store: &FsBackend, cid: &Id) -> Result<bool> {
        let got = sync::fetch_value(store, &self.name, &*self.transport, cid)?;
        if got {
            let mut state = self.state.lock().unwrap();
            state.report.files += 1;
        }
        Ok(got)
    }
}
