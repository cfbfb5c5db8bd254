//! Tables of a frame: one row per computation trace, one column per variable (refs, then
//! values) and per function node (calls), outer-joined along the graph as mandala's `df`.
//!
//! A cell holds one element, or a set of them when a trace reaches a node more than once
//! (two inputs of one call in one variable, or an in-place update `x = f(x)`); sets are sorted
//! by id. Rows are sorted by their cells' ids (columns in topological order), so a table is
//! the same in every run.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::{CallId, ComputationFrame};
use crate::error::{Error, Result};
use crate::format::id::{Id, IdMap};

/// One cell of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A ref (history id) of a variable column.
    Ref(Id),
    /// Several refs of a variable column reached by one trace, sorted.
    Refs(Vec<Id>),
    /// A call of a function column.
    Call(CallId),
    /// Several calls of a function column reached by one trace, sorted.
    Calls(Vec<CallId>),
    /// A value, decoded without the program's types.
    Value(ciborium::Value),
    /// The values of a set of refs, in the order of their ids.
    Values(Vec<ciborium::Value>),
}

/// A table: named columns, rows of optional cells (`None` where a trace does not pass).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<Cell>>>,
    /// Where the table's refs are read from.
    source: Arc<Source>,
}

/// What a table needs of its frame: the store, the content id of each ref in it (the frame's
/// map, shared), and which columns are function nodes.
struct Source {
    engine: crate::engine::Engine,
    cids: Arc<IdMap<Id>>,
    funcs: std::collections::BTreeSet<String>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({} refs)", self.cids.len())
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        // A ref's content id follows from its history id, so the rows decide the rest.
        self.funcs == other.funcs
    }
}

impl Source {
    fn cid(&self, hid: &Id) -> Id {
        self.cids[hid]
    }
}

impl PartialEq for ComputationFrame {
    fn eq(&self, other: &Self) -> bool {
        self.vars == other.vars && self.funcs == other.funcs
    }
}

impl fmt::Debug for ComputationFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputationFrame")
            .field("vars", &self.vars.keys())
            .field("funcs", &self.funcs.keys())
            .finish()
    }
}

type Row = Vec<Option<Cell>>;

/// Adds `x` to a cell holding one element (`one`) or a sorted set (`many`).
fn add_to<T: Ord + Copy>(
    cell: &mut Option<Cell>,
    x: T,
    one: fn(T) -> Cell,
    many: fn(Vec<T>) -> Cell,
    get: fn(&Cell) -> Option<Vec<T>>,
) {
    *cell = Some(match cell.take() {
        None => one(x),
        Some(c) => {
            let mut v = get(&c).expect("a column holds one kind of element");
            if let Err(i) = v.binary_search(&x) {
                v.insert(i, x);
            }
            if v.len() == 1 {
                one(v[0])
            } else {
                many(v)
            }
        }
    });
}

fn add_ref(cell: &mut Option<Cell>, hid: Id) {
    if matches!(cell, Some(Cell::Ref(h)) if *h == hid) {
        return;
    }
    add_to(cell, hid, Cell::Ref, Cell::Refs, |c| match c {
        Cell::Ref(h) => Some(vec![*h]),
        Cell::Refs(v) => Some(v.clone()),
        _ => None,
    });
}

fn add_call(cell: &mut Option<Cell>, id: CallId) {
    if matches!(cell, Some(Cell::Call(c)) if *c == id) {
        return;
    }
    add_to(cell, id, Cell::Call, Cell::Calls, |c| match c {
        Cell::Call(h) => Some(vec![*h]),
        Cell::Calls(v) => Some(v.clone()),
        _ => None,
    });
}

fn rank(c: &Cell) -> u8 {
    match c {
        Cell::Ref(_) => 0,
        Cell::Refs(_) => 1,
        Cell::Call(_) => 2,
        Cell::Calls(_) => 3,
        Cell::Value(_) => 4,
        Cell::Values(_) => 5,
    }
}

fn cmp_cell(a: &Option<Cell>, b: &Option<Cell>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (x, y) {
            (Cell::Ref(p), Cell::Ref(q)) => p.cmp(q),
            (Cell::Refs(p), Cell::Refs(q)) => p.cmp(q),
            (Cell::Call(p), Cell::Call(q)) => p.cmp(q),
            (Cell::Calls(p), Cell::Calls(q)) => p.cmp(q),
            _ if rank(x) != rank(y) => rank(x).cmp(&rank(y)),
            _ => format!("{x:?}").cmp(&format!("{y:?}")),
        },
    }
}

/// The order of two cells for [`Table::sort_by`].
fn sort_key_order(a: &Option<Cell>, b: &Option<Cell>) -> Ordering {
    use ciborium::Value as V;
    let number = |v: &V| match v {
        V::Integer(i) => Some(i128::from(*i) as f64),
        V::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Greater,
        (_, None) => Ordering::Less,
        (Some(Cell::Value(x)), Some(Cell::Value(y))) => match (number(x), number(y), x, y) {
            (Some(p), Some(q), _, _) => p.total_cmp(&q),
            (_, _, V::Text(p), V::Text(q)) => p.cmp(q),
            _ => crate::format::json::to_json(x)
                .to_string()
                .cmp(&crate::format::json::to_json(y).to_string()),
        },
        (Some(x), Some(y)) => cmp_cell(&Some(x.clone()), &Some(y.clone())),
    }
}

fn cmp_row(a: &Row, b: &Row) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_cell(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// The first 8 bytes of a row's first cell's id (0 for other cells).
fn prefix(row: &Row) -> u64 {
    let first = |id: &Id| u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"));
    match row.first() {
        Some(Some(Cell::Ref(h))) => first(h),
        Some(Some(Cell::Call(c))) => first(&c.key),
        _ => 0,
    }
}

fn hash_cell(c: &Cell) -> u64 {
    // Ids are uniformly distributed: their first bytes are a good hash.
    let first = |id: &Id| u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"));
    match c {
        Cell::Ref(x) => first(x),
        Cell::Refs(x) => x.iter().fold(1, |h, id| h.rotate_left(7) ^ first(id)),
        Cell::Call(x) => first(&x.hid),
        Cell::Calls(x) => x.iter().fold(2, |h, id| h.rotate_left(7) ^ first(&id.hid)),
        other => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            format!("{other:?}").hash(&mut h);
            h.finish()
        }
    }
}

/// Where each function node's cells go: its column and its edges' columns.
struct NodeCols {
    col: usize,
    inputs: Vec<(String, usize)>,
    outputs: Vec<(String, usize)>,
}

/// The column of edge `label` (nodes have few edges: a scan beats hashing).
fn edge_col(edges: &[(String, usize)], label: &str) -> Option<usize> {
    edges.iter().find(|(l, _)| l == label).map(|(_, c)| *c)
}

impl ComputationFrame {
    /// The full upstream history of ref `hid` (in column `vcol`) within the frame, into `row`.
    fn history(
        &self,
        nodes: &[(&str, NodeCols)],
        vcol: usize,
        hid: Id,
        row: &mut Row,
        seen: &mut Vec<Id>,
    ) {
        add_ref(&mut row[vcol], hid);
        // Histories are short: a list beats a hash set.
        if seen.contains(&hid) {
            return;
        }
        seen.push(hid);
        let Some((node, call)) = self.created_by.get(&hid) else {
            return;
        };
        let nc = &nodes
            .iter()
            .find(|(n, _)| *n == &**node)
            .expect("every node has columns")
            .1;
        add_call(&mut row[nc.col], super::call_id(call));
        for input in &call.record.inputs {
            if let Some(c) = edge_col(&nc.inputs, super::edge_label(&call.record.op, &input.name)) {
                self.history(nodes, c, input.hid, row, seen);
            }
        }
        for out in &call.record.outputs {
            if let Some(c) = edge_col(&nc.outputs, &out.name) {
                add_ref(&mut row[c], out.hid);
            }
        }
    }

    /// The table of the frame: rows of refs and calls (see [`Table::values`] for values).
    ///
    /// For each variable with sink elements (in topological order), every one of its refs
    /// gives a row holding its history in the frame; these tables are joined on their shared
    /// columns (outer, or `inner`: only traces found in all of them).
    pub fn df(&self, inner: bool) -> Result<Table> {
        let order = self.topo_order();
        let col: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let nodes: Vec<(&str, NodeCols)> = self
            .funcs
            .iter()
            .map(|(name, f)| {
                let edges = |e: &std::collections::BTreeMap<String, String>| {
                    e.iter()
                        .map(|(l, v)| (l.clone(), col[v.as_str()]))
                        .collect()
                };
                let nc = NodeCols {
                    col: col[name.as_str()],
                    inputs: edges(&f.inputs),
                    outputs: edges(&f.outputs),
                };
                (name.as_str(), nc)
            })
            .collect();
        let width = order.len();
        let mut joined: Option<Vec<Row>> = None;
        let rows_of = |vcol: usize, hids: &[Id]| -> Vec<Row> {
            let mut seen = Vec::new();
            hids.iter()
                .map(|hid| {
                    let mut row: Row = std::iter::repeat_with(|| None).take(width).collect();
                    seen.clear();
                    self.history(&nodes, vcol, *hid, &mut row, &mut seen);
                    row
                })
                .collect()
        };
        for var in self.sink_vars() {
            let vcol = col[var.as_str()];
            let hids: Vec<Id> = self.vars[&var].iter().copied().collect();
            // Histories are independent: many are traced on all cores.
            let rows: Vec<Row> = crate::par::map_chunks(&hids, 4096, |c| rows_of(vcol, c))
                .into_iter()
                .flatten()
                .collect();
            joined = Some(match joined {
                None => rows,
                Some(left) => join(left, rows, inner, width),
            });
        }
        let mut rows = joined.unwrap_or_default();
        // Most rows differ in their first filled cell: compare 8 bytes of it first.
        rows.sort_unstable_by(|a, b| prefix(a).cmp(&prefix(b)).then_with(|| cmp_row(a, b)));
        rows.dedup();
        let present: Vec<usize> = (0..width)
            .filter(|i| rows.iter().any(|r| r[*i].is_some()))
            .collect();
        if present.len() < width {
            rows = rows
                .into_iter()
                .map(|mut r| present.iter().map(|i| r[*i].take()).collect())
                .collect();
        }
        Ok(Table {
            columns: present.iter().map(|i| order[*i].clone()).collect(),
            rows,
            source: Arc::new(Source {
                engine: self.engine.clone(),
                cids: self.cids.clone(),
                funcs: self.funcs.keys().cloned().collect(),
            }),
        })
    }
}

/// Joins two row sets on the columns they share: rows match when every shared column both
/// fill holds equal cells and at least one is filled in both. Unmatched rows of either side
/// are kept (outer join) unless `inner`. Right rows are found through a hash of each filled
/// shared cell.
fn join(left: Vec<Row>, right: Vec<Row>, inner: bool, width: usize) -> Vec<Row> {
    let filled = |rows: &[Row]| -> Vec<bool> {
        (0..width)
            .map(|i| rows.iter().any(|r| r[i].is_some()))
            .collect()
    };
    let (lf, rf) = (filled(&left), filled(&right));
    let shared: Vec<usize> = (0..width).filter(|i| lf[*i] && rf[*i]).collect();
    let mut by_cell: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    for (j, r) in right.iter().enumerate() {
        for c in &shared {
            if let Some(cell) = &r[*c] {
                by_cell.entry((*c, hash_cell(cell))).or_default().push(j);
            }
        }
    }
    let matches = |a: &Row, b: &Row| {
        shared.iter().all(|c| match (&a[*c], &b[*c]) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        })
    };
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    let mut right_used = vec![false; right.len()];
    let mut candidates: Vec<usize> = Vec::new();
    for l in left {
        candidates.clear();
        for c in &shared {
            if let Some(cell) = &l[*c] {
                if let Some(js) = by_cell.get(&(*c, hash_cell(cell))) {
                    candidates.extend(js);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut matched = false;
        for j in &candidates {
            let r = &right[*j];
            if matches(&l, r) {
                let mut row = l.clone();
                for (x, y) in row.iter_mut().zip(r) {
                    if x.is_none() {
                        x.clone_from(y);
                    }
                }
                out.push(row);
                right_used[*j] = true;
                matched = true;
            }
        }
        if !matched && !inner {
            out.push(l);
        }
    }
    if !inner {
        out.extend(
            right
                .into_iter()
                .zip(right_used)
                .filter(|(_, u)| !u)
                .map(|(r, _)| r),
        );
    }
    out
}

impl Table {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn column_index(&self, name: &str) -> Result<usize> {
        self.index(name).ok_or_else(|| {
            Error::Frame(crate::error::FrameError::NoSuchName {
                what: "column",
                name: name.to_string(),
                place: "the table",
                available: self.columns.clone(),
            })
        })
    }

    /// Keeps only the columns `names`, in that order.
    pub fn select(mut self, names: &[&str]) -> Result<Table> {
        let keep = names
            .iter()
            .map(|n| self.column_index(n))
            .collect::<Result<Vec<usize>>>()?;
        self.columns = names.iter().map(|n| n.to_string()).collect();
        for row in &mut self.rows {
            *row = keep.iter().map(|i| row[*i].take()).collect();
        }
        Ok(self)
    }

    /// The rows sorted by the values of column `name` (numbers by value, text by its
    /// characters, other values by their JSON text; empty cells last), ties kept in the
    /// table's order. Read the values first ([`Table::values`]): refs and calls sort by id.
    pub fn sort_by(mut self, name: &str) -> Result<Table> {
        let i = self.column_index(name)?;
        self.rows.sort_by(|a, b| sort_key_order(&a[i], &b[i]));
        Ok(self)
    }

    /// Drops the function (call) columns.
    pub fn without_calls(self) -> Table {
        let keep: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !self.source.funcs.contains(*c))
            .cloned()
            .collect();
        let names: Vec<&str> = keep.iter().map(|s| s.as_str()).collect();
        self.select(&names).expect("columns of the table")
    }

    /// The table with every ref replaced by its value (decoded without the program's types).
    /// Each distinct value is read once, on all cores when there are many.
    pub fn values(mut self) -> Result<Table> {
        let source = self.source.clone();
        // Each distinct value once: its place in `wanted` by content id, and the place of
        // each ref's value in the order the cells are visited (the second visit reads them
        // back in that order instead of looking each up again).
        let cells = self.rows.len() * self.rows.first().map_or(0, Vec::len);
        let mut wanted: Vec<Id> = Vec::with_capacity(cells);
        let mut place = IdMap::with_capacity_and_hasher(cells, Default::default());
        let mut places: Vec<u32> = Vec::with_capacity(cells);
        for cell in self.rows.iter().flatten().flatten() {
            let mut note = |hid: &Id| {
                let cid = source.cid(hid);
                let at = *place.entry(cid).or_insert_with(|| {
                    wanted.push(cid);
                    wanted.len() as u32 - 1
                });
                places.push(at);
            };
            match cell {
                Cell::Ref(h) => note(h),
                Cell::Refs(hs) => hs.iter().for_each(note),
                _ => {}
            }
        }
        let loaded: Vec<ciborium::Value> = source.engine.load_plain_values(&wanted)?;
        let mut next = places.into_iter().map(|at| loaded[at as usize].clone());
        let mut value = || next.next().expect("one place per ref");
        for cell in self.rows.iter_mut().flatten() {
            match cell {
                Some(Cell::Ref(_)) => *cell = Some(Cell::Value(value())),
                Some(Cell::Refs(hids)) => {
                    *cell = Some(Cell::Values(hids.iter().map(|_| value()).collect()));
                }
                _ => {}
            }
        }
        Ok(self)
    }

    /// The values of variable column `name` as `T` (`None` where the trace does not pass).
    /// A cell holding a set of refs is an error naming the column and row (see
    /// [`Table::column_sets`]).
    pub fn column<T: crate::engine::value::Value>(&self, name: &str) -> Result<Vec<Option<T>>> {
        let i = self.column_index(name)?;
        self.column_sets::<T>(name)?
            .into_iter()
            .enumerate()
            .map(|(r, mut v)| match v.len() {
                0 if self.rows[r][i].is_none() => Ok(None),
                1 => Ok(v.pop()),
                n => Err(Error::Frame(crate::error::FrameError::Invalid {
                    place: format!("column '{name}', row {r}"),
                    reason: format!("the cell holds {n} values; read it with column_sets"),
                })),
            })
            .collect()
    }

    /// The values of variable column `name` as `T`, each cell as a list (empty where the trace
    /// does not pass; several where it reaches the variable more than once).
    pub fn column_sets<T: crate::engine::value::Value>(&self, name: &str) -> Result<Vec<Vec<T>>> {
        let i = self.column_index(name)?;
        let source = &self.source;
        let convert = |v: &ciborium::Value| -> Result<T> {
            let bytes = crate::format::cbor::to_canonical(v).map_err(|cause| {
                Error::Format(crate::error::FormatError::Encode {
                    op: "table".into(),
                    what: name.into(),
                    cause,
                })
            })?;
            crate::format::cbor::decode_value(&bytes).map_err(|cause| {
                Error::Format(crate::error::FormatError::Decode {
                    cid: format!("column '{name}'"),
                    ty: std::any::type_name::<T>(),
                    cause,
                })
            })
        };
        let load = |hid: &Id| -> Result<T> {
            let cid = source.cid(hid);
            match source.engine.backend().get_value(&cid)? {
                // A collection: its elements, converted.
                Some(bytes) if crate::format::collection::Shape::decode(&bytes).is_some() => {
                    let plain = source.engine.load_plain_values(&[cid])?;
                    convert(&plain[0])
                }
                Some(bytes) if crate::format::collection::pointer_name(&bytes).is_none() => {
                    crate::format::cbor::decode_value(&bytes).map_err(|cause| {
                        Error::Format(crate::error::FormatError::Decode {
                            cid: cid.to_string(),
                            ty: std::any::type_name::<T>(),
                            cause,
                        })
                    })
                }
                // Missing (an error naming it), or a pointer: the value behind its name.
                _ => source.engine.load_value::<T>(&cid),
            }
        };
        self.rows
            .iter()
            .map(|row| match &row[i] {
                None => Ok(Vec::new()),
                Some(Cell::Ref(h)) => Ok(vec![load(h)?]),
                Some(Cell::Refs(hs)) => hs.iter().map(load).collect(),
                Some(Cell::Value(v)) => Ok(vec![convert(v)?]),
                Some(Cell::Values(vs)) => vs.iter().map(convert).collect(),
                Some(Cell::Call(_) | Cell::Calls(_)) => {
                    Err(Error::Frame(crate::error::FrameError::Invalid {
                        place: format!("column '{name}'"),
                        reason: "it is a function column (calls), not a variable".into(),
                    }))
                }
            })
            .collect()
    }

    fn cell_text(cell: &Option<Cell>) -> String {
        let set = |v: Vec<String>| format!("{{{}}}", v.join(", "));
        match cell {
            None => String::new(),
            Some(Cell::Ref(h)) => format!("ref {}", h.short(8)),
            Some(Cell::Refs(hs)) => set(hs.iter().map(|h| format!("ref {}", h.short(8))).collect()),
            Some(Cell::Call(c)) => format!("call {}", c.hid.short(8)),
            Some(Cell::Calls(cs)) => set(cs
                .iter()
                .map(|c| format!("call {}", c.hid.short(8)))
                .collect()),
            Some(Cell::Value(v)) => value_text(v),
            Some(Cell::Values(vs)) => set(vs.iter().map(value_text).collect()),
        }
    }

    fn cell_json(cell: &Option<Cell>) -> Json {
        let call = |c: &CallId| json!({"call": c.hid.to_string()});
        let r = |h: &Id| json!({"ref": h.to_string()});
        match cell {
            None => Json::Null,
            Some(Cell::Ref(h)) => r(h),
            Some(Cell::Refs(hs)) => Json::Array(hs.iter().map(r).collect()),
            Some(Cell::Call(c)) => call(c),
            Some(Cell::Calls(cs)) => Json::Array(cs.iter().map(call).collect()),
            Some(Cell::Value(v)) => crate::format::json::to_json(v),
            Some(Cell::Values(vs)) => {
                Json::Array(vs.iter().map(crate::format::json::to_json).collect())
            }
        }
    }

    /// The table as JSON: a list of rows, each an object from column name to cell (`null`
    /// where the trace does not pass; values as JSON, refs as `{"ref": hid}`, calls as
    /// `{"call": hid}`, sets as lists).
    ///
    /// ```
    /// # use mandala::{ComputationFrame, Engine};
    /// let cf = ComputationFrame::from_op(&Engine::in_memory(), "inc").unwrap();
    /// assert_eq!(cf.df(false).unwrap().to_json().to_string(), "[]");
    /// ```
    pub fn to_json(&self) -> Json {
        Json::Array(
            self.rows
                .iter()
                .map(|row| {
                    Json::Object(
                        self.columns
                            .iter()
                            .zip(row)
                            .map(|(c, cell)| (c.clone(), Table::cell_json(cell)))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// The table as CSV that standard readers parse with typed columns: a header of column
    /// names, then one line per row (see `cell_csv` for the cells; empty where a trace does not
    /// pass).
    pub fn to_csv(&self) -> String {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = self
            .columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for row in &self.rows {
            out.push_str(
                &row.iter()
                    .map(|c| quote(&Table::cell_csv(c)))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        out
    }

    /// A cell as CSV text: empty where the trace does not pass, a string as itself, anything
    /// else as its JSON (numbers bare, so CSV readers type the column; sets and collections
    /// as JSON arrays, refs and calls as `{"ref": hid}` / `{"call": hid}`).
    fn cell_csv(cell: &Option<Cell>) -> String {
        match Table::cell_json(cell) {
            Json::Null if cell.is_none() => String::new(),
            Json::String(s) => s,
            other => other.to_string(),
        }
    }
}

/// A short text for a value: numbers and strings as themselves, the rest in CBOR diagnostic
/// style.
pub fn value_text(v: &ciborium::Value) -> String {
    match v {
        ciborium::Value::Integer(i) => i128::from(*i).to_string(),
        ciborium::Value::Float(f) => f.to_string(),
        ciborium::Value::Text(s) => s.clone(),
        ciborium::Value::Bool(b) => b.to_string(),
        ciborium::Value::Null => "null".into(),
        ciborium::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        ciborium::Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", value_text(k), value_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ciborium::Value::Bytes(b) => format!(
            "h'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        other => format!("{other:?}"),
    }
}

/// The widest a cell prints in an aligned table (CSV and JSON keep whole values).
pub const CELL_WIDTH: usize = 40;

/// `text` cut to [`CELL_WIDTH`] characters, ending in `…` when cut.
fn shorten(text: String) -> String {
    if text.chars().count() <= CELL_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(CELL_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// Aligned columns; long values are cut to [`CELL_WIDTH`] characters.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| shorten(Table::cell_text(c))).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |f: &mut fmt::Formatter<'_>, items: &[String]| -> fmt::Result {
            let parts: Vec<String> = items
                .iter()
                .zip(&widths)
                .map(|(s, w)| format!("{s:<w$}"))
                .collect();
            writeln!(f, "{}", parts.join("  ").trim_end())
        };
        line(f, &self.columns)?;
        for r in &cells {
            line(f, r)?;
        }
        Ok(())
    }
}
