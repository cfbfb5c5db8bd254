//! Tables of a frame: one row per computation trace, one column per variable (refs, then
//! values) and per function node (calls), outer-joined along the graph as mandala's `df`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;

use super::{CallId, ComputationFrame};
use crate::error::Result;
use crate::id::Id;

/// One cell of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A ref (history id) of a variable column.
    Ref(Id),
    /// A call of a function column.
    Call(CallId),
    /// A value, decoded without the program's types.
    Value(ciborium::Value),
}

/// A table: named columns, rows of optional cells (`None` where a trace does not pass).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<Cell>>>,
    /// The frame the table was made from (for typed columns).
    frame: Option<ComputationFrame>,
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

type Row = BTreeMap<String, Cell>;

impl ComputationFrame {
    /// The full upstream history of ref `hid` of variable `var`, as one row.
    fn history(&self, var: &str, hid: Id, row: &mut Row, seen: &mut BTreeSet<Id>) {
        row.entry(var.to_string()).or_insert(Cell::Ref(hid));
        if !seen.insert(hid) {
            return;
        }
        let Some((name, id)) = self.creator_in_frame(&hid) else {
            return;
        };
        let node = &self.funcs[name];
        let call = &self.calls[id];
        row.entry(name.clone()).or_insert(Cell::Call(*id));
        for input in &call.record.inputs {
            if let Some(v) = node.inputs.get(&input.name) {
                self.history(v, input.hid, row, seen);
            }
        }
        for out in &call.record.outputs {
            if let Some(v) = node.outputs.get(&out.name) {
                row.entry(v.clone()).or_insert(Cell::Ref(out.hid));
            }
        }
    }

    /// The table of the frame: rows of refs and calls (see [`Table::values`] for values).
    /// `inner` keeps only traces that pass through every variable with sink elements.
    pub fn df(&self, inner: bool) -> Result<Table> {
        let order = self.topo_order();
        let sinks: Vec<&String> = order
            .iter()
            .filter(|n| self.vars.contains_key(*n) && !self.sink_elements(n).is_empty())
            .collect();
        let mut joined: Option<Vec<Row>> = None;
        for var in sinks {
            let rows: Vec<Row> = self.vars[var]
                .iter()
                .map(|hid| {
                    let mut row = Row::new();
                    self.history(var, *hid, &mut row, &mut BTreeSet::new());
                    row
                })
                .collect();
            joined = Some(match joined {
                None => rows,
                Some(left) => join(left, rows, inner),
            });
        }
        let rows = joined.unwrap_or_default();
        let present: BTreeSet<&String> = rows.iter().flat_map(|r| r.keys()).collect();
        let columns: Vec<String> = order.into_iter().filter(|c| present.contains(c)).collect();
        let mut out: Vec<Vec<Option<Cell>>> = rows
            .into_iter()
            .map(|mut r| columns.iter().map(|c| r.remove(c)).collect())
            .collect();
        // A deterministic order (by the cells' ids), each key computed once.
        out.sort_by_cached_key(|row| format!("{row:?}"));
        out.dedup();
        Ok(Table {
            columns,
            rows: out,
            frame: Some(self.clone()),
        })
    }
}

/// Joins two row sets on the columns they share (by equal cells); unmatched rows of either
/// side are kept (outer join) unless `inner`. Rows are matched through a hash of their first
/// shared column, then checked on all of them.
fn join(left: Vec<Row>, right: Vec<Row>, inner: bool) -> Vec<Row> {
    let lk: BTreeSet<&String> = left.iter().flat_map(|r| r.keys()).collect();
    let rk: BTreeSet<&String> = right.iter().flat_map(|r| r.keys()).collect();
    let shared: Vec<String> = lk.intersection(&rk).map(|s| s.to_string()).collect();
    let matches = |a: &Row, b: &Row| {
        shared.iter().all(|c| match (a.get(c), b.get(c)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }) && shared
            .iter()
            .any(|c| a.contains_key(c) && b.contains_key(c))
    };
    let key_of = |r: &Row| {
        shared
            .iter()
            .find_map(|c| r.get(c).map(|cell| (c.clone(), format!("{cell:?}"))))
    };
    let mut by_key: std::collections::HashMap<(String, String), Vec<usize>> =
        std::collections::HashMap::new();
    let mut unkeyed = Vec::new();
    for (i, r) in right.iter().enumerate() {
        match key_of(r) {
            Some(k) => by_key.entry(k).or_default().push(i),
            None => unkeyed.push(i),
        }
    }
    let mut out = Vec::new();
    let mut right_used = vec![false; right.len()];
    for l in &left {
        let mut matched = false;
        let candidates: Vec<usize> = match key_of(l) {
            Some(k) => by_key
                .get(&k)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .chain(unkeyed.iter().copied())
                .collect(),
            None => (0..right.len()).collect(),
        };
        for i in candidates {
            let r = &right[i];
            if matches(l, r) {
                let mut row = l.clone();
                for (k, v) in r {
                    row.entry(k.clone()).or_insert_with(|| v.clone());
                }
                out.push(row);
                right_used[i] = true;
                matched = true;
            }
        }
        if !matched && !inner {
            out.push(l.clone());
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
    fn frame(&self) -> &ComputationFrame {
        self.frame
            .as_ref()
            .expect("tables of frames know their frame")
    }

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

    /// Drops the function (call) columns.
    pub fn without_calls(mut self) -> Table {
        let keep: Vec<bool> = self
            .columns
            .iter()
            .map(|c| !self.frame().funcs.contains_key(c))
            .collect();
        self.columns = self
            .columns
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| c.clone())
            .collect();
        for row in &mut self.rows {
            *row = row
                .drain(..)
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect();
        }
        self
    }

    /// The table with every ref replaced by its value (decoded without the program's types).
    pub fn values(mut self) -> Result<Table> {
        let frame = self.frame.clone().expect("frame");
        for row in &mut self.rows {
            for cell in row.iter_mut() {
                if let Some(Cell::Ref(hid)) = cell {
                    let cid = frame.cid(hid).expect("refs of a frame have cids");
                    let v: ciborium::Value = frame.engine().load_value(&cid)?;
                    *cell = Some(Cell::Value(v));
                }
            }
        }
        Ok(self)
    }

    /// The values of variable column `name` as `T` (`None` where the trace does not pass).
    pub fn column<T: crate::value::Value + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Vec<Option<T>>> {
        let i = self.index(name).ok_or_else(|| crate::Error::NotFound {
            what: "column",
            id: name.to_string(),
            store: self.columns.join(", "),
        })?;
        let frame = self.frame();
        self.rows
            .iter()
            .map(|row| match &row[i] {
                Some(Cell::Ref(hid)) => frame
                    .engine()
                    .load_value::<T>(&frame.cid(hid).expect("cid"))
                    .map(Some),
                Some(Cell::Value(v)) => {
                    crate::cbor::from_slice(&crate::cbor::to_canonical(v).map_err(|source| {
                        crate::Error::Encode {
                            op: "table".into(),
                            what: name.into(),
                            source,
                        }
                    })?)
                    .map(Some)
                    .map_err(|source| crate::Error::Decode {
                        cid: String::new(),
                        ty: std::any::type_name::<T>(),
                        source,
                    })
                }
                _ => Ok(None),
            })
            .collect()
    }

    fn cell_text(cell: &Option<Cell>) -> String {
        match cell {
            None => String::new(),
            Some(Cell::Ref(h)) => format!("ref {}", h.short(8)),
            Some(Cell::Call(c)) => format!("call {}", c.1.short(8)),
            Some(Cell::Value(v)) => value_text(v),
        }
    }

    /// The table as CSV (values as compact JSON-like text, empty cells empty).
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
                    .map(|c| quote(&Table::cell_text(c)))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        out
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

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Table::cell_text).collect())
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
