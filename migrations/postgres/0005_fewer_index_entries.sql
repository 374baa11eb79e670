-- Fewer index entries per stored record: the crosswalk keys lead with the id the writer looks
-- up, so the separate by-id indexes go. Same columns, same constraints, same lookups. (The
-- SQLite flavour also stores these tables in their keys; PostgreSQL has no such layout.)
ALTER TABLE crosswalk DROP CONSTRAINT crosswalk_pkey;
ALTER TABLE crosswalk ADD PRIMARY KEY (source_id, source_system, record_type);
DROP INDEX crosswalk_by_source_id;

ALTER TABLE case_crosswalk DROP CONSTRAINT case_crosswalk_pkey;
ALTER TABLE case_crosswalk ADD PRIMARY KEY (case_id, source_system);
DROP INDEX case_crosswalk_by_case_id;
