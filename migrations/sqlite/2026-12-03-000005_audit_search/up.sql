-- `tessera audit search` (SPEC §1) and the split of a refusal's account.
--
-- 1. `detail`: `reason` holds only the stable label (the failing step's name, what
--    `--step` matches), `detail` the operator's account of what was compared (never token
--    text). Rows written before this migration kept both as "label: text" in `reason`;
--    they are split here, where the part before the first ": " is a label (a-z, 0-9, _).
--
-- 2. Two indexes, chosen by measuring both sides over a million rows shaped like a busy
--    month (scripts/audit-search-bench; plans checked with EXPLAIN QUERY PLAN here and
--    EXPLAIN ANALYZE on PostgreSQL):
--    - (at): every search is newest first within a time window. Rows arrive in time
--      order, so this index only ever grows at its end: the audit writer's inserts
--      (512 rows per transaction, synchronous = FULL) ran as fast with it as without.
--      A filter on any other column reads the window newest first through it and
--      stops at --limit matches: `--client C --since 1d` takes 5 ms for a busy client,
--      about 150 ms for a quiet one over 7 days, 0.6 s for a subject over all 30 days.
--    - (reason, at) WHERE reason IS NOT NULL: `--step`, the refusals of one kind, which
--      may be rare. Partial: issued rows (the hot path) never write it.
--    Not indexed, on purpose: client_id and subject. (client_id, at) and (subject, at)
--    made those searches take a few ms instead of 0.1-0.6 s, but both insert at
--    positions spread over the whole index (500 clients; 50,000 subjects), so every
--    batch dirties hundreds of index pages: the writer fell from 33-54k rows/s (no
--    search index) to 13-16k with (client_id, at) and to 5-6k with all four, below the
--    broker's own throughput (README, Benchmarks). An operator who searches far more
--    than the broker writes can add either index; the searches use it unchanged.
--    issuer, audience, outcome and actor have few values or are mostly empty: the
--    window scan serves them.
--    `at` is indexed although ids run in time order (what prune relies on): a search
--    must be exact about its window, which ids are only approximately.
ALTER TABLE audit_events ADD COLUMN detail TEXT;

UPDATE audit_events
   SET detail = substr(reason, instr(reason, ': ') + 2),
       reason = substr(reason, 1, instr(reason, ': ') - 1)
 WHERE instr(reason, ': ') > 1
   AND substr(reason, 1, instr(reason, ': ') - 1) NOT GLOB '*[^a-z0-9_]*';

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_reason_at ON audit_events (reason, at) WHERE reason IS NOT NULL;
