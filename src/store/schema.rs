//! The one hand-written diesel schema, valid for both backends: only types both SQLite and
//! PostgreSQL map the same way (BIGINT, TEXT). Keep it in step with `migrations/*/`.

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        state -> Text,
        private_key -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
        publish_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        grant_type -> Text,
        client_id -> Nullable<Text>,
        issuer -> Nullable<Text>,
        subject -> Nullable<Text>,
        actor -> Nullable<Text>,
        audience -> Nullable<Text>,
        scopes -> Nullable<Text>,
        outcome -> Text,
        reason -> Nullable<Text>,
        // Added by a later migration (physically the last column); diesel names columns,
        // so the order here is the reading order.
        detail -> Nullable<Text>,
        jti -> Nullable<Text>,
        subject_token_sha256 -> Nullable<Text>,
        requests -> BigInt,
    }
}

diesel::table! {
    replay_cache (issuer, token_id) {
        issuer -> Text,
        token_id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
        revoked_at -> BigInt,
        revoked_by -> Text,
    }
}

diesel::table! {
    refresh_families (family_id) {
        family_id -> Text,
        client_id -> Text,
        audience_id -> Text,
        grant_json -> Text,
        dpop_bound -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        idle_secs -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_key) {
        token_key -> Text,
        family_id -> Text,
        digest -> Text,
        issued_at -> BigInt,
    }
}

diesel::table! {
    refresh_heads (family_id) {
        family_id -> Text,
        digest -> Text,
        issued_at -> BigInt,
    }
}

diesel::table! {
    refresh_lineage (jti, family_id) {
        jti -> Text,
        family_id -> Text,
    }
}

diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(refresh_tokens -> refresh_heads (family_id));

diesel::allow_tables_to_appear_in_same_query!(
    signing_keys,
    audit_events,
    replay_cache,
    revoked_tokens,
    refresh_families,
    refresh_tokens,
    refresh_heads,
    refresh_lineage
);
