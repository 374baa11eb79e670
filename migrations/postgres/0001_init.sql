-- The gateway's store: identifier crosswalk, mapped documents, OID sequences and the
-- hash-chained audit log. PostgreSQL flavour; the SQLite migration has the same shape.

CREATE TABLE crosswalk (
    source_system   TEXT    NOT NULL,
    record_type     TEXT    NOT NULL,
    source_id       TEXT    NOT NULL,
    set_oid         TEXT    NOT NULL UNIQUE,
    latest_version  BIGINT  NOT NULL,
    latest_document TEXT    NOT NULL,
    latest_revision BIGINT  NOT NULL,
    content_digest  TEXT    NOT NULL,
    exchange_id     TEXT    NOT NULL,
    PRIMARY KEY (source_system, record_type, source_id)
);

CREATE TABLE case_crosswalk (
    source_system TEXT NOT NULL,
    case_id       TEXT NOT NULL,
    case_oid      TEXT NOT NULL UNIQUE,
    PRIMARY KEY (source_system, case_id)
);

CREATE TABLE oid_sequence (
    root TEXT    NOT NULL,
    arc  BIGINT  NOT NULL,
    year BIGINT  NOT NULL,
    next BIGINT  NOT NULL,
    PRIMARY KEY (root, arc, year)
);

CREATE TABLE documents (
    document_oid TEXT    PRIMARY KEY,
    set_oid      TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    exchange_id  TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    UNIQUE (set_oid, version)
);

CREATE TABLE audit_log (
    seq          BIGINT  PRIMARY KEY,
    exchange_id  TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    entry        TEXT    NOT NULL,
    prev_hash    TEXT    NOT NULL,
    entry_hash   TEXT    NOT NULL,
    client_hash  TEXT,
    actor        TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    record_type  TEXT,
    direction    TEXT    NOT NULL
);
CREATE INDEX audit_by_client ON audit_log (client_hash, seq);
CREATE INDEX audit_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_by_time ON audit_log (recorded_at, seq);
CREATE INDEX audit_by_exchange ON audit_log (exchange_id);

-- The head of the chain: every append updates this one row first, which serialises writers.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, 'genesis');
