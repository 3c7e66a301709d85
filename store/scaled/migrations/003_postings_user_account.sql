-- Postings indexed by account for users' accounts only: three of a gift's five
-- postings are the platform's, which nothing looks up by account. A query
-- reaches this index only when its WHERE repeats the predicate as written.
CREATE INDEX postings_user_account ON postings (account, tx_id) WHERE account LIKE 'user:%';
DROP INDEX IF EXISTS postings_account;
