-- cmi5 courses (docs/analytics.md, "cmi5 courses"): each statement's cmi5 outcome (old rows: ''
-- until `lrs replay` rebuilds them) and each catalog lesson's moveOn (the worker rewrites
-- catalog_items whole at every start, so it is current at once).
ALTER TABLE learning_events ADD COLUMN IF NOT EXISTS cmi5_outcome LowCardinality(String);
ALTER TABLE catalog_items ADD COLUMN IF NOT EXISTS move_on LowCardinality(String);
