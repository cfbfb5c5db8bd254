//! `remotes.toml`: the remotes of a store, by name — beside `mandala.toml`, and shared with
//! the store (committed, copied by rsync) because it never holds a secret: credentials come
//! from the environment and the AWS profile files only, and unknown keys are refused.
//!
//! ```toml
//! [remote.origin]
//! url = "s3://team-bucket/mandala/project"
//! endpoint = "http://127.0.0.1:9000"   # S3-compatible servers (MinIO, Ceph, moto); optional
//! region = "eu-west-1"                 # optional
//! profile = "ci"                       # AWS profile for credentials; optional
//! lazy = true                          # fetch on demand (docs/REMOTES.md); optional
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use store_core::{Error, Result, StoreError};

/// The file name, at the top of a store.
pub const REMOTES_FILE: &str = "remotes.toml";

/// One remote's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `file:///absolute/path` or `s3://bucket/prefix`.
    pub url: String,
    /// The S3 endpoint (for S3-compatible servers); default: AWS, or `AWS_ENDPOINT_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The S3 region; default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AWS profile to take credentials from; default: `AWS_PROFILE`, then `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Fetch on demand: a program opening the store (`Storage::open`) asks this remote when
    /// a lookup misses, and downloads a large value when it is loaded (docs/REMOTES.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    remote: BTreeMap<String, RemoteConfig>,
}

/// The remotes of one store, as its `remotes.toml` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remotes {
    path: PathBuf,
    remotes: BTreeMap<String, RemoteConfig>,
}

impl Remotes {
    /// Reads the remotes of the store at `store` (none if it has no `remotes.toml`).
    pub fn load(store: &Path) -> Result<Remotes> {
        let path = store.join(REMOTES_FILE);
        let remotes = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: File = toml::from_str(&text).map_err(|e| {
                    Error::Store(StoreError::BadConfig {
                        path: path.clone(),
                        reason: e.message().to_string(),
                    })
                })?;
                file.remote
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        Ok(Remotes { path, remotes })
    }

    /// The remote called `name`; the error lists the configured ones.
    pub fn get(&self, name: &str) -> Result<&RemoteConfig> {
        self.remotes.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.remotes.keys().map(String::as_str).collect();
            Error::Store(StoreError::Remote {
                remote: name.to_string(),
                url: "(not configured)".to_string(),
                reason: if known.is_empty() {
                    "this store has no remotes; add one with `mandala remote add NAME URL`".into()
                } else {
                    format!("no such remote; this store has {}", known.join(", "))
                },
            })
        })
    }

    /// Every remote, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RemoteConfig)> {
        self.remotes.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// Adds remote `name` (its URL checked) and writes the file. Refuses a name in use.
    pub fn add(&mut self, name: &str, config: RemoteConfig) -> Result<()> {
        let bad = |reason: String| {
            Error::Store(StoreError::Remote {
                remote: name.to_string(),
                url: config.url.clone(),
                reason,
            })
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(
                "a remote's name is letters, digits, '-', '_' and '.'".into()
            ));
        }
        if self.remotes.contains_key(name) {
            return Err(bad("a remote of this name exists; remove it first".into()));
        }
        crate::transport::parse_url(&config.url).map_err(bad)?;
        self.remotes.insert(name.to_string(), config);
        self.save()
    }

    /// Removes remote `name` and writes the file.
    pub fn remove(&mut self, name: &str) -> Result<RemoteConfig> {
        self.get(name)?;
        let removed = self.remotes.remove(name).expect("checked above");
        self.save()?;
        Ok(removed)
    }

    fn save(&self) -> Result<()> {
        let file = File {
            remote: self.remotes.clone(),
        };
        let text = format!(
            "# The remotes of this store (`mandala remote add`, docs/REMOTES.md). No secrets:\n\
             # credentials come from the environment and the AWS profile files.\n{}",
            toml::to_string(&file).expect("remotes always encode")
        );
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename into place", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_round_trip_and_refuse_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Remotes::load(dir.path()).unwrap();
        let origin = RemoteConfig {
            url: "s3://bucket/some/prefix".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            lazy: true,
            ..Default::default()
        };
        r.add("origin", origin.clone()).unwrap();
        r.add(
            "share",
            RemoteConfig {
                url: "file:///mnt/share/store".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let again = Remotes::load(dir.path()).unwrap();
        assert_eq!(again, r);
        assert_eq!(again.get("origin").unwrap(), &origin);
        assert!(r.add("origin", origin.clone()).is_err());
        assert!(r.add("bad name", origin.clone()).is_err());
        let e = r
            .add(
                "x",
                RemoteConfig {
                    url: "ftp://h/p".into(),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("ftp://h/p"), "{e}");
        r.remove("share").unwrap();
        assert_eq!(
            Remotes::load(dir.path())
                .unwrap()
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["origin"]
        );
        let e = r.get("share").unwrap_err().to_string();
        assert_eq!(
            e,
            "remote 'share' ((not configured)): no such remote; this store has origin"
        );
        // A secret never has a place in the file: the key is refused.
        std::fs::write(
            dir.path().join(REMOTES_FILE),
            "[remote.o]\nurl = \"s3://b/p\"\nsecret_access_key = \"x\"\n",
        )
        .unwrap();
        assert!(Remotes::load(dir.path()).is_err());
    }
}
