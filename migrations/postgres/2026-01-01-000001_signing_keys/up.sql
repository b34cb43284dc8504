-- Signing keys shared by every replica. Times are Unix seconds.
-- private_key holds a PKCS#8 PEM, or `enc:v1:` + AES-256-GCM ciphertext when
-- TESSERA_KEY_ENCRYPTION_KEY is set.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY NOT NULL,
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    private_key   TEXT NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT,
    retired_at    BIGINT,
    publish_until BIGINT
);
-- At most one current and one next key: two replicas racing to create them collide here
-- and the loser re-reads instead of signing with a key the other replica never publishes.
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
    WHERE state IN ('next', 'current');
