ALTER TABLE refresh_families ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_families SET last_used_at = (
    SELECT COALESCE(MAX(t.issued_at), refresh_families.created_at)
    FROM refresh_tokens t WHERE t.family_id = refresh_families.family_id
);
