//! The documents the mapping engine builds: a JSON tree whose leaves borrow from the input
//! record and the compiled plan wherever they can ([`Output`]).
//!
//! Why: built as `serde_json::Value`, every output field cost an owned key, every copied string
//! and constant a clone, every object a B-tree node, and all of it was freed again right after
//! the document was validated and written out. Here a key is the plan's own string, a copied
//! value or a constant is a reference, and an object is a vector of members in key order. The
//! plan's names and constants carry their JSON text, written when the mappings load ([`Name`],
//! [`Fixed`]), so writing a document copies most of it rather than escaping it string by string. The
//! target profile validates it in place ([`OutputJson`] makes it a `jsonschema` representation)
//! and [`Output::write`] writes its text.
//!
//! An `Output` stands for exactly one `serde_json::Value` ([`Output::to_value`]): members in the
//! same (byte) order, each key once, and the same text, byte for byte.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::{Map, Number, Value};

use crate::json_text;

/// Members of a built object: ascending by key, each key once.
pub type Members<'a> = Vec<(Key<'a>, Output<'a>)>;

/// A member name of the plan, with its JSON text (`"name":`) written once when the mappings
/// load: most members of a document are named by the plan, and a document copies the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    name: String,
    text: Box<[u8]>,
}

impl Name {
    /// `name`, with its text.
    #[must_use]
    pub fn new(name: String) -> Self {
        let mut text = Vec::with_capacity(name.len() + 3);
        json_text::write_str(&name, &mut text);
        text.push(b':');
        Self {
            name,
            text: text.into_boxed_slice(),
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name, as a pointer segment.
    #[must_use]
    pub fn segment(&self) -> &String {
        &self.name
    }
}

/// The name of a built object's member, and for a name of the plan its text.
#[derive(Debug, Clone)]
pub struct Key<'a> {
    name: Cow<'a, str>,
    text: Option<&'a [u8]>,
}

impl<'a> Key<'a> {
    /// A name of the plan, written from its text.
    #[must_use]
    pub fn plan(name: &'a Name) -> Self {
        Self {
            name: Cow::Borrowed(&name.name),
            text: Some(&name.text),
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Appends the name's JSON text and the colon after it.
    fn write(&self, out: &mut Vec<u8>) {
        match self.text {
            Some(text) => out.extend_from_slice(text),
            None => {
                json_text::write_str(&self.name, out);
                out.push(b':');
            }
        }
    }
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(name: &'a str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            text: None,
        }
    }
}

impl From<String> for Key<'_> {
    fn from(name: String) -> Self {
        Self {
            name: Cow::Owned(name),
            text: None,
        }
    }
}

/// A value fixed when the mappings load (a rule's constant, a concept map's coding), with its
/// JSON text written once then: a document that holds it copies the text rather than writing
/// the value again, string by string.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    value: Value,
    text: Box<[u8]>,
}

impl Fixed {
    /// `value`, with its text.
    #[must_use]
    pub fn new(value: Value) -> Self {
        let text = json_text::to_vec(&value).into_boxed_slice();
        Self { value, text }
    }

    /// The value.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Its compact JSON text, as [`json_text::write`] writes it.
    #[must_use]
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

/// A document, or a part of one, as the engine builds it.
#[derive(Debug, Clone)]
pub enum Output<'a> {
    /// A value of the input or of the run's context (a copied field).
    Borrowed(&'a Value),
    /// A value of the plan (a constant, a concept map's coding), written from its text.
    Fixed(&'a Fixed),
    /// A value the run made (a transform's result, a context value, a computed score).
    Owned(Value),
    /// An object the run built.
    Object(Members<'a>),
    /// An array the run built.
    Array(Vec<Output<'a>>),
}

impl<'a> Output<'a> {
    /// `{}`.
    #[must_use]
    pub fn empty_object() -> Self {
        Self::Object(Vec::new())
    }

    /// The `serde_json::Value` this stands for.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::Borrowed(value) => (*value).clone(),
            Self::Fixed(fixed) => fixed.value.clone(),
            Self::Owned(value) => value.clone(),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, member)| (key.as_str().to_owned(), member.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
            Self::Array(items) => Value::Array(items.iter().map(Output::to_value).collect()),
        }
    }

    /// A view of this value, for reading it.
    #[must_use]
    pub fn node(&self) -> OutputNode<'_> {
        match self {
            Self::Borrowed(value) => OutputNode::Json(value),
            Self::Fixed(fixed) => OutputNode::Json(&fixed.value),
            Self::Owned(value) => OutputNode::Json(value),
            Self::Object(_) | Self::Array(_) => OutputNode::Output(self),
        }
    }

    /// The value at `segments` (a JSON Pointer's, read as [`crate::mapping::plan::Ptr::get`]
    /// reads them).
    #[must_use]
    pub fn get(&self, segments: &[String]) -> Option<OutputNode<'_>> {
        segments
            .iter()
            .try_fold(self.node(), |node, segment| node.child(segment))
    }

    /// The value at `segments`, as a value of its own (the engine reads back a part of the
    /// output it builds, then writes it again).
    #[must_use]
    pub fn get_owned(&self, segments: &[String]) -> Option<Output<'a>> {
        let Some((first, rest)) = segments.split_first() else {
            return Some(self.clone());
        };
        match self {
            Self::Borrowed(value) => pointer(value, segments).map(Output::Borrowed),
            Self::Fixed(fixed) => pointer(&fixed.value, segments).map(Output::Borrowed),
            Self::Owned(value) => pointer(value, segments).cloned().map(Output::Owned),
            Self::Object(members) => member(members, first)?.get_owned(rest),
            Self::Array(items) => items.get(index(first)?)?.get_owned(rest),
        }
    }

    /// Is this `value` (`serde_json`'s `==`)?
    #[must_use]
    pub fn equals(&self, value: &Value) -> bool {
        self.node().equals(value)
    }

    /// The members of this object, making it one first: a value that is an object becomes a
    /// built one with the same members; anything else is replaced by `{}` (as setting a field
    /// of a `serde_json::Value` through a pointer does).
    pub fn members_mut(&mut self) -> &mut Members<'a> {
        let members = match self {
            Self::Object(_) => None,
            Self::Borrowed(Value::Object(map))
            | Self::Fixed(Fixed {
                value: Value::Object(map),
                ..
            }) => Some(
                map.iter()
                    .map(|(key, member)| (Key::from(key.as_str()), Output::Borrowed(member)))
                    .collect(),
            ),
            Self::Owned(Value::Object(map)) => Some(
                std::mem::take(map)
                    .into_iter()
                    .map(|(key, member)| (Key::from(key), Output::Owned(member)))
                    .collect(),
            ),
            _ => Some(Vec::new()),
        };
        if let Some(members) = members {
            *self = Self::Object(members);
        }
        match self {
            Self::Object(members) => members,
            _ => unreachable!("made an object above"),
        }
    }

    /// `self[key] = value`, making `self` an object first ([`Self::members_mut`]).
    pub fn insert(&mut self, key: impl Into<Key<'a>>, value: Output<'a>) {
        let key = key.into();
        let members = self.members_mut();
        match members.binary_search_by(|(existing, _)| existing.as_str().cmp(key.as_str())) {
            Ok(at) => members[at].1 = value,
            Err(at) => members.insert(at, (key, value)),
        }
    }

    /// The member `key`, inserted as `null` when absent; `self` becomes an object first.
    pub fn member_or_null(&mut self, key: impl Into<Key<'a>>) -> &mut Output<'a> {
        let key = key.into();
        let members = self.members_mut();
        let at = match members.binary_search_by(|(existing, _)| existing.as_str().cmp(key.as_str()))
        {
            Ok(at) => at,
            Err(at) => {
                members.insert(at, (key, Output::Owned(Value::Null)));
                at
            }
        };
        &mut members[at].1
    }

    /// Is this an object?
    #[must_use]
    pub fn is_object(&self) -> bool {
        matches!(
            self,
            Self::Object(_)
                | Self::Borrowed(Value::Object(_))
                | Self::Fixed(Fixed {
                    value: Value::Object(_),
                    ..
                })
                | Self::Owned(Value::Object(_))
        )
    }

    /// Is this `{}`?
    #[must_use]
    pub fn is_empty_object(&self) -> bool {
        match self {
            Self::Object(members) => members.is_empty(),
            Self::Borrowed(Value::Object(map))
            | Self::Owned(Value::Object(map))
            | Self::Fixed(Fixed {
                value: Value::Object(map),
                ..
            }) => map.is_empty(),
            _ => false,
        }
    }

    /// Writes `value` at `segments`, creating objects on the way, as setting a field of a
    /// `serde_json::Value` through a pointer does (the tests compare the two).
    pub fn set(&mut self, segments: &'a [String], value: Output<'a>) {
        let Some((last, parents)) = segments.split_last() else {
            *self = value;
            return;
        };
        let mut current = self;
        for segment in parents {
            current = current.member_or_null(segment.as_str());
        }
        current.insert(last.as_str(), value);
    }

    /// Appends the compact JSON text of this value, as [`json_text::write`] writes the value
    /// it stands for.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Borrowed(value) => json_text::write(value, out),
            Self::Fixed(fixed) => out.extend_from_slice(&fixed.text),
            Self::Owned(value) => json_text::write(value, out),
            Self::Object(members) => {
                out.push(b'{');
                for (position, (key, member)) in members.iter().enumerate() {
                    if position > 0 {
                        out.push(b',');
                    }
                    key.write(out);
                    member.write(out);
                }
                out.push(b'}');
            }
            Self::Array(items) => {
                out.push(b'[');
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
        }
    }

    /// The compact JSON text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = Vec::with_capacity(4096);
        self.write(&mut out);
        // Every byte written is ASCII or copied from a `str`, whole characters at a time.
        String::from_utf8(out)
            .unwrap_or_else(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned())
    }
}

fn member<'m, 'a>(members: &'m Members<'a>, key: &str) -> Option<&'m Output<'a>> {
    members
        .binary_search_by(|(existing, _)| existing.as_str().cmp(key))
        .ok()
        .map(|at| &members[at].1)
}

/// Up to this many members a `serde_json` object is scanned for a name rather than searched:
/// one B-tree node holds eleven.
const MAP_SCAN_MAX: usize = 11;

/// Whether two member names are the same. Names are short, and the profiles' required and
/// declared names are looked up about seventy times per decision while it is validated: for up
/// to sixteen bytes the names are compared as two (overlapping) words in registers, without a
/// call to `memcmp`, which took more time than the comparison itself.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    match len {
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        4..=7 => {
            half_word(a, 0) == half_word(b, 0) && half_word(a, len - 4) == half_word(b, len - 4)
        }
        _ => a == b,
    }
}

/// Eight bytes of `bytes` from `at` (the caller keeps `at + 8` within it).
#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

/// Four bytes of `bytes` from `at` (the caller keeps `at + 4` within it).
#[inline]
fn half_word(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

/// An array index as [`crate::mapping::plan::Ptr::get`] reads one.
fn index(segment: &str) -> Option<usize> {
    segment.parse().ok()
}

fn pointer<'v>(value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| match current {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => items.get(index(segment)?),
            _ => None,
        })
}

/// A value of an [`Output`] being read: a built object or array, or a `serde_json` value.
#[derive(Debug, Clone, Copy)]
pub enum OutputNode<'o> {
    /// A built object or array.
    Output(&'o Output<'o>),
    /// A value of the input, the plan or the run.
    Json(&'o Value),
}

impl<'o> OutputNode<'o> {
    /// The member or item `segment` names.
    #[must_use]
    pub fn child(self, segment: &str) -> Option<OutputNode<'o>> {
        match self {
            Self::Json(value) => match value {
                Value::Object(map) => map.get(segment).map(Self::Json),
                Value::Array(items) => items.get(index(segment)?).map(Self::Json),
                _ => None,
            },
            Self::Output(Output::Object(members)) => member(members, segment).map(Output::node),
            Self::Output(Output::Array(items)) => items.get(index(segment)?).map(Output::node),
            Self::Output(other) => other.node().child(segment),
        }
    }

    /// Is this an object?
    #[must_use]
    pub fn is_object(self) -> bool {
        match self {
            Self::Json(value) => value.is_object(),
            Self::Output(output) => output.is_object(),
        }
    }

    /// The items, when this is an array.
    #[must_use]
    pub fn items(self) -> Option<Vec<OutputNode<'o>>> {
        match self {
            Self::Json(Value::Array(items)) => Some(items.iter().map(Self::Json).collect()),
            Self::Output(Output::Array(items)) => Some(items.iter().map(Output::node).collect()),
            _ => None,
        }
    }

    /// The number, as `f64`.
    #[must_use]
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Self::Json(value) => value.as_f64(),
            Self::Output(_) => None,
        }
    }

    /// `serde_json`'s `==` against `value`.
    #[must_use]
    pub fn equals(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Json(own), _) => own == value,
            (Self::Output(Output::Object(members)), Value::Object(map)) => {
                members.len() == map.len()
                    && members.iter().all(|(key, member)| {
                        map.get(key.as_str())
                            .is_some_and(|expected| member.equals(expected))
                    })
            }
            (Self::Output(Output::Array(items)), Value::Array(expected)) => {
                items.len() == expected.len()
                    && items.iter().zip(expected).all(|(item, e)| item.equals(e))
            }
            (Self::Output(Output::Borrowed(own)), _) => *own == value,
            (Self::Output(Output::Fixed(own)), _) => own.value == *value,
            (Self::Output(Output::Owned(own)), _) => own == value,
            _ => false,
        }
    }
}

/// [`Output`] as a representation the profiles' validators read (`jsonschema`'s [`Json`]).
#[derive(Debug)]
pub struct OutputJson;

impl Json for OutputJson {
    type Node<'a> = OutputNode<'a>;
    type PreparedKey = String;
    type StringBuffer = Value;

    // Members are a short vector: a look-up is a scan comparing key lengths, then bytes (4
    // measured the same as 2 on the decision).
    const KEYS_PER_LOOKUP: usize = 2;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Value,
        string: &str,
        f: impl FnOnce(OutputNode<'_>) -> T,
    ) -> T {
        if let Value::String(existing) = buffer {
            existing.clear();
            existing.push_str(string);
        } else {
            *buffer = Value::String(string.to_owned());
        }
        f(OutputNode::Json(buffer))
    }
}

/// The members of a built object, or of a `serde_json` object.
#[derive(Debug, Clone, Copy)]
pub enum OutputObject<'o> {
    /// Built.
    Members(&'o [(Key<'o>, Output<'o>)]),
    /// `serde_json`'s.
    Map(&'o Map<String, Value>),
}

/// The items of a built array, or of a `serde_json` array.
#[derive(Debug, Clone, Copy)]
pub enum OutputArray<'o> {
    /// Built.
    Items(&'o [Output<'o>]),
    /// `serde_json`'s.
    Values(&'o [Value]),
}

impl<'o> Node<'o, OutputJson> for OutputNode<'o> {
    type Object = OutputObject<'o>;
    type Array = OutputArray<'o>;
    type Number = &'o Number;

    fn as_object(&self) -> Option<OutputObject<'o>> {
        match *self {
            Self::Json(Value::Object(map)) => Some(OutputObject::Map(map)),
            Self::Output(Output::Object(members)) => Some(OutputObject::Members(members)),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<OutputArray<'o>> {
        match *self {
            Self::Json(Value::Array(items)) => Some(OutputArray::Values(items)),
            Self::Output(Output::Array(items)) => Some(OutputArray::Items(items)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'o, str>> {
        match *self {
            Self::Json(Value::String(text)) => Some(Cow::Borrowed(text)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'o Number> {
        match *self {
            Self::Json(Value::Number(number)) => Some(number),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match *self {
            Self::Json(Value::Bool(boolean)) => Some(*boolean),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Self::Json(Value::Null))
    }

    fn string_length(&self) -> Option<u64> {
        match *self {
            // Most text is ASCII, where the length is the byte count; checking that is one
            // vectorised pass, where counting characters is a loop over every byte.
            Self::Json(Value::String(text)) => Some(if text.is_ascii() {
                text.len() as u64
            } else {
                text.chars().count() as u64
            }),
            _ => None,
        }
    }

    fn json_type(&self) -> JsonType {
        match *self {
            Self::Json(Value::Null) => JsonType::Null,
            Self::Json(Value::Bool(_)) => JsonType::Boolean,
            Self::Json(Value::Number(_)) => JsonType::Number,
            Self::Json(Value::String(_)) => JsonType::String,
            Self::Json(Value::Array(_)) | Self::Output(Output::Array(_)) => JsonType::Array,
            Self::Json(Value::Object(_)) | Self::Output(Output::Object(_)) => JsonType::Object,
            // `node()` never makes these.
            Self::Output(other) => other.node().json_type(),
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match *self {
            Self::Json(value) => jsonschema::json::cmp::equal(value, expected),
            Self::Output(_) => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'o, Value> {
        match *self {
            Self::Json(value) => Cow::Borrowed(value),
            Self::Output(output) => Cow::Owned(output.to_value()),
        }
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(match *self {
            Self::Json(value) => NodeIdentity::tagged(std::ptr::from_ref(value) as usize, 0),
            Self::Output(output) => NodeIdentity::tagged(std::ptr::from_ref(output) as usize, 1),
        })
    }
}

impl<'o> Object<'o, OutputJson> for OutputObject<'o> {
    type Node = OutputNode<'o>;
    type MemberName = &'o str;
    type MembersIter = MembersIter<'o>;

    fn len(&self) -> usize {
        match self {
            Self::Members(members) => members.len(),
            Self::Map(map) => map.len(),
        }
    }

    fn get(&self, key: &String) -> Option<OutputNode<'o>> {
        match *self {
            // A few members: comparing lengths first skips most of them without reading a
            // byte of the key, which costs less than a binary search's string comparisons.
            Self::Members(members) => members
                .iter()
                .find(|(existing, _)| same_key(existing.as_str(), key))
                .map(|(_, member)| member.node()),
            // A small B-tree is one node whose keys a search compares in order, each through
            // `memcmp`; a scan comparing lengths first reads fewer bytes.
            Self::Map(map) if map.len() <= MAP_SCAN_MAX => map
                .iter()
                .find(|(existing, _)| same_key(existing, key))
                .map(|(_, value)| OutputNode::Json(value)),
            Self::Map(map) => map.get(key.as_str()).map(OutputNode::Json),
        }
    }

    fn members(&self) -> MembersIter<'o> {
        match *self {
            Self::Members(members) => MembersIter::Members(members.iter()),
            Self::Map(map) => MembersIter::Map(map.iter()),
        }
    }
}

/// The members of an [`OutputObject`], in order.
#[derive(Debug)]
pub enum MembersIter<'o> {
    /// Of a built object.
    Members(std::slice::Iter<'o, (Key<'o>, Output<'o>)>),
    /// Of a `serde_json` object.
    Map(serde_json::map::Iter<'o>),
}

impl<'o> Iterator for MembersIter<'o> {
    type Item = (&'o str, OutputNode<'o>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Members(members) => members
                .next()
                .map(|(key, member)| (key.as_str(), member.node())),
            Self::Map(map) => map
                .next()
                .map(|(key, member)| (key.as_str(), OutputNode::Json(member))),
        }
    }
}

/// The items of an [`OutputArray`], in order.
#[derive(Debug)]
pub enum ItemsIter<'o> {
    /// Of a built array.
    Items(std::slice::Iter<'o, Output<'o>>),
    /// Of a `serde_json` array.
    Values(std::slice::Iter<'o, Value>),
}

impl<'o> Iterator for ItemsIter<'o> {
    type Item = OutputNode<'o>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Items(items) => items.next().map(Output::node),
            Self::Values(values) => values.next().map(OutputNode::Json),
        }
    }
}

impl<'o> Array<'o, OutputJson> for OutputArray<'o> {
    type Node = OutputNode<'o>;
    type ElementsIter = ItemsIter<'o>;

    fn len(&self) -> usize {
        match self {
            Self::Items(items) => items.len(),
            Self::Values(values) => values.len(),
        }
    }

    fn elements(&self) -> ItemsIter<'o> {
        match *self {
            Self::Items(items) => ItemsIter::Items(items.iter()),
            Self::Values(values) => ItemsIter::Values(values.iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segments(pointer: &str) -> Vec<String> {
        crate::mapping::plan::Ptr::parse(pointer)
            .expect("pointer")
            .segments
    }

    /// A plan's fixed value (and member name) reads, compares and writes as the value it holds,
    /// and a document that sets a field inside one gets the value's own members.
    #[test]
    fn a_fixed_value_is_the_value_it_holds() {
        let coding = Fixed::new(
            json!({"code": "03", "system": "urn:x", "display": "Arjen \"valmennus\" ä"}),
        );
        assert_eq!(
            coding.text(),
            serde_json::to_vec(coding.value()).expect("json").as_slice()
        );
        let plan_name = Name::new("a".to_owned());
        let odd_name = Name::new("ä \"x\"\n".to_owned());
        let odd = Output::Object(vec![(Key::plan(&odd_name), Output::Fixed(&coding))]);
        assert_eq!(
            odd.to_text(),
            serde_json::to_string(&json!({"ä \"x\"\n": coding.value()})).expect("json")
        );
        let document = Output::Object(vec![
            (Key::plan(&plan_name), Output::Fixed(&coding)),
            (Key::from("b"), Output::Array(vec![Output::Fixed(&coding)])),
        ]);
        let expected = json!({"a": coding.value(), "b": [coding.value()]});
        assert_eq!(document.to_value(), expected);
        assert_eq!(
            document.to_text(),
            serde_json::to_string(&expected).expect("json")
        );
        assert!(document.equals(&expected));
        assert!(Output::Fixed(&coding).is_object());
        assert_eq!(
            document
                .get_owned(&segments("/a/code"))
                .map(|code| code.to_value()),
            Some(json!("03"))
        );

        let mut changed = Output::Fixed(&coding);
        let display = segments("/display");
        changed.set(&display, Output::Owned(json!("toinen")));
        let mut expected = coding.value().clone();
        expected["display"] = json!("toinen");
        assert_eq!(
            changed.to_text(),
            serde_json::to_string(&expected).expect("json")
        );
    }

    #[test]
    fn keys_are_the_same_exactly_when_their_bytes_are() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abce",
            "abcde",
            "bbcde",
            "abcdef",
            "abcdeg",
            "abcdefg",
            "abcdefgh",
            "abcdefgi",
            "bbcdefgh",
            "abcdefghi",
            "abcdefghij",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "abcdefgXijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "päivä",
            "päivää",
            "version",
            "versioN",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_key(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn a_name_is_found_in_an_object_of_either_kind_and_size() {
        let names = [
            "abcd",
            "abce",
            "abcde",
            "abcdefghi",
            "abcdefghj",
            "x",
            "päivä",
        ];
        for size in [names.len(), 40] {
            let mut map = Map::new();
            for n in 0..size {
                let name = names
                    .get(n)
                    .map_or_else(|| format!("filler-{n:02}"), |name| (*name).to_owned());
                map.insert(name, Value::from(n));
            }
            let value = Value::Object(map.clone());
            let built = Output::Object(
                map.iter()
                    .map(|(k, v)| (Key::from(k.clone()), Output::Borrowed(v)))
                    .collect(),
            );
            for node in [OutputNode::Json(&value), built.node()] {
                let Some(object) = node.as_object() else {
                    panic!("an object");
                };
                for (key, expected) in &map {
                    let found = object.get(key).map(|found| found.to_value().into_owned());
                    assert_eq!(found.as_ref(), Some(expected), "{key} in {size}");
                }
                for missing in ["abcf", "abcdefghk", "y", "", "päivää"] {
                    assert!(
                        object.get(&missing.to_owned()).is_none(),
                        "{missing} in {size}"
                    );
                }
            }
        }
    }

    #[test]
    fn setting_builds_what_setting_a_value_builds() {
        let constant = json!({"system": "s", "code": "1"});
        let pointers: Vec<Vec<String>> = ["/b/c", "/a", "/b/a", "/b/c", "/z/0", "/a/x", "/c"]
            .iter()
            .map(|p| segments(p))
            .collect();
        let values = [
            json!(1),
            json!("a"),
            constant.clone(),
            json!([1, 2]),
            json!(null),
            json!(true),
            json!({"k": {"l": 1}}),
        ];
        for start in [json!({}), json!({"b": {"d": 4}, "z": 3}), json!(7)] {
            let mut expected = start.clone();
            let mut built = Output::Owned(start.clone());
            let mut from_borrowed = Output::Borrowed(&start);
            for (pointer, value) in pointers.iter().zip(&values) {
                let ptr = crate::mapping::plan::Ptr {
                    text: String::new(),
                    segments: pointer.clone(),
                };
                ptr.set(&mut expected, value.clone());
                built.set(pointer, Output::Borrowed(value));
                from_borrowed.set(pointer, Output::Owned(value.clone()));
            }
            assert_eq!(built.to_value(), expected, "from {start}");
            assert_eq!(from_borrowed.to_value(), expected, "from {start}");
            assert_eq!(
                built.to_text(),
                serde_json::to_string(&expected).expect("json")
            );
            assert!(built.equals(&expected));
            assert!(!built.equals(&json!({})));
            for pointer in ["/b", "/b/c/1", "/a/x", "/missing", "/c/k", ""] {
                let found = built
                    .get(&segments(pointer))
                    .map(|n| n.to_value().into_owned());
                assert_eq!(
                    found.as_ref(),
                    expected.pointer(pointer),
                    "{pointer} from {start}"
                );
                let owned = built.get_owned(&segments(pointer)).map(|o| o.to_value());
                assert_eq!(
                    owned.as_ref(),
                    expected.pointer(pointer),
                    "{pointer} from {start}"
                );
            }
        }
    }

    #[test]
    fn a_built_document_validates_as_its_value_does() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "additionalProperties": false,
            "properties": {
                "a": {"type": "string", "minLength": 2},
                "b": {"type": "array", "items": {"enum": [1, {"x": "y"}]}, "uniqueItems": true},
                "c": {"const": {"p": [1, 2]}}
            }
        });
        let serde = jsonschema::options().build(&schema).expect("schema");
        let output = jsonschema::options_for::<OutputJson>()
            .build(&schema)
            .expect("schema");
        let x = json!({"x": "y"});
        let documents = [
            Output::Object(vec![
                (Key::from("a"), Output::Owned(json!("ab"))),
                (
                    Key::from("b"),
                    Output::Array(vec![
                        Output::Owned(json!(1)),
                        Output::Object(vec![(Key::from("x"), Output::Owned(json!("y")))]),
                    ]),
                ),
            ]),
            Output::Object(vec![
                (Key::from("a"), Output::Owned(json!("a"))),
                (
                    Key::from("b"),
                    Output::Array(vec![Output::Borrowed(&x), Output::Borrowed(&x)]),
                ),
                (
                    Key::from("c"),
                    Output::Object(vec![(
                        Key::from("p"),
                        Output::Array(vec![Output::Owned(json!(1)), Output::Owned(json!(2))]),
                    )]),
                ),
                (Key::from("d"), Output::Owned(json!(null))),
            ]),
            Output::Object(vec![(Key::from("b"), Output::Array(vec![]))]),
        ];
        for document in &documents {
            let value = document.to_value();
            assert_eq!(
                output.is_valid(document.node()),
                serde.is_valid(&value),
                "{value}"
            );
            let mut from_output: Vec<String> = output
                .iter_errors(document.node())
                .map(|e| format!("{} {}", e.instance_path().as_str(), e.kind().keyword()))
                .collect();
            let mut from_serde: Vec<String> = serde
                .iter_errors(&value)
                .map(|e| format!("{} {}", e.instance_path().as_str(), e.kind().keyword()))
                .collect();
            from_output.sort();
            from_serde.sort();
            assert_eq!(from_output, from_serde, "{value}");
        }
    }
}
