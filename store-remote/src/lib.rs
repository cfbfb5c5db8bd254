//! mandala's remotes (docs/REMOTES.md): a store shared through a plain directory (`file://`,
//! e.g. a mounted NFS or SMB share) or S3-compatible object storage (`s3://bucket/prefix`,
//! feature `s3`), in git's model.
//!
//! - The local store stays the only place a program writes; a remote holds the same content
//!   files as a store (sealed packs, loose large values, version records, decisions) under
//!   the same paths, so it is itself a valid store layout.
//! - Every upload is a create-only put of a write-once, content-named file (S3's
//!   `If-None-Match: *`; a hard link in a directory), so pushes from many stores never
//!   conflict and need no lock. A pack's `.idx` is uploaded after its `.pack` and after every
//!   value: a reader sees a pack by its index, so a killed push leaves nothing half-visible.
//! - A push or fetch lists both sides (a few requests) and transfers what the other side
//!   lacks, several files at once. Everything downloaded is verified against its name before
//!   it enters the store.
//!
//! Modules: `config` (the store's `remotes.toml`), `transport` (the object-store seam and the
//! directory remote), `s3` (feature `s3`), `sync` (push, fetch, pull), `lazy` (fetch on
//! demand).

pub mod config;
pub mod lazy;
#[cfg(feature = "s3")]
mod s3;
pub mod sync;
pub mod transport;

pub use config::{RemoteConfig, Remotes};
pub use lazy::LazyRemote;
pub use sync::{fetch, pull, push, Progress, SyncOptions, SyncReport};
pub use transport::{open_transport, Transport, TransportError};
