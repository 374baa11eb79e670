-- The writer looks a batch's records up by source id (and cases by case id) in one query;
-- without these the lookups scan the whole table.
CREATE INDEX crosswalk_by_source_id ON crosswalk (source_id);
CREATE INDEX case_crosswalk_by_case_id ON case_crosswalk (case_id);
