-- Offline allowances: points signed over to one device of a user for a bounded time. The grant's
-- times (`issued_at`, `not_after`, `server_time`, `superseded_at`) are Unix seconds, as signed.
-- One schema for SQLite and PostgreSQL (this directory runs on both).
--
-- `granted` is what was signed and never changes; `points` is what may still be settled under
-- it (lowered to `spent` when a newer allowance of the same device supersedes it); `spent` is
-- the sum of the consumes journaled under it.
CREATE TABLE allowances (
    allowance_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES accounts (user_id),
    device_id TEXT NOT NULL,
    granted BIGINT NOT NULL,
    points BIGINT NOT NULL,
    spent BIGINT NOT NULL DEFAULT 0,
    issued_at BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    server_time BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    superseded_at BIGINT,
    -- The request's `Idempotency-Key`, if it had one: the same request again answers this
    -- allowance (a retried request never supersedes the allowance its first attempt issued).
    idempotency_key TEXT,
    CHECK (0 <= spent AND spent <= points AND points <= granted),
    CHECK (issued_at <= not_after)
);
-- One live allowance per (user, device).
CREATE UNIQUE INDEX allowances_live ON allowances (user_id, device_id)
    WHERE superseded_at IS NULL;
CREATE UNIQUE INDEX allowances_idempotency ON allowances (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The allowance a consume was settled under, if any.
ALTER TABLE journal ADD COLUMN allowance_id TEXT REFERENCES allowances (allowance_id);
