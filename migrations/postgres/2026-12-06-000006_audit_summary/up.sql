-- Refusals before client authentication, and requests over a rate limit, are recorded as
-- one summary row per kind every `limits.refusal_summary_interval` (SPEC §3: a flood of
-- junk adds a bounded number of rows and never costs a commit each). `requests` is how
-- many requests a row stands for: 1 for every ordinary row.
ALTER TABLE audit_events ADD COLUMN requests BIGINT NOT NULL DEFAULT 1;
