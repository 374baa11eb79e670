-- Fewer B-tree entries per stored record. A stream of new records wrote 16 per record; the
-- crosswalk and outbox halves of those were each as slow to write as the documents
-- (`RUST_LOG=gateway::writer=debug`). Same columns, same constraints, same lookups:
-- - the crosswalk and case tables are stored in their primary key (WITHOUT ROWID), and the
--   key leads with the id the writer looks up, so the separate by-id indexes go;
-- - the outbox is stored in its primary key, the document OID.
-- The documents keep their rowid: a row of 1–5 KB is better off in a table B-tree.

CREATE TABLE crosswalk_new (
    source_system   TEXT    NOT NULL,
    record_type     TEXT    NOT NULL,
    source_id       TEXT    NOT NULL,
    set_oid         TEXT    NOT NULL UNIQUE,
    latest_version  INTEGER NOT NULL,
    latest_document TEXT    NOT NULL,
    latest_revision INTEGER NOT NULL,
    content_digest  TEXT    NOT NULL,
    exchange_id     TEXT    NOT NULL,
    PRIMARY KEY (source_id, source_system, record_type)
) WITHOUT ROWID;
INSERT INTO crosswalk_new
    SELECT source_system, record_type, source_id, set_oid, latest_version, latest_document,
           latest_revision, content_digest, exchange_id
    FROM crosswalk;
DROP TABLE crosswalk;
ALTER TABLE crosswalk_new RENAME TO crosswalk;

CREATE TABLE case_crosswalk_new (
    source_system TEXT NOT NULL,
    case_id       TEXT NOT NULL,
    case_oid      TEXT NOT NULL UNIQUE,
    PRIMARY KEY (case_id, source_system)
) WITHOUT ROWID;
INSERT INTO case_crosswalk_new SELECT source_system, case_id, case_oid FROM case_crosswalk;
DROP TABLE case_crosswalk;
ALTER TABLE case_crosswalk_new RENAME TO case_crosswalk;

CREATE TABLE outbox_new (
    document_oid    TEXT    PRIMARY KEY,
    exchange_id     TEXT    NOT NULL,
    set_oid         TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT
) WITHOUT ROWID;
INSERT INTO outbox_new
    SELECT document_oid, exchange_id, set_oid, version, status, attempts, next_attempt_at,
           last_error
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_set ON outbox (set_oid, version);
