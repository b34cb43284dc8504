CREATE TABLE refresh_tokens_by_digest (
    digest      TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    used_at     BIGINT
);
INSERT INTO refresh_tokens_by_digest (digest, family_id, issued_at, used_at)
    SELECT digest, family_id, issued_at, used_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_by_digest RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
