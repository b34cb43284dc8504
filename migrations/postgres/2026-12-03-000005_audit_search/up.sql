-- `tessera audit search` (SPEC §1) and the split of a refusal's account. Same content as
-- the SQLite migration of this name; the reasons are written there.
--
-- 1. `detail`: `reason` keeps only the stable label, `detail` the operator's account;
--    "label: text" reasons of older rows are split.
-- 2. Indexes (client_id, at), (subject, at), (reason, at) WHERE reason IS NOT NULL, and
--    (at); checked with EXPLAIN ANALYZE over 1,000,000 rows. PostgreSQL reads them
--    backwards for "newest first" and breaks ties of the same second by id with an
--    incremental sort of those few rows, so `id` need not be in the keys.
--    Building them locks writes to audit_events for the duration (diesel runs each
--    migration in a transaction, so not CONCURRENTLY): about a second per million rows
--    and index here.
ALTER TABLE audit_events ADD COLUMN detail TEXT;

UPDATE audit_events
   SET detail = substr(reason, strpos(reason, ': ') + 2),
       reason = substr(reason, 1, strpos(reason, ': ') - 1)
 WHERE reason ~ '^[a-z0-9_]+: ';

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_client_at ON audit_events (client_id, at);
CREATE INDEX audit_events_subject_at ON audit_events (subject, at);
CREATE INDEX audit_events_reason_at ON audit_events (reason, at) WHERE reason IS NOT NULL;
