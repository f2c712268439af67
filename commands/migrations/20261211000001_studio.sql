-- Framecart Studio: the analytics view keeps each click's media time, for the histogram of
-- clicks over a video's time. Clicks already in the view take theirs from the clicks view
-- (a rebuild of `analytics` gives every click its time from the log).
ALTER TABLE analytics_clicks ADD COLUMN media_time double precision;
UPDATE analytics_clicks a SET media_time = c.media_time FROM clicks_view c WHERE c.click_id = a.click_id;
