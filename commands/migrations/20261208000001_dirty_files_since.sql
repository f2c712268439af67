-- Issue 14: how far behind the files are. A marked file remembers the log position of
-- the oldest click not yet in it (kept when it is marked again), so "every click up to
-- P is in its file" is the smallest such position less one, or the projection's
-- checkpoint when no file is marked. `framecart projections status` and the click bench
-- read it.
ALTER TABLE client_files_dirty ADD COLUMN first_position bigint;
