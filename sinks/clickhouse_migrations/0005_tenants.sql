-- Tenants (docs/tenants.md): every row names its tenant; rows from before tenants are the default
-- tenant's. A new installation has the tenant first in each sorting key; an older one keeps its
-- sorting key (ClickHouse cannot put a column first in one), so its queries of one tenant read
-- the others' granules too until it is made again.
ALTER TABLE learning_events ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE video_segments ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
ALTER TABLE catalog_items ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT 'default' FIRST;
