//! How a stored document's body is kept: as a zstd frame packed with a dictionary of
//! Kanta-style documents, not as JSON text, on both backends.
//!
//! Why: a mapped decision is about 2.6 KB of JSON, so with SQLite's 4 KB pages each document
//! took a page of its own (4.1 KB per document in `dbstat`), and every byte is written twice
//! (the write-ahead log, then the checkpoint). Small documents pack poorly on their own (a
//! decision to 1.2 KB, at zstd's slowest on small inputs); with a dictionary trained on
//! documents of the same profiles (`deploy/train-document-dictionary.sh`) it packs to about
//! 0.5 KB, several times faster. PostgreSQL compressed the text itself (lz4 in TOAST, migration
//! 0004) to about 1.6 KB, on the writer's one connection, where inserting a batch's documents
//! was the longest statement of its write; packing runs beside the mapping, on every core
//! (migration 0006).
//!
//! On SQLite the column keeps its `TEXT` declaration: SQLite stores a BLOB in it as a BLOB, and
//! a body written before packing (text) is read as it is. Reading tells the two apart by the
//! first bytes: a zstd frame starts with its magic number, which is not valid UTF-8 and so
//! cannot start a JSON text. On PostgreSQL a packed body goes in a `bytea` column of its own
//! and rows written before keep their text. A frame names its dictionary by id, so a later
//! dictionary gets a new id and the earlier ones stay here, to read what they packed.

use std::cell::RefCell;
use std::sync::LazyLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// zstd's level 1: with the dictionary, higher levels gain little on these documents.
const LEVEL: i32 = 1;

/// The first four bytes of every zstd frame (RFC 8878, 3.1.1).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Every dictionary documents were ever packed with, by the id their frames carry; the last
/// packs new documents.
const DICTIONARIES: &[(u32, &[u8])] = &[(
    32_769,
    include_bytes!("document_codec/kanta-documents-32769.zdict"),
)];

/// The largest body unpacked: the gateway's request body limit is far below it, so a frame
/// that claims more is damaged, and is refused before anything is allocated for it.
const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

static PACKING: LazyLock<Option<EncoderDictionary<'static>>> = LazyLock::new(|| {
    DICTIONARIES
        .last()
        .map(|(_, bytes)| EncoderDictionary::copy(bytes, LEVEL))
});

static UNPACKING: LazyLock<Vec<(u32, DecoderDictionary<'static>)>> = LazyLock::new(|| {
    DICTIONARIES
        .iter()
        .map(|(id, bytes)| (*id, DecoderDictionary::copy(bytes)))
        .collect()
});

/// A stored body that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The zstd frame is damaged.
    #[error("stored document: {0}")]
    Frame(#[from] std::io::Error),
    /// The frame was packed with a dictionary this build does not have.
    #[error("stored document packed with unknown dictionary {0}")]
    UnknownDictionary(u32),
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

/// `text` as one zstd frame (with its content size and dictionary id); `None` when zstd
/// cannot have the memory for its context, and then the text is stored as it is.
#[must_use]
pub fn pack(text: &str) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = match PACKING.as_ref() {
                Some(dictionary) => zstd::bulk::Compressor::with_prepared_dictionary(dictionary),
                None => zstd::bulk::Compressor::new(LEVEL),
            }
            .ok();
        }
        slot.as_mut()
            .and_then(|compressor| compressor.compress(text.as_bytes()).ok())
    })
}

/// The JSON text of a stored body: unpacked when it is a zstd frame, else taken as it is.
///
/// # Errors
/// A damaged frame or one packed with an unknown dictionary, or bytes that are not UTF-8.
pub fn unpack(stored: Vec<u8>) -> Result<String, CodecError> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return String::from_utf8(stored).map_err(|_| CodecError::NotText);
    }
    let damaged = || CodecError::Frame(std::io::Error::other("damaged frame header"));
    let size = zstd::zstd_safe::get_frame_content_size(&stored)
        .map_err(|_| damaged())?
        .filter(|size| *size <= MAX_UNPACKED)
        .ok_or_else(damaged)?;
    let capacity = usize::try_from(size).map_err(|_| damaged())?;
    let mut decompressor = match zstd::zstd_safe::get_dict_id_from_frame(&stored) {
        None => zstd::bulk::Decompressor::new()?,
        Some(id) => {
            let id = id.get();
            let dictionary = UNPACKING
                .iter()
                .find(|(known, _)| *known == id)
                .map(|(_, dictionary)| dictionary)
                .ok_or(CodecError::UnknownDictionary(id))?;
            zstd::bulk::Decompressor::with_prepared_dictionary(dictionary)?
        }
    };
    let bytes = decompressor.decompress(&stored, capacity)?;
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
    fn a_packed_document_names_its_dictionary_and_unpacks_to_the_same_text() {
        // The load benchmark's decision, which the dictionary was not trained on.
        let text = decision_document();
        let packed = pack(&text).expect("packs");
        assert!(packed.starts_with(&ZSTD_MAGIC));
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&packed).map(std::num::NonZeroU32::get),
            Some(32_769)
        );
        // Six or more to a 4 096-byte page, with their cell headers and the other columns.
        assert!(
            packed.len() < 600,
            "{} bytes packed from {}",
            packed.len(),
            text.len()
        );
        assert_eq!(unpack(packed).expect("unpacks"), text);
    }

    #[test]
    fn a_body_stored_as_text_or_packed_without_a_dictionary_is_read_too() {
        let text = "{\"nimi\":\"Åke Testinen\"}".to_owned();
        assert_eq!(unpack(text.clone().into_bytes()).expect("text"), text);
        let plain = zstd::bulk::compress(text.as_bytes(), 1).expect("plain frame");
        assert_eq!(unpack(plain).expect("no dictionary"), text);
        assert_eq!(
            unpack(pack("").expect("packs")).expect("an empty text packs and unpacks"),
            ""
        );
    }

    #[test]
    fn a_damaged_frame_an_unknown_dictionary_or_bytes_that_are_not_text_are_errors() {
        let mut packed = pack(&decision_document()).expect("packs");
        let middle = packed.len() / 2;
        packed.truncate(middle);
        assert!(matches!(unpack(packed), Err(CodecError::Frame(_))));

        // The same dictionary under another id (bytes 4..8 of a zstd dictionary).
        let mut other = DICTIONARIES[0].1.to_vec();
        other[4..8].copy_from_slice(&40_000u32.to_le_bytes());
        let dictionary = EncoderDictionary::copy(&other, LEVEL);
        let mut compressor =
            zstd::bulk::Compressor::with_prepared_dictionary(&dictionary).expect("compressor");
        let foreign = compressor.compress(b"{}").expect("packs");
        assert!(matches!(
            unpack(foreign),
            Err(CodecError::UnknownDictionary(40_000))
        ));

        assert!(matches!(
            unpack(vec![b'{', 0xFF, b'}']),
            Err(CodecError::NotText)
        ));
    }
}
