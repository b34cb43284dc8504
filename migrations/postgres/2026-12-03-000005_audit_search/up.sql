-- `tessera audit search` (SPEC §1) and the split of a refusal's account. Same content as
-- the SQLite migration of this name, where the reasons are written out.
--
-- 1. `detail`: `reason` keeps only the stable label, `detail` the operator's account;
--    "label: text" reasons of older rows are split.
-- 2. Indexes (at) and (reason, at) WHERE reason IS NOT NULL, not (client_id, at) nor
--    (subject, at): measured over a million rows here too (scripts/audit-search-bench,
--    EXPLAIN ANALYZE), all four indexes took the writer from about 40k to 12-18k rows/s.
--    PostgreSQL reads `at` backwards for "newest first" and breaks ties of one second by
--    id with an incremental sort of those few rows; a search on a column without an
--    index reads the window through `at`, or the whole table in parallel when the
--    planner expects few matches (0.1-0.4 s for a million rows).
--    Building them holds writes to audit_events for the duration (diesel runs each
--    migration in a transaction, so not CONCURRENTLY): a few seconds per million rows.
ALTER TABLE audit_events ADD COLUMN detail TEXT;

UPDATE audit_events
   SET detail = substr(reason, strpos(reason, ': ') + 2),
       reason = substr(reason, 1, strpos(reason, ': ') - 1)
 WHERE reason ~ '^[a-z0-9_]+: ';

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_reason_at ON audit_events (reason, at) WHERE reason IS NOT NULL;
