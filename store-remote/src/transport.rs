//! The seam between a store and where a remote keeps its files: a few operations on keys
//! (`/`-separated paths relative to the remote's root), implemented for a directory here and
//! for S3-compatible object storage in `s3`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use store_core::{Error, Result, StoreError};

use crate::config::RemoteConfig;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No object has this key.
    NotFound,
    /// The request failed (after the transport's own retries): what the server or the
    /// system said, without credentials.
    Failed(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::NotFound => f.write_str("not found"),
            TransportError::Failed(why) => f.write_str(why),
        }
    }
}

/// Where a remote keeps its files. Implementations are blocking and may be used from several
/// threads at once.
pub trait Transport: Send + Sync {
    /// The remote's URL, for messages (never with credentials).
    fn url(&self) -> &str;
    /// Every key under `prefix` (a directory such as `packs/`), with its size.
    fn list(&self, prefix: &str) -> std::result::Result<Vec<(String, u64)>, TransportError>;
    /// Downloads `key` into the new file `dest`; returns its size.
    fn get(&self, key: &str, dest: &Path) -> std::result::Result<u64, TransportError>;
    /// Uploads the file `src` as `key` unless an object has that key (a create-only put):
    /// `true` if this call created it.
    fn put_new(&self, key: &str, src: &Path) -> std::result::Result<bool, TransportError>;
    /// How many requests this transport made (a listing counts one per page).
    fn requests(&self) -> u64;
}

/// A remote's URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    /// `file:///absolute/path`.
    Dir(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing `/`; may be empty).
        prefix: String,
    },
}

/// Parses a remote URL; the error says what is accepted.
///
/// ```
/// # use store_remote::transport::{parse_url, RemoteUrl};
/// assert_eq!(parse_url("s3://b/team/p/").unwrap(), RemoteUrl::S3 { bucket: "b".into(), prefix: "team/p".into() });
/// assert!(parse_url("file://relative").is_err());
/// ```
pub fn parse_url(url: &str) -> std::result::Result<RemoteUrl, String> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err("a file:// URL takes an absolute path (file:///mnt/share/store)".into());
        }
        return Ok(RemoteUrl::Dir(PathBuf::from(path)));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("an s3:// URL names a bucket (s3://bucket/prefix)".into());
        }
        return Ok(RemoteUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    Err("a remote URL is s3://bucket/prefix or file:///absolute/path".into())
}

/// The transport of remote `name` configured as `config`.
pub fn open_transport(name: &str, config: &RemoteConfig) -> Result<Box<dyn Transport>> {
    let bad = |reason: String| {
        Error::Store(StoreError::Remote {
            remote: name.to_string(),
            url: config.url.clone(),
            reason,
        })
    };
    match parse_url(&config.url).map_err(bad)? {
        RemoteUrl::Dir(root) => Ok(Box::new(DirTransport::new(root, config.url.clone()))),
        #[cfg(feature = "s3")]
        RemoteUrl::S3 { bucket, prefix } => crate::s3::S3Transport::open(&bucket, &prefix, config)
            .map(|t| Box::new(t) as Box<dyn Transport>)
            .map_err(bad),
        #[cfg(not(feature = "s3"))]
        RemoteUrl::S3 { .. } => Err(bad(
            "this mandala was built without S3 support (cargo feature `s3`)".into(),
        )),
    }
}

/// A remote in a directory: a mounted share, or any path. Uploads are copied into the
/// remote's `tmp/` and hard-linked into place, which fails if the name exists: a create-only
/// put, atomic for readers.
pub struct DirTransport {
    root: PathBuf,
    url: String,
    requests: AtomicU64,
}

impl DirTransport {
    /// The remote at `root`, called `url` in messages.
    pub fn new(root: PathBuf, url: String) -> DirTransport {
        DirTransport {
            root,
            url,
            requests: AtomicU64::new(0),
        }
    }

    fn walk(&self, dir: &Path, key: &str, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let key = if key.is_empty() {
                name
            } else {
                format!("{key}/{name}")
            };
            let meta = e.metadata()?;
            if meta.is_dir() {
                self.walk(&e.path(), &key, out)?;
            } else if meta.is_file() {
                out.push((key, meta.len()));
            }
        }
        Ok(())
    }
}

fn failed(what: &str, path: &Path, e: std::io::Error) -> TransportError {
    if e.kind() == ErrorKind::NotFound {
        TransportError::NotFound
    } else {
        TransportError::Failed(format!("cannot {what} {}: {e}", path.display()))
    }
}

impl Transport for DirTransport {
    fn url(&self) -> &str {
        &self.url
    }

    fn list(&self, prefix: &str) -> std::result::Result<Vec<(String, u64)>, TransportError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let key = prefix.trim_end_matches('/');
        let mut out = Vec::new();
        self.walk(&self.root.join(key), key, &mut out)
            .map_err(|e| failed("list", &self.root.join(key), e))?;
        out.sort();
        Ok(out)
    }

    fn get(&self, key: &str, dest: &Path) -> std::result::Result<u64, TransportError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let src = self.root.join(key);
        fs::copy(&src, dest).map_err(|e| failed("read", &src, e))
    }

    fn put_new(&self, key: &str, src: &Path) -> std::result::Result<bool, TransportError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let dest = self.root.join(key);
        if dest.exists() {
            return Ok(false);
        }
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| failed("create", &tmp_dir, e))?;
        // Unique across the hosts sharing the directory: pid, clock and a counter.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let tmp = tmp_dir.join(format!(
            "push-{}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            fs::copy(src, &tmp).map_err(|e| failed("write", &tmp, e))?;
            let parent = dest.parent().expect("keys have a parent");
            fs::create_dir_all(parent).map_err(|e| failed("create", parent, e))?;
            match fs::hard_link(&tmp, &dest) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(failed("link into place", &dest, e)),
            }
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);
