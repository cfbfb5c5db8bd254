//! Resolving a hash prefix to the one object it names: a value, a call, a group of calls with
//! one content id, or a ref (an input or output of some call).

use std::collections::BTreeMap;

use store_core::{Backend, Error, Id, IdPrefix, StoredCall};
use store_fs::FsBackend;

/// What a prefix named.
pub enum Object {
    /// A stored value.
    Value(Id),
    /// A call, found by its hid or its record id.
    Call(StoredCall),
    /// The calls sharing one call cid.
    CallGroup(Id, Vec<StoredCall>),
    /// A ref: its hid, cid, and the call that created it with the output name (none for a
    /// source value).
    Ref {
        hid: Id,
        cid: Id,
        creator: Option<(StoredCall, String)>,
    },
}

impl Object {
    fn describe(&self) -> String {
        match self {
            Object::Value(c) => format!("value {}", c.short(16)),
            Object::Call(c) => format!("call {}", c.hid.short(16)),
            Object::CallGroup(c, _) => format!("call cid {}", c.short(16)),
            Object::Ref { hid, .. } => format!("ref {}", hid.short(16)),
        }
    }
}

/// Every object `prefix` names; with `calls`, all stored calls (read once by the caller).
pub fn candidates(
    store: &FsBackend,
    prefix: &IdPrefix,
    calls: &[StoredCall],
) -> Result<Vec<Object>, Error> {
    // Values wherever they are: loose files, packs, logs.
    let mut out: Vec<Object> = store
        .all_values()?
        .into_iter()
        .filter(|cid| prefix.matches(cid))
        .map(Object::Value)
        .collect();
    let mut groups: BTreeMap<Id, Vec<StoredCall>> = BTreeMap::new();
    let mut refs: BTreeMap<Id, (Id, Option<(StoredCall, String)>)> = BTreeMap::new();
    for c in calls {
        if prefix.matches(&c.hid) || prefix.matches(&c.rid) {
            out.push(Object::Call(c.clone()));
        }
        if prefix.matches(&c.cid) {
            groups.entry(c.cid).or_default().push(c.clone());
        }
        for s in &c.record.inputs {
            if prefix.matches(&s.hid) {
                refs.entry(s.hid).or_insert((s.cid, None));
            }
        }
        for s in &c.record.outputs {
            if prefix.matches(&s.hid) {
                refs.insert(s.hid, (s.cid, Some((c.clone(), s.name.to_string()))));
            }
        }
    }
    out.extend(groups.into_iter().map(|(cid, v)| Object::CallGroup(cid, v)));
    out.extend(
        refs.into_iter()
            .map(|(hid, (cid, creator))| Object::Ref { hid, cid, creator }),
    );
    Ok(out)
}

/// The single object `prefix` names (a hash prefix, or a tag's name: the ref it names), or a
/// precise error.
pub fn resolve(store: &FsBackend, prefix: &str) -> Result<Object, Error> {
    let tags = store_core::format::tag::resolve(&store.tag_records()?);
    let calls = store.all_calls()?;
    if let Some(t) = tags.iter().find(|t| t.name == prefix) {
        let creator = calls.iter().find_map(|c| {
            c.record
                .outputs
                .iter()
                .find(|o| o.hid == t.current.hid)
                .map(|o| (c.clone(), o.name.to_string()))
        });
        return Ok(Object::Ref {
            hid: t.current.hid,
            cid: t.current.cid,
            creator,
        });
    }
    let prefix = IdPrefix::parse(prefix)?;
    let mut found = candidates(store, &prefix, &calls)?;
    match found.len() {
        0 => Err(Error::Store(store_core::StoreError::NotFound {
            what: "object",
            id: prefix.to_string(),
            store: store.describe(),
        })),
        1 => Ok(found.pop().expect("one")),
        _ => Err(Error::Store(store_core::StoreError::AmbiguousPrefix {
            prefix: prefix.to_string(),
            candidates: found.iter().map(Object::describe).collect(),
        })),
    }
}
