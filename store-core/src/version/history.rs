//! Component histories: a commit-like DAG of versions per component, as git keeps for files.
//!
//! Each version record names its component, its content id, its parent versions and its
//! semantic id. A semantic change gets a new semantic id (its own content id); a cosmetic one
//! inherits its parent's, so calls recorded under the parent stay valid. Records are named by
//! their hash, so the histories of two merged stores union without conflict: a component may
//! then have several heads (branches), and the next commit merges them.
//!
//! This module is the DAG logic alone; the store keeps the records (see docs/FORMAT.md,
//! `versions/`), and the engine decides when to commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::format::id::Id;
pub use crate::format::version::{Change, Decision, VersionRecord};

/// The semantic id each stored content of each component stands for, from the version
/// records (conflicting decisions of merged stores make a content stand for itself, as
/// [`History::semantic_of`] says). A call record's `deps` hold semantic ids; records written
/// before that rule was corrected hold content ids (docs/FORMAT.md §6): [`Self::resolve`]
/// reads either. A semantic id is the content id of the version that introduced it, so it
/// resolves to itself.
#[derive(Clone, Debug, Default)]
pub struct SemanticIds {
    by_content: HashMap<String, HashMap<Id, Id>>,
}

impl SemanticIds {
    /// The mapping of every version in `versions`.
    pub fn new<'a>(versions: impl IntoIterator<Item = &'a VersionRecord>) -> SemanticIds {
        let mut by_component: BTreeMap<&str, Vec<&VersionRecord>> = BTreeMap::new();
        for v in versions {
            by_component.entry(&v.component).or_default().push(v);
        }
        let mut ids = SemanticIds::default();
        for (component, versions) in by_component {
            let history = History::new(versions.iter().map(|v| (*v).clone()));
            for v in versions {
                if let Some((semantic, _)) = history.semantic_of(&v.content) {
                    ids.insert(component, v.content, semantic);
                }
            }
        }
        ids
    }

    /// Records that `content` of `component` stands for `semantic` (a version just committed).
    pub fn insert(&mut self, component: &str, content: Id, semantic: Id) {
        self.by_content
            .entry(component.to_string())
            .or_default()
            .insert(content, semantic);
    }

    /// The semantic id that `recorded`, an id a call record holds for `component`, stands
    /// for (itself if no version has it as content).
    pub fn resolve(&self, component: &str, recorded: &Id) -> Id {
        self.by_content
            .get(component)
            .and_then(|m| m.get(recorded))
            .copied()
            .unwrap_or(*recorded)
    }
}

/// What [`History::sync`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Synced {
    /// The content is a known version (the current head, or an older one: going back in time).
    Known(VersionRecord),
    /// The content is new: this version was committed.
    Committed(VersionRecord),
}

/// The history of one component.
#[derive(Clone, Debug, Default)]
pub struct History {
    versions: BTreeMap<Id, VersionRecord>,
}

impl History {
    /// A history from its version records (in any order, duplicates allowed).
    pub fn new(records: impl IntoIterator<Item = VersionRecord>) -> History {
        History {
            versions: records.into_iter().map(|r| (r.id(), r)).collect(),
        }
    }

    /// Every version, by id.
    pub fn versions(&self) -> &BTreeMap<Id, VersionRecord> {
        &self.versions
    }

    /// The versions no other version has as a parent, sorted by id.
    pub fn heads(&self) -> Vec<Id> {
        let parents: BTreeSet<&Id> = self.versions.values().flat_map(|v| &v.parents).collect();
        self.versions
            .keys()
            .filter(|id| !parents.contains(id))
            .copied()
            .collect()
    }

    /// The versions with content `content`, sorted by id (several when merged stores
    /// committed the same content with different decisions).
    pub fn with_content(&self, content: &Id) -> Vec<&VersionRecord> {
        self.versions
            .values()
            .filter(|v| v.content == *content)
            .collect()
    }

    /// The semantic id of `content`, and whether stores disagreed about it. Disagreement (two
    /// records of the content with different semantic ids) falls back to the safe answer, the
    /// content's own id: a semantic change.
    pub fn semantic_of(&self, content: &Id) -> Option<(Id, bool)> {
        let found: BTreeSet<Id> = self
            .with_content(content)
            .iter()
            .map(|v| v.semantic)
            .collect();
        match found.len() {
            0 => None,
            1 => found.into_iter().next().map(|s| (s, false)),
            _ => Some((*content, true)),
        }
    }

    /// Makes `content` the current version: a known content is checked out as it is (no new
    /// version); a new one is committed on top of the current heads, with `decide` saying
    /// whether the change from them is semantic or cosmetic. A cosmetic change inherits the
    /// heads' semantic id only if they agree on one; otherwise it is semantic.
    pub fn sync(
        &mut self,
        component: &str,
        content: Id,
        source: Id,
        git: Option<String>,
        decide: impl FnOnce(&[&VersionRecord]) -> Change,
    ) -> Synced {
        if let Some(known) = self.with_content(&content).first() {
            return Synced::Known((*known).clone());
        }
        let heads = self.heads();
        let head_records: Vec<&VersionRecord> = heads.iter().map(|h| &self.versions[h]).collect();
        let inherited: BTreeSet<Id> = head_records.iter().map(|v| v.semantic).collect();
        let semantic = match (head_records.is_empty(), inherited.len()) {
            (false, 1) if decide(&head_records) == Change::Cosmetic => {
                inherited.into_iter().next().expect("one")
            }
            _ => content,
        };
        let record = VersionRecord {
            component: component.to_string(),
            content,
            parents: heads,
            semantic,
            source,
            git,
        };
        self.versions.insert(record.id(), record.clone());
        Synced::Committed(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn the_first_version_is_its_own_semantic_root() {
        let mut h = History::default();
        let Synced::Committed(v1) = h.sync("f", c(1), c(0), None, |_| panic!("nothing to decide"))
        else {
            panic!()
        };
        assert_eq!((v1.parents.len(), v1.semantic), (0, c(1)));
        assert_eq!(h.heads(), [v1.id()]);
    }

    #[test]
    fn semantic_changes_get_new_ids_and_cosmetic_ones_inherit() {
        let mut h = History::default();
        h.sync("f", c(1), c(0), None, |_| Change::Semantic);
        let Synced::Committed(v2) = h.sync("f", c(2), c(0), None, |_| Change::Cosmetic) else {
            panic!()
        };
        assert_eq!(
            v2.semantic,
            c(1),
            "cosmetic: same semantic id as its parent"
        );
        let Synced::Committed(v3) = h.sync("f", c(3), c(0), None, |_| Change::Semantic) else {
            panic!()
        };
        assert_eq!(v3.semantic, c(3));
        assert_eq!(v3.parents, [v2.id()]);
        assert_eq!(h.semantic_of(&c(2)), Some((c(1), false)));
        assert_eq!(h.heads(), [v3.id()]);
    }

    #[test]
    fn known_content_is_checked_out_without_a_commit() {
        let mut h = History::default();
        h.sync("f", c(1), c(0), None, |_| Change::Semantic);
        h.sync("f", c(2), c(0), None, |_| Change::Semantic);
        let before = h.versions().len();
        let back = h.sync("f", c(1), c(0), None, |_| {
            panic!("known content needs no decision")
        });
        assert!(matches!(back, Synced::Known(ref v) if v.content == c(1) && v.semantic == c(1)));
        assert_eq!(
            h.versions().len(),
            before,
            "going back in time commits nothing"
        );
    }

    #[test]
    fn branches_from_merged_stores_union_and_the_next_commit_merges_them() {
        let mut base = History::default();
        base.sync("f", c(1), c(0), None, |_| Change::Semantic);
        let (mut a, mut b) = (base.clone(), base.clone());
        a.sync("f", c(2), c(0), None, |_| Change::Cosmetic);
        b.sync("f", c(3), c(0), None, |_| Change::Semantic);
        let mut merged = History::new(a.versions().values().chain(b.versions().values()).cloned());
        assert_eq!(merged.versions().len(), 3);
        assert_eq!(merged.heads().len(), 2, "two branches");
        // Heads disagree on the semantic id (1 vs 3): a cosmetic mark cannot apply.
        let Synced::Committed(m) = merged.sync("f", c(4), c(0), None, |_| Change::Cosmetic) else {
            panic!()
        };
        assert_eq!(m.parents.len(), 2);
        assert_eq!(m.semantic, c(4));
        assert_eq!(merged.heads(), [m.id()]);
    }

    #[test]
    fn different_decisions_about_one_content_fall_back_to_semantic() {
        let mut base = History::default();
        base.sync("f", c(1), c(0), None, |_| Change::Semantic);
        let (mut a, mut b) = (base.clone(), base.clone());
        a.sync("f", c(2), c(0), None, |_| Change::Cosmetic); // semantic id 1
        b.sync("f", c(2), c(0), None, |_| Change::Semantic); // semantic id 2
        let merged = History::new(a.versions().values().chain(b.versions().values()).cloned());
        assert_eq!(merged.semantic_of(&c(2)), Some((c(2), true)));
    }

    #[test]
    fn version_ids_do_not_depend_on_insertion_order() {
        let v = VersionRecord {
            component: "f".into(),
            content: c(1),
            parents: vec![c(7), c(8)],
            semantic: c(1),
            source: c(0),
            git: None,
        };
        let h1 = History::new([v.clone()]);
        let h2 = History::new([v.clone(), v.clone()]);
        assert_eq!(
            h1.versions().keys().collect::<Vec<_>>(),
            h2.versions().keys().collect::<Vec<_>>()
        );
    }
}
