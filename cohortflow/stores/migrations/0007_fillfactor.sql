-- Room on each page for the next version of a row (fillfactor): the worker rewrites every entity and mentor
-- row it touches once per batch, and a new version that fits on its page is a heap-only tuple (HOT): no new
-- index entries, and the old version is pruned with the page. Only pages written from now on are affected.
ALTER TABLE entity_state SET (fillfactor = 70);
ALTER TABLE mentor_counts SET (fillfactor = 50);
