//! The write side of a scope of rules, compiled into a tree of output fields.
//!
//! Why: writing an output field by field ([`Output::set`]) searches every object on the way from
//! the scope's root, for every field; sibling fields search their shared parents again and
//! again. With the tree, the engine keeps each value in the slot of its field while the scope
//! runs and builds every object once at the end, its members already in key order
//! ([`Output::Object`]).
//!
//! The result is the one field-by-field writing gives: objects on the way exist only when a
//! value below them was written, a later write of the same field wins, and a value written as a
//! whole (a coding constant) replaces what is there. A scope where building at the end could
//! differ keeps writing field by field: a rule reads the output being built (a condition on the
//! target side, the EUROHIS-QOL-8 score, a `single` rule forward), a pointer is the scope's
//! root, or one written pointer is a prefix of another.

use super::plan::{Compute, Ptr, Rule, Shape, Source};
use crate::json_tree::{Key, Members, Name, Output};

/// The output fields of one scope in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTree {
    /// Node 0 is the scope's target; every other node is a key below its parent.
    nodes: Vec<Node>,
    /// The leaf each rule of the scope writes, by rule position.
    slots: Vec<Option<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    key: Name,
    /// Children in key order (the order of `BTreeMap`).
    children: Vec<usize>,
    leaf: bool,
}

/// Values of a scope's leaves while it runs, indexed by node.
pub type Pending<'a> = Vec<Option<Output<'a>>>;

impl WriteTree {
    /// The tree of what `rules` write in a direction, or `None` when the scope must write field
    /// by field (see the module documentation).
    #[must_use]
    pub fn compile(rules: &[Rule], forward: bool) -> Option<Self> {
        let mut tree = Self {
            nodes: vec![Node {
                key: Name::new(String::new()),
                children: Vec::new(),
                leaf: false,
            }],
            slots: Vec::with_capacity(rules.len()),
        };
        for rule in rules {
            if rule
                .when
                .as_ref()
                .is_some_and(|condition| condition.apotti_side != forward)
            {
                return None;
            }
            let source = if forward {
                &rule.forward
            } else {
                &rule.reverse
            };
            if matches!(source, Source::Compute(Compute::EurohisScore))
                || (forward && matches!(rule.shape, Shape::Single(_)))
            {
                return None;
            }
            let write = if forward {
                rule.kanta.as_ref()
            } else {
                rule.apotti.as_ref()
            };
            let slot = match write {
                Some(ptr) => Some(tree.leaf(ptr)?),
                None => None,
            };
            tree.slots.push(slot);
        }
        if tree.slots.iter().all(Option::is_none) {
            return None;
        }
        let keys: Vec<String> = tree.nodes.iter().map(|n| n.key.segment().clone()).collect();
        for node in &mut tree.nodes {
            node.children.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        Some(tree)
    }

    /// The leaf node of `ptr`; `None` when it conflicts with another written pointer. Pointers
    /// come in rule order: a field may be written below a value written as a whole before it
    /// (`validity = {}`, then `validity/start`), which is merged into that value; a value
    /// written as a whole after fields below it would replace them, and is a conflict.
    fn leaf(&mut self, ptr: &Ptr) -> Option<usize> {
        if ptr.segments.is_empty() {
            return None;
        }
        let mut node = 0;
        for segment in &ptr.segments {
            let found = self.nodes[node]
                .children
                .iter()
                .copied()
                .find(|&child| self.nodes[child].key.as_str() == segment);
            node = match found {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        key: Name::new(segment.clone()),
                        children: Vec::new(),
                        leaf: false,
                    });
                    self.nodes[node].children.push(child);
                    child
                }
            };
        }
        if !self.nodes[node].children.is_empty() {
            return None;
        }
        self.nodes[node].leaf = true;
        Some(node)
    }

    /// The slot the rule at `index` of the scope writes, if it writes in this direction.
    #[must_use]
    pub fn slot(&self, index: usize) -> Option<usize> {
        self.slots.get(index).copied().flatten()
    }

    /// Empty slots for one run of the scope.
    #[must_use]
    pub fn pending<'a>(&self) -> Pending<'a> {
        let mut pending = Vec::with_capacity(self.nodes.len());
        pending.resize_with(self.nodes.len(), || None);
        pending
    }

    /// Writes the values of `pending` into `target`, as [`Output::set`] would have one by one.
    pub fn flush<'a>(&'a self, pending: &mut Pending<'a>, target: &mut Output<'a>) {
        if target.is_empty_object() {
            if let Some(built) = self.build(0, pending) {
                *target = Output::Object(built);
            }
        } else {
            self.merge(0, pending, target);
        }
    }

    /// The value of `node`: the value written as a whole with the fields written below it
    /// merged in, or the object of those fields; `None` when nothing was written.
    fn value<'a>(&'a self, node: usize, pending: &mut Pending<'a>) -> Option<Output<'a>> {
        let whole = if self.nodes[node].leaf {
            pending.get_mut(node).and_then(Option::take)
        } else {
            None
        };
        if self.nodes[node].children.is_empty() {
            return whole;
        }
        match whole {
            Some(mut value) => {
                self.merge(node, pending, &mut value);
                Some(value)
            }
            None => self.build(node, pending).map(Output::Object),
        }
    }

    /// The members written below `node` (children are in key order, so they are too), or
    /// `None` when none was written.
    fn build<'a>(&'a self, node: usize, pending: &mut Pending<'a>) -> Option<Members<'a>> {
        let children = &self.nodes[node].children;
        let mut members = Vec::with_capacity(children.len());
        for &child in children {
            if let Some(value) = self.value(child, pending) {
                members.push((Key::plan(&self.nodes[child].key), value));
            }
        }
        (!members.is_empty()).then_some(members)
    }

    /// Writes the values below `node` into a `target` that already holds something.
    fn merge<'a>(&'a self, node: usize, pending: &mut Pending<'a>, target: &mut Output<'a>) {
        for &child in &self.nodes[node].children {
            let key = &self.nodes[child].key;
            let whole = self.nodes[child].leaf && pending.get(child).is_some_and(Option::is_some);
            if whole {
                if let Some(value) = self.value(child, pending) {
                    target.insert(Key::plan(key), value);
                }
            } else if target
                .get(std::slice::from_ref(key.segment()))
                .is_some_and(|found| found.is_object())
            {
                let existing = target.member_or_null(Key::plan(key));
                self.merge(child, pending, existing);
            } else if let Some(built) = self.build(child, pending) {
                target.insert(Key::plan(key), Output::Object(built));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ptrs(texts: &[&str]) -> Vec<Ptr> {
        texts
            .iter()
            .map(|t| Ptr::parse(t).expect("pointer"))
            .collect()
    }

    fn tree(texts: &[&str]) -> Option<(WriteTree, Vec<usize>)> {
        let mut tree = WriteTree {
            nodes: vec![Node {
                key: Name::new(String::new()),
                children: Vec::new(),
                leaf: false,
            }],
            slots: Vec::new(),
        };
        let mut leaves = Vec::new();
        for ptr in ptrs(texts) {
            leaves.push(tree.leaf(&ptr)?);
        }
        let keys: Vec<String> = tree.nodes.iter().map(|n| n.key.segment().clone()).collect();
        for node in &mut tree.nodes {
            node.children.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        }
        Some((tree, leaves))
    }

    #[test]
    fn builds_what_setting_field_by_field_builds() {
        let texts = [
            "/h/b", "/h/a/x", "/z", "/h/a/y", "/h/b", "/v", "/v/s", "/w", "/w/t", "/q/r",
        ];
        let values = [
            json!(1),
            json!({"c": 1}),
            json!("z"),
            json!(null),
            json!(2),
            json!({"e": 1}),
            json!("s"),
            json!(4),
            json!("t"),
        ];
        let (tree, leaves) = tree(&texts).expect("no conflicts");
        for start in [
            json!({}),
            json!({"h": {"a": 5, "k": 1}, "z": {"old": 1}}),
            json!(3),
        ] {
            let mut expected = start.clone();
            let mut pending = tree.pending();
            for ((ptr, leaf), value) in ptrs(&texts).iter().zip(&leaves).zip(&values) {
                ptr.set(&mut expected, value.clone());
                pending[*leaf] = Some(Output::Borrowed(value));
            }
            let mut built = Output::Owned(start.clone());
            tree.flush(&mut pending, &mut built);
            assert_eq!(built.to_value(), expected, "from {start}");
            assert_eq!(
                built.to_text(),
                serde_json::to_string(&expected).expect("json")
            );
        }
    }

    #[test]
    fn prefixes_and_the_root_conflict() {
        assert!(tree(&["/a/b", "/a"]).is_none());
        assert!(tree(&["/a/b", "/a/b/c"]).is_some());
        assert!(tree(&[""]).is_none());
        assert!(tree(&["/a/b", "/a/c", "/a/b"]).is_some());
    }
}
