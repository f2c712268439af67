-- The videos the matcher has seen a detection run complete for, in log order: a click on
-- any other video cannot be matched yet, so it is only remembered (the completion owes it
-- a verdict), not owed one at once. Most clicks are on videos no merchant uploaded.
CREATE TABLE matcher_videos
(
    video_id text PRIMARY KEY
);

INSERT INTO matcher_videos (video_id)
SELECT DISTINCT payload::jsonb -> 'DetectionCompleted' ->> 'video_id'
FROM events
WHERE aggregate_type = 'detection' AND event_type = 'DetectionCompleted'
ON CONFLICT DO NOTHING;
