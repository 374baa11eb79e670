//! Turning a case's [`Body`] into bytes to send or a document to compare, and `${name}`
//! substitution of captured values.
//!
//! A problem here (an example that does not exist, a pointer that does not resolve, a value
//! never captured) is the case's or the harness's fault, never the target's: it makes the case
//! *errored*, not failed.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::cases::{self, Body};
use crate::fresh::Fresh;

/// Values captured by earlier steps (and `run`, the run id).
pub type Vars = BTreeMap<String, Value>;

/// A resolved body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// One JSON value.
    Json(Value),
    /// NDJSON lines.
    Ndjson(Vec<Value>),
    /// Raw text.
    Text(String),
}

impl Payload {
    /// The bytes on the wire and the content type.
    #[must_use]
    pub fn encode(&self) -> (Vec<u8>, &'static str) {
        match self {
            Self::Json(value) => (value.to_string().into_bytes(), "application/json"),
            Self::Ndjson(lines) => {
                let mut bytes = Vec::new();
                for line in lines {
                    bytes.extend(line.to_string().into_bytes());
                    bytes.push(b'\n');
                }
                (bytes, "application/x-ndjson")
            }
            Self::Text(text) => (text.clone().into_bytes(), "application/json"),
        }
    }

    /// As one JSON value (NDJSON as an array), for `request:` captures.
    #[must_use]
    pub fn as_value(&self) -> Value {
        match self {
            Self::Json(value) => value.clone(),
            Self::Ndjson(lines) => Value::Array(lines.clone()),
            Self::Text(text) => Value::String(text.clone()),
        }
    }
}

/// Resolves `body`: its source, then `set` and `remove`, then fresh identifiers (not for
/// captured values, which came from the target already fresh).
///
/// # Errors
/// Says what could not be resolved.
pub fn resolve(body: &Body, vars: &Vars, fresh: Option<&Fresh>) -> Result<Payload, String> {
    let sources = [
        body.example.is_some(),
        body.fixture.is_some(),
        body.json.is_some(),
        body.var.is_some(),
        body.ndjson.is_some(),
        body.records.is_some(),
        body.bundle.is_some(),
        body.text.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err("a body needs exactly one source".to_owned());
    }
    if let Some(text) = &body.text {
        return Ok(Payload::Text(text.clone()));
    }
    if let Some(lines) = &body.ndjson {
        let lines = lines
            .iter()
            .map(|line| resolve_value(line, vars, fresh))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Payload::Ndjson(lines));
    }
    resolve_value(body, vars, fresh).map(Payload::Json)
}

/// Resolves a body that must be one JSON value.
///
/// # Errors
/// As [`resolve`]; NDJSON and text are not one value.
pub fn resolve_value(body: &Body, vars: &Vars, fresh: Option<&Fresh>) -> Result<Value, String> {
    let mut from_var = false;
    let mut value = if let Some(path) = &body.example {
        cases::example(path).ok_or_else(|| format!("no profile example {path}"))?
    } else if let Some(name) = &body.fixture {
        cases::fixture(name).ok_or_else(|| format!("no mapping fixture {name}"))?
    } else if let Some(json) = &body.json {
        substitute(json, vars)?
    } else if let Some(name) = &body.var {
        from_var = true;
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("no captured value {name}"))?
    } else if let Some(records) = &body.records {
        let mut envelope: Map<String, Value> = match &body.envelope {
            Some(fields) => match substitute(&Value::Object(fields.clone()), vars)? {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        let records = records
            .iter()
            .map(|r| resolve_value(r, vars, None))
            .collect::<Result<Vec<_>, _>>()?;
        envelope.insert("RECORDS".to_owned(), Value::Array(records));
        Value::Object(envelope)
    } else if let Some(entries) = &body.bundle {
        let entries = entries
            .iter()
            .map(|r| resolve_value(r, vars, None).map(|resource| json!({"resource": resource})))
            .collect::<Result<Vec<_>, _>>()?;
        json!({"resourceType": "Bundle", "type": "batch", "entry": entries})
    } else {
        return Err("this body is not one JSON value (NDJSON or text)".to_owned());
    };
    for (pointer, new) in &body.set {
        let mut new = substitute(new, vars)?;
        if from_var && let Some(fresh) = fresh {
            fresh.apply(&mut new);
        }
        set(&mut value, pointer, new)?;
    }
    for pointer in &body.remove {
        remove(&mut value, pointer)?;
    }
    if !from_var && let Some(fresh) = fresh {
        fresh.apply(&mut value);
    }
    Ok(value)
}

fn split(pointer: &str) -> Result<(&str, String), String> {
    let Some(at) = pointer.rfind('/') else {
        return Err(format!("{pointer:?} is not a JSON Pointer"));
    };
    let last = pointer[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&pointer[..at], last))
}

/// Sets `pointer` in `value`; the parent must exist.
///
/// # Errors
/// When the parent does not exist or is not a container.
pub fn set(value: &mut Value, pointer: &str, new: Value) -> Result<(), String> {
    let (parent, last) = split(pointer)?;
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, new);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(new);
                return Ok(());
            }
            let slot = last
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| format!("cannot set {pointer}: no such array element"))?;
            *slot = new;
            Ok(())
        }
        _ => Err(format!("cannot set {pointer}: its parent does not exist")),
    }
}

/// Removes `pointer` from `value`.
///
/// # Errors
/// When it does not exist.
pub fn remove(value: &mut Value, pointer: &str) -> Result<(), String> {
    let (parent, last) = split(pointer)?;
    let removed = match value.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(format!("cannot remove {pointer}: it does not exist"))
    }
}

/// Replaces `${name}` in every string of `value`: a string that is exactly `${name}` becomes
/// the captured value itself (any JSON type); elsewhere the value's text is put in.
///
/// # Errors
/// Names a value that was never captured.
pub fn substitute(value: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => {
            if let Some(name) = text
                .strip_prefix("${")
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|name| !name.contains(['$', '{', '}']))
            {
                return vars
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("no captured value {name}"));
            }
            Value::String(substitute_text(text, vars, |s| s.to_owned())?)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| substitute(v, vars).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Replaces `${name}` inside `text`, passing each value's text through `encode`.
///
/// # Errors
/// Names a value that was never captured.
pub fn substitute_text(
    text: &str,
    vars: &Vars,
    encode: impl Fn(&str) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed ${{ in {text:?}"));
        };
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| format!("no captured value {name}"))?;
        let plain = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&encode(&plain));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
#[must_use]
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_captured_value_or_its_text() {
        let mut vars = Vars::new();
        vars.insert("oid".to_owned(), json!("1.2.3"));
        vars.insert("version".to_owned(), json!(2));
        let value = substitute(
            &json!({"a": "${version}", "b": "oid ${oid} v${version}"}),
            &vars,
        );
        assert_eq!(value, Ok(json!({"a": 2, "b": "oid 1.2.3 v2"})));
        assert!(substitute(&json!("${missing}"), &vars).is_err());
        assert_eq!(
            substitute_text("/documents?since=${oid}", &vars, url_encode),
            Ok("/documents?since=1.2.3".to_owned())
        );
        assert_eq!(
            url_encode("2026-01-01T10:00:00+02:00"),
            "2026-01-01T10%3A00%3A00%2B02%3A00"
        );
    }

    #[test]
    fn patches_set_and_remove_members() {
        let mut value = json!({"a": {"b": 1, "c": [1, 2]}});
        assert!(set(&mut value, "/a/b", json!(2)).is_ok());
        assert!(set(&mut value, "/a/c/-", json!(3)).is_ok());
        assert!(remove(&mut value, "/a/c/0").is_ok());
        assert_eq!(value, json!({"a": {"b": 2, "c": [2, 3]}}));
        assert!(set(&mut value, "/x/y", json!(1)).is_err());
        assert!(remove(&mut value, "/a/nothing").is_err());
    }
}
