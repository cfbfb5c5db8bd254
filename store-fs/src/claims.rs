//! Claims across processes (opt-in, [`OpenOptions::claims`](crate::OpenOptions)): before
//! computing a new call, a process creates `tmp/claims/<call key>.claim` exclusively (git's
//! `.lock` pattern), holding its host, pid and an expiry; other processes that reach the same
//! call wait for its result instead of computing it too. A claim whose process is gone (same
//! host) or whose expiry passed is taken over. Claims live under `tmp/`: never content, never
//! committed, ignored by merges. A claim without its three lines is being written by its
//! holder (created, not yet filled) and is taken over only once 5 s old (then a killed
//! process left it so); a process that gets a claim looks the call up once more before
//! computing it (its holder may have stored it and let go since the miss). Two processes that take over one stale claim at the same moment
//! may both compute the call — twice, never wrongly.
//!
//! On an object store the same claim would be a create-only put (`If-None-Match: *`) of the
//! claim object, with the expiry in its body.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store_core::backend::CallClaim;
use store_core::{Error, Id, Result};

use crate::{layout, FsBackend};

/// This machine's name (for telling a dead local holder from a remote one), read once.
fn host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into())
    })
}

/// Whether process `pid` of this machine runs (on Linux; elsewhere assumed, the expiry decides).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// How old a claim that holds no complete record must be to count as left by a killed
/// process (a live holder fills its claim right after creating it).
const HALF_WRITTEN: Duration = Duration::from_secs(5);

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A claim file's fields: host, pid, expiry (ms since the epoch).
fn parse(text: &str) -> Option<(String, u32, u128)> {
    let mut host = None;
    let (mut pid, mut expires) = (None, None);
    for line in text.lines() {
        match line.split_once(' ')? {
            ("host", h) => host = Some(h.to_string()),
            ("pid", p) => pid = p.parse().ok(),
            ("expires", e) => expires = e.parse().ok(),
            _ => {}
        }
    }
    Some((host?, pid?, expires?))
}

impl FsBackend {
    fn claim_path(&self, key: &Id) -> PathBuf {
        self.root()
            .join(layout::TMP)
            .join("claims")
            .join(format!("{key}.claim"))
    }

    /// See [`store_core::Backend::claim_call`].
    pub(crate) fn claim(&self, key: &Id, lease: Duration) -> Result<CallClaim> {
        let path = self.claim_path(key);
        let dir = path.parent().expect("under tmp/claims");
        let (me, pid) = (host(), std::process::id());
        let body = format!(
            "host {me}\npid {pid}\nexpires {}\n",
            now_ms() + lease.as_millis()
        );
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(body.as_bytes())
                        .map_err(|e| Error::io("write", &path, e))?;
                    return Ok(CallClaim::Acquired);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // The first claim in this store: its directory.
                    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
                    continue;
                }
                Err(e) => return Err(Error::io("create", &path, e)),
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue; // released meanwhile: try again
            };
            let parsed = parse(&text);
            let stale = match &parsed {
                Some((h, p, expires)) => {
                    *expires < now_ms() || (h == me && (*p == pid || !alive(*p)))
                }
                // Being written by its holder (created, not yet filled), or left half-written
                // by a killed process: stale only once it is old enough to be the latter.
                None => fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > HALF_WRITTEN),
            };
            if !stale {
                return Ok(CallClaim::HeldElsewhere(match parsed {
                    Some((h, p, _)) => format!("process {p} on {h}"),
                    None => "another process".into(),
                }));
            }
            // Taken over only if it is still the stale claim just read.
            if fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(CallClaim::HeldElsewhere("another process".into()))
    }

    /// See [`store_core::Backend::release_call`]: removes this process's claim on `key`.
    pub(crate) fn release(&self, key: &Id) -> Result<()> {
        let path = self.claim_path(key);
        if let Ok(text) = fs::read_to_string(&path) {
            if parse(&text).is_some_and(|(h, p, _)| h == host() && p == std::process::id()) {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
    }
}
