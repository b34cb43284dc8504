-- Each family's live token in a row of its own: a rotation rewrites that small row in
-- place (the spend: only the presented token's digest matches) and appends its successor to
-- refresh_tokens under a time-ordered key (`rt<UUIDv7>`, carried by the token). Before,
-- the spend updated the presented token's row and its successor went in beside it: every
-- rotation wrote into a table growing at a thousand places (a family's key range each),
-- splitting pages and dirtying about one and a half of them in each group commit, where
-- a batch of rotations now shares the heads' few pages and one or two appended ones.
-- refresh_tokens keeps every token a family issued, so an old one presented again is
-- known for the genuine reuse it is (RFC 9700 §4.14.2), not taken for a guess.
CREATE TABLE refresh_heads (
    family_id   TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL
);
-- A family's one unspent token is its head.
INSERT INTO refresh_heads (family_id, digest, issued_at)
    SELECT family_id, digest, issued_at FROM refresh_tokens WHERE used_at IS NULL;
-- Spent is now "not the head".
ALTER TABLE refresh_tokens DROP COLUMN used_at;
-- Pruning: tokens issued before the oldest live family began belong to ended families.
CREATE INDEX refresh_tokens_issued_at ON refresh_tokens (issued_at);
CREATE INDEX refresh_families_created_at ON refresh_families (created_at);
