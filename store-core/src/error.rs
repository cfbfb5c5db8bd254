//! The errors of the library crates, one type per area — the store ([`StoreError`]), the data
//! formats ([`FormatError`]), calls ([`CallError`]), versioning ([`VersioningError`]) and
//! frames ([`FrameError`]) — each converting into the one [`Error`] that public functions
//! return. Every variant names the thing and where it is; a cause (an OS error, a decoder's
//! error) is part of the message and is not also given as `source()`, so that reporters which
//! print a chain (anyhow's `{:#}`) say it once.
//!
//! Absence is not an error: backends answer `Ok(None)` for an object they do not hold, and the
//! `NotFound` variants are for what a user asked for by name or id.
//!
//! ```
//! use mandala::{Error, StoreError};
//! let e = Error::corrupt("values/ab/cd", "not a complete zstd frame");
//! assert!(matches!(&e, Error::Store(StoreError::Corrupt { .. })));
//! assert_eq!(e.to_string(), "corrupt object values/ab/cd: not a complete zstd frame");
//! ```

use std::path::{Path, PathBuf};

use crate::format::cbor::{DecodeError, EncodeError};
use crate::format::id::ParseIdError;

/// Shorthand for results of mandala operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mandala's library code, by area.
///
/// Its `Debug` form is its message, so a `main` returning `mandala::Result` prints a sentence
/// (`Error: strict versioning: undecided changes in …`); match on the variants, or debug-print
/// the area's error inside, for the structure.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding or decoding values and ids.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Calling an op.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Versioning: components, their histories and decisions.
    #[error(transparent)]
    Versioning(#[from] VersioningError),
    /// ComputationFrames and their tables.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Reading or writing a store: its files, its layout, its settings, and finding objects in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {cause}", path.display())]
    Io {
        /// What was being done ("read", "create directory", …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
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
    /// A tag cannot be read, written or re-pointed as asked.
    #[error("tag '{name}': {reason}")]
    Tag {
        /// The tag's name.
        name: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The path is not a store (it does not exist, is a file, is inside a store, or is a
    /// directory without `mandala.toml`), and no store is to be created there.
    #[error("{} is not a mandala store: {why}", path.display())]
    NotAStore {
        /// The path.
        path: PathBuf,
        /// What it is instead, and what to do.
        why: String,
    },
    /// The store was written by a newer (or unknown) format.
    #[error("{} uses store format {found}, but this mandala reads formats 1 to {supported}; upgrade mandala", path.display())]
    UnsupportedFormat {
        /// The `mandala.toml` file.
        path: PathBuf,
        /// The format it declares.
        found: String,
        /// The newest format this build reads (it reads every format from 1 to this one).
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
    /// A call record refers to a value the store does not hold.
    #[error("value {cid} is not in the store {store}")]
    MissingValue {
        /// The value's content id.
        cid: String,
        /// The store (path or "in-memory").
        store: String,
    },
    /// Nothing in the store has the id (or name) a user asked for.
    #[error("{what} {id} is not in the store {store}")]
    NotFound {
        /// "ref", "object", "version", …
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
    /// A remote (docs/REMOTES.md) failed or refused a request, or is not configured. The URL
    /// never holds credentials.
    #[error("remote '{remote}' ({url}): {reason}")]
    Remote {
        /// The remote's name.
        remote: String,
        /// Its URL (no credentials are ever part of it).
        url: String,
        /// What failed, with the object's key where there is one.
        reason: String,
    },
}

/// Encoding values into canonical CBOR, decoding them back, and parsing ids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A value passed to or returned from an op cannot be encoded as CBOR.
    #[error("op '{op}': {what} cannot be stored: {cause}")]
    Encode {
        /// The op ("(none)" for a value outside any call).
        op: String,
        /// Which argument or output ("argument 'x'", "output 'model'").
        what: String,
        /// The serializer's error.
        cause: EncodeError,
    },
    /// A stored value does not decode into the type asked for.
    #[error("value {cid} does not decode as {ty}: {cause}")]
    Decode {
        /// The value's content id.
        cid: String,
        /// The Rust type requested.
        ty: &'static str,
        /// The decoder's error.
        cause: DecodeError,
    },
    /// A string is not a hash or hash prefix.
    #[error(transparent)]
    BadId(#[from] ParseIdError),
}

/// Calling an op inside a storage context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
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
    /// A lazy ref's value is needed but no storage is at hand to load it from.
    #[error("ref {hid} is not loaded and no storage context is active to load it from")]
    NotLoaded {
        /// The ref's history id.
        hid: String,
    },
    /// A large argument found stored when its call began was gone when the call was stored
    /// (a `gc` removed it meanwhile): the call is not stored; running it again stores both.
    #[error("op '{op}': argument '{arg}' (value {cid}) was in the store when the call began and was removed (by gc) before it was stored; the call was not stored: run it again")]
    InputRemoved {
        /// The op.
        op: String,
        /// The argument.
        arg: String,
        /// The value's content id.
        cid: String,
    },
}

/// Versioning: turning it on, deciding about changes, inspecting histories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersioningError {
    /// Strict versioning: components changed and no decision says whether semantically.
    #[error("strict versioning: undecided changes in {}; mark each cosmetic or semantic (`mandala mark COMPONENT CONTENT --cosmetic`)", components.join(", "))]
    UndecidedChanges {
        /// The changed components, each with the start of its new content id.
        components: Vec<String>,
    },
    /// Versioning was turned on twice with different settings.
    #[error("versioning is already on for {store} with {current}; it is set once per storage handle, right after opening")]
    AlreadyOn {
        /// The store.
        store: String,
        /// The settings in force.
        current: String,
    },
    /// No version, component or op of that name or id prefix.
    #[error("no {what} '{name}' in the store {store}")]
    NotFound {
        /// "version", "component", …
        what: &'static str,
        /// The name or id prefix asked for.
        name: String,
        /// The store.
        store: String,
    },
    /// A version id prefix matches several versions.
    #[error("version prefix {prefix} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousVersion {
        /// The prefix typed.
        prefix: String,
        /// The matching version ids (shortened).
        candidates: Vec<String>,
    },
}

/// ComputationFrames and their tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
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
    Invalid {
        /// What was asked of (a node, a column and row).
        place: String,
        /// Why it cannot be done.
        reason: String,
    },
}

impl From<ParseIdError> for Error {
    fn from(e: ParseIdError) -> Error {
        Error::Format(FormatError::BadId(e))
    }
}

impl Error {
    /// A [`StoreError::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, cause: std::io::Error) -> Error {
        Error::Store(StoreError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            cause,
        })
    }

    /// A [`StoreError::Corrupt`] for `path`.
    pub fn corrupt(path: impl AsRef<Path>, reason: impl Into<String>) -> Error {
        Error::Store(StoreError::Corrupt {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        })
    }

    /// The file or directory the error is about, if it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Store(
                StoreError::Io { path, .. }
                | StoreError::Corrupt { path, .. }
                | StoreError::NotAFile { path, .. }
                | StoreError::NotAStore { path, .. }
                | StoreError::UnsupportedFormat { path, .. }
                | StoreError::BadConfig { path, .. },
            ) => Some(path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_its_cause_once_and_gives_no_source() {
        let cause = std::io::Error::from_raw_os_error(21);
        let text = cause.to_string();
        let e = Error::io("read", "/s/values/ab/cd", cause);
        assert_eq!(
            e.to_string(),
            format!("cannot read /s/values/ab/cd: {text}")
        );
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.path(), Some(std::path::Path::new("/s/values/ab/cd")));
    }
}
