-- Tenants (docs/tenants.md): every row names its tenant; rows from before tenants are the default
-- tenant's. A new installation has the tenant first in each sorting key; an older one keeps its
-- sorting key (ClickHouse cannot put a column first in one), so its queries of one tenant read
-- the others' granules too until it is made again.
ALTER TABLE learning_events ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE video_segments ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE catalog_items ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
-- The idempotency check reads (tenant, statement_id) in stored order: its projection gains the tenant.
ALTER TABLE learning_events DROP PROJECTION IF EXISTS by_stored;
ALTER TABLE learning_events ADD PROJECTION IF NOT EXISTS by_stored (SELECT tenant, statement_id, stored ORDER BY stored);
ALTER TABLE learning_events MATERIALIZE PROJECTION by_stored SETTINGS mutations_sync = 2;
ALTER TABLE video_segments DROP PROJECTION IF EXISTS by_stored;
ALTER TABLE video_segments ADD PROJECTION IF NOT EXISTS by_stored (SELECT tenant, statement_id, stored ORDER BY stored);
ALTER TABLE video_segments MATERIALIZE PROJECTION by_stored SETTINGS mutations_sync = 2;
