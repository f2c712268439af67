-- The matcher waits for the detections projection only up to the last event a verdict
-- reads from it (a completed run, a link change of the click's video), not up to the
-- click itself: the detections projection no longer has to pass every click.
ALTER TABLE matcher_videos
    -- The log position of the video's last completed run or link change the matcher saw.
    ADD COLUMN source_position bigint NOT NULL DEFAULT 0;

ALTER TABLE matcher_pending
    -- The position the detections projection must have applied before the verdict.
    ADD COLUMN barrier_position bigint;
UPDATE matcher_pending SET barrier_position = due_position;
ALTER TABLE matcher_pending ALTER COLUMN barrier_position SET NOT NULL;

-- The videos with a completed run the matcher has applied, and their last source event.
-- (Migration 7 looked for the runs under 'detection'; their aggregate type is
-- 'detection_run'.)
WITH applied AS (
         SELECT coalesce((SELECT last_sequence FROM projection_checkpoints WHERE name = 'matcher'), 0) AS upto
     ),
     sources AS (
         SELECT CASE WHEN e.aggregate_type = 'video' THEN e.aggregate_id
                     ELSE e.payload::jsonb -> 'DetectionCompleted' ->> 'video_id' END AS video_id,
                e.event_type, l.log_position
         FROM events e
         JOIN event_log l ON l.global_position = e.global_position
         CROSS JOIN applied a
         WHERE l.log_position <= a.upto
           AND ((e.aggregate_type = 'detection_run' AND e.event_type = 'DetectionCompleted')
             OR (e.aggregate_type = 'video' AND e.event_type IN ('ProductLinked', 'ProductUnlinked')))
     )
INSERT INTO matcher_videos (video_id, source_position)
SELECT video_id, max(log_position)
FROM sources
GROUP BY video_id
HAVING bool_or(event_type = 'DetectionCompleted')
ON CONFLICT (video_id) DO UPDATE SET source_position = EXCLUDED.source_position;
