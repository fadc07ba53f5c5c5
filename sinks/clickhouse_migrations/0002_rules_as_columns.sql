-- Installations from before the rules of docs/analytics.md were columns: the columns appear with
-- their defaults (old rows count as nothing of the new rules until `lrs replay` rebuilds them),
-- and the projections, which no view reads any more, go.
ALTER TABLE learning_events DROP PROJECTION IF EXISTS engagement_hourly;
ALTER TABLE learning_events DROP PROJECTION IF EXISTS learners_daily;
ALTER TABLE learning_events DROP PROJECTION IF EXISTS funnel;
ALTER TABLE learning_events DROP PROJECTION IF EXISTS assessments;
ALTER TABLE video_segments DROP PROJECTION IF EXISTS heatmap;
ALTER TABLE learning_events
    ADD COLUMN IF NOT EXISTS object_kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS completes_lesson UInt8,
    ADD COLUMN IF NOT EXISTS completes_course UInt8,
    ADD COLUMN IF NOT EXISTS quiz_attempt UInt8,
    ADD COLUMN IF NOT EXISTS quiz_passed Nullable(UInt8),
    ADD COLUMN IF NOT EXISTS item_response UInt8,
    ADD COLUMN IF NOT EXISTS cmi5_session String;
ALTER TABLE video_segments ADD COLUMN IF NOT EXISTS session_key String;

