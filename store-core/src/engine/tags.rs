//! Tags: names for refs, as git's tags (`storage.tag("paper/fig3", &r)`), stored as write-once
//! records (see [`crate::format::tag`]); gc keeps what they name.

use crate::engine::value::{OpValue, Ref, RefIds};
use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::format::tag::{self, Tag, TagRecord};

fn tag_error(name: &str, reason: impl Into<String>) -> Error {
    Error::Store(StoreError::Tag {
        name: name.to_string(),
        reason: reason.into(),
    })
}

impl Engine {
    /// Names the ref `r` `name` (`/`-separated parts of letters, digits, `.`, `_`, `-`), as
    /// git tags a commit. A name already pointing at another ref is refused: re-point it with
    /// [`Engine::retag`]. The ref must be stored (an op's output or input).
    ///
    /// ```
    /// # use mandala::{op, Storage};
    /// #[op]
    /// fn inc(x: u64) -> u64 { x + 1 }
    /// let storage = Storage::in_memory();
    /// let y = storage.run(|| inc(1))?;
    /// storage.tag("results/best", &y)?;
    /// let again = storage.load_tag::<u64>("results/best")?;
    /// assert_eq!(storage.unwrap(&again)?, 2);
    /// # Ok::<(), mandala::Error>(())
    /// ```
    pub fn tag<T: OpValue>(&self, name: &str, r: &Ref<T>) -> Result<()> {
        self.tag_ids(name, self.stored_ids(name, r)?, false)
    }

    /// Points `name` at `r`, whatever it named before (git's `tag --force`). The record says
    /// which target it replaces, so merged stores tell this from a conflict.
    pub fn retag<T: OpValue>(&self, name: &str, r: &Ref<T>) -> Result<()> {
        self.tag_ids(name, self.stored_ids(name, r)?, true)
    }

    fn stored_ids<T: OpValue>(&self, name: &str, r: &Ref<T>) -> Result<RefIds> {
        match r.known_ids() {
            Some(ids) if self.backend().has_value(&ids.cid)? => Ok(ids),
            _ => Err(tag_error(
                name,
                "the ref is not in the store: tag an op's output or input",
            )),
        }
    }

    /// Points `name` at the ref `ids` (`force`: even if it names another ref).
    pub fn tag_ids(&self, name: &str, ids: RefIds, force: bool) -> Result<()> {
        tag::check_name(name).map_err(|reason| tag_error(name, reason))?;
        let current = self.find_tag(name)?;
        if let Some(t) = &current {
            if t.current.hid == ids.hid && t.conflicts.is_empty() {
                return Ok(());
            }
            if !force {
                return Err(tag_error(
                    name,
                    format!(
                        "it names ref {} already; re-point it with retag (`mandala tag --force`)",
                        t.current.hid.short(12)
                    ),
                ));
            }
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.backend().put_tag(&TagRecord {
            name: name.to_string(),
            hid: ids.hid,
            cid: ids.cid,
            // Never older than what it replaces, whatever the clocks say.
            time: current.as_ref().map_or(time, |t| time.max(t.current.time)),
            replaces: current.map(|t| t.current.hid),
        })
    }

    /// Every tag, by name.
    pub fn tags(&self) -> Result<Vec<Tag>> {
        Ok(tag::resolve(&self.backend().tag_records()?))
    }

    /// The tag `name`, if there is one.
    pub fn find_tag(&self, name: &str) -> Result<Option<Tag>> {
        let records: Vec<TagRecord> = self
            .backend()
            .tag_records()?
            .into_iter()
            .filter(|r| r.name == name)
            .collect();
        Ok(tag::resolve(&records).into_iter().next())
    }

    /// The ref tag `name` names (a collection's shape loaded, its elements lazy).
    pub fn load_tag<T: OpValue>(&self, name: &str) -> Result<Ref<T>> {
        let t = self.find_tag(name)?.ok_or_else(|| {
            let known: Vec<String> = self
                .tags()
                .map(|ts| ts.into_iter().map(|t| t.name).collect())
                .unwrap_or_default();
            tag_error(
                name,
                if known.is_empty() {
                    "no such tag (the store has none)".to_string()
                } else {
                    format!("no such tag; the store has: {}", known.join(", "))
                },
            )
        })?;
        T::from_store(
            RefIds {
                cid: t.current.cid,
                hid: t.current.hid,
            },
            self,
            false,
        )
    }
}
