-- PostgreSQL only: every journal entry, whoever writes it (the Rust path, `points_consume_batch`,
-- recharges, expiry, any process on this database), is sent on the `points_journal`
-- notification channel, delivered to listeners at commit and in commit order. The balance stream
-- of every ledger process listens there. The payload is small (a UUID, numbers and a service name
-- of at most 64 characters, far below the 8000-byte limit); an entry whose service is longer
-- than 256 bytes is sent without its details, and the stream reads it from the journal.
CREATE OR REPLACE FUNCTION points_journal_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.service IS NULL OR octet_length(NEW.service) <= 256 THEN
        PERFORM pg_notify('points_journal', json_build_object(
            'u', NEW.user_id, 's', NEW.seq, 'k', NEW.kind, 'p', NEW.points,
            'b', NEW.balance_after, 'v', NEW.service)::TEXT);
    ELSE
        PERFORM pg_notify('points_journal', json_build_object('u', NEW.user_id, 's', NEW.seq)::TEXT);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER journal_notify AFTER INSERT ON journal
    FOR EACH ROW EXECUTE FUNCTION points_journal_notify();
