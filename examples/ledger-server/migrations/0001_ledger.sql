-- The points ledger. One schema for SQLite and PostgreSQL: user and row ids are UUID text,
-- times are microseconds since the Unix epoch (UTC).

-- One summary row per user; locked by every write for that user.
CREATE TABLE accounts (
    user_id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL DEFAULT 0,
    total_recharged BIGINT NOT NULL DEFAULT 0,
    total_consumed BIGINT NOT NULL DEFAULT 0,
    total_expired BIGINT NOT NULL DEFAULT 0,
    -- The per-user sequence number of the newest journal entry.
    last_seq BIGINT NOT NULL DEFAULT 0,
    CHECK (balance = total_recharged - total_consumed - total_expired)
);

-- Recharges, each with its own expiry.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES accounts (user_id),
    points BIGINT NOT NULL CHECK (points > 0),
    remaining BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX batches_live_by_user ON batches (user_id, expires_at) WHERE remaining > 0;
CREATE INDEX batches_live_by_expiry ON batches (expires_at) WHERE remaining > 0;

-- Append-only history: every recharge, consume and expiry. A consume carries the client's
-- idempotency key and a fingerprint of its request: the journal row is the idempotency record,
-- unique per (user, key) and kept as long as the transaction it produced.
CREATE TABLE journal (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES accounts (user_id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('recharge', 'consume', 'expire')),
    points BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    service TEXT,
    batch_id TEXT,
    idempotency_key TEXT,
    request_fingerprint TEXT,
    reference TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, seq),
    CHECK ((idempotency_key IS NULL) = (request_fingerprint IS NULL))
);
CREATE UNIQUE INDEX journal_idempotency ON journal (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
