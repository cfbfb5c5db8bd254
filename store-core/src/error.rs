//! The error type of the library crates: every variant names the thing and where it is.

use std::path::PathBuf;

use crate::cbor::{DecodeError, EncodeError};
use crate::id::ParseIdError;

/// Shorthand for results of mandala operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mandala's library code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done ("read", "create directory", …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error. Part of the message, and not also given as the
        /// error's `source()`, so that reporters which print a chain (anyhow's `{:#}`) say it
        /// once.
        cause: std::io::Error,
    },
    /// A stored object is damaged: it does not decompress, decode or hash to its name.
    #[error("corrupt object {}: {reason}", path.display())]
    Corrupt {
        /// The file (or in-memory object description) that is damaged.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Where a store keeps a file there is something else: a FIFO, a device, a socket, a
    /// directory (or a link to one). It is never read.
    #[error("{} is a {kind}, not a regular file; a store holds only regular files (remove it, or replace it with the file it stands for)", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there ("FIFO (named pipe)", "character device", "directory", …).
        kind: &'static str,
    },
    /// The directory exists, is not empty, and has no `mandala.toml`.
    #[error("{} is not a mandala store (no mandala.toml); use an empty or new directory, or `mandala init`", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// The store was written by a newer (or unknown) format.
    #[error("{} uses store format {found}, but this mandala reads format {supported}; upgrade mandala", path.display())]
    UnsupportedFormat {
        /// The `mandala.toml` file.
        path: PathBuf,
        /// The format it declares.
        found: String,
        /// The format this build reads.
        supported: u32,
    },
    /// `mandala.toml` exists but cannot be understood.
    #[error("invalid store config {}: {reason}", path.display())]
    BadConfig {
        /// The `mandala.toml` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value passed to or returned from an op cannot be encoded as CBOR.
    #[error("op '{op}': {what} cannot be stored: {cause}")]
    Encode {
        /// The op.
        op: String,
        /// Which argument or output ("argument 'x'", "output 'model'").
        what: String,
        /// The serializer's error (part of the message, not a `source()`).
        cause: EncodeError,
    },
    /// A stored value does not decode into the type asked for.
    #[error("value {cid} does not decode as {ty}: {cause}")]
    Decode {
        /// The value's content id.
        cid: String,
        /// The Rust type requested.
        ty: &'static str,
        /// The decoder's error (part of the message, not a `source()`).
        cause: DecodeError,
    },
    /// A call record refers to a value the store does not hold.
    #[error("value {cid} is not in the store {store}")]
    MissingValue {
        /// The value's content id.
        cid: String,
        /// The store (path or "in-memory").
        store: String,
    },
    /// `allow_new_calls(false)` is set and the call is not memoized.
    #[error("call to op '{op}' is not in the store and new calls are not allowed")]
    NewCallNotAllowed {
        /// The op.
        op: String,
    },
    /// A stored call of an op has other outputs than the op declares now.
    #[error("op '{op}' now has outputs {current:?}, but its stored call {call} has {stored:?}; give the changed op a new name with #[op(name = \"...\")]")]
    SignatureChanged {
        /// The op.
        op: String,
        /// The stored call's hid.
        call: String,
        /// Output names in the store.
        stored: Vec<String>,
        /// Output names the op declares.
        current: Vec<String>,
    },
    /// Strict versioning: components changed and no decision says whether semantically.
    #[error("strict versioning: undecided changes in {}; mark each cosmetic or semantic (`mandala mark COMPONENT CONTENT --cosmetic`)", components.join(", "))]
    UndecidedChanges {
        /// The changed components, each with the start of its new content id.
        components: Vec<String>,
    },
    /// A lazy ref's value is needed but no storage is at hand to load it from.
    #[error("ref {hid} is not loaded and no storage context is active to load it from")]
    NotLoaded {
        /// The ref's history id.
        hid: String,
    },
    /// Nothing in the store has this id.
    #[error("{what} {id} is not in the store {store}")]
    NotFound {
        /// "ref", "call", "object", …
        what: &'static str,
        /// The id or prefix looked up.
        id: String,
        /// The store.
        store: String,
    },
    /// A hash prefix matches more than one object.
    #[error("hash prefix {prefix} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousPrefix {
        /// The prefix typed.
        prefix: String,
        /// Descriptions of the matches ("value 3fa9c2…", "call 3fa9d0…").
        candidates: Vec<String>,
    },
    /// A string is not a hash or hash prefix.
    /// A name that a frame or table does not have.
    #[error("no {what} '{name}' in {place}; it has: {}", available.join(", "))]
    NoSuchName {
        /// "variable", "node", "column", …
        what: &'static str,
        /// The name asked for.
        name: String,
        /// "the frame", "the table".
        place: &'static str,
        /// The names there are.
        available: Vec<String>,
    },
    /// An operation a frame or table cannot do as asked.
    #[error("{place}: {reason}")]
    Frame {
        /// What was asked of (a node, a column and row).
        place: String,
        /// Why it cannot be done.
        reason: String,
    },
    #[error(transparent)]
    BadId(#[from] ParseIdError),
}

impl Error {
    /// An [`Error::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            cause,
        }
    }

    /// An [`Error::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
