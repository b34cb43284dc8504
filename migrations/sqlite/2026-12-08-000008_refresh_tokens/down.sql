DROP TABLE refresh_lineage;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
