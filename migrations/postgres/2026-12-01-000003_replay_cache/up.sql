-- Single-use tokens seen (SPEC §4.1 replay, §6: shared by every replica). The key is
-- (issuer registry id, SHA-256 of the token's own id, e.g. a SAML assertion ID): a
-- second insert of the same key is a replay. Rows are dropped once expired.
CREATE TABLE replay_cache (
    issuer        TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (issuer, token_id)
);
CREATE INDEX replay_cache_expires_at ON replay_cache (expires_at);
