-- Documents packed by the gateway, as SQLite stores them: a zstd frame made with the trained
-- dictionary of `gateway/src/document_codec.rs`, beside the mapping and on every core, in place
-- of text that the server compressed with lz4 (migration 0004) on the writer's one connection.
-- A decision's document packs from 2.7 KB to about 0.5 KB (lz4 on the server: 1.6 KB), and
-- inserting a batch's documents was the longest statement of a batch's write.
-- Rows written before keep their text in `body`; a row has exactly one of the two.
ALTER TABLE documents ADD COLUMN packed BYTEA;
ALTER TABLE documents ALTER COLUMN body DROP NOT NULL;
ALTER TABLE documents ADD CONSTRAINT documents_text_or_packed
    CHECK ((body IS NULL) <> (packed IS NULL));
