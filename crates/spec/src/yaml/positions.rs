//! Where each node of a YAML document sits in its file, by path (`tasks[2].depends_on[0]`).
//!
//! Deserialisation (yaml_serde) gives typed values without positions. Only when a file has a
//! problem do we walk it once more with an event parser that reports marks, and look the
//! offending path up here. Valid files never pay for this.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::diagnostic::Position;

/// Where one node sits: its key (for mapping values) and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePosition {
    pub key: Option<Position>,
    pub value: Position,
    /// Whether the value is a single- or double-quoted scalar (its text starts one column later).
    pub quoted: bool,
    /// Whether the value is a block scalar (`|` or `>`): its text starts on the next line.
    pub block: bool,
}

impl NodePosition {
    /// The key if there is one, else the value: where "this entry" is.
    pub fn entry(&self) -> Position {
        self.key.unwrap_or(self.value)
    }
}

/// Positions of every node of the first document, by path.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: HashMap<String, NodePosition>,
}

enum Frame {
    Map {
        path: String,
        expecting_key: bool,
        key: Option<(String, Position)>,
    },
    Seq {
        path: String,
        next_index: usize,
    },
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Positions {
    /// Index `source`. Parse errors end the walk early; what was seen so far stays indexed.
    pub fn index(source: &str) -> Self {
        let mut nodes = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        for item in Parser::new_from_str(source) {
            let Ok((event, span)) = item else { break };
            let pos = Position::new(span.start.line(), span.start.col() + 1);
            let (is_node, opens, style) = match &event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                    continue;
                }
                Event::Scalar(_, style, _, _) => (true, false, Some(*style)),
                Event::Alias(_) => (true, false, None),
                Event::MappingStart(..) | Event::SequenceStart(..) => (true, true, None),
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    continue;
                }
                _ => continue,
            };
            debug_assert!(is_node);
            // Decide this node's path from its parent, and whether it is a mapping key.
            let path = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Seq { path, next_index }) => {
                    let p = format!("{path}[{next_index}]");
                    *next_index += 1;
                    Some(p)
                }
                Some(Frame::Map {
                    path,
                    expecting_key,
                    key,
                }) => {
                    if *expecting_key {
                        *expecting_key = false;
                        let text = match &event {
                            Event::Scalar(text, ..) => text.to_string(),
                            _ => "?".to_owned(),
                        };
                        *key = Some((text, pos));
                        None
                    } else {
                        *expecting_key = true;
                        let (k, key_pos) = key.take().unwrap_or_else(|| ("?".to_owned(), pos));
                        let p = child_path(path, &k);
                        nodes.insert(
                            p.clone(),
                            NodePosition {
                                key: Some(key_pos),
                                value: pos,
                                quoted: false,
                                block: false,
                            },
                        );
                        Some(p)
                    }
                }
            };
            let quoted = matches!(
                style,
                Some(ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)
            );
            let block = matches!(style, Some(ScalarStyle::Literal | ScalarStyle::Folded));
            match &path {
                Some(p) => {
                    let entry = nodes.entry(p.clone()).or_insert(NodePosition {
                        key: None,
                        value: pos,
                        quoted,
                        block,
                    });
                    entry.quoted = quoted;
                    entry.block = block;
                }
                None if !opens => {}
                // A complex (non-scalar) key: index its contents under a placeholder.
                None => {}
            }
            if opens {
                let path = path.unwrap_or_else(|| "?".to_owned());
                stack.push(match event {
                    Event::MappingStart(..) => Frame::Map {
                        path,
                        expecting_key: true,
                        key: None,
                    },
                    _ => Frame::Seq {
                        path,
                        next_index: 0,
                    },
                });
            }
        }
        Self { nodes }
    }

    pub fn get(&self, path: &str) -> Option<&NodePosition> {
        self.nodes.get(path)
    }

    /// The position of `path`, or of its nearest indexed ancestor, or the file start.
    pub fn locate(&self, path: &str) -> NodePosition {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return *n;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self.nodes.get("").copied().unwrap_or(NodePosition {
                        key: None,
                        value: Position::START,
                        quoted: false,
                        block: false,
                    });
                }
            }
        }
    }

    /// Where the value at `path` starts, plus `offset` characters into its text.
    pub fn value_text_at(&self, path: &str, offset: usize) -> Position {
        let n = self.locate(path);
        if n.block {
            // The text of a block scalar starts on the next line; we cannot know the indent here
            // without the source, so point at the indicator.
            return n.value;
        }
        Position::new(
            n.value.line,
            n.value.column + usize::from(n.quoted) + offset,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
id: lead_scoring
schedule: \"0 2 * * *\"
defaults: { retries: 3 }
tasks:
  - id: export
    export: { object: leads }
  - id: score
    depends_on: [export, missing]
";

    #[test]
    fn indexes_keys_and_values_by_path() {
        let p = Positions::index(SRC);
        let id = p.get("id").copied();
        assert_eq!(id.and_then(|n| n.key), Some(Position::new(1, 1)));
        assert_eq!(id.map(|n| n.value), Some(Position::new(1, 5)));
        assert_eq!(
            p.get("defaults.retries").map(|n| n.value),
            Some(Position::new(3, 22))
        );
        assert_eq!(
            p.get("tasks[1]").map(|n| n.value),
            Some(Position::new(7, 5))
        );
        assert_eq!(
            p.get("tasks[1].depends_on[1]").map(|n| n.value),
            Some(Position::new(8, 26))
        );
        assert_eq!(
            p.get("tasks[0].export.object").and_then(|n| n.key),
            Some(Position::new(6, 15))
        );
    }

    #[test]
    fn quoted_values_shift_text_by_one_column() {
        let p = Positions::index(SRC);
        assert_eq!(p.value_text_at("schedule", 2), Position::new(2, 14));
    }

    #[test]
    fn locate_falls_back_to_the_nearest_ancestor() {
        let p = Positions::index(SRC);
        assert_eq!(p.locate("tasks[1].retries").value, Position::new(7, 5));
    }
}
