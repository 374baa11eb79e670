-- Every indexed text column compares byte by byte (collation "C").
--
-- Why: an index on text under the database's default collation (C.UTF-8 here, a language's
-- collation elsewhere) depends on the operating system's C library: when its collation rules
-- change (glibc 2.28 changed most of them), such an index is silently misordered until it is
-- rebuilt. And each comparison a B-tree makes on insert goes through the locale (`varstr_cmp`,
-- `strcoll`); a streamed record inserts twelve index entries, most of them on text, and perf
-- showed about a twentieth of the server's CPU in those calls (`cargo bench --bench load`,
-- README, Speed). Under "C" a comparison is a `memcmp`.
--
-- What it changes: nothing a query sees. Equality is the same under any deterministic
-- collation, and the only text ordered or compared by range is ASCII (OIDs, RFC 3339 UTC
-- timestamps), whose byte order is its order. Only the indexes are rebuilt, not the tables.
-- SQLite compares text byte by byte already. `gateway/tests/migrations.rs` checks that every
-- indexed text column stays this way.
ALTER TABLE crosswalk
    ALTER COLUMN source_system TYPE TEXT COLLATE "C",
    ALTER COLUMN record_type TYPE TEXT COLLATE "C",
    ALTER COLUMN source_id TYPE TEXT COLLATE "C",
    ALTER COLUMN set_oid TYPE TEXT COLLATE "C";

ALTER TABLE case_crosswalk
    ALTER COLUMN source_system TYPE TEXT COLLATE "C",
    ALTER COLUMN case_id TYPE TEXT COLLATE "C",
    ALTER COLUMN case_oid TYPE TEXT COLLATE "C";

ALTER TABLE oid_sequence
    ALTER COLUMN root TYPE TEXT COLLATE "C";

ALTER TABLE documents
    ALTER COLUMN document_oid TYPE TEXT COLLATE "C",
    ALTER COLUMN set_oid TYPE TEXT COLLATE "C";

ALTER TABLE audit_log
    ALTER COLUMN exchange_id TYPE TEXT COLLATE "C",
    ALTER COLUMN recorded_at TYPE TEXT COLLATE "C",
    ALTER COLUMN client_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN actor TYPE TEXT COLLATE "C";

ALTER TABLE outbox
    ALTER COLUMN document_oid TYPE TEXT COLLATE "C",
    ALTER COLUMN set_oid TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C",
    ALTER COLUMN next_attempt_at TYPE TEXT COLLATE "C";
