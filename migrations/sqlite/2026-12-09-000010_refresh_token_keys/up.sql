-- Refresh tokens keyed by their place: `<family>.<generation>` (zero-padded), read off
-- the token itself (`trt_<family>.<generation>.<secret>`); the digest of the whole token
-- is still what is compared, and the only trace of its secret. A family's tokens then sit
-- side by side: a rotation spends one row and inserts the next one beside it, where random
-- digest keys (and the family_id index) dirtied a page apiece all over the table in every
-- group commit. No index on family_id: a family's tokens are a key range.
CREATE TABLE refresh_tokens_keyed (
    token_key   TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    digest      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    used_at     BIGINT
) WITHOUT ROWID;
-- Tokens issued before this migration did not carry their place: they stay keyed by
-- their digest (hex, so below every `rf…` key), found as before.
INSERT INTO refresh_tokens_keyed (token_key, family_id, digest, issued_at, used_at)
    SELECT digest, family_id, digest, issued_at, used_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_keyed RENAME TO refresh_tokens;
