//! Parsing JSON text into a `serde_json::Value`, each object built in one go.
//!
//! Why: `serde_json`'s own `Value` inserts every member into its object's `BTreeMap` as it is
//! read, searching the map from its root each time, so an object of n members costs about n²/2
//! key comparisons. Here an object's members are collected first and the map is built from them
//! at once (`BTreeMap::from_iter`: a stable sort, a single pass when the keys already come in
//! order, as they do in text written from a `Value`, then a bulk build). Parsing was about a
//! quarter of a decision's whole path (validate, map, validate, write), and these insertions a
//! third of that.
//!
//! The value is the one `serde_json::from_str::<Value>` gives, duplicate keys included (the last
//! one wins in both), and so are the errors: the same `serde_json` deserializer reads the text
//! and checks its nesting; only the building of values differs.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Number, Value};

/// Room for the members of a typical object before the buffer first grows.
const MEMBERS_AT_FIRST: usize = 8;

/// Parses `text` as one JSON value; the same value and errors as `serde_json::from_str`.
///
/// # Errors
/// `serde_json`'s error for text that is not one JSON value.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = ValueSeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A `Value` that deserializes as [`from_str`] builds it, for use inside other deserializers
/// (an envelope's records).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedValue(pub Value);

impl<'de> Deserialize<'de> for ParsedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ValueSeed.deserialize(deserializer).map(ParsedValue)
    }
}

/// Builds a `Value` as `serde_json`'s own visitor does, except for objects.
#[derive(Clone, Copy)]
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members: Vec<(String, Value)> = Vec::with_capacity(MEMBERS_AT_FIRST);
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            members.push((key, value));
        }
        Ok(Value::Object(
            members.into_iter().collect::<Map<String, Value>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_serde_json(text: &str) {
        let ours = from_str(text).map_err(|e| e.to_string());
        let theirs = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{text}");
    }

    #[test]
    fn values_and_errors_are_serde_jsons() {
        for text in [
            r#"{"b":1,"a":[true,false,null,-1,18446744073709551615,1.5e3,"x\u00e4\n"],"c":{}}"#,
            r#"{"z":1,"a":2,"z":3,"m":{"y":[],"x":{"k":"v"}},"a":4}"#,
            r#"{"":0,"é":"ä","e":"\ud83d\ude00"}"#,
            "[1,2,[3,[4]]]",
            "\"text\"",
            "-0.0",
            "1e400",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{\"a\":",
            "[\"\\q\"]",
            "",
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ] {
            same_as_serde_json(text);
        }
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_in_serde_json() {
        let value = from_str(r#"{"a":1,"b":2,"a":3}"#).expect("json");
        assert_eq!(value["a"], 3);
        assert_eq!(value.as_object().map(Map::len), Some(2));
    }

    #[test]
    fn records_in_an_envelope_parse_alike() {
        #[derive(Deserialize)]
        struct Envelope {
            records: Vec<ParsedValue>,
        }
        let text = r#"{"records":[{"b":1,"a":2},{"k":[{"y":1,"x":2}]}]}"#;
        let envelope: Envelope = serde_json::from_str(text).expect("json");
        let theirs: Value = serde_json::from_str(text).expect("json");
        let ours: Vec<Value> = envelope.records.into_iter().map(|r| r.0).collect();
        assert_eq!(Value::Array(ours), theirs["records"]);
    }

    /// JSON text of any shape, its objects' keys in any order and sometimes repeated.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| Value::from(f).to_string()),
            "[a-eä\\\\\"\n]{0,6}".prop_map(|s| Value::from(s).to_string()),
        ];
        leaf.prop_recursive(4, 64, 12, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(("[a-f]{0,3}", inner), 0..14).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_parses_as_serde_json_parses_it(text in json_text()) {
            let ours = from_str(&text).map_err(|e| e.to_string());
            let theirs = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
            prop_assert_eq!(ours, theirs);
        }
    }
}
