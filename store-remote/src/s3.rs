//! S3-compatible object storage (AWS S3, MinIO, Ceph, R2, GCS's S3 API) through the
//! `object_store` crate: create-only puts are `PUT` with `If-None-Match: *`.
//!
//! Credentials, in order: the standard environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the profile (the remote's `profile`,
//! `AWS_PROFILE`, or `default`) in `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`).
//! Region: the remote's, `AWS_REGION`/`AWS_DEFAULT_REGION`, the profile's in
//! `~/.aws/config`, `us-east-1`. Endpoint: the remote's, or `AWS_ENDPOINT_URL`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

use crate::config::RemoteConfig;
use crate::transport::{Transport, TransportError};

pub(crate) struct S3Transport {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    runtime: tokio::runtime::Runtime,
    requests: AtomicU64,
}

/// `key = value` pairs of section `[section]` of an AWS INI file.
fn ini_section(path: &Path, section: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == section || name == format!("profile {section}");
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Transport {
    pub(crate) fn open(
        bucket: &str,
        prefix: &str,
        config: &RemoteConfig,
    ) -> Result<S3Transport, String> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let home = env("HOME").map(std::path::PathBuf::from);
        let profile = config
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        if env("AWS_ACCESS_KEY_ID").is_none() {
            let file = env("AWS_SHARED_CREDENTIALS_FILE")
                .map(std::path::PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
            for (k, v) in file.map(|f| ini_section(&f, &profile)).unwrap_or_default() {
                builder = match k.as_str() {
                    "aws_access_key_id" => builder.with_access_key_id(v),
                    "aws_secret_access_key" => builder.with_secret_access_key(v),
                    "aws_session_token" => builder.with_token(v),
                    _ => builder,
                };
            }
        }
        let region = config
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| {
                let file = env("AWS_CONFIG_FILE")
                    .map(std::path::PathBuf::from)
                    .or_else(|| home.as_ref().map(|h| h.join(".aws/config")))?;
                ini_section(&file, &profile)
                    .into_iter()
                    .find(|(k, _)| k == "region")
                    .map(|(_, v)| v)
            })
            .unwrap_or_else(|| "us-east-1".into());
        builder = builder.with_region(region);
        if let Some(endpoint) = config.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL")) {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        // Bounded retries: a slow or failing server gives an error within about a minute.
        let retry = RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        Ok(S3Transport {
            store: Arc::new(store),
            prefix: prefix.to_string(),
            url,
            runtime,
            requests: AtomicU64::new(0),
        })
    }

    fn key(&self, key: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{}/{key}", self.prefix))
        }
    }
}

fn failed(e: object_store::Error) -> TransportError {
    match e {
        object_store::Error::NotFound { .. } => TransportError::NotFound,
        e => TransportError::Failed(e.to_string()),
    }
}

impl Transport for S3Transport {
    fn url(&self) -> &str {
        &self.url
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, TransportError> {
        let base = self.key(prefix.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let listed: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&base)).try_collect())
            .map_err(failed)?;
        // One request per page of 1 000 keys.
        self.requests
            .fetch_add(1 + listed.len() as u64 / 1000, Ordering::Relaxed);
        let mut out: Vec<(String, u64)> = listed
            .into_iter()
            .filter_map(|m| {
                let key = m.location.to_string();
                key.strip_prefix(&strip).map(|k| (k.to_string(), m.size))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn get(&self, key: &str, dest: &Path) -> Result<u64, TransportError> {
        use std::io::Write;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let write_failed = |e: std::io::Error| {
            TransportError::Failed(format!("cannot write {}: {e}", dest.display()))
        };
        let mut file = std::fs::File::create(dest).map_err(write_failed)?;
        // Streamed into the file: a large value is never held in memory whole.
        let mut written = 0u64;
        self.runtime.block_on(async {
            let mut stream = self
                .store
                .get(&self.key(key))
                .await
                .map_err(failed)?
                .into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(failed)?;
                file.write_all(&chunk).map_err(write_failed)?;
                written += chunk.len() as u64;
            }
            Ok::<(), TransportError>(())
        })?;
        Ok(written)
    }

    fn put_new(&self, key: &str, src: &Path) -> Result<bool, TransportError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let read_failed = |e: std::io::Error| {
            TransportError::Failed(format!("cannot read {}: {e}", src.display()))
        };
        let size = std::fs::metadata(src).map_err(read_failed)?.len();
        if size >= MULTIPART {
            return self.put_new_multipart(key, src);
        }
        let bytes = std::fs::read(src).map_err(read_failed)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.runtime.block_on(self.store.put_opts(
            &self.key(key),
            PutPayload::from(bytes),
            options,
        )) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(failed(e)),
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Files at least this large are uploaded in parts, read a part at a time.
const MULTIPART: u64 = 32 << 20;

impl S3Transport {
    /// A large file's create-only upload: S3's multipart uploads take no `If-None-Match`
    /// here, so the key is looked up first (`HEAD`) and the parts uploaded only if it is
    /// absent. Two stores racing on one large value both upload it whole: the same name is
    /// the same content (a value's cid), so either copy is right.
    fn put_new_multipart(&self, key: &str, src: &Path) -> Result<bool, TransportError> {
        use std::io::Read;
        let location = self.key(key);
        self.requests.fetch_add(1, Ordering::Relaxed);
        match self.runtime.block_on(self.store.head(&location)) {
            Ok(_) => return Ok(false),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed(e)),
        }
        let read_failed = |e: std::io::Error| {
            TransportError::Failed(format!("cannot read {}: {e}", src.display()))
        };
        let mut file = std::fs::File::open(src).map_err(read_failed)?;
        self.runtime.block_on(async {
            let upload = self.store.put_multipart(&location).await.map_err(failed)?;
            let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let mut buf = vec![0u8; 8 << 20];
            let sent: Result<(), TransportError> = async {
                loop {
                    let n = file.read(&mut buf).map_err(read_failed)?;
                    if n == 0 {
                        return Ok(());
                    }
                    writer.wait_for_capacity(4).await.map_err(failed)?;
                    writer.write(&buf[..n]);
                    self.requests.fetch_add(1, Ordering::Relaxed);
                }
            }
            .await;
            match sent {
                // Nothing is visible before the upload completes; parts of an aborted one are
                // removed (a killed process's are left to the bucket's lifecycle rules).
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
                Ok(()) => writer.finish().await.map(|_| ()).map_err(failed),
            }
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_sections_are_read_from_aws_ini_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = A\n\n[profile ci]\nregion = eu-west-1\n[ci]\naws_secret_access_key=S \n",
        )
        .unwrap();
        assert_eq!(
            ini_section(&path, "default"),
            [("aws_access_key_id".into(), "A".into())]
        );
        assert_eq!(
            ini_section(&path, "ci"),
            [
                ("region".to_string(), "eu-west-1".to_string()),
                ("aws_secret_access_key".to_string(), "S".to_string())
            ]
        );
        assert!(ini_section(&path, "other").is_empty());
        assert!(ini_section(&dir.path().join("missing"), "default").is_empty());
    }
}
