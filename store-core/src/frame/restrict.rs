//! Restricting and combining frames: selecting and dropping nodes, `upstream` / `downstream`
//! / `midstream`, filtering a variable by value, hid or content id, renaming and merging
//! variables, and the set operations `|`, `&` and `-` (nodes matched by name).
//!
//! Element rules (as in mandala, without its bugs): going back, a call is kept when one of
//! its outputs is, and keeps all its inputs; going forward *strongly* (downstream, difference)
//! a call is kept only when all its inputs on edges of the frame are, and going forward
//! *weakly* (filters) when any is. Every result keeps the frame's invariant: a kept call's
//! refs on the node's edges are in the variables at the other ends.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;

use serde::Serialize;

use super::{call_id, CallId, CallSet, ComputationFrame, FuncNode};
use crate::error::{Error, Result};
use crate::format::id::{Id, IdHasher, IdSet, Kind};
use crate::format::record::StoredCall;

/// Which way a walk over the frame's graph goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    Back,
    Forward,
}

/// A ref in a variable: (variable, history id). Equal source values share a history id, so
/// the same id can stand for different things in different variables.
type Elem = (String, Id);
type ElemSet = HashSet<Elem>;

/// The refs of `call` on `node`'s input (or output) edges, with the variables they are in.
fn edge_refs<'a>(
    node: &'a FuncNode,
    call: &'a StoredCall,
    inputs: bool,
) -> impl Iterator<Item = Elem> + 'a {
    let (slots, edges) = if inputs {
        (&call.record.inputs, &node.inputs)
    } else {
        (&call.record.outputs, &node.outputs)
    };
    slots.iter().filter_map(move |s| {
        edges
            .get(super::edge_label(&call.record.op, &s.name))
            .map(|v| (v.clone(), s.hid))
    })
}

impl ComputationFrame {
    fn check_nodes(&self, nodes: &[&str]) -> Result<()> {
        for n in nodes {
            if !self.vars.contains_key(*n) && !self.funcs.contains_key(*n) {
                return Err(self.no_node("node", n));
            }
        }
        Ok(())
    }

    /// The function node of each call.
    fn call_nodes(&self) -> HashMap<CallId, &str, BuildHasherDefault<IdHasher>> {
        let mut out = HashMap::default();
        for (name, f) in &self.funcs {
            for c in &f.calls {
                out.insert(*c, name.as_str());
            }
        }
        out
    }

    /// The nodes reachable from `nodes` (included) along the graph's edges.
    fn reachable(&self, nodes: &[&str], way: Way) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(f) = self.funcs.get(&n) {
                let next = if way == Way::Back {
                    &f.inputs
                } else {
                    &f.outputs
                };
                todo.extend(next.values().cloned());
            } else {
                for (fname, f) in &self.funcs {
                    let edges = if way == Way::Back {
                        &f.outputs
                    } else {
                        &f.inputs
                    };
                    if edges.values().any(|v| *v == n) {
                        todo.push(fname.clone());
                    }
                }
            }
        }
        seen
    }

    /// The refs of the given variables and the calls of the given function nodes.
    fn elements_of(&self, nodes: &[&str]) -> (Vec<Elem>, Vec<CallId>) {
        let mut refs = Vec::new();
        let mut calls = Vec::new();
        for n in nodes {
            if let Some(r) = self.vars.get(*n) {
                refs.extend(r.iter().map(|h| (n.to_string(), *h)));
            }
            if let Some(f) = self.funcs.get(*n) {
                calls.extend(f.calls.iter().copied());
            }
        }
        (refs, calls)
    }

    /// Going back from `refs` and `calls`: creators of reached refs (if `allowed`), and every
    /// ref on the edges of a reached call.
    fn walk_back(
        &self,
        refs: Vec<Elem>,
        calls: Vec<CallId>,
        allowed: &dyn Fn(&CallId) -> bool,
    ) -> (ElemSet, CallSet) {
        let nodes = self.call_nodes();
        let mut seen_refs = ElemSet::default();
        let mut seen_calls = CallSet::default();
        let mut todo_refs = refs;
        let mut todo_calls = calls;
        loop {
            if let Some(c) = todo_calls.pop() {
                if seen_calls.insert(c) {
                    let node = &self.funcs[nodes[&c]];
                    let call = &self.calls[&c];
                    todo_refs.extend(edge_refs(node, call, true));
                    todo_refs.extend(edge_refs(node, call, false));
                }
            } else if let Some(e) = todo_refs.pop() {
                if let Some((node, call)) = self.created_by.get(&e.1) {
                    // Only a creator whose output edge leads to this variable.
                    let into_var = self.funcs[&**node].outputs.values().any(|v| *v == e.0);
                    let c = call_id(call);
                    if into_var && allowed(&c) && !seen_refs.contains(&e) {
                        todo_calls.push(c);
                    }
                }
                seen_refs.insert(e);
            } else {
                return (seen_refs, seen_calls);
            }
        }
    }

    /// Going forward from `refs` and `calls`: consumers of reached refs whose inputs on edges
    /// are all reached (`strong`) or any is, if `allowed`; their outputs are reached. A call
    /// with no input on an edge is reached from the start when `strong`.
    fn walk_forward(
        &self,
        refs: Vec<Elem>,
        calls: Vec<CallId>,
        strong: bool,
        allowed: &dyn Fn(&CallId) -> bool,
    ) -> (ElemSet, CallSet) {
        let nodes = self.call_nodes();
        let mut consumers: HashMap<Elem, Vec<CallId>> = HashMap::new();
        let mut todo_calls = calls;
        for (id, node) in &nodes {
            let f = &self.funcs[*node];
            let mut any = false;
            for e in edge_refs(f, &self.calls[id], true) {
                consumers.entry(e).or_default().push(*id);
                any = true;
            }
            if !any && strong && allowed(id) {
                todo_calls.push(*id);
            }
        }
        // Kept refs, and the refs whose consumers were looked at (a call's inputs are kept
        // with it without leading further).
        let mut seen_refs = ElemSet::default();
        let mut explored = ElemSet::default();
        let mut seen_calls = CallSet::default();
        let mut todo_refs = refs;
        loop {
            if let Some(c) = todo_calls.pop() {
                if seen_calls.insert(c) {
                    let f = &self.funcs[nodes[&c]];
                    let call = &self.calls[&c];
                    seen_refs.extend(edge_refs(f, call, true));
                    todo_refs.extend(edge_refs(f, call, false));
                }
            } else if let Some(e) = todo_refs.pop() {
                seen_refs.insert(e.clone());
                if !explored.insert(e.clone()) {
                    continue;
                }
                for c in consumers.get(&e).into_iter().flatten() {
                    if seen_calls.contains(c) || !allowed(c) {
                        continue;
                    }
                    let f = &self.funcs[nodes[c]];
                    let ready = !strong
                        || edge_refs(f, &self.calls[c], true).all(|i| seen_refs.contains(&i));
                    if ready {
                        todo_calls.push(*c);
                    }
                }
            } else {
                return (seen_refs, seen_calls);
            }
        }
    }

    /// Keeps only `refs` in the variables and `calls` in the function nodes (plus the refs the
    /// kept calls need, so the invariant holds).
    fn keep_elements(&mut self, refs: &ElemSet, calls: &CallSet) {
        for f in self.funcs.values_mut() {
            f.calls.retain(|c| calls.contains(c));
        }
        let mut probe: Elem = (String::new(), Id([0; 32]));
        for (name, r) in self.vars.iter_mut() {
            probe.0.clone_from(name);
            r.retain(|h| {
                probe.1 = *h;
                refs.contains(&probe)
            });
        }
        let mut needed: Vec<Elem> = Vec::new();
        for f in self.funcs.values() {
            for c in &f.calls {
                let call = &self.calls[c];
                needed.extend(edge_refs(f, call, true));
                needed.extend(edge_refs(f, call, false));
            }
        }
        for (v, h) in needed {
            self.vars.entry(v).or_default().insert(h);
        }
        self.rebuild_links();
    }

    /// The sub-frame induced by `nodes` (variables and function nodes): edges between kept
    /// nodes stay; the kept nodes keep all their elements.
    pub fn select(&self, nodes: &[&str]) -> ComputationFrame {
        let keep: BTreeSet<&str> = nodes.iter().copied().collect();
        let mut cf = self.clone();
        cf.vars.retain(|n, _| keep.contains(n.as_str()));
        cf.funcs.retain(|n, _| keep.contains(n.as_str()));
        for f in cf.funcs.values_mut() {
            f.inputs.retain(|_, v| keep.contains(v.as_str()));
            f.outputs.retain(|_, v| keep.contains(v.as_str()));
        }
        cf.rebuild_links();
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

    /// Everything that went into `nodes`: the nodes they are reached from, with only the
    /// elements in the history of the elements of `nodes`.
    ///
    /// ```
    /// # use mandala::{ComputationFrame, Engine};
    /// let cf = ComputationFrame::from_op(&Engine::in_memory(), "inc").unwrap();
    /// assert!(cf.upstream(&["x"]).is_err()); // no such node
    /// ```
    pub fn upstream(&self, nodes: &[&str]) -> Result<ComputationFrame> {
        self.check_nodes(nodes)?;
        let names = self.reachable(nodes, Way::Back);
        let mut cf = self.select(&names.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let (refs, calls) = cf.elements_of(nodes);
        let (refs, calls) = cf.walk_back(refs, calls, &|_| true);
        cf.keep_elements(&refs, &calls);
        Ok(cf)
    }

    /// Everything computed from `nodes`: the nodes reachable from them, with only the calls
    /// all of whose inputs (on the frame's edges) descend from elements of `nodes`.
    pub fn downstream(&self, nodes: &[&str]) -> Result<ComputationFrame> {
        self.check_nodes(nodes)?;
        let names = self.reachable(nodes, Way::Forward);
        let mut cf = self.select(&names.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        let (refs, calls) = cf.elements_of(nodes);
        let (refs, calls) = cf.walk_forward(refs, calls, true, &|_| true);
        cf.keep_elements(&refs, &calls);
        Ok(cf)
    }

    /// The part of the frame between `nodes`: the nodes on paths from one of them to another,
    /// with the elements computed from the elements of `nodes` that lead to them.
    pub fn midstream(&self, nodes: &[&str]) -> Result<ComputationFrame> {
        self.downstream(nodes)?.upstream(nodes)
    }

    /// Keeps the refs of variable `var` for which `keep(hid, cid)` holds, and what connects
    /// to them: the calls computed from them (weakly forward), and the history of those calls
    /// and of the kept refs. Calls that used a dropped ref of `var` are dropped.
    pub fn filter_refs(
        &self,
        var: &str,
        keep: impl Fn(&Id, &Id) -> bool,
    ) -> Result<ComputationFrame> {
        let refs = self
            .vars
            .get(var)
            .ok_or_else(|| self.no_node("variable", var))?;
        let kept: IdSet = refs
            .iter()
            .filter(|h| keep(h, &self.cids[*h]))
            .copied()
            .collect();
        let nodes = self.call_nodes();
        let allowed = |c: &CallId| {
            let f = &self.funcs[nodes[c]];
            let call = &self.calls[c];
            [
                (&call.record.inputs, &f.inputs),
                (&call.record.outputs, &f.outputs),
            ]
            .into_iter()
            .all(|(slots, edges)| {
                slots.iter().all(|s| {
                    edges
                        .get(super::edge_label(&call.record.op, &s.name))
                        .is_none_or(|v| v != var || kept.contains(&s.hid))
                })
            })
        };
        let seeds: Vec<Elem> = kept.iter().map(|h| (var.to_string(), *h)).collect();
        let (fwd_refs, fwd_calls) = self.walk_forward(seeds.clone(), Vec::new(), false, &allowed);
        let mut back_seeds: Vec<Elem> = fwd_refs.into_iter().collect();
        back_seeds.extend(seeds);
        let (mut refs, mut calls) = self.walk_back(back_seeds, Vec::new(), &allowed);
        calls.extend(fwd_calls);
        refs.retain(|(v, h)| v != var || kept.contains(h));
        let mut cf = self.clone();
        cf.keep_elements(&refs, &calls);
        Ok(cf)
    }

    /// [`filter_refs`](Self::filter_refs) by history id.
    pub fn filter_hids(&self, var: &str, hids: &[Id]) -> Result<ComputationFrame> {
        let set: IdSet = hids.iter().copied().collect();
        self.filter_refs(var, |h, _| set.contains(h))
    }

    /// [`filter_refs`](Self::filter_refs) by content id.
    pub fn filter_cids(&self, var: &str, cids: &[Id]) -> Result<ComputationFrame> {
        let set: IdSet = cids.iter().copied().collect();
        self.filter_refs(var, |_, c| set.contains(c))
    }

    /// [`filter_refs`](Self::filter_refs) keeping the refs whose value is one of `values`
    /// (compared by content id: no value is loaded).
    pub fn isin<T: Serialize + 'static>(
        &self,
        var: &str,
        values: &[T],
    ) -> Result<ComputationFrame> {
        let cids = values
            .iter()
            .map(|v| {
                crate::format::cbor::encode_value(v)
                    .map(|b| Id::hash(Kind::Value, &b))
                    .map_err(|cause| {
                        Error::Format(crate::error::FormatError::Encode {
                            op: "isin".into(),
                            what: format!("a value for variable '{var}'"),
                            cause,
                        })
                    })
            })
            .collect::<Result<Vec<Id>>>()?;
        self.filter_cids(var, &cids)
    }

    /// [`filter_refs`](Self::filter_refs) keeping the refs whose value (loaded as `T`)
    /// satisfies `keep`. Loads the values of `var` only.
    pub fn filter_values<T: crate::engine::value::Value>(
        &self,
        var: &str,
        keep: impl Fn(&T) -> bool,
    ) -> Result<ComputationFrame> {
        let refs = self
            .vars
            .get(var)
            .ok_or_else(|| self.no_node("variable", var))?;
        let mut kept = IdSet::default();
        for h in refs {
            let v: T = self.engine.load_value(&self.cids[h])?;
            if keep(&v) {
                kept.insert(*h);
            }
        }
        self.filter_refs(var, |h, _| kept.contains(h))
    }

    /// Renames variable `old` to `new` (edges follow).
    pub fn rename_var(&mut self, old: &str, new: &str) -> Result<()> {
        if self.vars.contains_key(new) || self.funcs.contains_key(new) {
            return Err(Error::Frame(crate::error::FrameError::Invalid {
                place: format!("renaming variable '{old}'"),
                reason: format!("the frame already has a node named '{new}'"),
            }));
        }
        let refs = self
            .vars
            .remove(old)
            .ok_or_else(|| self.no_node("variable", old))?;
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

    /// Moves variable `from`'s refs into `into`, redirects `from`'s edges to `into`, and
    /// drops `from`.
    pub fn merge_into(&mut self, from: &str, into: &str) -> Result<()> {
        if from == into {
            return Err(Error::Frame(crate::error::FrameError::Invalid {
                place: format!("merging variable '{from}'"),
                reason: "a variable cannot be merged into itself".into(),
            }));
        }
        if !self.vars.contains_key(into) {
            return Err(self.no_node("variable", into));
        }
        let refs = self
            .vars
            .remove(from)
            .ok_or_else(|| self.no_node("variable", from))?;
        self.vars.get_mut(into).expect("checked").extend(refs);
        for f in self.funcs.values_mut() {
            for v in f.inputs.values_mut().chain(f.outputs.values_mut()) {
                if v == from {
                    *v = into.to_string();
                }
            }
        }
        self.rebuild_links();
        Ok(())
    }

    /// Merges every variable whose refs are a strict subset of another's into it (the
    /// smallest such superset, then the first by name), until none is; returns how many
    /// were merged. Paths that reach the same refs under different names become one.
    pub fn merge_vars(&mut self) -> usize {
        let mut merged = 0;
        loop {
            let mut pick: Option<(String, String)> = None;
            'outer: for (a, ra) in &self.vars {
                let mut best: Option<(&String, usize)> = None;
                for (b, rb) in &self.vars {
                    if a != b
                        && ra.len() < rb.len()
                        && ra.is_subset(rb)
                        && best.is_none_or(|(_, n)| rb.len() < n)
                    {
                        best = Some((b, rb.len()));
                    }
                }
                if let Some((b, _)) = best {
                    pick = Some((a.clone(), b.clone()));
                    break 'outer;
                }
            }
            let Some((a, b)) = pick else {
                return merged;
            };
            self.merge_into(&a, &b).expect("both exist");
            merged += 1;
        }
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
        std::sync::Arc::make_mut(&mut cf.cids).extend(other.cids.iter().map(|(k, v)| (*k, *v)));
        cf.rebuild_links();
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
        cf.rebuild_links();
        cf
    }

    /// The setwise difference: `other`'s elements are removed from the same-named nodes of
    /// this frame, then only what is still computed from the remaining sources (strongly
    /// forward) is kept. The graph stays.
    pub fn difference(&self, other: &ComputationFrame) -> ComputationFrame {
        let mut removed_calls = CallSet::default();
        for (name, f) in &self.funcs {
            if let Some(g) = other.funcs.get(name) {
                removed_calls.extend(f.calls.intersection(&g.calls).copied());
            }
        }
        let mut removed_refs: BTreeMap<&str, BTreeSet<Id>> = BTreeMap::new();
        for (name, refs) in &self.vars {
            if let Some(o) = other.vars.get(name) {
                removed_refs.insert(name, refs.intersection(o).copied().collect());
            }
        }
        let sources: Vec<Elem> = self
            .vars
            .iter()
            .flat_map(|(name, refs)| {
                let gone = removed_refs.get(name.as_str());
                refs.iter()
                    .filter(move |h| gone.is_none_or(|g| !g.contains(*h)))
                    .map(move |h| (name.clone(), *h))
            })
            .filter(|(_, h)| !self.created_by.contains_key(h))
            .collect();
        let (refs, calls) =
            self.walk_forward(sources, Vec::new(), true, &|c| !removed_calls.contains(c));
        let mut cf = self.clone();
        cf.keep_elements(&refs, &calls);
        for (name, gone) in removed_refs {
            if let Some(r) = cf.vars.get_mut(name) {
                r.retain(|h| !gone.contains(h));
            }
        }
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

impl std::ops::Sub for &ComputationFrame {
    type Output = ComputationFrame;
    fn sub(self, other: &ComputationFrame) -> ComputationFrame {
        self.difference(other)
    }
}
