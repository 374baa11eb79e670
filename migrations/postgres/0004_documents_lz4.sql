-- Mapped documents are 1–5 KB of JSON text, so PostgreSQL compresses most of them before
-- storing. Its default compressor, pglz, took a fifth of the server's CPU while a stream of
-- 100 000 decisions was stored (perf); lz4 compresses JSON about as well at a fraction of the
-- cost (stream throughput +7 %, `cargo bench --bench load`). Storing rows uncompressed was
-- tried too: the saved CPU went into writing twice the bytes. A server built without lz4
-- keeps pglz. PostgreSQL only: SQLite never compresses.
DO $$
BEGIN
    ALTER TABLE documents ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4; documents stay compressed with pglz';
END
$$;
