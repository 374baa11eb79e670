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
//! one wins in both), and so are the errors.
//!
//! Two readers do this. `direct` reads the text the way almost every record is written (its
//! integers, strings with or without escapes, any nesting up to a hundred levels) straight into
//! values, without `serde`'s visitor calls between each token and the value it becomes; it gives
//! up, without an error, at anything else: a number with a fraction or an exponent (whose
//! rounding is `serde_json`'s to decide), an integer too large for 64 bits, a lone surrogate,
//! deeper nesting, or any mistake in the text. Then the same `serde_json` deserializer as before
//! reads it again, and its value or its error is the answer, so errors keep `serde_json`'s words,
//! line and column.

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
    if let Some(value) = direct::parse(text) {
        return Ok(value);
    }
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

/// The direct reader (see the module's documentation): `None` wherever `serde_json` must decide.
mod direct {
    use serde_json::{Map, Value};

    use super::MEMBERS_AT_FIRST;

    /// Nesting beyond this is left to `serde_json`, which stops at 128 levels.
    const MAX_DEPTH: usize = 100;

    /// Bytes that end a plain run of string text: the closing quote, an escape, or a control
    /// character (which JSON does not allow unescaped); [`run_ends`] finds the same bytes eight
    /// at a time.
    pub(super) const ENDS_RUN: [bool; 256] = {
        let mut table = [false; 256];
        let mut byte = 0;
        while byte < 0x20 {
            table[byte] = true;
            byte += 1;
        }
        table[b'"' as usize] = true;
        table[b'\\' as usize] = true;
        table
    };

    /// The high bit of each byte of `word` (eight bytes read little-endian) that ends a run
    /// ([`ENDS_RUN`]). Bytes after the first such byte may be marked too, so only the lowest
    /// mark says where one is.
    ///
    /// Each test is the classic search for a zero byte, `(x - 0x01…) & !x & 0x80…`, which marks
    /// the bytes of `x` that are zero (a quote or backslash, after the XOR) or, with `0x20…`
    /// subtracted, below `0x20`; a borrow can only mark bytes above a true mark.
    pub(super) fn run_ends(word: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let zero_quote = quote.wrapping_sub(ONES) & !quote;
        let zero_backslash = backslash.wrapping_sub(ONES) & !backslash;
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        (zero_quote | zero_backslash | control) & HIGHS
    }

    /// The value of `text`, or `None` to let `serde_json` read it.
    pub(super) fn parse(text: &str) -> Option<Value> {
        let mut reader = Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
        };
        reader.skip_whitespace();
        let value = reader.value(0)?;
        reader.skip_whitespace();
        (reader.at == reader.bytes.len()).then_some(value)
    }

    struct Reader<'t> {
        text: &'t str,
        bytes: &'t [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        fn skip_whitespace(&mut self) {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.at += 1;
            }
        }

        fn value(&mut self, depth: usize) -> Option<Value> {
            match self.peek()? {
                b'"' => self.string().map(Value::String),
                b'{' => self.object(depth + 1),
                b'[' => self.array(depth + 1),
                b't' => self.word(b"true", Value::Bool(true)),
                b'f' => self.word(b"false", Value::Bool(false)),
                b'n' => self.word(b"null", Value::Null),
                b'-' | b'0'..=b'9' => self.integer(),
                _ => None,
            }
        }

        fn word(&mut self, word: &[u8], value: Value) -> Option<Value> {
            let end = self.at + word.len();
            (self.bytes.get(self.at..end)? == word).then(|| {
                self.at = end;
                value
            })
        }

        /// An integer as `serde_json` reads one: non-negative ones as `u64`, negative ones as
        /// `i64`. `-0` (a float there), fractions, exponents and overflow go back to it.
        fn integer(&mut self) -> Option<Value> {
            let negative = self.peek() == Some(b'-');
            if negative {
                self.at += 1;
            }
            let start = self.at;
            let mut magnitude: u64 = 0;
            while let Some(digit @ b'0'..=b'9') = self.peek() {
                magnitude = magnitude
                    .checked_mul(10)?
                    .checked_add(u64::from(digit - b'0'))?;
                self.at += 1;
            }
            let digits = self.at - start;
            let leading_zero = digits > 1 && self.bytes.get(start) == Some(&b'0');
            if digits == 0 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            if negative {
                if magnitude == 0 {
                    return None;
                }
                let value = i64::try_from(magnitude).ok()?.checked_neg()?;
                Some(Value::Number(value.into()))
            } else {
                Some(Value::Number(magnitude.into()))
            }
        }

        /// A string starting at its opening quote.
        fn string(&mut self) -> Option<String> {
            self.at += 1;
            let start = self.at;
            self.skip_run();
            match self.peek()? {
                b'"' => {
                    let text = self.text.get(start..self.at)?.to_owned();
                    self.at += 1;
                    Some(text)
                }
                b'\\' => self.escaped(start),
                _ => None,
            }
        }

        /// Moves past plain string text, eight bytes at a time while it can.
        fn skip_run(&mut self) {
            while let Some(word) = self.bytes.get(self.at..self.at + 8) {
                let mut eight = [0; 8];
                eight.copy_from_slice(word);
                let ends = run_ends(u64::from_le_bytes(eight));
                if ends != 0 {
                    self.at += (ends.trailing_zeros() / 8) as usize;
                    return;
                }
                self.at += 8;
            }
            while let Some(&byte) = self.bytes.get(self.at) {
                if ENDS_RUN[usize::from(byte)] {
                    return;
                }
                self.at += 1;
            }
        }

        /// The rest of a string from its first escape; `start` is where its text began.
        fn escaped(&mut self, start: usize) -> Option<String> {
            let mut out = String::with_capacity(self.at - start + 16);
            out.push_str(self.text.get(start..self.at)?);
            loop {
                match self.peek()? {
                    b'"' => {
                        self.at += 1;
                        return Some(out);
                    }
                    b'\\' => {
                        let escape = *self.bytes.get(self.at + 1)?;
                        self.at += 2;
                        out.push(match escape {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => self.unicode_escape()?,
                            _ => return None,
                        });
                    }
                    0..0x20 => return None,
                    _ => {
                        let run = self.at;
                        self.skip_run();
                        out.push_str(self.text.get(run..self.at)?);
                    }
                }
            }
        }

        /// The character of a `\u` escape whose four digits start at `at`: a surrogate pair
        /// makes one character; a lone surrogate is left to `serde_json` (an error there).
        fn unicode_escape(&mut self) -> Option<char> {
            let unit = self.hex4()?;
            match unit {
                0xD800..=0xDBFF => {
                    if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
                        return None;
                    }
                    self.at += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..=0xDFFF).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x1_0000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                }
                0xDC00..=0xDFFF => None,
                _ => char::from_u32(unit),
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let digits = self.bytes.get(self.at..self.at + 4)?;
            let mut unit = 0;
            for &digit in digits {
                unit = unit * 16 + char::from(digit).to_digit(16)?;
            }
            self.at += 4;
            Some(unit)
        }

        fn array(&mut self, depth: usize) -> Option<Value> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.at += 1;
            let mut items = Vec::new();
            self.skip_whitespace();
            if self.peek()? == b']' {
                self.at += 1;
                return Some(Value::Array(items));
            }
            loop {
                items.push(self.value(depth)?);
                if !self.another_item(b']')? {
                    return Some(Value::Array(items));
                }
            }
        }

        /// After an item of an array or a member of an object: `Some(true)` past a comma (an
        /// item follows), `Some(false)` past `close`, `None` at anything else.
        fn another_item(&mut self, close: u8) -> Option<bool> {
            self.skip_whitespace();
            let byte = self.peek()?;
            self.at += 1;
            if byte == b',' {
                self.skip_whitespace();
                Some(true)
            } else if byte == close {
                Some(false)
            } else {
                None
            }
        }

        /// An object, built at once from its members as the `serde` path builds it.
        fn object(&mut self, depth: usize) -> Option<Value> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.at += 1;
            let mut members: Vec<(String, Value)> = Vec::with_capacity(MEMBERS_AT_FIRST);
            self.skip_whitespace();
            if self.peek()? == b'}' {
                self.at += 1;
                return Some(Value::Object(Map::new()));
            }
            loop {
                if self.peek()? != b'"' {
                    return None;
                }
                let key = self.string()?;
                self.skip_whitespace();
                if self.peek()? != b':' {
                    return None;
                }
                self.at += 1;
                self.skip_whitespace();
                let value = self.value(depth)?;
                members.push((key, value));
                if !self.another_item(b'}')? {
                    return Some(Value::Object(members.into_iter().collect()));
                }
            }
        }
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

    /// Text at the edges of what the direct reader takes: each must give `serde_json`'s value
    /// or error, whichever reader ends up reading it.
    #[test]
    fn edge_cases_read_as_serde_json_reads_them() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let deep_objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        for text in [
            " \t\r\n{ \"a\" : [ 1 , 2 ] , \"b\" : { } , \"c\" : [ ] }\n ",
            r#"{"a":"\u00e4\u00C4\u20AC\ud83e\udd80\/\b\f\n\r\t\"\\"}"#,
            r#"["plain then \n escaped then plain", "\u0000", "a\u0041b"]"#,
            r#"["\ud83d"]"#,
            r#"["\ud83d\u0041"]"#,
            r#"["\ude00"]"#,
            r#"["\ud83d\n"]"#,
            r#"["\u12"]"#,
            r#"["\u12G4"]"#,
            r#"["\x"]"#,
            "[\"raw \u{1} control\"]",
            "[\"raw \u{1f} control after\\n escape\"]",
            "[\"unterminated",
            "[\"unterminated\\",
            "[\"del \u{7f} and ä and 🦀\"]",
            "-0",
            "[-0]",
            "0",
            "01",
            "[01]",
            "-",
            "[-]",
            "1.",
            "1.5",
            "1e5",
            "1E5",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "9223372036854775808",
            "tru",
            "truex",
            "[true false]",
            "nul",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{,}",
            "[,]",
            "[1,]",
            "{1:2}",
            "{\"a\":1}}",
            "[1]]",
            "   ",
            "\u{feff}{}",
            &deep(100),
            &deep(101),
            &deep(128),
            &deep(129),
            &deep_objects(100),
            &deep_objects(101),
            &deep_objects(129),
        ] {
            same_as_serde_json(text);
        }
    }

    /// Guards the speed of the common case: every fixture and profile example is read by the
    /// direct reader, not handed back to `serde_json`.
    #[test]
    fn every_fixture_and_example_is_read_directly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        let mut dirs = vec![
            root.join("mappings/fixtures"),
            root.join("profiles/examples"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read_to_string(&path).expect("file");
                    let Ok(theirs) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if contains_float(&theirs) {
                        // Fractions and exponents are `serde_json`'s to read.
                        continue;
                    }
                    assert_eq!(direct::parse(&text), Some(theirs), "{}", path.display());
                    seen += 1;
                }
            }
        }
        assert!(seen > 50, "only {seen} files read");
    }

    fn contains_float(value: &Value) -> bool {
        match value {
            Value::Number(n) => n.is_f64(),
            Value::Array(items) => items.iter().any(contains_float),
            Value::Object(members) => members.values().any(contains_float),
            _ => false,
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

        #[test]
        fn eight_bytes_at_a_time_find_the_first_byte_that_ends_a_run(
            bytes in prop::array::uniform8(prop_oneof![
                Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..0x80, 0x80u8..=0xff,
            ])
        ) {
            let first = bytes.iter().position(|&b| direct::ENDS_RUN[usize::from(b)]);
            let ends = direct::run_ends(u64::from_le_bytes(bytes));
            let found = (ends != 0).then(|| (ends.trailing_zeros() / 8) as usize);
            prop_assert_eq!(found, first);
        }

        #[test]
        fn indented_text_parses_as_serde_json_parses_it(text in json_text()) {
            let value: Value = serde_json::from_str(&text).expect("generated text is JSON");
            let pretty = serde_json::to_string_pretty(&value).expect("writes");
            prop_assert_eq!(from_str(&pretty).ok(), Some(value));
        }

        #[test]
        fn strings_written_with_unicode_escapes_read_back(text in "\\PC{0,12}") {
            // Every character as `\uXXXX` (a surrogate pair above U+FFFF).
            let mut escaped = String::from("[\"");
            for unit in text.encode_utf16() {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
            escaped.push_str("\"]");
            let ours = from_str(&escaped).map_err(|e| e.to_string());
            prop_assert_eq!(&ours, &Ok(Value::Array(vec![Value::String(text.clone())])));
            prop_assert_eq!(direct::parse(&escaped), Some(Value::Array(vec![Value::String(text)])));
        }
    }
}
