-- PostgreSQL only: `points_consume` (1001) with consume keys of their own: an earlier use of the
-- key is looked up among the user's consumes only (0002 made the key unique per user and kind).
-- Otherwise the same function, line for line.
CREATE OR REPLACE FUNCTION points_consume(
    p_user TEXT,
    p_key TEXT,
    p_fingerprint TEXT,
    p_service TEXT,
    p_points BIGINT,
    p_allow_debt BOOLEAN,
    p_reference TEXT,
    p_now BIGINT,
    p_id TEXT,
    p_max BIGINT
) RETURNS TABLE (
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
    earlier journal%ROWTYPE;
    due_points BIGINT;
    due_batches BIGINT;
    new_balance BIGINT;
    new_consumed BIGINT;
BEGIN
    SELECT * INTO acc FROM accounts a WHERE a.user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO accounts (user_id) VALUES (p_user) ON CONFLICT (user_id) DO NOTHING;
        SELECT * INTO acc FROM accounts a WHERE a.user_id = p_user FOR UPDATE;
    END IF;

    -- After the lock (a later statement sees what the previous holder committed): an earlier
    -- use of the key, and what is due to expire. A refused charge writes nothing, expiry
    -- included, so both are known before writing.
    SELECT j.id, j.kind, j.request_fingerprint, j.service, j.points, j.balance_after, j.seq,
        d.due_points, d.due_batches
    INTO earlier.id, earlier.kind, earlier.request_fingerprint, earlier.service, earlier.points,
        earlier.balance_after, earlier.seq, due_points, due_batches
    FROM (
        SELECT COALESCE(SUM(b.remaining), 0) AS due_points, COUNT(*) AS due_batches
        FROM batches b
        WHERE b.user_id = p_user AND b.remaining > 0 AND b.expires_at <= p_now
    ) d
    LEFT JOIN journal j ON j.user_id = p_user AND j.kind = 'consume' AND j.idempotency_key = p_key;
    IF earlier.id IS NOT NULL THEN
        IF earlier.kind = 'consume' AND earlier.request_fingerprint = p_fingerprint THEN
            RETURN QUERY SELECT 'replayed'::TEXT, earlier.id, earlier.service, -earlier.points,
                earlier.balance_after, earlier.seq;
        ELSE
            RETURN QUERY SELECT 'mismatch'::TEXT, NULL::TEXT, NULL::TEXT, NULL::BIGINT,
                NULL::BIGINT, NULL::BIGINT;
        END IF;
        RETURN;
    END IF;

    new_balance := acc.balance - due_points - p_points;
    new_consumed := acc.total_consumed + p_points;
    IF NOT p_allow_debt AND acc.balance - due_points < p_points THEN
        RETURN QUERY SELECT 'insufficient'::TEXT, NULL::TEXT, NULL::TEXT, p_points,
            acc.balance - due_points, NULL::BIGINT;
        RETURN;
    END IF;
    IF new_balance < -p_max OR new_balance > p_max OR new_consumed > p_max
        OR acc.total_expired + due_points > p_max THEN
        RETURN QUERY SELECT 'out_of_range'::TEXT, NULL::TEXT, NULL::TEXT, NULL::BIGINT,
            NULL::BIGINT, NULL::BIGINT;
        RETURN;
    END IF;

    IF due_batches > 0 THEN
        -- One journal entry per expired batch, in burn order, each with the balance after it.
        WITH due AS (
            SELECT b.id, b.remaining,
                ROW_NUMBER() OVER w AS n,
                SUM(b.remaining) OVER w AS gone
            FROM batches b
            WHERE b.user_id = p_user AND b.remaining > 0 AND b.expires_at <= p_now
            WINDOW w AS (ORDER BY b.expires_at, b.created_at, b.id)
        ), emptied AS (
            UPDATE batches b SET remaining = 0 FROM due WHERE b.id = due.id
        )
        INSERT INTO journal (id, user_id, seq, kind, points, balance_after, batch_id, created_at)
        SELECT gen_random_uuid()::TEXT, p_user, acc.last_seq + due.n, 'expire', -due.remaining,
            acc.balance - due.gone, due.id, p_now
        FROM due;
        acc.last_seq := acc.last_seq + due_batches;
    END IF;

    -- Burn the soonest-expiring live batches first; debt leaves them all empty.
    WITH live AS (
        SELECT b.id, b.remaining,
            SUM(b.remaining) OVER (ORDER BY b.expires_at, b.created_at, b.id) AS upto
        FROM batches b
        WHERE b.user_id = p_user AND b.remaining > 0 AND b.expires_at > p_now
    )
    UPDATE batches b
    SET remaining = b.remaining - LEAST(live.remaining, p_points - (live.upto - live.remaining))
    FROM live
    WHERE b.id = live.id AND live.upto - live.remaining < p_points;

    acc.last_seq := acc.last_seq + 1;
    INSERT INTO journal (id, user_id, seq, kind, points, balance_after, service,
        idempotency_key, request_fingerprint, reference, created_at)
    VALUES (p_id, p_user, acc.last_seq, 'consume', -p_points, new_balance, p_service,
        p_key, p_fingerprint, p_reference, p_now);
    UPDATE accounts a SET balance = new_balance, total_consumed = new_consumed,
        total_expired = acc.total_expired + due_points, last_seq = acc.last_seq
    WHERE a.user_id = p_user;
    RETURN QUERY SELECT 'charged'::TEXT, p_id, p_service, p_points, new_balance, acc.last_seq;
END;
$$;
