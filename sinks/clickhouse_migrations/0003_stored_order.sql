-- The idempotency check reads a copy of (statement_id, stored) in stored order, kept in each
-- part; installations made before it get it here (materialised once for the parts they have).
ALTER TABLE learning_events ADD PROJECTION IF NOT EXISTS by_stored (SELECT statement_id, stored ORDER BY stored);
ALTER TABLE learning_events MATERIALIZE PROJECTION by_stored SETTINGS mutations_sync = 2;
ALTER TABLE video_segments ADD PROJECTION IF NOT EXISTS by_stored (SELECT statement_id, stored ORDER BY stored);
ALTER TABLE video_segments MATERIALIZE PROJECTION by_stored SETTINGS mutations_sync = 2;
