-- A batch says when it was emptied (burnt to zero or expired) in a column of its own, and its
-- two indexes of live batches are partial on that column instead of on `remaining`. Burning
-- part of a batch then changes no indexed column: on PostgreSQL the row's new version is a
-- heap-only update (no new entries in the batch's three indexes, no index bloat from every
-- consume), and on SQLite the partial indexes are not rewritten. `emptied_at` is set exactly
-- when `remaining` reaches zero, checked by the table.
--
-- The table is rebuilt (the one way, in both dialects, to add a check that spans two columns);
-- batches are one row per recharge, a small table beside the journal.
CREATE TABLE batches_v2 (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES accounts (user_id),
    points BIGINT NOT NULL CHECK (points > 0),
    remaining BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- When `remaining` reached zero (microseconds since the Unix epoch); null while points are
    -- left. A batch created empty (a recharge that only paid a debt) is emptied when created.
    emptied_at BIGINT,
    CONSTRAINT batches_emptied_check CHECK ((remaining = 0) = (emptied_at IS NOT NULL))
);
INSERT INTO batches_v2 (id, user_id, points, remaining, expires_at, created_at, emptied_at)
SELECT id, user_id, points, remaining, expires_at, created_at,
    CASE WHEN remaining = 0 THEN created_at END
FROM batches;
DROP TABLE batches;
ALTER TABLE batches_v2 RENAME TO batches;
CREATE INDEX batches_live_by_user ON batches (user_id, expires_at) WHERE emptied_at IS NULL;
CREATE INDEX batches_live_by_expiry ON batches (expires_at) WHERE emptied_at IS NULL;
