//! The read side of a scope of rules, compiled into a tree of input fields.
//!
//! Why: reading each rule's input field with [`Ptr::get`] searches the scope's objects (a
//! `BTreeMap` of `String` keys) from the top, once per rule; thirty rules reading
//! `/DECISION/...` search the record for `DECISION` thirty times and the decision object once
//! each. With the tree, a scope finds all its fields before its rules run, walking each object
//! once alongside the sorted keys it needs (both are in key order), and each rule takes its
//! value from its slot.
//!
//! The value found is the one [`Ptr::get`] finds: an object's field by key, an array's item by
//! a decimal index, nothing below any other value. Only field rules that read their value from
//! the input (their other side, another field, or the display of a code) use the tree; a scope
//! with few of them keeps looking its fields up one by one.

use std::cmp::Ordering;

use serde_json::Value;

use super::plan::{Ptr, Rule, Shape, Source};

/// Below this many input fields a scope looks each one up: the tree's slots cost an allocation.
const MIN_READS: usize = 6;

/// The input fields the field rules of one scope read in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTree {
    /// Node 0 is the scope's input; every other node is a key below its parent.
    nodes: Vec<Node>,
    /// The node each rule of the scope reads, by rule position.
    slots: Vec<Option<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    key: String,
    /// Children in key order (the order in which a `BTreeMap` iterates).
    children: Vec<usize>,
}

/// Values of a scope's input fields for one run, indexed by node.
pub type Found<'v> = Vec<Option<&'v Value>>;

impl ReadTree {
    /// The tree of what the field rules of `rules` read in a direction, or `None` when they
    /// read too few fields for it to pay.
    #[must_use]
    pub fn compile(rules: &[Rule], forward: bool) -> Option<Self> {
        let mut tree = Self {
            nodes: vec![Node {
                key: String::new(),
                children: Vec::new(),
            }],
            slots: Vec::with_capacity(rules.len()),
        };
        for rule in rules {
            let slot = read_pointer(rule, forward).map(|ptr| tree.node(ptr));
            tree.slots.push(slot);
        }
        if tree.slots.iter().flatten().count() < MIN_READS {
            return None;
        }
        let keys: Vec<String> = tree.nodes.iter().map(|n| n.key.clone()).collect();
        for node in &mut tree.nodes {
            node.children.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        Some(tree)
    }

    /// The node of `ptr`, added with the nodes on its way when new.
    fn node(&mut self, ptr: &Ptr) -> usize {
        let mut node = 0;
        for segment in &ptr.segments {
            let found = self.nodes[node]
                .children
                .iter()
                .copied()
                .find(|&child| self.nodes[child].key == *segment);
            node = match found {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        key: segment.clone(),
                        children: Vec::new(),
                    });
                    self.nodes[node].children.push(child);
                    child
                }
            };
        }
        node
    }

    /// The node the rule at `index` of the scope reads, if it reads through the tree.
    #[must_use]
    pub fn slot(&self, index: usize) -> Option<usize> {
        self.slots.get(index).copied().flatten()
    }

    /// Finds every field of the tree in `input`.
    #[must_use]
    pub fn find<'v>(&self, input: &'v Value) -> Found<'v> {
        let mut found = vec![None; self.nodes.len()];
        found[0] = Some(input);
        self.find_below(0, input, &mut found);
        found
    }

    fn find_below<'v>(&self, node: usize, value: &'v Value, found: &mut Found<'v>) {
        let children = &self.nodes[node].children;
        if children.is_empty() {
            return;
        }
        match value {
            Value::Object(map) if children.len() > 1 => {
                // Both in key order: one pass over the object.
                let mut wanted = children.iter().copied().peekable();
                for (key, field) in map {
                    while let Some(&child) = wanted.peek() {
                        match self.nodes[child].key.as_str().cmp(key.as_str()) {
                            Ordering::Less => {
                                wanted.next();
                            }
                            Ordering::Equal => {
                                wanted.next();
                                found[child] = Some(field);
                                self.find_below(child, field, found);
                                break;
                            }
                            Ordering::Greater => break,
                        }
                    }
                    if wanted.peek().is_none() {
                        break;
                    }
                }
            }
            Value::Object(map) => {
                for &child in children {
                    if let Some(field) = map.get(&self.nodes[child].key) {
                        found[child] = Some(field);
                        self.find_below(child, field, found);
                    }
                }
            }
            Value::Array(items) => {
                for &child in children {
                    if let Some(item) = self.nodes[child]
                        .key
                        .parse::<usize>()
                        .ok()
                        .and_then(|index| items.get(index))
                    {
                        found[child] = Some(item);
                        self.find_below(child, item, found);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The input pointer a field rule takes its value from in a direction, if any.
fn read_pointer(rule: &Rule, forward: bool) -> Option<&Ptr> {
    if !matches!(rule.shape, Shape::Field) {
        return None;
    }
    let (peer, source) = if forward {
        (rule.apotti.as_ref(), &rule.forward)
    } else {
        (rule.kanta.as_ref(), &rule.reverse)
    };
    match source {
        Source::Peer(_) => peer,
        Source::Other(ptr, _) | Source::DisplayOf(ptr, _) => Some(ptr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(texts: &[&str]) -> (ReadTree, Vec<Ptr>) {
        let ptrs: Vec<Ptr> = texts
            .iter()
            .map(|t| Ptr::parse(t).expect("pointer"))
            .collect();
        let mut tree = ReadTree {
            nodes: vec![Node {
                key: String::new(),
                children: Vec::new(),
            }],
            slots: Vec::new(),
        };
        for ptr in &ptrs {
            let node = tree.node(ptr);
            tree.slots.push(Some(node));
        }
        let keys: Vec<String> = tree.nodes.iter().map(|n| n.key.clone()).collect();
        for node in &mut tree.nodes {
            node.children.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        (tree, ptrs)
    }

    #[test]
    fn finds_what_looking_up_field_by_field_finds() {
        let texts = [
            "/D/B", "/D/A", "/D/Z", "/D/A", "/P/N", "/P", "/S", "/L/1", "/L/1/x", "/L/9", "/L/x",
            "/a~1b", "/D/B/C", "", "/E/F/G",
        ];
        let (tree, ptrs) = tree(&texts);
        for input in [
            json!({"D": {"A": 1, "B": {"C": 2}, "C": 3, "Z": null}, "P": {"N": "n", "M": 1},
                   "S": "s", "L": [0, {"x": 1}], "a/b": true, "E": {"F": 5}, "AA": 1}),
            json!({"D": {"Z": 1}, "L": {"1": 2, "x": 3}, "P": [1, 2], "E": {}}),
            json!({"D": "text", "S": [1], "Q": 1}),
            json!({}),
            json!([1, 2]),
            json!("x"),
        ] {
            let found = tree.find(&input);
            for (index, ptr) in ptrs.iter().enumerate() {
                let node = tree.slot(index).expect("slot");
                assert_eq!(found[node], ptr.get(&input), "{} in {input}", ptr.text);
            }
        }
    }

    /// The one-pass walk needs objects to iterate in key order (no `preserve_order`).
    #[test]
    fn objects_iterate_in_key_order() {
        let object = json!({"b": 1, "a": 2, "B": 3, "ab": 4});
        let keys: Vec<&String> = object.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["B", "a", "ab", "b"]);
    }
}
