-- Idempotency keys: one namespace per user and per kind of write. A consume under a payment's
-- id no longer makes that payment's recharge fail as a key conflict (paid, never credited).
-- Keys are kept as long as the journal entry that carries them: for ever.
DROP INDEX journal_idempotency;
CREATE UNIQUE INDEX journal_idempotency ON journal (user_id, kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
