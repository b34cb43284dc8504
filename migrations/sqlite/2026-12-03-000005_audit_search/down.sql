DROP INDEX audit_events_reason_at;
DROP INDEX audit_events_at;
UPDATE audit_events SET reason = reason || ': ' || detail
 WHERE reason IS NOT NULL AND detail IS NOT NULL;
ALTER TABLE audit_events DROP COLUMN detail;
