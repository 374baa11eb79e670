//! Compact JSON text of a `serde_json::Value`: byte for byte what `serde_json::to_vec` writes,
//! with strings escaped by the SIMD kernels of `json-escape-simd` (taken from sonic-rs).
//!
//! Why: `serde_json` escapes strings one byte at a time, and in the decision's whole path
//! (parse, validate, map, validate, serialize) that loop alone was a tenth of the instructions;
//! a mapped document is mostly text. Every stored document, answer and digest is written here,
//! so the bytes must not change: the tests compare with `serde_json` on generated values.

use serde_json::Value;

/// The compact JSON text of `value`.
#[must_use]
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    write(value, &mut out);
    out
}

/// [`to_vec`] as a `String`.
#[must_use]
pub fn to_string(value: &Value) -> String {
    // Every byte written is either ASCII or copied from a `str`, whole characters at a time.
    String::from_utf8(to_vec(value))
        .unwrap_or_else(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned())
}

/// Appends the compact JSON text of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // `serde_json` writes a number as its `Display` does (itoa, or the shortest float that
        // reads back the same; a `Number` is never NaN or infinite). Writing to a `Vec` cannot
        // fail.
        Value::Number(number) => {
            let _ = std::io::Write::write_fmt(out, format_args!("{number}"));
        }
        Value::String(text) => write_str(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (index, (key, member)) in members.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write(member, out);
            }
            out.push(b'}');
        }
    }
}

/// Appends `text` as a JSON string, quotes included.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    json_escape_simd::escape_into(text, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn same_as_serde_json(value: &Value) {
        let expected = serde_json::to_vec(value).expect("serde_json writes every value");
        assert_eq!(
            String::from_utf8_lossy(&to_vec(value)),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(to_string(value).as_bytes(), &expected[..]);
    }

    #[test]
    fn writes_what_serde_json_writes_for_every_escape_and_number_kind() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        same_as_serde_json(&json!({
            "controls": every_control,
            "quotes and slashes": "\"quoted\" \\ back / forward \u{7f}",
            "finnish": "Päätös sosiaalisesta kuntoutuksesta – 17 §",
            "astral": "🦀 and \u{2028}\u{2029}",
            "numbers": [0, -1, 1.5, 1e300, -0.0, 0.1, u64::MAX, i64::MIN, 1e-7, 123_456_789.0],
            "nested": {"b": [true, false, null], "a": {}, "": []},
            "long": "x".repeat(5000) + "\n" + &"ä".repeat(3000),
            "short": ["a\"", "\\", "\u{1}", "exactly twenty-four byte", "twenty-four bytes and \n"],
        }));
        same_as_serde_json(&json!("top-level string"));
        same_as_serde_json(&json!(null));
        same_as_serde_json(&json!([]));
    }

    #[test]
    fn writes_every_fixture_as_serde_json_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/fixtures");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("fixture");
                let value: Value = serde_json::from_str(&text).expect("fixture is JSON");
                same_as_serde_json(&value);
                seen += 1;
            }
        }
        assert!(seen > 10, "only {seen} fixtures read");
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_is_written_as_serde_json_writes_it(value in any_value()) {
            let expected = serde_json::to_vec(&value).expect("serde_json writes every value");
            prop_assert_eq!(to_vec(&value), expected);
        }
    }
}
