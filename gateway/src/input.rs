//! Reading records from files, standard input or request bodies, one at a time.
//!
//! Input comes as a single JSON record, a batch envelope `{EXPORT_ID, EXPORT_DTTM, RECORDS}`, or
//! NDJSON. Whatever the size, memory stays flat: NDJSON is read line by line into one reused
//! buffer with a size limit, and a JSON document is parsed as a stream so that the records of
//! an envelope are handed over one by one as they are parsed. Broken input (malformed JSON,
//! invalid UTF-8, a line over the limit, nesting deeper than 128 levels) becomes an [`Issue`] for
//! that record, and the records after it in an NDJSON stream are still read. Only a failure of
//! the underlying reader is an error of the whole call.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::json_parse::{self, ParsedValue};
use crate::outcome::{Issue, IssueCode};

/// Default limit for one record (one NDJSON line, or one record of a document): 16 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// The key of the records array in a batch envelope.
pub const RECORDS_KEY: &str = "RECORDS";

/// How to read the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputMode {
    /// By file name (`.ndjson`/`.jsonl`, `.json`), else by the first line: a complete JSON value
    /// on the first line means NDJSON.
    #[default]
    Auto,
    /// One JSON document: a record or a batch envelope.
    Json,
    /// One record a line.
    Ndjson,
}

/// Where a record was found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line of an NDJSON record.
    pub line: Option<u64>,
    /// 0-based index of the record in the input.
    pub index: u64,
    /// The record's pointer within its document (`/RECORDS/3` inside an envelope).
    pub within: String,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.within.is_empty()) {
            (Some(line), _) => write!(f, "line {line}"),
            (None, false) => write!(f, "record {}", self.within),
            (None, true) => write!(f, "document"),
        }
    }
}

/// One thing read from the input.
#[derive(Debug)]
pub enum Item {
    /// A record, parsed.
    Record(Value),
    /// The fields of a batch envelope, `RECORDS` replaced by a summary (its records were
    /// handed over one by one before this).
    Envelope(Value),
    /// Input that could not be read as a record.
    Broken(Issue),
}

/// Reads `reader` and hands every record to `sink`.
///
/// `name` (a file name, if any) helps [`InputMode::Auto`] decide.
///
/// # Errors
/// Only when the underlying reader fails; broken content is reported through `sink`.
pub fn read_records<R: Read>(
    reader: R,
    mode: InputMode,
    name: Option<&str>,
    max_record_bytes: usize,
    sink: &mut dyn FnMut(Position, Item),
) -> io::Result<()> {
    let counter = Rc::new(ByteCounter::default());
    let counting = CountingReader {
        inner: reader,
        counter: Rc::clone(&counter),
        limit: max_record_bytes as u64,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, counting);
    let by_name = match (mode, name) {
        (InputMode::Auto, Some(name)) if name.ends_with(".ndjson") || name.ends_with(".jsonl") => {
            InputMode::Ndjson
        }
        (InputMode::Auto, Some(name)) if name.ends_with(".json") => InputMode::Json,
        (mode, _) => mode,
    };
    match by_name {
        InputMode::Ndjson => return read_ndjson(&mut reader, None, max_record_bytes, sink),
        InputMode::Json => {
            if only_whitespace_left(&mut reader)? {
                sink(Position::default(), Item::Broken(empty_input()));
                return Ok(());
            }
            counter.enforce.set(true);
            return read_document(reader, &counter, max_record_bytes, sink);
        }
        InputMode::Auto => {}
    }

    // Sniff: read up to the first non-blank line, keeping what was read.
    let mut prefix = Vec::new();
    let mut line = Vec::new();
    let first = loop {
        line.clear();
        let read = read_bounded_line(&mut reader, &mut line, max_record_bytes)?;
        if read.bytes == 0 {
            break None;
        }
        if prefix.is_empty() && line.starts_with(b"\xEF\xBB\xBF") {
            line.drain(..3);
        }
        if !read.overflowed && line.iter().all(u8::is_ascii_whitespace) {
            prefix.extend_from_slice(&line);
            prefix.push(b'\n');
            continue;
        }
        break Some(read);
    };
    let Some(first) = first else {
        sink(Position::default(), Item::Broken(empty_input()));
        return Ok(());
    };
    let ndjson = first.overflowed
        || match serde_json::from_slice::<IgnoredAny>(&line) {
            Ok(_) => true,
            Err(error) => !error.is_eof(),
        };
    if ndjson {
        let blank_lines = prefix.iter().filter(|&&b| b == b'\n').count() as u64;
        let first_line = (line, first.overflowed, blank_lines + 1);
        return read_ndjson(&mut reader, Some(first_line), max_record_bytes, sink);
    }
    prefix.extend_from_slice(&line);
    if !first.overflowed {
        prefix.push(b'\n');
    }
    counter.enforce.set(true);
    counter.mark();
    let chained = io::Cursor::new(prefix).chain(reader);
    read_document(chained, &counter, max_record_bytes, sink)
}

fn empty_input() -> Issue {
    Issue::error(
        IssueCode::Structure,
        "input.empty",
        "",
        "the input is empty: it holds no record",
    )
}

/// Skips leading white space (and a UTF-8 byte order mark); `true` when nothing else is left.
fn only_whitespace_left<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    let mut first = true;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(true);
        }
        let mut skip = 0;
        if first && available.starts_with(b"\xEF\xBB\xBF") {
            skip = 3;
        }
        first = false;
        let rest = &available[skip..];
        let blank = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let done = blank < rest.len();
        reader.consume(skip + blank);
        if done {
            return Ok(false);
        }
    }
}

/// Reads every input in turn (`-`, or no input at all, is standard input) and hands each item
/// to `sink` with the input's name. An input that cannot be opened or read does not stop the
/// others; the returned list says which, and why. An error from `sink` (a failed write) stops
/// the run and is returned.
///
/// # Errors
/// What `sink` returned.
pub fn for_each_input(
    inputs: &[String],
    mode: InputMode,
    max_record_bytes: usize,
    sink: &mut dyn FnMut(&str, Position, Item) -> io::Result<()>,
) -> io::Result<Vec<String>> {
    let stdin = ["-".to_owned()];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let mut unreadable = Vec::new();
    for name in inputs {
        let reader: Box<dyn Read> = if name == "-" {
            Box::new(io::stdin().lock())
        } else {
            match std::fs::File::open(name) {
                Ok(file) => Box::new(file),
                Err(error) => {
                    unreadable.push(format!("{name}: cannot open: {error}"));
                    continue;
                }
            }
        };
        let hint = (name != "-").then_some(name.as_str());
        let mut failure = None;
        let result = read_records(
            reader,
            mode,
            hint,
            max_record_bytes,
            &mut |position, item| {
                if failure.is_none()
                    && let Err(error) = sink(name, position, item)
                {
                    failure = Some(error);
                }
            },
        );
        if let Some(error) = failure {
            return Err(error);
        }
        if let Err(error) = result {
            unreadable.push(format!("{name}: cannot read: {error}"));
        }
    }
    Ok(unreadable)
}

/// Shared count of bytes read, and where the current record started.
#[derive(Debug, Default)]
struct ByteCounter {
    read: Cell<u64>,
    record_start: Cell<u64>,
    /// Only a JSON document is limited here; NDJSON lines are bounded by the line reader.
    enforce: Cell<bool>,
    exceeded: Cell<bool>,
}

impl ByteCounter {
    fn mark(&self) {
        self.record_start.set(self.read.get());
    }
}

/// Counts bytes and refuses to read on when one record grows past the limit, so that a huge
/// record in a JSON document cannot take all memory.
struct CountingReader<R> {
    inner: R,
    counter: Rc<ByteCounter>,
    limit: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let counter = &self.counter;
        let total = counter.read.get() + read as u64;
        counter.read.set(total);
        if counter.enforce.get() && total - counter.record_start.get() > self.limit {
            counter.exceeded.set(true);
            return Err(io::Error::other("record larger than the limit"));
        }
        Ok(read)
    }
}

/// What [`read_bounded_line`] read.
#[derive(Debug, Clone, Copy)]
struct LineRead {
    /// Bytes consumed, newline included; 0 at end of input.
    bytes: usize,
    /// The line was longer than the limit; `line` holds only its start.
    overflowed: bool,
}

/// Reads one line (without its `\n`) into `line`, keeping at most `max` bytes of it and
/// consuming the rest, so that memory stays bounded whatever the line's length.
fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    let mut result = LineRead {
        bytes: 0,
        overflowed: false,
    };
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(result);
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', available) {
            Some(at) => (&available[..at], at + 1, true),
            None => (available, available.len(), false),
        };
        if !result.overflowed {
            if line.len() + chunk.len() <= max {
                line.extend_from_slice(chunk);
            } else {
                result.overflowed = true;
                line.clear();
                line.shrink_to(4096);
            }
        }
        result.bytes += used;
        reader.consume(used);
        if done {
            return Ok(result);
        }
    }
}

fn read_ndjson<R: BufRead>(
    reader: &mut R,
    first: Option<(Vec<u8>, bool, u64)>,
    max: usize,
    sink: &mut dyn FnMut(Position, Item),
) -> io::Result<()> {
    let mut index = 0u64;
    let mut line_no;
    let mut line;
    match first {
        Some((first_line, overflowed, number)) => {
            line_no = number;
            line = first_line;
            if let Some(item) = parse_line(&line, overflowed, max) {
                sink(position(line_no, index), item);
                index += 1;
            }
        }
        None => {
            line_no = 0;
            line = Vec::new();
        }
    }
    loop {
        line.clear();
        let read = read_bounded_line(reader, &mut line, max)?;
        if read.bytes == 0 {
            break;
        }
        line_no += 1;
        if let Some(item) = parse_line(&line, read.overflowed, max) {
            sink(position(line_no, index), item);
            index += 1;
        }
    }
    if index == 0 {
        sink(Position::default(), Item::Broken(empty_input()));
    }
    Ok(())
}

fn position(line: u64, index: u64) -> Position {
    Position {
        line: Some(line),
        index,
        within: String::new(),
    }
}

/// One NDJSON line as an item; `None` for a blank line. `overflowed` says the line was longer
/// than `max` (and only its start was kept).
#[must_use]
pub fn parse_line(line: &[u8], overflowed: bool, max: usize) -> Option<Item> {
    if overflowed {
        return Some(Item::Broken(Issue::error(
            IssueCode::TooLong,
            "input.record-too-large",
            "",
            format!("the line is longer than the limit of {max} bytes; it was skipped"),
        )));
    }
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    // Checked as text once, the line is parsed from `str`: parsed from bytes, `serde_json`
    // would check every string again on its own (a twentieth of a decision's whole path). The
    // check is SIMD (`simdutf8`: a quarter of std's instructions on a decision); std's runs
    // only on a line that fails it, to find the column to report.
    let text = match simdutf8::basic::from_utf8(trimmed) {
        Ok(text) => text,
        Err(_) => {
            let valid_up_to = std::str::from_utf8(trimmed)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return Some(Item::Broken(Issue::error(
                IssueCode::Structure,
                "input.utf8",
                "",
                format!(
                    "the line is not valid UTF-8 (invalid byte at column {})",
                    valid_up_to + 1
                ),
            )));
        }
    };
    Some(match json_parse::from_str(text) {
        Ok(value) => Item::Record(value),
        Err(error) => Item::Broken(json_error_issue(&error, false)),
    })
}

/// An issue for a JSON parse error, with line and column.
#[must_use]
pub fn json_error_issue(error: &serde_json::Error, with_line: bool) -> Issue {
    let text = error.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(head, _)| head);
    let place = if with_line {
        format!("line {}, column {}", error.line(), error.column())
    } else {
        format!("column {}", error.column())
    };
    if what.contains("recursion limit exceeded") {
        return Issue::error(
            IssueCode::TooLong,
            "input.too-deep",
            "",
            format!("the JSON is nested more than 128 levels deep ({place})"),
        );
    }
    if error.is_io() {
        return Issue::error(IssueCode::TooLong, "input.record-too-large", "", what);
    }
    Issue::error(
        IssueCode::Structure,
        "input.json-syntax",
        "",
        format!("not valid JSON: {what} ({place})"),
    )
}

/// A JSON document: one record, or an envelope whose records are handed over as parsed.
fn read_document<R: Read>(
    reader: R,
    counter: &Rc<ByteCounter>,
    max_record_bytes: usize,
    sink: &mut dyn FnMut(Position, Item),
) -> io::Result<()> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut handed = 0u64;
    let seed = TopLevel {
        sink: &mut *sink,
        counter,
        handed: &mut handed,
    };
    let outcome = seed
        .deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top));
    match outcome {
        Ok(Top::Record(map)) => sink(Position::default(), Item::Record(Value::Object(map))),
        Ok(Top::Envelope(map)) => sink(Position::default(), Item::Envelope(Value::Object(map))),
        Ok(Top::Other(kind)) => sink(
            Position::default(),
            Item::Broken(Issue::error(
                IssueCode::Structure,
                "input.not-an-object",
                "",
                format!(
                    "expected a JSON object (a message, a document or a batch envelope), found {kind}"
                ),
            )),
        ),
        Err(error) => {
            if error.is_io() && !counter.exceeded.get() {
                return Err(io::Error::other(error.to_string()));
            }
            let mut issue = json_error_issue(&error, true);
            if counter.exceeded.get() {
                issue = Issue::error(
                    IssueCode::TooLong,
                    "input.record-too-large",
                    "",
                    format!(
                        "a record is larger than the limit of {max_record_bytes} bytes; \
                         reading of this document stopped"
                    ),
                );
            }
            let within = if handed > 0 {
                format!("/{RECORDS_KEY}/{handed}")
            } else {
                String::new()
            };
            sink(
                Position {
                    line: None,
                    index: handed,
                    within,
                },
                Item::Broken(issue),
            );
        }
    }
    Ok(())
}

enum Top {
    Record(Map<String, Value>),
    Envelope(Map<String, Value>),
    Other(&'static str),
}

struct TopLevel<'a, 'b> {
    sink: &'a mut dyn FnMut(Position, Item),
    counter: &'b Rc<ByteCounter>,
    handed: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_> {
    type Value = Top;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Top, D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! other_kind {
    ($($method:ident($ty:ty) => $kind:literal),* $(,)?) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok(Top::Other($kind))
        })*
    };
}

impl<'de> Visitor<'de> for TopLevel<'_, '_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    other_kind! {
        visit_bool(bool) => "a boolean",
        visit_i64(i64) => "a number",
        visit_u64(u64) => "a number",
        visit_f64(f64) => "a number",
        visit_str(&str) => "a string",
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        // Collected, then built at once, as [`json_parse`] builds every other object.
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut envelope = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == RECORDS_KEY {
                envelope = true;
                let summary = map.next_value_seed(Records {
                    sink: &mut *self.sink,
                    counter: self.counter,
                    handed: &mut *self.handed,
                })?;
                members.push((key, summary));
            } else {
                let ParsedValue(value) = map.next_value()?;
                members.push((key, value));
            }
        }
        let fields: Map<String, Value> = members.into_iter().collect();
        Ok(if envelope {
            Top::Envelope(fields)
        } else {
            Top::Record(fields)
        })
    }
}

/// The `RECORDS` array of an envelope: each record goes to the sink as soon as it is parsed.
/// Returns a stand-in for the array (at most one empty object, so that the envelope's own
/// `minItems` still sees whether it was empty), or the value itself when it is not an array.
struct Records<'a, 'b> {
    sink: &'a mut dyn FnMut(Position, Item),
    counter: &'b Rc<ByteCounter>,
    handed: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Object(Map::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let start = *self.handed;
        loop {
            self.counter.mark();
            let Some(ParsedValue(record)) = seq.next_element::<ParsedValue>()? else {
                break;
            };
            let index = *self.handed;
            (self.sink)(
                Position {
                    line: None,
                    index,
                    within: format!("/{RECORDS_KEY}/{}", index - start),
                },
                Item::Record(record),
            );
            *self.handed += 1;
        }
        let count = *self.handed - start;
        Ok(Value::Array(if count > 0 {
            vec![Value::Object(Map::new())]
        } else {
            Vec::new()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
        for (line, column) in [
            (&b"{\"a\":\"\xff\"}"[..], 7),
            (&b"  {\"\xc3\xa4\":\"\xe2\x82\"}"[..], 8),
            (&b"\xc3"[..], 1),
        ] {
            let Some(Item::Broken(issue)) = parse_line(line, false, usize::MAX) else {
                panic!("broken: {line:?}");
            };
            assert_eq!(issue.rule, "input.utf8");
            assert!(
                issue.message.contains(&format!("at column {column})")),
                "{}",
                issue.message
            );
        }
        let Some(Item::Record(value)) = parse_line("{\"ä\":\"€\"}".as_bytes(), false, 10) else {
            panic!("a record");
        };
        assert_eq!(value["ä"], "€");
    }
}
