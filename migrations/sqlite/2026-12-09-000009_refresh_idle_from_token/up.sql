-- A family's last use is when its newest token was issued (every use issues one, and the
-- one unspent token of a live family is its newest), so the idle limit (`refresh_idle`)
-- is measured from the presented token's `issued_at`. The family row is no longer written
-- at every use: one statement less in the rotation, which commits with the request's
-- audit row in the group commit every token-path request waits for.
ALTER TABLE refresh_families DROP COLUMN last_used_at;
