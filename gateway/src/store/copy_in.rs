//! How the writer appends a batch's rows on PostgreSQL: binary `COPY … FROM STDIN`, one per
//! table, on a native connection (sqlx's `Any` driver has no `COPY`).
//!
//! Why not multi-row `INSERT`s, as on SQLite: a batch of 1 024 exchanges bound up to 11 264
//! parameters per statement, and PostgreSQL sets an expression up for every one of them as its
//! `VALUES` scan reaches the row, on the writer's one connection while the next batch waits.
//! `COPY` hands each row's fields to the table as they are; on the client's side a field is
//! written once into one buffer, instead of being copied into the `Any` driver's arguments and
//! again into PostgreSQL's. The binary format needs no escaping: a row is its field count, and
//! each field its length and bytes (text as UTF-8, `bigint` as eight bytes big-endian, `bytea`
//! as it is), or the length -1 for NULL.
//!
//! `COPY` only appends. Rows that update (crosswalk keys already stored, OID sequences, the
//! chain head) stay statements, in the same transaction.

use sqlx::PgConnection;

use super::{DocumentRow, EntryRow, KeyedCrosswalk, StoreError};

/// The binary format's fixed header: signature, flags (none) and header extension length (0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows in `COPY`'s binary format, built in memory and sent in one go.
pub(super) struct CopyRows {
    data: Vec<u8>,
    columns: i16,
    rows: u64,
    /// The length of a field that does not fit the format's 32-bit length, if any.
    too_long: Option<usize>,
}

impl CopyRows {
    /// Rows of `columns` fields each; `capacity` bytes reserved.
    pub(super) fn new(columns: i16, capacity: usize) -> Self {
        let mut data = Vec::with_capacity(HEADER.len() + capacity + 2);
        data.extend_from_slice(HEADER);
        Self {
            data,
            columns,
            rows: 0,
            too_long: None,
        }
    }

    /// Starts a row: its fields follow, exactly `columns` of them.
    pub(super) fn row(&mut self) -> &mut Self {
        self.rows += 1;
        self.data.extend_from_slice(&self.columns.to_be_bytes());
        self
    }

    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub(super) fn optional_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub(super) fn bigint(&mut self, value: i64) -> &mut Self {
        self.data.extend_from_slice(&8i32.to_be_bytes());
        self.data.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(super) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        if let Ok(length) = i32::try_from(value.len()) {
            self.data.extend_from_slice(&length.to_be_bytes());
            self.data.extend_from_slice(value);
        } else {
            self.too_long = Some(value.len());
            self.null();
        }
        self
    }

    pub(super) fn null(&mut self) -> &mut Self {
        self.data.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// The bytes to send: the rows and the trailer.
    fn finish(mut self) -> Result<Vec<u8>, StoreError> {
        if let Some(length) = self.too_long {
            return Err(StoreError::FieldTooLong(length));
        }
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        Ok(self.data)
    }
}

/// Appends `rows` to `target` (a table and its column list) and checks that PostgreSQL
/// took every one.
pub(super) async fn copy_in(
    conn: &mut PgConnection,
    target: &str,
    rows: CopyRows,
) -> Result<(), StoreError> {
    let expected = rows.rows;
    if expected == 0 {
        return Ok(());
    }
    let data = rows.finish()?;
    let mut copy = conn
        .copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
        .await?;
    copy.send(data).await?;
    let copied = copy.finish().await?;
    if copied == expected {
        Ok(())
    } else {
        Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "COPY {target} took {copied} rows of {expected}"
        ))))
    }
}

pub(super) async fn documents(
    conn: &mut PgConnection,
    rows: &[DocumentRow],
) -> Result<(), StoreError> {
    let bytes: usize = rows
        .iter()
        .map(|row| 120 + row.packed.as_ref().map_or(row.body.len(), Vec::len))
        .sum();
    let mut copy = CopyRows::new(6, bytes);
    for row in rows {
        copy.row()
            .text(&row.document_oid)
            .text(&row.set_oid)
            .bigint(row.version)
            .text(&row.exchange_id);
        match &row.packed {
            Some(packed) => copy.null().bytes(packed),
            None => copy.text(&row.body).null(),
        };
    }
    copy_in(
        conn,
        "documents (document_oid, set_oid, version, exchange_id, body, packed)",
        copy,
    )
    .await
}

/// A delivery due now for every document.
pub(super) async fn outbox(
    conn: &mut PgConnection,
    rows: &[DocumentRow],
    now: &str,
) -> Result<(), StoreError> {
    let mut copy = CopyRows::new(7, rows.len() * 160);
    for row in rows {
        copy.row()
            .text(&row.document_oid)
            .text(&row.exchange_id)
            .text(&row.set_oid)
            .bigint(row.version)
            .text(now)
            .text("pending")
            .bigint(0);
    }
    copy_in(
        conn,
        "outbox (document_oid, exchange_id, set_oid, version, next_attempt_at, status, attempts)",
        copy,
    )
    .await
}

/// Crosswalk rows of keys not stored yet: a key that is taken fails the batch.
pub(super) async fn new_crosswalk(
    conn: &mut PgConnection,
    rows: &[&KeyedCrosswalk],
) -> Result<(), StoreError> {
    let mut copy = CopyRows::new(9, rows.len() * 300);
    for keyed in rows {
        let row = &keyed.row;
        copy.row()
            .text(&keyed.source_system)
            .text(&keyed.record_type)
            .text(&keyed.source_id)
            .text(&row.set_oid)
            .bigint(row.latest_version)
            .text(&row.latest_document)
            .bigint(row.latest_revision)
            .text(&row.content_digest)
            .text(&row.exchange_id);
    }
    copy_in(
        conn,
        "crosswalk (source_system, record_type, source_id, set_oid, latest_version, \
         latest_document, latest_revision, content_digest, exchange_id)",
        copy,
    )
    .await
}

pub(super) async fn cases(
    conn: &mut PgConnection,
    rows: &[(String, String, String)],
) -> Result<(), StoreError> {
    let mut copy = CopyRows::new(3, rows.len() * 100);
    for (system, id, oid) in rows {
        copy.row().text(system).text(id).text(oid);
    }
    copy_in(
        conn,
        "case_crosswalk (source_system, case_id, case_oid)",
        copy,
    )
    .await
}

pub(super) async fn entries(conn: &mut PgConnection, rows: &[EntryRow]) -> Result<(), StoreError> {
    let bytes: usize = rows.iter().map(|row| 400 + row.entry.len()).sum();
    let mut copy = CopyRows::new(11, bytes);
    for row in rows {
        copy.row()
            .bigint(row.seq)
            .text(&row.exchange_id)
            .text(&row.recorded_at)
            .text(&row.entry)
            .text(&row.prev_hash)
            .text(&row.entry_hash)
            .optional_text(row.client_hash.as_deref())
            .text(&row.actor)
            .text(&row.outcome)
            .optional_text(row.record_type.as_deref())
            .text(&row.direction);
    }
    copy_in(
        conn,
        "audit_log (seq, exchange_id, recorded_at, entry, prev_hash, entry_hash, client_hash, \
         actor, outcome, record_type, direction)",
        copy,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_laid_out_as_postgresql_reads_them() {
        let mut copy = CopyRows::new(3, 0);
        copy.row().bigint(-2).text("å").null();
        let data = copy.finish().expect("fits");
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend_from_slice(&[0, 3]); // fields in the row
        expected.extend_from_slice(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0xc3, 0xa5]); // "å", UTF-8
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // NULL
        expected.extend_from_slice(&[0xff, 0xff]); // trailer
        assert_eq!(data, expected);
    }
}
