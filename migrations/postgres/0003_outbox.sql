-- The durable outbox: an accepted document gets its row in the same transaction as its audit
-- entry; the delivery worker sends it to the archive, in version order per set.
CREATE TABLE outbox (
    document_oid    TEXT    PRIMARY KEY,
    exchange_id     TEXT    NOT NULL,
    set_oid         TEXT    NOT NULL,
    version         BIGINT NOT NULL,
    status          TEXT    NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_set ON outbox (set_oid, version);
