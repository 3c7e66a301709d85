-- The double-entry ledger: append-only transactions and their postings.
-- Amounts are integers; every transaction's postings sum to zero per asset.

CREATE TABLE transactions (
    id          text PRIMARY KEY,          -- time-sortable (store.ids.new_id)
    kind        text NOT NULL,
    created_at  bigint NOT NULL,           -- milliseconds since the epoch
    meta        jsonb NOT NULL DEFAULT '{}'::jsonb,
    filed_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE postings (
    tx_id    text NOT NULL REFERENCES transactions (id),
    n        smallint NOT NULL,            -- position within the transaction
    account  text NOT NULL,
    asset    text NOT NULL,
    amount   bigint NOT NULL,
    PRIMARY KEY (tx_id, n)
);

-- per-user history: postings of an account, newest transaction first
CREATE INDEX postings_account ON postings (account, tx_id);

-- Balance check at insert: a statement's new postings must leave each of their
-- transactions summing to zero per asset. The ledger writer inserts all
-- postings of a transaction in one statement.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    SELECT p.tx_id INTO bad
    FROM postings AS p
    WHERE p.tx_id IN (SELECT DISTINCT tx_id FROM new_postings)
    GROUP BY p.tx_id, p.asset
    HAVING sum(p.amount) <> 0
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % is not balanced', bad
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER postings_balanced
    AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_balanced();

-- Append-only: corrections are new (reversal) transactions, never edits.
CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER transactions_append_only
    BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER transactions_no_truncate
    BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER postings_append_only
    BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER postings_no_truncate
    BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
