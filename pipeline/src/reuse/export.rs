//! Writes the seller–seller graph for graph tools (Gephi, Cytoscape, networkx): CSV edge list,
//! GraphML, or JSON nodes and edges.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::{Catalog, Link};

/// Graph file formats, chosen by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `source,target,weight,evidence` rows.
    Csv,
    /// GraphML with `objects` on nodes and `weight`, `evidence` on edges.
    GraphMl,
    /// `{"nodes": [...], "edges": [...]}`.
    Json,
}

impl Format {
    /// The format for a path's extension (`.csv`, `.graphml`, `.json`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "graphml" => Some(Format::GraphMl),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Number of current objects per seller, for the nodes of the links.
fn node_sizes(catalog: &Catalog, links: &[Link]) -> BTreeMap<String, usize> {
    let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
    for l in links {
        nodes.entry(l.source.clone()).or_default();
        nodes.entry(l.target.clone()).or_default();
    }
    for (seller, n) in nodes.iter_mut() {
        *n = catalog.by_seller(seller).len();
    }
    nodes
}

fn evidence_text(l: &Link) -> String {
    l.evidence.iter().map(|(a, b)| format!("{a} = {b}")).collect::<Vec<_>>().join("; ")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes the links in `format`.
pub fn write_links(out: &mut impl Write, format: Format, catalog: &Catalog, links: &[Link]) -> std::io::Result<()> {
    match format {
        Format::Csv => {
            writeln!(out, "source,target,weight,evidence")?;
            for l in links {
                writeln!(out, "{},{},{},{}", csv_field(&l.source), csv_field(&l.target), l.weight, csv_field(&evidence_text(l)))?;
            }
        }
        Format::GraphMl => {
            writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
            writeln!(out, r#"<graphml xmlns="http://graphml.graphdrawing.org/xmlns">"#)?;
            writeln!(out, r#"  <key id="objects" for="node" attr.name="objects" attr.type="int"/>"#)?;
            writeln!(out, r#"  <key id="weight" for="edge" attr.name="weight" attr.type="double"/>"#)?;
            writeln!(out, r#"  <key id="evidence" for="edge" attr.name="evidence" attr.type="string"/>"#)?;
            writeln!(out, r#"  <graph id="sellers" edgedefault="undirected">"#)?;
            for (seller, n) in node_sizes(catalog, links) {
                writeln!(out, r#"    <node id="{}"><data key="objects">{n}</data></node>"#, xml_escape(&seller))?;
            }
            for l in links {
                writeln!(
                    out,
                    r#"    <edge source="{}" target="{}"><data key="weight">{}</data><data key="evidence">{}</data></edge>"#,
                    xml_escape(&l.source),
                    xml_escape(&l.target),
                    l.weight,
                    xml_escape(&evidence_text(l))
                )?;
            }
            writeln!(out, "  </graph>\n</graphml>")?;
        }
        Format::Json => {
            let nodes: Vec<serde_json::Value> =
                node_sizes(catalog, links).into_iter().map(|(id, n)| serde_json::json!({"id": id, "objects": n})).collect();
            let edges: Vec<serde_json::Value> = links
                .iter()
                .map(|l| {
                    let evidence: Vec<serde_json::Value> = l.evidence.iter().map(|(a, b)| serde_json::json!({"source_uri": a, "target_uri": b})).collect();
                    serde_json::json!({"source": l.source, "target": l.target, "weight": l.weight, "evidence": evidence})
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &serde_json::json!({"nodes": nodes, "edges": edges}))?;
            writeln!(out)?;
        }
    }
    Ok(())
}
