-- Revoked tessera tokens (RFC 7009; SPEC §6: shared by every replica). Keyed by the
-- token's jti (not a secret, SPEC §6); kept until the token would have expired anyway.
CREATE TABLE revoked_tokens (
    jti           TEXT PRIMARY KEY,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT NOT NULL,
    revoked_by    TEXT NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
