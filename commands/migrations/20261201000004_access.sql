-- Whose click is it: a click sent with an account's token belongs to that account; a
-- user id reported without a token is only a claim (the original system's clients send
-- one), so such a click stays anonymous. Access to a click and its personal fields
-- follows this, not the reported id.
ALTER TABLE clicks_view ADD COLUMN signed_in boolean NOT NULL DEFAULT false;

UPDATE clicks_view c
SET signed_in = true
FROM events e
WHERE e.event_id = c.event_id
  AND c.user_id IS NOT NULL
  AND e.metadata ->> 'actor' = 'user:' || c.user_id;
