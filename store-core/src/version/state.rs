//! Versioning in the engine: which components are followed, their histories brought up to date
//! when versioning is turned on, the semantic ids calls are recorded and looked up with, and
//! the report of what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::cbor;
use crate::format::id::{Id, Kind};
use crate::version::component::{self, ComponentKind};
use crate::version::history::{Change, History, SemanticIds, Synced, VersionRecord};

/// How versioning is set up: which components it follows (ops always, and the tracked
/// functions and globals whose names start with one of the prefixes, mandala's `deps_path`),
/// and the decisions about changed components.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versioning {
    prefixes: Vec<String>,
    cosmetic: BTreeSet<String>,
    semantic: BTreeSet<String>,
    strict: bool,
}

impl Versioning {
    /// Follows tracked components whose names (`crate::module::item`) start with one of
    /// `prefixes`; an empty prefix follows every tracked component.
    pub fn tracking<S: Into<String>>(prefixes: impl IntoIterator<Item = S>) -> Versioning {
        Versioning {
            prefixes: prefixes.into_iter().map(Into::into).collect(),
            ..Versioning::default()
        }
    }

    /// Marks the change of `component` in this program as cosmetic: calls recorded with its
    /// previous version stay valid. The decision is recorded in the store.
    pub fn cosmetic(mut self, component: impl Into<String>) -> Versioning {
        self.cosmetic.insert(component.into());
        self
    }

    /// Marks the change of `component` as semantic (the default; needed in strict mode).
    pub fn semantic(mut self, component: impl Into<String>) -> Versioning {
        self.semantic.insert(component.into());
        self
    }

    /// Refuses to run while a component has changed and no decision names it (for CI).
    pub fn strict(mut self) -> Versioning {
        self.strict = true;
        self
    }

    /// Whether component `name` is followed.
    pub fn in_scope(&self, name: &str) -> bool {
        self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// Versioning as set up for this program and store.
#[derive(Debug)]
pub struct VersionState {
    pub(crate) config: Versioning,
    semantic: HashMap<String, Id>,
    /// What each stored content of each component stands for, to read records whose `deps`
    /// hold content ids (written before the semver rule was corrected; docs/FORMAT.md §6).
    semantic_ids: SemanticIds,
    pub(crate) report: ChangeReport,
}

impl VersionState {
    /// Whether component `name` is followed.
    pub fn in_scope(&self, name: &str) -> bool {
        self.config.in_scope(name)
    }

    /// The semantic id the running program has for component `name`.
    pub fn semantic_id(&self, name: &str) -> Option<Id> {
        self.semantic.get(name).copied()
    }

    /// The semantic id that `recorded`, an id a call record holds for component `name`,
    /// stands for (see [`SemanticIds`]).
    pub fn resolve(&self, name: &str, recorded: &Id) -> Id {
        self.semantic_ids.resolve(name, recorded)
    }

    /// Whether a call that recorded `recorded` for component `name` is valid for the running
    /// program: the id stands for the semantic id the program has now.
    pub fn is_current(&self, name: &str, recorded: &Id) -> bool {
        self.semantic_id(name) == Some(self.resolve(name, recorded))
    }
}

/// One component whose content differs from every version in its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentChange {
    /// The component.
    pub component: String,
    /// Whether it was committed as a semantic or a cosmetic change.
    pub change: Change,
    /// The content ids of the versions it changed from (the heads of its history).
    pub from: Vec<Id>,
    /// Its content id now.
    pub to: Id,
    /// A unified diff from the previous version's text to the current one.
    pub diff: String,
    /// Stored calls that recorded the component, by op.
    pub affected: BTreeMap<String, usize>,
}

/// What turning versioning on found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeReport {
    /// Changed components, by name.
    pub changes: Vec<ComponentChange>,
    /// Components whose current content two merged stores decided differently about (treated
    /// as semantic).
    pub conflicts: Vec<String>,
}

impl fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            let kind = if c.change == Change::Cosmetic {
                "cosmetic"
            } else {
                "semantic"
            };
            let from: Vec<String> = c.from.iter().map(|i| i.short(12)).collect();
            writeln!(
                f,
                "CHANGE in {} ({kind}): {} -> {}",
                c.component,
                from.join(", "),
                c.to.short(12)
            )?;
            let calls: usize = c.affected.values().sum();
            let ops: Vec<&str> = c.affected.keys().map(|k| k.as_str()).collect();
            writeln!(
                f,
                "  affects {calls} stored call(s) of: {}",
                if ops.is_empty() {
                    "none".to_string()
                } else {
                    ops.join(", ")
                }
            )?;
            for line in c.diff.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        for c in &self.conflicts {
            writeln!(
                f,
                "CONFLICT in {c}: merged stores decided differently; treated as semantic"
            )?;
        }
        Ok(())
    }
}

fn text_value(backend: &dyn Backend, text: &str) -> Result<Id> {
    let bytes = cbor::to_canonical(text).expect("text always encodes");
    let cid = Id::hash(Kind::Value, &bytes);
    backend.put_value(&cid, &bytes)?;
    Ok(cid)
}

/// Brings the histories of the program's followed components up to date in `backend`.
pub(crate) fn sync(
    backend: &dyn Backend,
    config: Versioning,
    git: Option<&str>,
) -> Result<VersionState> {
    let mut histories: BTreeMap<String, Vec<VersionRecord>> = BTreeMap::new();
    for v in backend.all_versions()? {
        histories.entry(v.component.clone()).or_default().push(v);
    }
    let mut semantic_ids = SemanticIds::new(histories.values().flatten());
    let mut semantic = HashMap::new();
    let mut report = ChangeReport::default();
    let mut undecided = Vec::new();
    let decisions = backend.decisions()?;
    // Texts are stored as values before the version records that name them: no collection
    // in between.
    let guard = backend.begin_writes()?;
    for spec in component::all() {
        if spec.kind != ComponentKind::Op && !config.in_scope(spec.name) {
            continue;
        }
        let content = spec.content_id();
        let mut history = History::new(histories.remove(spec.name).unwrap_or_default());
        let known = !history.with_content(&content).is_empty();
        let previous: Vec<VersionRecord> = history
            .heads()
            .iter()
            .map(|h| history.versions()[h].clone())
            .collect();
        // `cosmetic_of = "…"` in the code names the content it stays compatible with.
        let declared = previous.iter().any(|p| {
            let hex = p.content.to_string();
            spec.cosmetic_of
                .iter()
                .any(|prefix| prefix.len() >= 4 && hex.starts_with(&prefix.to_ascii_lowercase()))
        });
        // Decisions recorded in the store (`mandala mark`) about this new content.
        let hex = content.to_string();
        let recorded: BTreeSet<Change> = decisions
            .iter()
            .filter(|d| d.component == spec.name && hex.starts_with(&d.content))
            .map(|d| d.change)
            .collect();
        if recorded.len() > 1 {
            report.conflicts.push(spec.name.to_string());
        }
        if !known
            && !previous.is_empty()
            && config.strict
            && !declared
            && recorded.is_empty()
            && !config.cosmetic.contains(spec.name)
            && !config.semantic.contains(spec.name)
        {
            undecided.push(format!("{} (content {})", spec.name, content.short(12)));
            continue;
        }
        let source = if known {
            Id([0; 32])
        } else {
            text_value(backend, spec.source)?
        };
        let cosmetic = (declared
            || config.cosmetic.contains(spec.name)
            || recorded == BTreeSet::from([Change::Cosmetic]))
            && !config.semantic.contains(spec.name)
            && !recorded.contains(&Change::Semantic);
        let decision = if cosmetic {
            Change::Cosmetic
        } else {
            Change::Semantic
        };
        match history.sync(spec.name, content, source, git.map(str::to_string), |_| {
            decision
        }) {
            Synced::Known(_) => {
                let (id, conflict) = history.semantic_of(&content).expect("known content");
                if conflict {
                    report.conflicts.push(spec.name.to_string());
                }
                semantic.insert(spec.name.to_string(), id);
            }
            Synced::Committed(v) => {
                backend.put_version(&v)?;
                semantic.insert(spec.name.to_string(), v.semantic);
                semantic_ids.insert(spec.name, v.content, v.semantic);
                if let Some(prev) = previous.first() {
                    let old = crate::version::inspect::text_of(backend, &prev.source);
                    let diff = similar::TextDiff::from_lines(old.as_str(), spec.source)
                        .unified_diff()
                        .header("stored", "current")
                        .to_string();
                    let change = if v.semantic == content {
                        Change::Semantic
                    } else {
                        Change::Cosmetic
                    };
                    report.changes.push(ComponentChange {
                        component: spec.name.to_string(),
                        change,
                        from: previous.iter().map(|p| p.content).collect(),
                        to: content,
                        diff,
                        affected: BTreeMap::new(),
                    });
                }
            }
        }
    }
    drop(guard);
    if !undecided.is_empty() {
        return Err(Error::Versioning(
            crate::error::VersioningError::UndecidedChanges {
                components: undecided,
            },
        ));
    }
    if !report.changes.is_empty() {
        for call in backend.all_calls()? {
            for c in &mut report.changes {
                if call.record.deps.contains_key(&c.component) {
                    *c.affected.entry(call.record.op.to_string()).or_default() += 1;
                }
            }
        }
    }
    Ok(VersionState {
        config,
        semantic,
        semantic_ids,
        report,
    })
}
