-- `tessera audit search` (SPEC §1) and the split of a refusal's account.
--
-- 1. `detail`: `reason` holds only the stable label (the failing step's name, what
--    `--step` matches), `detail` the operator's account of what was compared (never token
--    text). Rows written before this migration kept both as "label: text" in `reason`;
--    they are split here, where the part before the first ": " is a label (a-z, 0-9, _).
--
-- 2. Indexes for the search filters. Every index is one more B-tree write per exchange on
--    the audit writer's hot path, so only these four, each checked with EXPLAIN QUERY
--    PLAN (and EXPLAIN on PostgreSQL) over 1,000,000 rows (scripts/audit-search-bench):
--    - (client_id, at): "what did this client do", the most common question; serves
--      `--client` with or without a time window, newest first, without a sort.
--    - (subject, at): "what happened to this user"; subjects are many and each rare, so
--      without it the query reads the whole table.
--    - (reason, at) WHERE reason IS NOT NULL: `--step`; partial, so issued rows (the hot
--      path) never write it.
--    - (at): `--since`/`--until` alone, and the order (newest first) for every filter
--      that has no index of its own; rows arrive in time order, so it grows at its end.
--    Not indexed: issuer, audience and outcome have few values (tens at most), so a scan
--    of `at` newest first finds a page of any common one quickly, and a rare one costs a
--    scan of the time window asked for; actor likewise (most rows have none). SQLite keys
--    every index by rowid too, so "newest first" ties (same second) need no sort either.
--    `at` replaces the old reasoning that id ranges stand for time ranges: a search must
--    be exact about its window, which that approximation (kept by prune) is not.
ALTER TABLE audit_events ADD COLUMN detail TEXT;

UPDATE audit_events
   SET detail = substr(reason, instr(reason, ': ') + 2),
       reason = substr(reason, 1, instr(reason, ': ') - 1)
 WHERE instr(reason, ': ') > 1
   AND substr(reason, 1, instr(reason, ': ') - 1) NOT GLOB '*[^a-z0-9_]*';

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_client_at ON audit_events (client_id, at);
CREATE INDEX audit_events_subject_at ON audit_events (subject, at);
CREATE INDEX audit_events_reason_at ON audit_events (reason, at) WHERE reason IS NOT NULL;
