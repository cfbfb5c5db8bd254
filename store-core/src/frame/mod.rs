//! ComputationFrame: the stored web of calls as a graph of variables (sets of refs) and
//! function nodes (sets of calls), joined by edges labelled with input and output names.
//!
//! Invariant (as in mandala): every call in a function node has each input and output whose
//! label has an edge on that node present in the variable at the other end of the edge.
//!
//! ```
//! # use mandala::{ComputationFrame, Engine};
//! let engine = Engine::in_memory();
//! let cf = ComputationFrame::from_op(&engine, "inc").unwrap();
//! assert!(cf.vars().is_empty());
//! ```
//!
//! Built on the engine's provenance index, so building a frame reads call records but no
//! value; values are read only for the table cells asked for. Calls are shared with the index
//! (`Arc`), never copied.
//!
//! # Names
//! Names are predictable, and the same whichever op a frame starts from:
//! - an op's function node is `op()` (its table column holds calls);
//! - an output's variable is named after the output: a named output keeps its name
//!   (`output_names(train, test)`), the one unnamed output of an op is named after the op
//!   (`accuracy`), unnamed outputs of an op with several are `op_0`, `op_1`, …;
//! - an input's variable is named after the output that produced it, where an op produced it,
//!   else (a value passed in from outside, or an element of a collection) after the argument;
//! - a ref already in a variable stays there; an output whose name another variable has is
//!   named after its op too (`split.train`, or `train.out` for an op's one unnamed output);
//!   any other name already taken gets `_1`, `_2`, … in the order the expansion meets it;
//!   names given with [`ComputationFrame::from_refs`] are kept.
//!
//! Where things live: this file holds the model, the constructors and expansion;
//! `restrict` the restrictions and set operations; `table` the tables; `draw` DOT and SVG.

mod draw;
mod restrict;
mod table;

use std::collections::{hash_map, BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::engine::provenance::Provenance;
use crate::engine::Engine;
use crate::error::Result;
use crate::format::id::{Id, IdHasher, IdMap, IdSet};
use crate::format::record::{CallRecord, Name, Slot, StoredCall};

pub use table::{Cell, Table, CELL_WIDTH};

/// A call's identity inside a frame: its name (call key, hid, record id).
pub type CallId = crate::format::record::CallName;

/// The refs (history ids) of a variable. A hash set with a fixed hasher: its order is the
/// same in every run, and tables sort their rows themselves.
pub type RefSet = IdSet;

/// The calls of a function node.
pub type CallSet = std::collections::HashSet<CallId, std::hash::BuildHasherDefault<IdHasher>>;

type CallMap = HashMap<CallId, Arc<StoredCall>, std::hash::BuildHasherDefault<IdHasher>>;

fn call_id(c: &StoredCall) -> CallId {
    c.name()
}

/// Refs to expand from, each with the index of its variable in `names`.
struct Frontier {
    refs: Vec<(Id, u32)>,
    names: Vec<String>,
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
    pub calls: CallSet,
    /// Input label → variable.
    pub inputs: BTreeMap<String, String>,
    /// Output label → variable.
    pub outputs: BTreeMap<String, String>,
}

/// A graph of variables and function nodes over stored calls. See the module docs.
#[derive(Clone)]
pub struct ComputationFrame {
    engine: Engine,
    vars: BTreeMap<String, RefSet>,
    funcs: BTreeMap<String, FuncNode>,
    calls: CallMap,
    /// Shared with the tables made from the frame (copied only if the frame changes after).
    cids: Arc<IdMap<Id>>,
    /// Ref hid → (function node, call) of the frame that created it.
    created_by: IdMap<(Arc<str>, Arc<StoredCall>)>,
    /// Refs some call of the frame consumed (on an edge of its node).
    consumed: IdSet,
    /// The function node of each op added so far (nodes are reused per op).
    op_nodes: BTreeMap<String, Arc<str>>,
    /// How many calls the frame is being made from (see `reserve`; 0 once made): a new
    /// variable or node starts with room for that many, rather than growing by rehashing.
    room: usize,
}

/// How the last call a loop added mapped its slots to variables (see
/// `ComputationFrame::add_call`): most calls of a frame have the op and slot names of the one
/// before, and are then added without looking their node and edges up by name again. Edges
/// are only ever added while a frame grows, so a plan stays true.
struct Plan {
    op: Name,
    /// The slots' names, inputs then outputs, and how many are inputs.
    names: Vec<Name>,
    inputs: usize,
    node: Arc<str>,
    /// The variable each slot's edge leads to, in the order of `names`.
    vars: Vec<String>,
}

impl Plan {
    /// Whether calls like `rec` are added by this plan.
    fn fits(&self, rec: &CallRecord) -> bool {
        self.op == rec.op
            && self.inputs == rec.inputs.len()
            && self.names.len() == rec.inputs.len() + rec.outputs.len()
            && (rec.inputs.iter().chain(&rec.outputs))
                .zip(&self.names)
                .all(|(s, n)| s.name == *n)
    }
}

/// The edge label of input or output `slot` of a call of `op`: its name, except that the
/// elements of a list built by `__make_list__` (`elts_0`, `elts_1`, …) all project onto one
/// edge, [`ELEMENTS_EDGE`], so one list depends on many element refs (as in mandala).
pub fn edge_label<'a>(op: &str, slot: &'a str) -> &'a str {
    if op == crate::format::collection::MAKE_LIST
        && crate::format::collection::element_index(slot).is_some()
    {
        ELEMENTS_EDGE
    } else {
        slot
    }
}

/// The edge label of a list's elements: many refs into one list.
pub const ELEMENTS_EDGE: &str = "*elts";

/// The variable name for output `label` of a call of `op` with `n_outputs` outputs: a named
/// output keeps its name; the one unnamed output of an op is named after the op (`accuracy`);
/// unnamed outputs of an op with several are `op_0`, `op_1`, …
pub fn output_var_name(op: &str, label: &str, n_outputs: usize) -> String {
    match unnamed_output(label) {
        Some(_) if n_outputs == 1 => op.to_string(),
        Some(i) => format!("{op}_{i}"),
        None => label.to_string(),
    }
}

/// The position `i` of an unnamed output's label, `output_<i>`.
fn unnamed_output(label: &str) -> Option<&str> {
    label
        .strip_prefix("output_")
        .filter(|i| i.parse::<usize>().is_ok())
}

/// The name an output's variable takes when another variable has its plain name: the op and
/// the output, `split.train`, or `op.out` (`op.out_0`, …) for unnamed ones.
pub fn qualified_output_name(op: &str, label: &str, n_outputs: usize) -> String {
    match unnamed_output(label) {
        Some(_) if n_outputs == 1 => format!("{op}.out"),
        Some(i) => format!("{op}.out_{i}"),
        None => format!("{op}.{label}"),
    }
}

/// The name of the function node of `op`: `op()`, so an op and its output (named after it)
/// never collide and a table's call columns read as calls.
pub fn func_node_name(op: &str) -> String {
    format!("{op}()")
}

impl ComputationFrame {
    fn empty(engine: &Engine) -> ComputationFrame {
        ComputationFrame {
            engine: engine.clone(),
            vars: BTreeMap::new(),
            funcs: BTreeMap::new(),
            calls: CallMap::default(),
            cids: Arc::default(),
            created_by: IdMap::default(),
            consumed: IdSet::default(),
            op_nodes: BTreeMap::new(),
            room: 0,
        }
    }

    /// Every stored call of `op`: one function node named after it, one variable per input
    /// and output label.
    pub fn from_op(engine: &Engine, op: &str) -> Result<ComputationFrame> {
        let mut cf = ComputationFrame::empty(engine);
        let index = engine.provenance()?;
        let calls = index.calls_of(op);
        cf.reserve(calls.len());
        let mut plan = None;
        for call in calls {
            cf.add_call(&index, call, None, None, &mut plan);
        }
        // Expansions add other ops' variables, which may hold far fewer refs: they grow.
        cf.room = 0;
        Ok(cf)
    }

    /// One variable per name, holding the refs with those (history id, content id) pairs.
    pub fn from_refs<'a>(
        engine: &Engine,
        groups: impl IntoIterator<Item = (&'a str, Vec<(Id, Id)>)>,
    ) -> ComputationFrame {
        let mut cf = ComputationFrame::empty(engine);
        for (name, refs) in groups {
            let var = cf.vars.entry(name.to_string()).or_default();
            for (hid, cid) in refs {
                var.insert(hid);
                Arc::make_mut(&mut cf.cids).insert(hid, cid);
            }
        }
        cf
    }

    /// The variables and their refs (history ids).
    pub fn vars(&self) -> &BTreeMap<String, RefSet> {
        &self.vars
    }

    /// The function nodes.
    pub fn funcs(&self) -> &BTreeMap<String, FuncNode> {
        &self.funcs
    }

    /// A call of the frame.
    pub fn call(&self, id: &CallId) -> Option<&StoredCall> {
        self.calls.get(id).map(|c| &**c)
    }

    /// The content id of a ref of the frame.
    pub fn cid(&self, hid: &Id) -> Option<Id> {
        self.cids.get(hid).copied()
    }

    /// The store the frame reads from.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The values of variable `var`'s refs as `T`, ordered by history id.
    ///
    /// ```
    /// # use mandala::{ComputationFrame, Engine};
    /// let cf = ComputationFrame::from_op(&Engine::in_memory(), "inc").unwrap();
    /// assert!(cf.eval::<u64>("x").is_err()); // no such variable
    /// ```
    pub fn eval<T: crate::engine::value::Value>(&self, var: &str) -> Result<Vec<T>> {
        let refs = self
            .vars
            .get(var)
            .ok_or_else(|| self.no_node("variable", var))?;
        let mut hids: Vec<&Id> = refs.iter().collect();
        hids.sort();
        hids.into_iter()
            .map(|h| self.engine.load_value(&self.cids[h]))
            .collect()
    }

    fn no_node(&self, what: &'static str, name: &str) -> crate::Error {
        let available = match what {
            "variable" => self.vars.keys().cloned().collect(),
            _ => self.vars.keys().chain(self.funcs.keys()).cloned().collect(),
        };
        crate::Error::Frame(crate::FrameError::NoSuchName {
            what,
            name: name.to_string(),
            place: "the frame",
            available,
        })
    }

    /// A variable holding `hid` (the first by name), if any.
    fn var_holding(&self, hid: &Id) -> Option<String> {
        self.vars
            .iter()
            .find(|(_, refs)| refs.contains(hid))
            .map(|(n, _)| n.clone())
    }

    fn fresh_name(&self, base: &str) -> String {
        let taken = |n: &str| self.vars.contains_key(n) || self.funcs.contains_key(n);
        if !taken(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !taken(n))
            .expect("unbounded")
    }

    /// The variable for `label` on `node` (`output` or input): the one the edge already
    /// leads to, or one already holding the ref, or a new one named `base` (or `base_1`,
    /// `base_2`, … if taken).
    fn var_for(
        &mut self,
        node: &str,
        label: &str,
        output: bool,
        slot: &Slot,
        hint: Option<&str>,
        (base, qualified): (String, Option<String>),
    ) -> String {
        let f = &self.funcs[node];
        let edges = if output { &f.outputs } else { &f.inputs };
        if let Some(v) = edges.get(label) {
            return v.clone();
        }
        // A ref created by a call identifies one history, so any variable holding it is the
        // right one. Source values do not (equal values passed in different places share a
        // hid), so for an input only a variable of the same name that holds it is reused.
        let holding = self
            .var_holding(&slot.hid)
            .filter(|v| output || *v == base || self.created_by.contains_key(&slot.hid));
        let taken = |n: &str| self.vars.contains_key(n) || self.funcs.contains_key(n);
        let var = hint.map(str::to_string).or(holding).unwrap_or_else(|| {
            // A producer's output whose name another variable has: `op.output` first.
            match qualified {
                Some(q) if taken(&base) && !taken(&q) => q,
                _ => self.fresh_name(&base),
            }
        });
        let room = self.room;
        self.vars
            .entry(var.clone())
            .or_insert_with(|| RefSet::with_capacity_and_hasher(room, Default::default()));
        let f = self.funcs.get_mut(node).expect("exists");
        let edges = if output {
            &mut f.outputs
        } else {
            &mut f.inputs
        };
        edges.insert(label.to_string(), var.clone());
        var
    }

    /// The function node for `op`: the existing node of that op (mandala reuses nodes of the
    /// same op), or a new one named `op()`.
    fn node_for(&mut self, op: &str) -> Arc<str> {
        if let Some((n, _)) = self.funcs.iter().find(|(_, f)| f.op == op) {
            return Arc::from(n.as_str());
        }
        let name = self.fresh_name(&func_node_name(op));
        self.funcs.insert(
            name.clone(),
            FuncNode {
                op: op.to_string(),
                calls: CallSet::with_capacity_and_hasher(self.room, Default::default()),
                ..FuncNode::default()
            },
        );
        Arc::from(name.as_str())
    }

    /// Adds `call` to the node of its op (created if needed), with its inputs and outputs in
    /// the variables its edges lead to. `hint` = (label, var) for the ref that led to it.
    /// Returns whether the call is new to the frame.
    fn add_call(
        &mut self,
        index: &Provenance,
        call: &Arc<StoredCall>,
        hint: Option<(&str, &str)>,
        mut new_refs: Option<&mut Vec<(Id, String)>>,
        plan: &mut Option<Plan>,
    ) -> bool {
        let id = call_id(call);
        // One search of the (large) call map, not a look and then an insert.
        match self.calls.entry(id) {
            hash_map::Entry::Occupied(_) => return false,
            hash_map::Entry::Vacant(v) => {
                v.insert(call.clone());
            }
        }
        if !plan.as_ref().is_some_and(|p| p.fits(&call.record)) {
            self.add_edges(index, call, hint);
            *plan = Some(self.plan_of(&call.record));
        }
        let plan = plan.as_ref().expect("made above");
        let f = self.funcs.get_mut(&*plan.node).expect("exists");
        let cids = Arc::make_mut(&mut self.cids);
        let slots = (call.record.inputs.iter().map(|s| (false, s)))
            .chain(call.record.outputs.iter().map(|s| (true, s)));
        for ((output, slot), var) in slots.zip(&plan.vars) {
            let fresh = self
                .vars
                .get_mut(var)
                .expect("edges lead to variables")
                .insert(slot.hid);
            if let (true, Some(out)) = (fresh, new_refs.as_deref_mut()) {
                out.push((slot.hid, var.clone()));
            }
            cids.insert(slot.hid, slot.cid);
            if output {
                self.created_by
                    .entry(slot.hid)
                    .or_insert_with(|| (plan.node.clone(), call.clone()));
            } else {
                self.consumed.insert(slot.hid);
            }
        }
        f.calls.insert(id);
        true
    }

    /// How the slots of calls like `rec` (its op, its slot names) map to variables, once
    /// their edges exist.
    fn plan_of(&self, rec: &CallRecord) -> Plan {
        let node = self.op_nodes[&*rec.op].clone();
        let f = &self.funcs[&*node];
        let label = |s: &Slot| edge_label(&rec.op, &s.name).to_string();
        let vars = (rec.inputs.iter().map(|s| f.inputs[&label(s)].clone()))
            .chain(rec.outputs.iter().map(|s| f.outputs[&label(s)].clone()))
            .collect();
        Plan {
            op: rec.op.clone(),
            names: (rec.inputs.iter().chain(&rec.outputs))
                .map(|s| s.name.clone())
                .collect(),
            inputs: rec.inputs.len(),
            node,
            vars,
        }
    }

    /// Creates the node of `call`'s op if needed, and the edges (with their variables) for
    /// the slots of `call` its node does not have yet.
    fn add_edges(
        &mut self,
        index: &Provenance,
        call: &Arc<StoredCall>,
        hint: Option<(&str, &str)>,
    ) {
        if !self.op_nodes.contains_key(&*call.record.op) {
            let n = self.node_for(&call.record.op);
            self.op_nodes.insert(call.record.op.to_string(), n);
        }
        // Edges for labels the node does not have yet (the first calls of a node; for the
        // others nothing is missing, and an empty collect allocates nothing).
        let f = &self.funcs[&*self.op_nodes[&*call.record.op]];
        let op = &*call.record.op;
        let missing: Vec<(bool, &Slot)> = call
            .record
            .inputs
            .iter()
            .filter(|s| !f.inputs.contains_key(edge_label(op, &s.name)))
            .map(|s| (false, s))
            .chain(
                call.record
                    .outputs
                    .iter()
                    .filter(|s| !f.outputs.contains_key(&*s.name))
                    .map(|s| (true, s)),
            )
            .collect();
        if !missing.is_empty() {
            let node = self.op_nodes[&*call.record.op].clone();
            let n_outputs = call.record.outputs.len();
            for (output, slot) in missing {
                let label = edge_label(op, &slot.name);
                let h = hint.and_then(|(l, v)| (l == label).then_some(v));
                // An output is named after itself; an input after the output that produced
                // it, where an op produced it, else (a source value, or a collection built or
                // taken apart by mandala's structural calls) after its argument.
                let base = if output {
                    (
                        output_var_name(op, &slot.name, n_outputs),
                        Some(qualified_output_name(op, &slot.name, n_outputs)),
                    )
                } else {
                    let creator = index
                        .creator(&slot.hid)
                        .filter(|c| !crate::format::collection::is_structural(&c.record.op));
                    let produced = creator.and_then(|c| {
                        let out = c.record.outputs.iter().find(|o| o.hid == slot.hid)?;
                        let n = c.record.outputs.len();
                        Some((
                            output_var_name(&c.record.op, &out.name, n),
                            Some(qualified_output_name(&c.record.op, &out.name, n)),
                        ))
                    });
                    produced.unwrap_or_else(|| (label.trim_start_matches('*').to_string(), None))
                };
                self.var_for(&node, label, output, slot, h, base);
            }
        }
    }

    /// Makes room for `n` more calls (of a few inputs and outputs each).
    fn reserve(&mut self, n: usize) {
        self.room = self.room.max(n);
        self.calls.reserve(n);
        Arc::make_mut(&mut self.cids).reserve(2 * n);
        self.created_by.reserve(n);
        self.consumed.reserve(n);
    }

    /// Recomputes the creators and consumers of refs from the nodes (after a restriction).
    fn rebuild_links(&mut self) {
        self.op_nodes.clear();
        self.created_by.clear();
        self.consumed.clear();
        for (name, f) in &self.funcs {
            let node: Arc<str> = Arc::from(name.as_str());
            for id in &f.calls {
                let call = &self.calls[id];
                for o in &call.record.outputs {
                    if f.outputs.contains_key(&*o.name) {
                        self.created_by
                            .entry(o.hid)
                            .or_insert_with(|| (node.clone(), call.clone()));
                    }
                }
                for i in &call.record.inputs {
                    if f.inputs.contains_key(edge_label(&call.record.op, &i.name)) {
                        self.consumed.insert(i.hid);
                    }
                }
            }
        }
        let kept: CallSet = self
            .funcs
            .values()
            .flat_map(|f| f.calls.iter().copied())
            .collect();
        self.calls.retain(|id, _| kept.contains(id));
    }

    /// The refs of `vars` (all variables if `None`), each with its variable (an index into
    /// the names returned).
    fn frontier_of(&self, vars: Option<&[&str]>) -> Frontier {
        let mut refs = Vec::new();
        let mut names = Vec::new();
        for (name, set) in &self.vars {
            if vars.is_none_or(|v| v.contains(&name.as_str())) {
                let i = names.len() as u32;
                names.push(name.clone());
                refs.extend(set.iter().map(|h| (*h, i)));
            }
        }
        // Popped from the end: reversed, the first variable by name goes first.
        refs.reverse();
        Frontier { refs, names }
    }

    /// Adds the creators of the refs of `vars` (all variables if `None`); with `recursive`,
    /// also those of the refs this adds, until nothing new is added (a recursive expansion
    /// from chosen variables continues from every variable). Returns how many calls were
    /// added.
    pub fn expand_back(&mut self, vars: Option<&[&str]>, recursive: bool) -> Result<usize> {
        self.expand(Direction::Back, vars, recursive)
    }

    /// Adds the consumers of the refs of `vars` (all if `None`); with `recursive`, repeats.
    pub fn expand_forward(&mut self, vars: Option<&[&str]>, recursive: bool) -> Result<usize> {
        self.expand(Direction::Forward, vars, recursive)
    }

    /// Expands backward and forward, recursively, until nothing changes.
    pub fn expand_all(&mut self) -> Result<usize> {
        let engine = self.engine.clone();
        let index = engine.provenance()?;
        let frontier = self.frontier_of(None);
        Ok(self.expand_from(&index, frontier, true, true, true))
    }

    fn expand(&mut self, dir: Direction, vars: Option<&[&str]>, recursive: bool) -> Result<usize> {
        let engine = self.engine.clone();
        let index = engine.provenance()?;
        let (back, forward) = match dir {
            Direction::Back => (true, false),
            Direction::Forward => (false, true),
        };
        let frontier = self.frontier_of(vars);
        let chosen = vars.is_some();
        let mut added = self.expand_from(&index, frontier, back, forward, recursive && !chosen);
        if recursive && chosen && added > 0 {
            let frontier = self.frontier_of(None);
            added += self.expand_from(&index, frontier, back, forward, true);
        }
        Ok(added)
    }

    /// Expands from each ref of `frontier`: to the call that created it (`back`) and the
    /// calls that consumed it (`forward`), each added with the label the ref has there (its
    /// variable names the edge if the node has none for that label yet). With `recursive`,
    /// the refs the added calls bring are expanded too. Each ref is expanded once per
    /// variable holding it: the work is linear in the frame's size.
    fn expand_from(
        &mut self,
        index: &Provenance,
        frontier: Frontier,
        back: bool,
        forward: bool,
        recursive: bool,
    ) -> usize {
        let Frontier {
            refs: mut frontier,
            mut names,
        } = frontier;
        // Each (variable, ref) enters the frontier once: at the start, or when a call adds it.
        let mut added = 0;
        let mut found: Vec<(Id, String)> = Vec::new();
        let mut calls = Vec::new();
        let mut plan = None;
        while let Some((hid, var)) = frontier.pop() {
            calls.clear();
            if back && !self.created_by.contains_key(&hid) {
                calls.extend(index.creator(&hid).map(|c| (c, true)));
            }
            if forward {
                // Only the consumers new to the frame, in a deterministic order. A pointer's
                // binding to its value is not a step of a computation: frames show the name.
                let mut new: Vec<Arc<StoredCall>> = index
                    .consumers_unordered(&hid)
                    .filter(|c| !self.calls.contains_key(&call_id(c)))
                    .filter(|c| c.record.op != crate::format::collection::POINTER_OP)
                    .cloned()
                    .collect();
                new.sort_by_key(|c| call_id(c));
                new.dedup_by_key(|c| call_id(c));
                calls.extend(new.into_iter().map(|c| (c, false)));
            }
            for (call, output) in calls.drain(..) {
                if self.calls.contains_key(&call_id(&call)) {
                    continue;
                }
                let var = &names[var as usize];
                let slots = if output {
                    &call.record.outputs
                } else {
                    &call.record.inputs
                };
                let label = slots
                    .iter()
                    .find(|s| s.hid == hid)
                    .map(|s| edge_label(&call.record.op, &s.name).to_string());
                let hint = label.as_deref().map(|l| (l, var.as_str()));
                found.clear();
                if self.add_call(index, &call, hint, Some(&mut found), &mut plan) {
                    added += 1;
                    if recursive {
                        for (h, v) in found.drain(..) {
                            let i = match names.iter().position(|n| *n == v) {
                                Some(i) => i,
                                None => {
                                    names.push(v);
                                    names.len() - 1
                                }
                            };
                            frontier.push((h, i as u32));
                        }
                    }
                }
            }
        }
        added
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

    /// The refs of `var` that no call of the frame consumed, sorted.
    pub fn sink_elements(&self, var: &str) -> Vec<Id> {
        self.elements_where(var, |h| !self.consumed.contains(h))
    }

    /// The refs of `var` that no call of the frame created, sorted.
    pub fn source_elements(&self, var: &str) -> Vec<Id> {
        self.elements_where(var, |h| !self.created_by.contains_key(h))
    }

    fn elements_where(&self, var: &str, keep: impl Fn(&Id) -> bool) -> Vec<Id> {
        let mut out: Vec<Id> = self
            .vars
            .get(var)
            .map(|r| r.iter().filter(|h| keep(h)).copied().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The variables with at least one sink element, in topological order.
    pub fn sink_vars(&self) -> Vec<String> {
        self.topo_order()
            .into_iter()
            .filter(|n| self.vars.contains_key(n) && !self.sink_elements(n).is_empty())
            .collect()
    }

    /// The variables with at least one source element, in topological order.
    pub fn source_vars(&self) -> Vec<String> {
        self.topo_order()
            .into_iter()
            .filter(|n| self.vars.contains_key(n) && !self.source_elements(n).is_empty())
            .collect()
    }

    /// Deletes every call of the frame and every call downstream of them from the store;
    /// returns how many calls were deleted. Those calls recompute when run again.
    pub fn delete_calls(&self) -> Result<usize> {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        Ok(self.engine.delete_calls(&ids)?.len())
    }
}

/// What a frame holds, as mandala's repr shows it: its variables with their sizes, and each op
/// with its calls and the variables its edges lead to (in topological order).
///
/// ```text
/// ComputationFrame with 3 variables and 2 ops
/// variables: x (3 refs), inc (3 refs), z (3 refs)
/// ops:
///   inc()  3 calls  x=x → inc
///   add()  3 calls  x=x, y=inc → z
/// ```
impl std::fmt::Display for ComputationFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        writeln!(
            f,
            "ComputationFrame with {} and {}",
            plural(self.vars.len(), "variable"),
            plural(self.funcs.len(), "op")
        )?;
        let order = self.topo_order();
        let vars: Vec<String> = order
            .iter()
            .filter_map(|n| {
                self.vars
                    .get(n)
                    .map(|refs| format!("{n} ({})", plural(refs.len(), "ref")))
            })
            .collect();
        writeln!(f, "variables: {}", vars.join(", "))?;
        writeln!(f, "ops:")?;
        for name in order.iter().filter(|n| self.funcs.contains_key(*n)) {
            let node = &self.funcs[name];
            let inputs: Vec<String> = node
                .inputs
                .iter()
                .map(|(l, v)| format!("{l}={v}"))
                .collect();
            let outputs: Vec<String> = if node.outputs.len() == 1 {
                node.outputs.values().cloned().collect()
            } else {
                node.outputs
                    .iter()
                    .map(|(l, v)| format!("{l}={v}"))
                    .collect()
            };
            writeln!(
                f,
                "  {name}  {}  {} → {}",
                plural(node.calls.len(), "call"),
                inputs.join(", "),
                outputs.join(", ")
            )?;
        }
        Ok(())
    }
}
