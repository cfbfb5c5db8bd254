//! `mandala.toml`: the file that marks a directory as a store and names its format.

use std::path::Path;

use serde::Deserialize;
use store_core::{Error, Result};

/// The store format of new stores, and the newest this build reads and writes (it reads and
/// writes every format from 1 on, each as itself). Bump only with a migration and a golden
/// store.
pub const FORMAT_VERSION: u32 = 3;

/// The oldest store format this build reads and writes.
pub const OLDEST_FORMAT: u32 = 1;

/// The default zstd level of new stores.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The settings of a store, from its `mandala.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The format version: 1 (one file per object), 2 (packs of version 1) or 3 (packs of
    /// version 2: compact records, raw small entries; see [`FORMAT_VERSION`]).
    pub format: u32,
    /// The zstd level new blobs are compressed with. Readers accept any level.
    pub zstd_level: i32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            format: FORMAT_VERSION,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    format: toml::Value,
    hash: Option<String>,
    encoding: Option<String>,
    compression: Option<String>,
    zstd_level: Option<i64>,
}

impl Config {
    /// The text of `mandala.toml` for this config.
    pub fn to_toml(&self) -> String {
        format!(
            "# A mandala store: see docs/FORMAT.md in the mandala repository.\n\
             format = {}\n\
             hash = \"blake3\"\n\
             encoding = \"cbor\"\n\
             compression = \"zstd\"\n\
             zstd_level = {}\n",
            self.format, self.zstd_level
        )
    }

    /// Parses `text`, the content of the `mandala.toml` at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let bad = |reason: String| {
            Error::Store(store_core::StoreError::BadConfig {
                path: path.to_path_buf(),
                reason,
            })
        };
        let raw: Raw = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        let format = match &raw.format {
            toml::Value::Integer(n)
                if (i64::from(OLDEST_FORMAT)..=i64::from(FORMAT_VERSION)).contains(n) =>
            {
                *n as u32
            }
            other => {
                return Err(Error::Store(store_core::StoreError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found: match other {
                        toml::Value::Integer(n) => n.to_string(),
                        toml::Value::String(s) => format!("{s:?}"),
                        _ => "(not a number)".to_string(),
                    },
                    supported: FORMAT_VERSION,
                }))
            }
        };
        for (key, value, want) in [
            ("hash", &raw.hash, "blake3"),
            ("encoding", &raw.encoding, "cbor"),
            ("compression", &raw.compression, "zstd"),
        ] {
            if let Some(v) = value {
                if v != want {
                    return Err(bad(format!(
                        "{key} = \"{v}\" is not supported (only \"{want}\")"
                    )));
                }
            }
        }
        let zstd_level = match raw.zstd_level {
            None => DEFAULT_ZSTD_LEVEL,
            Some(l) if (1..=22).contains(&l) => l as i32,
            Some(l) => return Err(bad(format!("zstd_level = {l} is outside 1..=22"))),
        };
        Ok(Config { format, zstd_level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Config {
            format: 1,
            zstd_level: 7,
        };
        assert_eq!(Config::parse(&c.to_toml(), Path::new("m.toml")).unwrap(), c);
    }

    #[test]
    fn newer_format_is_refused_by_name() {
        let e = Config::parse("format = 4\n", Path::new("/s/mandala.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/s/mandala.toml uses store format 4, but this mandala reads formats 1 to 3; upgrade mandala"
        );
        for format in [1, 2, 3] {
            let c = Config::parse(&format!("format = {format}\n"), Path::new("m.toml")).unwrap();
            assert_eq!(c.format, format);
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let p = Path::new("m.toml");
        assert!(matches!(
            Config::parse("format = 1\nhash = \"md5\"\n", p),
            Err(Error::Store(store_core::StoreError::BadConfig { .. }))
        ));
        assert!(matches!(
            Config::parse("format = 1\nzstd_level = 99\n", p),
            Err(Error::Store(store_core::StoreError::BadConfig { .. }))
        ));
        assert!(matches!(
            Config::parse("format = 1\nwhat = 1\n", p),
            Err(Error::Store(store_core::StoreError::BadConfig { .. }))
        ));
        assert!(matches!(
            Config::parse("not toml", p),
            Err(Error::Store(store_core::StoreError::BadConfig { .. }))
        ));
    }
}
