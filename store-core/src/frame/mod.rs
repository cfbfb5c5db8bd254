//! ComputationFrame: the stored web of calls as a graph of variables (sets of refs) and
//! function nodes (sets of calls), joined by edges labelled with input and output names.
//!
//! Invariant (as in mandala): every call in a function node has each input and output whose
//! label has an edge on that node present in the variable at the other end of the edge.
//!
//! ```
//! # use store_core::{Engine, frame::ComputationFrame};
//! let engine = Engine::in_memory();
//! let cf = ComputationFrame::from_op(&engine, "inc").unwrap();
//! assert!(cf.vars().is_empty());
//! ```
//!
//! Built on the engine's provenance index, so building a frame reads call records but no
//! value; values are read only for the table cells asked for.

mod table;

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Engine;
use crate::error::Result;
use crate::id::Id;
use crate::provenance::Provenance;
use crate::record::{Slot, StoredCall};

pub use table::{Cell, Table};

/// A call's identity inside a frame: (call key, hid, record id).
pub type CallId = (Id, Id, Id);

fn call_id(c: &StoredCall) -> CallId {
    (c.key, c.hid, c.rid)
}

/// Which way an expansion follows the calls.
#[derive(Clone, Copy)]
enum Direction {
    Back,
    Forward,
}

/// A function node: calls of one op.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncNode {
    /// The op.
    pub op: String,
    /// Its calls in this frame.
    pub calls: BTreeSet<CallId>,
    /// Input label → variable.
    pub inputs: BTreeMap<String, String>,
    /// Output label → variable.
    pub outputs: BTreeMap<String, String>,
}

/// A graph of variables and function nodes over stored calls. See the module docs.
#[derive(Clone)]
pub struct ComputationFrame {
    engine: Engine,
    vars: BTreeMap<String, BTreeSet<Id>>,
    funcs: BTreeMap<String, FuncNode>,
    calls: BTreeMap<CallId, StoredCall>,
    cids: BTreeMap<Id, Id>,
    /// Ref hid → (function node, call) of the frame that created it.
    created_by: BTreeMap<Id, (String, CallId)>,
    /// Refs some call of the frame consumed.
    consumed: BTreeSet<Id>,
}

/// The variable name for an output label: `output_<i>` becomes `var_<i>` (as in mandala).
fn var_name_for(label: &str) -> String {
    match label.strip_prefix("output_") {
        Some(i) if i.parse::<usize>().is_ok() => format!("var_{i}"),
        _ => label.to_string(),
    }
}

impl ComputationFrame {
    fn empty(engine: &Engine) -> ComputationFrame {
        ComputationFrame {
            engine: engine.clone(),
            vars: BTreeMap::new(),
            funcs: BTreeMap::new(),
            calls: BTreeMap::new(),
            cids: BTreeMap::new(),
            created_by: BTreeMap::new(),
            consumed: BTreeSet::new(),
        }
    }

    /// Every stored call of `op`: one function node named after it, one variable per input
    /// and output label.
    pub fn from_op(engine: &Engine, op: &str) -> Result<ComputationFrame> {
        let mut cf = ComputationFrame::empty(engine);
        for call in engine.calls_of(op)? {
            cf.add_call(op, &call, None);
        }
        Ok(cf)
    }

    /// One variable per name, holding the refs with those history ids.
    pub fn from_refs<'a>(
        engine: &Engine,
        groups: impl IntoIterator<Item = (&'a str, Vec<(Id, Id)>)>,
    ) -> ComputationFrame {
        let mut cf = ComputationFrame::empty(engine);
        for (name, refs) in groups {
            let var = cf.vars.entry(name.to_string()).or_default();
            for (hid, cid) in refs {
                var.insert(hid);
                cf.cids.insert(hid, cid);
            }
        }
        cf
    }

    /// The variables and their refs (history ids).
    pub fn vars(&self) -> &BTreeMap<String, BTreeSet<Id>> {
        &self.vars
    }

    /// The function nodes.
    pub fn funcs(&self) -> &BTreeMap<String, FuncNode> {
        &self.funcs
    }

    /// A call of the frame.
    pub fn call(&self, id: &CallId) -> Option<&StoredCall> {
        self.calls.get(id)
    }

    /// The content id of a ref of the frame.
    pub fn cid(&self, hid: &Id) -> Option<Id> {
        self.cids.get(hid).copied()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A variable holding `hid` (the first by name), if any.
    fn var_holding(&self, hid: &Id) -> Option<String> {
        self.vars
            .iter()
            .find(|(_, refs)| refs.contains(hid))
            .map(|(n, _)| n.clone())
    }

    fn fresh_var_name(&self, base: &str) -> String {
        if !self.vars.contains_key(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.vars.contains_key(n))
            .expect("unbounded")
    }

    /// The variable for `label` on `node` (`outputs` or inputs): the one the edge already
    /// leads to, or one already holding the ref, or a new one named after the label.
    fn var_for(
        &mut self,
        node: &str,
        label: &str,
        output: bool,
        slot: &Slot,
        hint: Option<&str>,
    ) -> String {
        let f = &self.funcs[node];
        let edges = if output { &f.outputs } else { &f.inputs };
        if let Some(v) = edges.get(label) {
            return v.clone();
        }
        // A ref created by a call identifies one history, so any variable holding it is the
        // right one. Source values do not (equal values passed in different places share a
        // hid), so for an input only a variable of the same name that holds it is reused.
        let base = if output {
            var_name_for(label)
        } else {
            label.to_string()
        };
        let holding = self
            .var_holding(&slot.hid)
            .filter(|v| output || *v == base || self.created_in_frame(&slot.hid));
        let var = hint
            .map(str::to_string)
            .or(holding)
            .unwrap_or_else(|| self.fresh_var_name(&base));
        let f = self.funcs.get_mut(node).expect("exists");
        let edges = if output {
            &mut f.outputs
        } else {
            &mut f.inputs
        };
        edges.insert(label.to_string(), var.clone());
        var
    }

    /// Adds `call` to the node of its op (created if needed), with its inputs and outputs in
    /// the variables its edges lead to. `hint` = (label, var) for the ref that led to it.
    /// Returns whether the call is new to the frame.
    fn add_call(&mut self, op: &str, call: &StoredCall, hint: Option<(&str, &str)>) -> bool {
        let id = call_id(call);
        if self.calls.contains_key(&id) {
            return false;
        }
        // Reuse the node of the same op (mandala reuses nodes of the same op).
        let node = self
            .funcs
            .iter()
            .find(|(_, f)| f.op == op)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| {
                let name = if self.vars.contains_key(op) {
                    format!("{op}_fn")
                } else {
                    op.to_string()
                };
                self.funcs.insert(
                    name.clone(),
                    FuncNode {
                        op: op.to_string(),
                        ..FuncNode::default()
                    },
                );
                name
            });
        for (output, slots) in [(false, &call.record.inputs), (true, &call.record.outputs)] {
            for slot in slots {
                let h = hint.and_then(|(l, v)| (l == slot.name).then_some(v));
                let var = self.var_for(&node, &slot.name, output, slot, h);
                self.vars.entry(var).or_default().insert(slot.hid);
                self.cids.insert(slot.hid, slot.cid);
            }
        }
        self.funcs.get_mut(&node).expect("exists").calls.insert(id);
        for o in &call.record.outputs {
            self.created_by
                .entry(o.hid)
                .or_insert_with(|| (node.clone(), id));
        }
        self.consumed
            .extend(call.record.inputs.iter().map(|i| i.hid));
        self.calls.insert(id, call.clone());
        true
    }

    fn created_in_frame(&self, hid: &Id) -> bool {
        self.created_by.contains_key(hid)
    }

    fn consumed_in_frame(&self, hid: &Id) -> bool {
        self.consumed.contains(hid)
    }

    /// The function node and call of the frame that created ref `hid`.
    pub(crate) fn creator_in_frame(&self, hid: &Id) -> Option<&(String, CallId)> {
        self.created_by.get(hid)
    }

    fn selected(&self, vars: Option<&[&str]>) -> Vec<String> {
        match vars {
            Some(v) => v.iter().map(|s| s.to_string()).collect(),
            None => self.vars.keys().cloned().collect(),
        }
    }

    /// Adds the creators of the refs of `vars` (all variables if `None`); with `recursive`,
    /// repeats until nothing new is added. Returns how many calls were added.
    pub fn expand_back(&mut self, vars: Option<&[&str]>, recursive: bool) -> Result<usize> {
        let engine = self.engine.clone();
        let index = engine.index()?;
        Ok(self.expand_in(&index, Direction::Back, vars, recursive))
    }

    /// Adds the consumers of the refs of `vars` (all if `None`); with `recursive`, repeats.
    pub fn expand_forward(&mut self, vars: Option<&[&str]>, recursive: bool) -> Result<usize> {
        let engine = self.engine.clone();
        let index = engine.index()?;
        Ok(self.expand_in(&index, Direction::Forward, vars, recursive))
    }

    /// One expansion: each ref of the chosen variables leads to the calls that created it
    /// (back) or consumed it (forward), added with the label it has there.
    fn expand_in(
        &mut self,
        index: &Provenance,
        dir: Direction,
        vars: Option<&[&str]>,
        recursive: bool,
    ) -> usize {
        let mut added = 0;
        loop {
            let mut round = 0;
            for var in self.selected(vars) {
                let refs: Vec<Id> = self
                    .vars
                    .get(&var)
                    .map(|r| r.iter().copied().collect())
                    .unwrap_or_default();
                for hid in refs {
                    let calls = match dir {
                        Direction::Back if self.created_in_frame(&hid) => Vec::new(),
                        Direction::Back => index.creator(&hid).into_iter().collect(),
                        Direction::Forward => index.consumers(&hid),
                    };
                    for call in calls {
                        let slots = match dir {
                            Direction::Back => &call.record.outputs,
                            Direction::Forward => &call.record.inputs,
                        };
                        let label = slots.iter().find(|s| s.hid == hid).map(|s| s.name.clone());
                        let op = call.record.op.clone();
                        if self.add_call(&op, &call, label.as_deref().map(|l| (l, var.as_str()))) {
                            round += 1;
                        }
                    }
                }
            }
            added += round;
            if !recursive || round == 0 {
                return added;
            }
            if vars.is_some() {
                // Recursive expansion from chosen variables continues from every variable.
                return added + self.expand_in(index, dir, None, true);
            }
        }
    }

    /// Expands backward and forward, recursively, until nothing changes.
    pub fn expand_all(&mut self) -> Result<usize> {
        let engine = self.engine.clone();
        let index = engine.index()?;
        let mut added = 0;
        loop {
            let n = self.expand_in(&index, Direction::Back, None, true)
                + self.expand_in(&index, Direction::Forward, None, true);
            added += n;
            if n == 0 {
                return Ok(added);
            }
        }
    }

    /// Variables and function nodes in topological order (inputs before the function, the
    /// function before its outputs), ties by name; nodes on cycles come last, by name.
    pub fn topo_order(&self) -> Vec<String> {
        let mut preds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for v in self.vars.keys() {
            preds.entry(v.clone()).or_default();
        }
        for (f, node) in &self.funcs {
            preds
                .entry(f.clone())
                .or_default()
                .extend(node.inputs.values().cloned());
            for v in node.outputs.values() {
                preds.entry(v.clone()).or_default().insert(f.clone());
            }
        }
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        while done.len() < preds.len() {
            let ready: Vec<String> = preds
                .iter()
                .filter(|(n, p)| {
                    !done.contains(*n) && p.iter().all(|x| done.contains(x) || x == *n)
                })
                .map(|(n, _)| n.clone())
                .collect();
            let ready = if ready.is_empty() {
                preds
                    .keys()
                    .filter(|n| !done.contains(*n))
                    .cloned()
                    .collect()
            } else {
                ready
            };
            for n in ready {
                done.insert(n.clone());
                order.push(n);
            }
        }
        order
    }

    /// The refs of `var` that no call of the frame consumed.
    pub fn sink_elements(&self, var: &str) -> Vec<Id> {
        self.vars
            .get(var)
            .map(|r| {
                r.iter()
                    .filter(|h| !self.consumed_in_frame(h))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The refs of `var` that no call of the frame created.
    pub fn source_elements(&self, var: &str) -> Vec<Id> {
        self.vars
            .get(var)
            .map(|r| {
                r.iter()
                    .filter(|h| !self.created_in_frame(h))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl ComputationFrame {
    /// The frame as Graphviz DOT text: variables as boxes, function nodes as ellipses, edges
    /// labelled with their input/output names. With `verbose`, each variable shows its number
    /// of refs and of sources and sinks, each edge its number of elements, and each op its
    /// number of calls and of versions (distinct semantic versions).
    pub fn to_dot(&self, verbose: bool) -> String {
        // Labels keep DOT's `\n` line breaks; only quotes are escaped.
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        let mut out = String::from("digraph computation_frame {\n  rankdir=TB;\n");
        for (name, refs) in &self.vars {
            let label = if verbose {
                format!(
                    "{name}\\n{} refs ({} sources, {} sinks)",
                    refs.len(),
                    self.source_elements(name).len(),
                    self.sink_elements(name).len()
                )
            } else {
                name.clone()
            };
            out.push_str(&format!(
                "  {} [shape=box, label={}];\n",
                quote(name),
                quote(&label)
            ));
        }
        for (name, f) in &self.funcs {
            let label = if verbose {
                let versions: BTreeSet<Id> = f
                    .calls
                    .iter()
                    .map(|c| self.calls[c].record.semver)
                    .collect();
                format!(
                    "{name}\\n{} calls, {} version(s)",
                    f.calls.len(),
                    versions.len()
                )
            } else {
                name.clone()
            };
            out.push_str(&format!(
                "  {} [shape=ellipse, style=filled, fillcolor=lightgrey, label={}];\n",
                quote(name),
                quote(&label)
            ));
            let count = |label: &str, output: bool| -> usize {
                let set: BTreeSet<Id> = f
                    .calls
                    .iter()
                    .flat_map(|c| {
                        let r = &self.calls[c].record;
                        if output { &r.outputs } else { &r.inputs }
                            .iter()
                            .filter(|s| s.name == label)
                            .map(|s| s.hid)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                set.len()
            };
            let edges = f
                .inputs
                .iter()
                .map(|e| (e, false))
                .chain(f.outputs.iter().map(|e| (e, true)));
            for ((label, var), output) in edges {
                let text = if verbose {
                    format!("{label} ({})", count(label, output))
                } else {
                    label.clone()
                };
                let (from, to) = if output { (name, var) } else { (var, name) };
                out.push_str(&format!(
                    "  {} -> {} [label={}];\n",
                    quote(from),
                    quote(to),
                    quote(&text)
                ));
            }
        }
        out.push_str("}\n");
        out
    }
}

impl ComputationFrame {
    /// Deletes every call of the frame and every call downstream of them from the store;
    /// returns how many calls were deleted. Those calls recompute when run again.
    pub fn delete_calls(&self) -> Result<usize> {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        Ok(self.engine.delete_calls(&ids)?.len())
    }
}

/// Restriction and combination.
impl ComputationFrame {
    /// Renames variable `old` to `new` (edges follow).
    pub fn rename_var(&mut self, old: &str, new: &str) -> Result<()> {
        if self.vars.contains_key(new) || self.funcs.contains_key(new) {
            return Err(crate::Error::BadConfig {
                path: new.into(),
                reason: format!("a node named '{new}' already exists"),
            });
        }
        let refs = self
            .vars
            .remove(old)
            .ok_or_else(|| crate::Error::NotFound {
                what: "variable",
                id: old.to_string(),
                store: "the frame".into(),
            })?;
        self.vars.insert(new.to_string(), refs);
        for f in self.funcs.values_mut() {
            for v in f.inputs.values_mut().chain(f.outputs.values_mut()) {
                if v == old {
                    *v = new.to_string();
                }
            }
        }
        Ok(())
    }

    /// The sub-frame induced by `nodes` (variables and function nodes): edges between kept
    /// nodes stay; the kept nodes keep all their elements.
    pub fn select(&self, nodes: &[&str]) -> ComputationFrame {
        let keep: BTreeSet<&str> = nodes.iter().copied().collect();
        let mut cf = ComputationFrame::empty(&self.engine);
        cf.cids = self.cids.clone();
        for (name, refs) in &self.vars {
            if keep.contains(name.as_str()) {
                cf.vars.insert(name.clone(), refs.clone());
            }
        }
        for (name, f) in &self.funcs {
            if !keep.contains(name.as_str()) {
                continue;
            }
            let mut g = f.clone();
            g.inputs.retain(|_, v| keep.contains(v.as_str()));
            g.outputs.retain(|_, v| keep.contains(v.as_str()));
            for id in &g.calls {
                let call = &self.calls[id];
                cf.calls.insert(*id, call.clone());
                for o in &call.record.outputs {
                    if g.outputs.contains_key(&o.name) {
                        cf.created_by
                            .entry(o.hid)
                            .or_insert_with(|| (name.clone(), *id));
                    }
                }
                for i in &call.record.inputs {
                    if g.inputs.contains_key(&i.name) {
                        cf.consumed.insert(i.hid);
                    }
                }
            }
            cf.funcs.insert(name.clone(), g);
        }
        cf
    }

    /// The frame without `nodes`.
    pub fn drop_nodes(&self, nodes: &[&str]) -> ComputationFrame {
        let gone: BTreeSet<&str> = nodes.iter().copied().collect();
        let keep: Vec<&str> = self
            .vars
            .keys()
            .chain(self.funcs.keys())
            .map(|s| s.as_str())
            .filter(|n| !gone.contains(n))
            .collect();
        self.select(&keep)
    }

    /// The union of two frames of one store: nodes matched by name, elements united.
    pub fn union(&self, other: &ComputationFrame) -> ComputationFrame {
        let mut cf = self.clone();
        for (name, refs) in &other.vars {
            cf.vars
                .entry(name.clone())
                .or_default()
                .extend(refs.iter().copied());
        }
        for (name, f) in &other.funcs {
            let g = cf.funcs.entry(name.clone()).or_insert_with(|| FuncNode {
                op: f.op.clone(),
                ..FuncNode::default()
            });
            g.calls.extend(f.calls.iter().copied());
            for (l, v) in &f.inputs {
                g.inputs.entry(l.clone()).or_insert_with(|| v.clone());
            }
            for (l, v) in &f.outputs {
                g.outputs.entry(l.clone()).or_insert_with(|| v.clone());
            }
        }
        cf.calls
            .extend(other.calls.iter().map(|(k, v)| (*k, v.clone())));
        cf.cids.extend(other.cids.iter().map(|(k, v)| (*k, *v)));
        cf.created_by
            .extend(other.created_by.iter().map(|(k, v)| (*k, v.clone())));
        cf.consumed.extend(other.consumed.iter().copied());
        cf
    }

    /// The intersection of two frames: nodes present in both (by name), elements in both.
    pub fn intersection(&self, other: &ComputationFrame) -> ComputationFrame {
        let names: Vec<&str> = self
            .vars
            .keys()
            .filter(|n| other.vars.contains_key(*n))
            .chain(self.funcs.keys().filter(|n| other.funcs.contains_key(*n)))
            .map(|s| s.as_str())
            .collect();
        let mut cf = self.select(&names);
        for (name, refs) in cf.vars.iter_mut() {
            refs.retain(|r| other.vars[name].contains(r));
        }
        for (name, f) in cf.funcs.iter_mut() {
            f.calls.retain(|c| other.funcs[name].calls.contains(c));
        }
        let kept: BTreeSet<CallId> = cf
            .funcs
            .values()
            .flat_map(|f| f.calls.iter().copied())
            .collect();
        cf.calls.retain(|id, _| kept.contains(id));
        cf.created_by.retain(|_, (_, id)| kept.contains(id));
        cf.consumed = cf
            .calls
            .values()
            .flat_map(|c| c.record.inputs.iter().map(|i| i.hid))
            .collect();
        cf
    }
}

impl std::ops::BitOr for &ComputationFrame {
    type Output = ComputationFrame;
    fn bitor(self, other: &ComputationFrame) -> ComputationFrame {
        self.union(other)
    }
}

impl std::ops::BitAnd for &ComputationFrame {
    type Output = ComputationFrame;
    fn bitand(self, other: &ComputationFrame) -> ComputationFrame {
        self.intersection(other)
    }
}
