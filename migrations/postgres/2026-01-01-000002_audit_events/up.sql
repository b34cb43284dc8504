-- One row per token request outcome. Never a token: the subject token only as a SHA-256
-- prefix; the issued token's jti verbatim (not a secret).
CREATE TABLE audit_events (
    id                   BIGSERIAL PRIMARY KEY,
    at                   BIGINT NOT NULL,
    grant_type           TEXT NOT NULL,
    client_id            TEXT,
    issuer               TEXT,
    subject              TEXT,
    actor                TEXT,
    audience             TEXT,
    scopes               TEXT,
    outcome              TEXT NOT NULL,
    reason               TEXT,
    jti                  TEXT,
    subject_token_sha256 TEXT
);
-- No index on `at`: ids are assigned in commit order, so id ranges are time ranges,
-- and every index is written on the hot path of every exchange.
CREATE INDEX audit_events_jti ON audit_events (jti);
