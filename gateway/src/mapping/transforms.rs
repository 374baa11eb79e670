//! The named library of value transforms a mapping rule may use.
//!
//! Each transform runs forward (Apotti-like → Kanta-style) and, where it can, backward. A
//! mapping names transforms by string; the checker looks them up here at load and compares the
//! types they take and give with the profiles on both sides, so a rule cannot feed a date to a
//! flag. Transforms are pure and allocate only their result.
//!
//! Time zones: Epic exports wall-clock time in Europe/Helsinki without an offset. Forward, a
//! local time that does not exist (the hour skipped when clocks go forward in March) is an
//! error naming the field, never silently shifted; an ambiguous local time (the hour repeated
//! when clocks go back in October) is read as the earlier instant, summer time (+03:00). So the
//! second pass of that hour, sent from the Kanta side, comes back one hour earlier: the one
//! documented loss of `helsinki-time`. Backward, any offset is accepted and converted to
//! Helsinki wall-clock time.

use std::fmt;
use std::sync::LazyLock;

use jiff::civil::DateTime;
use jiff::tz::{self, TimeZone};
use serde_json::Value;

use crate::identifiers;

/// Epic splits note text into lines of at most this many characters.
pub const NOTE_LINE_MAX_CHARS: usize = 1950;

/// JSON types, as far as the checker needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// The JSON Schema name of the type.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
        }
    }

    /// Parses a JSON Schema `type` name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "array" => Self::Array,
            "object" => Self::Object,
            _ => return None,
        })
    }

    /// `true` when a value of type `self` may stand where `other` is expected.
    #[must_use]
    pub fn fits(self, other: Self) -> bool {
        self == other || (self == Self::Integer && other == Self::Number)
    }
}

/// The transforms of the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Europe/Helsinki `YYYY-MM-DD HH:MM:SS` ⇄ ISO 8601 with offset.
    HelsinkiTime,
    /// A local date-time or ISO date-time → its date. Not invertible.
    DateOf,
    /// Backward: an ISO date-time with offset → its date in Helsinki (forward: as `date-of`).
    HelsinkiDate,
    /// `"Y"`/`"N"` ⇄ `true`/`false`.
    YnBool,
    /// Epic note lines ⇄ one text joined by `\n`.
    NoteLines,
    /// `"4"` ⇄ `4`.
    StringInt,
    /// `123` ⇄ `"123"`.
    IntString,
    /// Y-tunnus ⇄ the organisation's OID root.
    YtunnusOid,
}

/// What went wrong in a transform; the engine adds the field and rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformError(pub String);

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, TransformError> {
    Err(TransformError(message.into()))
}

impl Transform {
    /// Every transform, for listings and the mapping language's schema.
    pub const ALL: [Self; 8] = [
        Self::HelsinkiTime,
        Self::DateOf,
        Self::HelsinkiDate,
        Self::YnBool,
        Self::NoteLines,
        Self::StringInt,
        Self::IntString,
        Self::YtunnusOid,
    ];

    /// Looks a transform up by the name mapping files use.
    #[must_use]
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The name mapping files use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::HelsinkiTime => "helsinki-time",
            Self::DateOf => "date-of",
            Self::HelsinkiDate => "helsinki-date",
            Self::YnBool => "yn-bool",
            Self::NoteLines => "note-lines",
            Self::StringInt => "string-int",
            Self::IntString => "int-string",
            Self::YtunnusOid => "ytunnus-oid",
        }
    }

    /// `true` when [`Self::backward`] undoes [`Self::forward`]; a rule using a transform that is
    /// not must be declared lossy.
    #[must_use]
    pub fn invertible(self) -> bool {
        !matches!(self, Self::DateOf | Self::HelsinkiDate)
    }

    /// (type taken on the Apotti side, type given on the Kanta side).
    #[must_use]
    pub fn types(self) -> (JsonType, JsonType) {
        match self {
            Self::HelsinkiTime | Self::DateOf | Self::HelsinkiDate | Self::YtunnusOid => {
                (JsonType::String, JsonType::String)
            }
            Self::YnBool => (JsonType::String, JsonType::Boolean),
            Self::NoteLines => (JsonType::Array, JsonType::String),
            Self::StringInt => (JsonType::String, JsonType::Integer),
            Self::IntString => (JsonType::Integer, JsonType::String),
        }
    }

    /// Apotti-like value → Kanta-style value.
    ///
    /// # Errors
    /// When the value cannot be converted (wrong type, a local time that does not exist).
    pub fn forward(self, value: &Value) -> Result<Value, TransformError> {
        match self {
            Self::HelsinkiTime => helsinki_to_iso(as_str(value)?).map(Value::String),
            Self::DateOf | Self::HelsinkiDate => {
                let text = as_str(value)?;
                match text.get(..10) {
                    Some(date) if identifiers::is_date(date) => Ok(Value::from(date)),
                    _ => fail("not a date-time"),
                }
            }
            Self::YnBool => match as_str(value)? {
                "Y" => Ok(Value::Bool(true)),
                "N" => Ok(Value::Bool(false)),
                _ => fail("expected \"Y\" or \"N\""),
            },
            Self::NoteLines => {
                let lines = value
                    .as_array()
                    .ok_or_else(|| TransformError("expected an array of lines".into()))?;
                let mut text = String::new();
                for (index, line) in lines.iter().enumerate() {
                    if index > 0 {
                        text.push('\n');
                    }
                    text.push_str(as_str(line)?);
                }
                Ok(Value::String(text))
            }
            Self::StringInt => {
                let text = as_str(value)?;
                text.parse::<i64>()
                    .ok()
                    .filter(|n| n.to_string() == text)
                    .map(Value::from)
                    .ok_or_else(|| TransformError("not an integer written in digits".into()))
            }
            Self::IntString => value
                .as_i64()
                .map(|n| Value::String(n.to_string()))
                .ok_or_else(|| TransformError("expected an integer".into())),
            Self::YtunnusOid => identifiers::custodian_oid_root(as_str(value)?)
                .map(Value::String)
                .ok_or_else(|| TransformError("not a valid Y-tunnus".into())),
        }
    }

    /// Kanta-style value → Apotti-like value.
    ///
    /// # Errors
    /// When the value cannot be converted, or the transform has no way back.
    pub fn backward(self, value: &Value) -> Result<Value, TransformError> {
        match self {
            Self::HelsinkiTime => iso_to_helsinki(as_str(value)?).map(Value::String),
            Self::DateOf => fail("date-of has no way back"),
            Self::HelsinkiDate => {
                let local = iso_to_helsinki(as_str(value)?)?;
                Ok(Value::from(local.get(..10).unwrap_or_default()))
            }
            Self::YnBool => match value.as_bool() {
                Some(true) => Ok(Value::from("Y")),
                Some(false) => Ok(Value::from("N")),
                None => fail("expected true or false"),
            },
            Self::NoteLines => Ok(Value::Array(
                split_note_text(as_str(value)?)
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )),
            Self::StringInt => value
                .as_i64()
                .map(|n| Value::String(n.to_string()))
                .ok_or_else(|| TransformError("expected an integer".into())),
            Self::IntString => {
                let text = as_str(value)?;
                text.parse::<i64>()
                    .ok()
                    .filter(|n| n.to_string() == text)
                    .map(Value::from)
                    .ok_or_else(|| TransformError("not an integer written in digits".into()))
            }
            Self::YtunnusOid => ytunnus_of_oid_root(as_str(value)?)
                .map(Value::String)
                .ok_or_else(|| {
                    TransformError("not an organisation OID root 1.2.246.10.<Y-tunnus>".into())
                }),
        }
    }
}

fn as_str(value: &Value) -> Result<&str, TransformError> {
    value
        .as_str()
        .ok_or_else(|| TransformError("expected a string".into()))
}

/// The zone, looked up in the bundled database once.
fn helsinki() -> Result<TimeZone, TransformError> {
    static ZONE: LazyLock<Result<TimeZone, String>> = LazyLock::new(|| {
        tz::db()
            .get("Europe/Helsinki")
            .map_err(|error| error.to_string())
    });
    ZONE.clone()
        .map_err(|error| TransformError(format!("time zone Europe/Helsinki: {error}")))
}

/// The number written in ASCII digits `bytes` (already checked to be digits).
fn decimal(bytes: &[u8]) -> i16 {
    bytes.iter().fold(0, |number, &digit| {
        number * 10 + i16::from(digit.wrapping_sub(b'0'))
    })
}

/// `2026-03-29 10:00:00` (Helsinki wall clock) → `2026-03-29T10:00:00+03:00`.
///
/// # Errors
/// When the text is not a local date-time, or that wall-clock time does not exist in Helsinki.
pub fn helsinki_to_iso(text: &str) -> Result<String, TransformError> {
    if !identifiers::is_local_date_time(text) {
        return fail("not a local date-time YYYY-MM-DD HH:MM:SS");
    }
    // `is_local_date_time` checked the shape, so the fields are digits at fixed places.
    let bytes = text.as_bytes();
    let field = |at: usize, len: usize| bytes.get(at..at + len).map_or(0, decimal);
    #[expect(clippy::cast_possible_truncation, reason = "two digits")]
    let small = |at: usize| field(at, 2) as i8;
    let civil = DateTime::new(
        field(0, 4),
        small(5),
        small(8),
        small(11),
        small(14),
        small(17),
        0,
    )
    .map_err(|error| TransformError(format!("not a local date-time: {error}")))?;
    let zone = helsinki()?;
    let ambiguous = zone.to_ambiguous_zoned(civil);
    if matches!(ambiguous.offset(), tz::AmbiguousOffset::Gap { .. }) {
        return fail(
            "this wall-clock time does not exist in Europe/Helsinki (the clocks skip that hour \
             when daylight saving time starts)",
        );
    }
    // A fold (the repeated autumn hour) resolves to the earlier instant, summer time.
    let zoned = ambiguous
        .earlier()
        .map_err(|error| TransformError(error.to_string()))?;
    // The wall clock is the one given (no gap), so only the offset is new. An offset with
    // seconds (local mean time before 1921) is left to jiff's formatting.
    let offset = zoned.offset().seconds();
    if offset % 60 == 0 {
        let minutes = offset.unsigned_abs() / 60;
        let sign = if offset < 0 { '-' } else { '+' };
        let (date, time) = (text.get(..10), text.get(11..));
        if let (Some(date), Some(time)) = (date, time) {
            let mut iso = String::with_capacity(25);
            iso.push_str(date);
            iso.push('T');
            iso.push_str(time);
            iso.push(sign);
            push_two_digits(&mut iso, minutes / 60);
            iso.push(':');
            push_two_digits(&mut iso, minutes % 60);
            return Ok(iso);
        }
    }
    Ok(zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
}

/// `2026-03-29T10:00:00+03:00` (any offset) → `2026-03-29 10:00:00` (Helsinki wall clock).
///
/// # Errors
/// When the text is not an ISO 8601 date-time with an offset.
pub fn iso_to_helsinki(text: &str) -> Result<String, TransformError> {
    let timestamp: jiff::Timestamp = text
        .parse()
        .map_err(|_| TransformError("not an ISO 8601 date-time with an offset".into()))?;
    let local = timestamp.to_zoned(helsinki()?).datetime();
    match u16::try_from(local.year()) {
        Ok(year) if year <= 9999 => {
            let mut text = String::with_capacity(19);
            push_two_digits(&mut text, u32::from(year / 100));
            push_two_digits(&mut text, u32::from(year % 100));
            for (separator, field) in [
                ('-', local.month()),
                ('-', local.day()),
                (' ', local.hour()),
                (':', local.minute()),
                (':', local.second()),
            ] {
                text.push(separator);
                push_two_digits(&mut text, u32::from(field.unsigned_abs()));
            }
            Ok(text)
        }
        _ => Ok(local.strftime("%Y-%m-%d %H:%M:%S").to_string()),
    }
}

/// Appends `number` (below 100) as two digits.
fn push_two_digits(text: &mut String, number: u32) {
    for digit in [number / 10 % 10, number % 10] {
        text.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// Splits a text into Epic note lines: on `\n`, and a line longer than
/// [`NOTE_LINE_MAX_CHARS`] characters into pieces of at most that many characters, always on
/// a character boundary (never inside a UTF-8 sequence).
#[must_use]
pub fn split_note_text(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.split('\n') {
        if line.chars().count() <= NOTE_LINE_MAX_CHARS {
            lines.push(line.to_owned());
            continue;
        }
        let mut piece = String::new();
        let mut count = 0;
        for ch in line.chars() {
            if count == NOTE_LINE_MAX_CHARS {
                lines.push(std::mem::take(&mut piece));
                count = 0;
            }
            piece.push(ch);
            count += 1;
        }
        lines.push(piece);
    }
    lines
}

/// `1.2.246.10.2012566` → `0201256-6`: the Y-tunnus whose OID root this is.
#[must_use]
pub fn ytunnus_of_oid_root(oid: &str) -> Option<String> {
    let digits = oid.strip_prefix("1.2.246.10.")?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{digits:0>8}");
    let ytunnus = format!("{}-{}", &padded[..7], &padded[7..]);
    identifiers::is_ytunnus(&ytunnus).then_some(ytunnus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helsinki_time_both_ways_across_daylight_saving() {
        assert_eq!(
            helsinki_to_iso("2026-01-15 09:30:00").as_deref(),
            Ok("2026-01-15T09:30:00+02:00")
        );
        assert_eq!(
            helsinki_to_iso("2026-07-01 09:30:00").as_deref(),
            Ok("2026-07-01T09:30:00+03:00")
        );
        // 2026-03-29: clocks go from 03:00 to 04:00.
        assert_eq!(
            helsinki_to_iso("2026-03-29 02:59:59").as_deref(),
            Ok("2026-03-29T02:59:59+02:00")
        );
        assert!(helsinki_to_iso("2026-03-29 03:30:00").is_err());
        assert_eq!(
            helsinki_to_iso("2026-03-29 04:00:00").as_deref(),
            Ok("2026-03-29T04:00:00+03:00")
        );
        // 2026-10-25: 03:00–04:00 happens twice; the earlier (summer time) is chosen.
        assert_eq!(
            helsinki_to_iso("2026-10-25 03:30:00").as_deref(),
            Ok("2026-10-25T03:30:00+03:00")
        );
        assert_eq!(
            iso_to_helsinki("2026-10-25T03:30:00+02:00").as_deref(),
            Ok("2026-10-25 03:30:00")
        );
        assert_eq!(
            iso_to_helsinki("2026-10-25T00:30:00Z").as_deref(),
            Ok("2026-10-25 03:30:00")
        );
        assert!(iso_to_helsinki("2026-10-25 03:30:00").is_err());
    }

    #[test]
    fn helsinki_time_formats_as_jiff_does() {
        let zone = helsinki().expect("zone");
        let mut instant = jiff::Timestamp::from_second(-5_400_000_000).expect("1798");
        let end = jiff::Timestamp::from_second(7_300_000_000).expect("2201");
        let step = jiff::SignedDuration::from_secs(97 * 3600 + 17 * 60 + 13);
        while instant < end {
            let zoned = instant.to_zoned(zone.clone());
            let local = zoned.strftime("%Y-%m-%d %H:%M:%S").to_string();
            let iso = zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
            assert_eq!(iso_to_helsinki(&iso).as_deref(), Ok(local.as_str()));
            let earlier = zone
                .to_ambiguous_zoned(zoned.datetime())
                .earlier()
                .expect("earlier")
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string();
            assert_eq!(helsinki_to_iso(&local).as_deref(), Ok(earlier.as_str()));
            instant = instant.checked_add(step).expect("in range");
        }
    }

    #[test]
    fn note_lines_split_on_character_boundaries() {
        let long: String = "ä".repeat(NOTE_LINE_MAX_CHARS + 10);
        let lines = split_note_text(&format!("alku\n{long}"));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "alku");
        assert_eq!(lines[1].chars().count(), NOTE_LINE_MAX_CHARS);
        assert_eq!(lines[2].chars().count(), 10);
        let text = Transform::NoteLines
            .forward(&json!(["yksi", "kaksi"]))
            .expect("lines join");
        assert_eq!(text, json!("yksi\nkaksi"));
        assert_eq!(
            Transform::NoteLines.backward(&text),
            Ok(json!(["yksi", "kaksi"]))
        );
    }

    #[test]
    fn small_transforms_invert() {
        for (transform, apotti, kanta) in [
            (Transform::YnBool, json!("Y"), json!(true)),
            (Transform::YnBool, json!("N"), json!(false)),
            (Transform::StringInt, json!("10"), json!(10)),
            (Transform::IntString, json!(123_456_789), json!("123456789")),
            (
                Transform::YtunnusOid,
                json!("0201256-6"),
                json!("1.2.246.10.2012566"),
            ),
        ] {
            assert_eq!(
                transform.forward(&apotti),
                Ok(kanta.clone()),
                "{transform:?}"
            );
            assert_eq!(transform.backward(&kanta), Ok(apotti), "{transform:?}");
        }
        assert!(Transform::StringInt.forward(&json!("07")).is_err());
        assert!(Transform::YnBool.forward(&json!("y")).is_err());
        assert_eq!(
            Transform::DateOf.forward(&json!("2026-03-02 10:00:00")),
            Ok(json!("2026-03-02"))
        );
        assert!(!Transform::DateOf.invertible());
    }
}
