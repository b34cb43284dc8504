DROP INDEX refresh_families_created_at;
DROP INDEX refresh_tokens_issued_at;
ALTER TABLE refresh_tokens ADD COLUMN used_at BIGINT;
-- Every token but its family's head was spent. When is not kept: its issue time stands in
-- (a spent token is refused whatever the time).
UPDATE refresh_tokens SET used_at = issued_at
    WHERE NOT EXISTS (SELECT 1 FROM refresh_heads h
        WHERE h.family_id = refresh_tokens.family_id AND h.digest = refresh_tokens.digest);
-- The code before this migration finds a token of the `rt` form by its digest, and keys
-- the successors of a digest-keyed token `<family>.<generation>` from generation 1: every
-- token of a family that has one of the `rt` form is keyed by its digest, so those keys
-- are free (an earlier `<family>.<generation>` token of such a family, spent, is then
-- unknown rather than a reuse).
UPDATE refresh_tokens SET token_key = digest
    WHERE family_id IN (SELECT family_id FROM refresh_tokens
        WHERE token_key >= 'rt' AND token_key < 'ru');
DROP TABLE refresh_heads;
