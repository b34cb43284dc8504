DROP TABLE replay_cache;
