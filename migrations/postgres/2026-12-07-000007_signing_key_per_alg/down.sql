DROP INDEX signing_keys_one_per_alg_and_live_state;
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
    WHERE state IN ('next', 'current');
