//! Positions of YAML nodes, so that errors found after parsing (a dangling reference, a duplicate
//! name) can still name `file:line:column`.
//!
//! serde_yaml reports positions only for errors it finds itself; this index is built from
//! yaml-rust2's marked events and maps each node's path (`spec.targets[0].platform`) to where
//! its value starts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos { line: m.line(), column: m.col() + 1 }
    }
}

/// The positions of one YAML document of a file.
#[derive(Debug, Default, Clone)]
pub struct DocIndex {
    /// Where the document's content starts.
    pub start: Pos,
    /// Whether the document has any content (a file may end with an empty `---`).
    pub is_empty: bool,
    /// The top-level `kind` scalar, if it has one.
    pub kind: Option<String>,
    /// Path → position of the value at that path.
    values: HashMap<String, Pos>,
    /// Path → position of the key that introduces the value.
    keys: HashMap<String, Pos>,
}

impl DocIndex {
    /// Where the value at `path` starts, falling back to its closest indexed ancestor, then to
    /// the document start.
    pub fn value(&self, path: &str) -> Pos {
        self.lookup(&self.values, path)
    }

    /// Where the key introducing `path` starts (for "unknown field" or "duplicate" errors).
    pub fn key(&self, path: &str) -> Pos {
        self.keys.get(path).copied().unwrap_or_else(|| self.value(path))
    }

    fn lookup(&self, map: &HashMap<String, Pos>, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = map.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.start,
            }
        }
    }
}

enum Frame {
    Map { key: Option<String>, first: bool },
    Seq { next: usize },
}

#[derive(Default)]
struct Indexer {
    docs: Vec<DocIndex>,
    stack: Vec<(String, Frame)>,
    /// Index every node (for diagnostics), or only what loading needs: each document's start,
    /// emptiness and `kind`.
    full: bool,
}

impl Indexer {
    fn doc(&mut self) -> Option<&mut DocIndex> {
        self.docs.last_mut()
    }

    /// Called when a node (scalar, mapping or sequence) begins; returns the node's path, or
    /// `None` when the node is a mapping key.
    fn node_path(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        if !self.full && self.stack.len() > 1 {
            // Below the top level a light index only keeps the key/value rhythm of mappings.
            if let Some((_, Frame::Map { key, .. })) = self.stack.last_mut() {
                if key.take().is_none() {
                    *key = Some(String::new());
                    return None;
                }
            }
            return Some(String::new());
        }
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some((parent, Frame::Map { key, first })) => match key.take() {
                None => {
                    // This node is a key.
                    let name = scalar.unwrap_or("?").to_string();
                    let path = join(parent, &name);
                    *key = Some(name);
                    if let Some(doc) = self.docs.last_mut() {
                        doc.keys.insert(path, mark.into());
                        // yaml-rust2 marks a block mapping after its first key; report it where
                        // that key starts instead (flow mappings are marked at their `{`).
                        if std::mem::take(first) {
                            let key_pos = Pos::from(mark);
                            let entry = doc.values.entry(parent.clone()).or_insert(key_pos);
                            if key_pos < *entry {
                                *entry = key_pos;
                                if parent.is_empty() {
                                    doc.start = key_pos;
                                }
                            }
                        }
                    }
                    return None;
                }
                Some(name) => join(parent, &name),
            },
            Some((parent, Frame::Seq { next })) => {
                let path = format!("{parent}[{next}]");
                *next += 1;
                path
            }
        };
        if let Some(doc) = self.doc() {
            if path.is_empty() {
                doc.start = mark.into();
                doc.is_empty = scalar == Some("");
            }
            if path == "kind" {
                doc.kind = scalar.map(str::to_string);
            }
            doc.values.insert(path.clone(), mark.into());
        }
        Some(path)
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => {
                self.docs.push(DocIndex { start: mark.into(), ..DocIndex::default() });
                self.stack.clear();
            }
            Event::Scalar(value, ..) => {
                self.node_path(mark, Some(&value));
            }
            Event::Alias(_) => {
                self.node_path(mark, Some(""));
            }
            Event::MappingStart(..) => {
                let path = self.node_path(mark, None).unwrap_or_default();
                self.stack.push((path, Frame::Map { key: None, first: true }));
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(mark, None).unwrap_or_default();
                self.stack.push((path, Frame::Seq { next: 0 }));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// A syntax error found while indexing.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it found.
    pub message: String,
}

/// How deeply mappings and sequences may nest in a fleet document. Fleet kinds are a few
/// levels deep; the bound keeps a hostile file (`[[[[…`, `- - - …` thousands deep) from
/// exhausting the stack of any parser that reads it after this one (serde_yaml's own limit is
/// 128).
pub const MAX_DEPTH: usize = 64;

/// How many documents one fleet file may hold. A product per document, a large fleet splits
/// its products over files; the bound keeps a file of nothing but `---` from costing memory
/// out of proportion to its size.
pub const MAX_DOCUMENTS: usize = 20_000;

/// Indexes the documents of `text`: with `full`, the position of every node; without, only
/// each document's start, emptiness and `kind` (cheap enough for every load).
///
/// Events are pulled one at a time (yaml-rust2's `load` recurses once per nesting level), so
/// that nesting beyond [`MAX_DEPTH`] and more than [`MAX_DOCUMENTS`] documents are refused as
/// syntax errors before anything deeper is built.
pub fn index(text: &str, full: bool) -> Result<Vec<DocIndex>, SyntaxError> {
    let mut indexer = Indexer { full, ..Indexer::default() };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| SyntaxError { pos: (*e.marker()).into(), message: e.info().to_string() })?;
        match &event {
            Event::StreamEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SyntaxError {
                        pos: mark.into(),
                        message: format!(
                            "mappings and sequences nest deeper than {MAX_DEPTH} levels here; fleet documents are only a few levels deep"
                        ),
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::DocumentStart if indexer.docs.len() >= MAX_DOCUMENTS => {
                return Err(SyntaxError {
                    pos: mark.into(),
                    message: format!("the file holds more than {MAX_DOCUMENTS} documents; split it into several files"),
                });
            }
            _ => {}
        }
        indexer.on_event(event, mark);
    }
    Ok(indexer.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_line_and_column_across_documents() {
        let text = "kind: A\nspec:\n  x: 1\n---\nkind: B\nspec:\n  list:\n    - name: a\n    - name: b\n";
        let docs = index(text, true).unwrap_or_default();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].kind.as_deref(), Some("A"));
        assert_eq!(docs[0].value("spec.x"), Pos { line: 3, column: 6 });
        assert_eq!(docs[0].key("spec.x"), Pos { line: 3, column: 3 });
        assert_eq!(docs[1].kind.as_deref(), Some("B"));
        assert_eq!(docs[1].value("spec.list[1].name"), Pos { line: 9, column: 13 });
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(docs[1].value("spec.list[1].missing"), Pos { line: 9, column: 7 });
    }
}
