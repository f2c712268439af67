-- Issue 14: the client files' marks are read in the order they have waited, every round
-- of the writer (`ORDER BY first_position NULLS FIRST LIMIT n`), and the oldest one by
-- whoever asks how far the files are (`projections status`, the click bench, a rebuild's
-- wait). Under load the table holds thousands of marks and churns: each read was a scan
-- and a sort of all of them, about 1 ms. The index makes both the first entries of it.
CREATE INDEX client_files_dirty_by_wait ON client_files_dirty (first_position NULLS FIRST);
