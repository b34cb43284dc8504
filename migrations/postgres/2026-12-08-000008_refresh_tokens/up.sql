-- Refresh token families issued by tessera (RFC 6749 §6, RFC 9700 §4.14.2; SPEC §3).
-- Only digests of refresh tokens are stored (SHA-256, hex): the database never holds a
-- token that could be redeemed. Shared by every replica, so rotation, reuse detection and
-- revocation hold everywhere.
CREATE TABLE refresh_families (
    family_id       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    audience_id     TEXT NOT NULL,
    -- What every access token of the family repeats: subject, act, mapped claims,
    -- scopes, lineage (JSON; names and claims, never a token).
    grant_json      TEXT NOT NULL,
    -- 1: started with a DPoP proof, so every refresh needs one (RFC 9449 §5).
    dpop_bound      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    idle_secs       BIGINT,
    last_used_at    BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    digest      TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- The tessera tokens a family descends from: revoking one of them ends the family.
CREATE TABLE refresh_lineage (
    jti         TEXT NOT NULL,
    family_id   TEXT NOT NULL,
    PRIMARY KEY (jti, family_id)
);
CREATE INDEX refresh_lineage_family ON refresh_lineage (family_id);
