//! How SQLite keeps a stored document's body: as a zstd frame, not as JSON text.
//!
//! Why: a mapped decision is about 2.6 KB of JSON, so with SQLite's 4 KB pages each document
//! took a page of its own (4.1 KB per document in `dbstat`), and every byte is written twice
//! (the write-ahead log, then the checkpoint). Packed, it is about 1.2 KB, three to a page: the
//! database and the disk traffic per record shrink by about a third. PostgreSQL compresses
//! large values itself (lz4 in TOAST, migration 0004), so there the body stays text.
//!
//! The column keeps its `TEXT` declaration: SQLite stores a BLOB in it as a BLOB, and a body
//! written before packing (text) is read as it is. Reading tells the two apart by the first
//! bytes: a zstd frame starts with its magic number, which is not valid UTF-8 and so cannot
//! start a JSON text.

use std::cell::RefCell;

/// zstd's level 1: the documents are small and alike, so higher levels gain little (a
/// decision packs to 1 194 bytes at level 1, 1 178 at level 3) and cost more time.
const LEVEL: i32 = 1;

/// The first four bytes of every zstd frame (RFC 8878, 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A stored body that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The zstd frame is damaged.
    #[error("stored document: {0}")]
    Frame(#[from] std::io::Error),
    /// What it holds is not UTF-8 text.
    #[error("stored document is not UTF-8 text")]
    NotText,
}

thread_local! {
    /// One compression context per thread, reused: making one costs more than packing a
    /// small document.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

/// `text` as one zstd frame (with its content size, so unpacking allocates once); `None` when
/// zstd cannot have the memory for its context, and then the text is stored as it is.
#[must_use]
pub fn pack(text: &str) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        slot.as_mut()
            .and_then(|compressor| compressor.compress(text.as_bytes()).ok())
    })
}

/// The JSON text of a stored body: unpacked when it is a zstd frame, else taken as it is.
///
/// # Errors
/// A damaged frame, or bytes that are not UTF-8.
pub fn unpack(stored: Vec<u8>) -> Result<String, CodecError> {
    let bytes = if stored.starts_with(&ZSTD_MAGIC) {
        zstd::stream::decode_all(stored.as_slice())?
    } else {
        stored
    };
    String::from_utf8(bytes).map_err(|_| CodecError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision_document() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mappings/fixtures/decision-positive-approved.kanta.json");
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
        crate::json_text::to_string(&value)
    }

    #[test]
    fn a_packed_document_unpacks_to_the_same_text_and_fits_three_to_a_page() {
        let text = decision_document();
        let packed = pack(&text).expect("packs");
        assert!(packed.starts_with(&ZSTD_MAGIC));
        // Three rows of a 4 096-byte page, with their cell headers and the other columns.
        assert!(
            packed.len() < 1_250,
            "{} bytes packed from {}",
            packed.len(),
            text.len()
        );
        assert_eq!(unpack(packed).expect("unpacks"), text);
    }

    #[test]
    fn a_body_stored_as_text_before_packing_is_read_as_it_is() {
        let text = "{\"nimi\":\"Åke Testinen\"}".to_owned();
        assert_eq!(unpack(text.clone().into_bytes()).expect("text"), text);
        assert_eq!(
            unpack(pack("").expect("packs")).expect("an empty text packs and unpacks"),
            ""
        );
    }

    #[test]
    fn a_damaged_frame_or_bytes_that_are_not_text_are_errors_not_panics() {
        let mut packed = pack(&decision_document()).expect("packs");
        let middle = packed.len() / 2;
        packed.truncate(middle);
        assert!(matches!(unpack(packed), Err(CodecError::Frame(_))));
        assert!(matches!(
            unpack(vec![b'{', 0xFF, b'}']),
            Err(CodecError::NotText)
        ));
    }
}
