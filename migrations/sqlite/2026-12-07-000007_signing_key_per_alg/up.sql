-- Per-audience signing algorithms (an audience's `signing_alg`): each algorithm in use has
-- its own current and next key, rotated and published like the default one. At most one
-- current and one next key per algorithm: replicas racing to create them collide here.
DROP INDEX signing_keys_one_per_live_state;
CREATE UNIQUE INDEX signing_keys_one_per_alg_and_live_state ON signing_keys (alg, state)
    WHERE state IN ('next', 'current');
