DROP INDEX refresh_families_created_at;
DROP INDEX refresh_tokens_issued_at;
ALTER TABLE refresh_tokens ADD COLUMN used_at BIGINT;
-- When a token was spent is not kept: its issue time stands in (a spent token is refused
-- whatever the time).
UPDATE refresh_tokens SET used_at = issued_at
    WHERE digest NOT IN (SELECT digest FROM refresh_heads);
-- Tokens of the `rt` form are found by digest by the code before this migration.
UPDATE refresh_tokens SET token_key = digest WHERE token_key >= 'rt' AND token_key < 'ru';
DROP TABLE refresh_heads;
