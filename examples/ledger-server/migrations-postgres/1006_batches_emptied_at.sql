-- PostgreSQL only, after 0004 (`batches.emptied_at`): `points_consume_batch` (1004) finding live
-- batches by `emptied_at IS NULL` (the predicate of their partial indexes) and setting
-- `emptied_at` in the same statement that takes a batch's `remaining` to zero (an expiry, or a
-- burn that takes all that is left). A burn that leaves points in the batch changes no indexed
-- column: a heap-only update. The same rules otherwise, line for line.
--
-- Space for those updates: batches and summary rows leave a fifth of each page free, so a new
-- row version usually fits in the page of the old one (a heap-only update needs that).
-- `points_consume` (1002), the one-charge function no caller uses since 1003, is dropped: it
-- predates `emptied_at`.
-- The names the rebuild of 0004 gave the table's constraints, back to those of 0001.
ALTER TABLE batches RENAME CONSTRAINT batches_v2_pkey TO batches_pkey;
ALTER TABLE batches RENAME CONSTRAINT batches_v2_user_id_fkey TO batches_user_id_fkey;
ALTER TABLE batches RENAME CONSTRAINT batches_v2_points_check TO batches_points_check;
ALTER TABLE batches RENAME CONSTRAINT batches_v2_check TO batches_check;
ALTER TABLE batches SET (fillfactor = 80);
ALTER TABLE accounts SET (fillfactor = 80);
DROP FUNCTION IF EXISTS points_consume(TEXT, TEXT, TEXT, TEXT, BIGINT, BOOLEAN, TEXT, BIGINT, TEXT, BIGINT);

CREATE OR REPLACE FUNCTION points_consume_batch(
    p_users TEXT[],
    p_keys TEXT[],
    p_fingerprints TEXT[],
    p_services TEXT[],
    p_points BIGINT[],
    p_allow_debt BOOLEAN[],
    p_references TEXT[],
    p_ids TEXT[],
    p_now BIGINT,
    p_max BIGINT
) RETURNS TABLE (
    n INT,
    outcome TEXT,
    transaction_id TEXT,
    service TEXT,
    points BIGINT,
    balance BIGINT,
    seq BIGINT
)
LANGUAGE plpgsql AS $$
DECLARE
    acc accounts%ROWTYPE;
    k_user TEXT;
    k_points BIGINT;
    e_id TEXT;
    e_kind TEXT;
    e_fingerprint TEXT;
    e_service TEXT;
    e_points BIGINT;
    e_balance BIGINT;
    e_seq BIGINT;
    due_points BIGINT;
    due_batches BIGINT;
    new_balance BIGINT;
    new_consumed BIGINT;
BEGIN
    FOR i IN 1 .. COALESCE(array_length(p_users, 1), 0) LOOP
        k_user := p_users[i];
        k_points := p_points[i];
        n := i;
        outcome := NULL;
        transaction_id := NULL;
        service := NULL;
        points := NULL;
        balance := NULL;
        seq := NULL;

        SELECT * INTO acc FROM accounts a WHERE a.user_id = k_user FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO accounts (user_id) VALUES (k_user) ON CONFLICT (user_id) DO NOTHING;
            SELECT * INTO acc FROM accounts a WHERE a.user_id = k_user FOR UPDATE;
        END IF;

        -- After the lock: an earlier use of the key, and what is due to expire.
        e_id := NULL;
        SELECT j.id, j.kind, j.request_fingerprint, j.service, j.points, j.balance_after, j.seq,
            d.due_points, d.due_batches
        INTO e_id, e_kind, e_fingerprint, e_service, e_points, e_balance, e_seq, due_points,
            due_batches
        FROM (
            SELECT COALESCE(SUM(b.remaining), 0) AS due_points, COUNT(*) AS due_batches
            FROM batches b
            WHERE b.user_id = k_user AND b.emptied_at IS NULL AND b.expires_at <= p_now
        ) d
        LEFT JOIN journal j
            ON j.user_id = k_user AND j.kind = 'consume' AND j.idempotency_key = p_keys[i];
        IF e_id IS NOT NULL THEN
            IF e_kind = 'consume' AND e_fingerprint = p_fingerprints[i] THEN
                outcome := 'replayed';
                transaction_id := e_id;
                service := e_service;
                points := -e_points;
                balance := e_balance;
                seq := e_seq;
            ELSE
                outcome := 'mismatch';
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;

        new_balance := acc.balance - due_points - k_points;
        new_consumed := acc.total_consumed + k_points;
        IF NOT p_allow_debt[i] AND acc.balance - due_points < k_points THEN
            outcome := 'insufficient';
            points := k_points;
            balance := acc.balance - due_points;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF new_balance < -p_max OR new_balance > p_max OR new_consumed > p_max
            OR acc.total_expired + due_points > p_max THEN
            outcome := 'out_of_range';
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF due_batches > 0 THEN
            -- One journal entry per expired batch, in burn order, each with the balance after it.
            WITH due AS (
                SELECT b.id, b.remaining,
                    ROW_NUMBER() OVER w AS nth,
                    SUM(b.remaining) OVER w AS gone
                FROM batches b
                WHERE b.user_id = k_user AND b.emptied_at IS NULL AND b.expires_at <= p_now
                WINDOW w AS (ORDER BY b.expires_at, b.created_at, b.id)
            ), emptied AS (
                UPDATE batches b SET remaining = 0, emptied_at = p_now FROM due WHERE b.id = due.id
            )
            INSERT INTO journal (id, user_id, seq, kind, points, balance_after, batch_id,
                created_at)
            SELECT gen_random_uuid()::TEXT, k_user, acc.last_seq + due.nth, 'expire',
                -due.remaining, acc.balance - due.gone, due.id, p_now
            FROM due;
            acc.last_seq := acc.last_seq + due_batches;
        END IF;

        -- Burn the soonest-expiring live batches first (debt leaves them all empty), journal
        -- the charge and update the summary: one statement.
        acc.last_seq := acc.last_seq + 1;
        WITH live AS (
            SELECT b.id, b.remaining,
                SUM(b.remaining) OVER (ORDER BY b.expires_at, b.created_at, b.id) AS upto
            FROM batches b
            WHERE b.user_id = k_user AND b.emptied_at IS NULL AND b.expires_at > p_now
        ), burn AS (
            SELECT live.id, live.remaining - LEAST(live.remaining, k_points - (live.upto - live.remaining)) AS left_over
            FROM live
            WHERE live.upto - live.remaining < k_points
        ), burned AS (
            UPDATE batches b
            SET remaining = burn.left_over,
                emptied_at = CASE WHEN burn.left_over = 0 THEN p_now END
            FROM burn
            WHERE b.id = burn.id
        ), entry AS (
            INSERT INTO journal (id, user_id, seq, kind, points, balance_after, service,
                idempotency_key, request_fingerprint, reference, created_at)
            VALUES (p_ids[i], k_user, acc.last_seq, 'consume', -k_points, new_balance,
                p_services[i], p_keys[i], p_fingerprints[i], p_references[i], p_now)
        )
        UPDATE accounts a SET balance = new_balance, total_consumed = new_consumed,
            total_expired = acc.total_expired + due_points, last_seq = acc.last_seq
        WHERE a.user_id = k_user;

        outcome := 'charged';
        transaction_id := p_ids[i];
        service := p_services[i];
        points := k_points;
        balance := new_balance;
        seq := acc.last_seq;
        RETURN NEXT;
    END LOOP;
END;
$$;
