-- PostgreSQL only: a group of consumes in one statement (one round trip, one commit), each
-- applied by `points_consume` (1002) in the order given, as if alone: a replay, a refusal or a
-- conflict of one writes nothing and leaves the others as they are. The caller orders the group
-- by user, so that two groups lock their users' rows in the same order (no deadlock).
--
-- n: the charge's place in the arrays (from 1); the other columns as `points_consume`'s.
CREATE FUNCTION points_consume_batch(
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
BEGIN
    FOR i IN 1 .. COALESCE(array_length(p_users, 1), 0) LOOP
        RETURN QUERY SELECT i, c.outcome, c.transaction_id, c.service, c.points, c.balance, c.seq
        FROM points_consume(p_users[i], p_keys[i], p_fingerprints[i], p_services[i],
            p_points[i], p_allow_debt[i], p_references[i], p_now, p_ids[i], p_max) c;
    END LOOP;
END;
$$;
