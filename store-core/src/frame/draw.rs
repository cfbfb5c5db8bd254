//! Drawing a frame: Graphviz DOT text, and SVG laid out in-process (the pure-Rust `layout-rs`
//! crate), so no system graphviz is needed.

use std::collections::BTreeSet;
use std::path::Path;

use super::ComputationFrame;
use crate::error::{Error, Result};
use crate::format::id::Id;

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
                            .filter(|s| super::edge_label(&r.op, &s.name) == label)
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
            // The one output of an op needs no label: its variable is named after it.
            let single_output = f.outputs.len() == 1;
            for ((label, var), output) in edges {
                let shown = if output && single_output {
                    ""
                } else {
                    label.as_str()
                };
                let text = match (verbose, shown.is_empty()) {
                    (true, true) => format!("{}", count(label, output)),
                    (true, false) => format!("{shown} ({})", count(label, output)),
                    (false, _) => shown.to_string(),
                };
                let (from, to) = if output { (name, var) } else { (var, name) };
                // Many element refs into one list: drawn bold with a crow's-foot tail.
                let style = if label == super::ELEMENTS_EDGE {
                    ", style=bold, arrowtail=crow, dir=both"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  {} -> {} [label={}{style}];\n",
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
    /// The frame as JSON: its variables (refs, sources, sinks) and its ops (calls, and the
    /// variable each input and output edge leads to), in topological order.
    ///
    /// ```
    /// # use mandala::{ComputationFrame, Engine};
    /// let cf = ComputationFrame::from_op(&Engine::in_memory(), "inc").unwrap();
    /// assert_eq!(cf.to_json().to_string(), r#"{"ops":[],"variables":[]}"#);
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let order = self.topo_order();
        let vars: Vec<serde_json::Value> = order
            .iter()
            .filter_map(|n| {
                self.vars.get(n).map(|refs| {
                    serde_json::json!({
                        "name": n,
                        "refs": refs.len(),
                        "sources": self.source_elements(n).len(),
                        "sinks": self.sink_elements(n).len(),
                    })
                })
            })
            .collect();
        let ops: Vec<serde_json::Value> = order
            .iter()
            .filter_map(|n| {
                self.funcs.get(n).map(|f| {
                    serde_json::json!({
                        "name": n,
                        "op": f.op,
                        "calls": f.calls.len(),
                        "inputs": f.inputs,
                        "outputs": f.outputs,
                    })
                })
            })
            .collect();
        serde_json::json!({"variables": vars, "ops": ops})
    }

    /// The frame drawn as SVG text (see [`ComputationFrame::to_dot`] for `verbose`), laid out
    /// without graphviz.
    pub fn to_svg(&self, verbose: bool) -> Result<String> {
        use layout::backends::svg::SVGWriter;
        use layout::gv::{DotParser, GraphBuilder};
        // The layout crate draws `\n` literally: lines are joined for it instead.
        let dot = self.to_dot(verbose).replace("\\n", " | ");
        let mut parser = DotParser::new(&dot);
        let graph = parser.process().map_err(|e| {
            Error::Frame(crate::error::FrameError::Invalid {
                place: "drawing the frame as SVG".into(),
                reason: format!("the layout crate could not parse its DOT text: {e}"),
            })
        })?;
        let mut builder = GraphBuilder::new();
        builder.visit_graph(&graph);
        let mut visual = builder.get();
        let mut svg = SVGWriter::new();
        visual.do_it(false, false, false, &mut svg);
        Ok(svg.finalize())
    }

    /// Writes the frame as an SVG file at `path`.
    pub fn draw_svg(&self, path: &Path, verbose: bool) -> Result<()> {
        let svg = self.to_svg(verbose)?;
        std::fs::write(path, svg).map_err(|e| Error::io("write", path, e))
    }
}
