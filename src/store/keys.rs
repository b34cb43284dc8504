//! The `signing_keys` table: rows in, rows out. Which key signs, and when keys move between
//! states, is decided in `issue`; these functions only read and write. They return diesel's
//! error so they compose inside `store::locked_transaction`, which retries on conflicts.

use diesel::prelude::*;
use diesel::result::Error as DieselError;

use super::schema::signing_keys;
use super::DbConn;
use crate::clock::UnixTime;

const STATE_NEXT: &str = "next";
const STATE_CURRENT: &str = "current";
const STATE_RETIRED: &str = "retired";

/// Where a signing key is in its life (the `state` column's domain, converted here at the
/// store boundary so that nothing above compares strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing (and published).
    Current,
    /// No longer signing; published until `publish_until`.
    Retired,
}

impl KeyState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Next => STATE_NEXT,
            Self::Current => STATE_CURRENT,
            Self::Retired => STATE_RETIRED,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            STATE_NEXT => Some(Self::Next),
            STATE_CURRENT => Some(Self::Current),
            STATE_RETIRED => Some(Self::Retired),
            _ => None,
        }
    }
}

/// Lock name for every change to the key set (see `store::locked_transaction`).
pub const KEYS_LOCK: &str = "tessera:signing_keys";

/// `Debug` of a key row: everything but the private key.
macro_rules! redacted_key_debug {
    ($name:ident $(<$lt:lifetime>)?) => {
        impl $(<$lt>)? std::fmt::Debug for $name $(<$lt>)? {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("kid", &self.kid)
                    .field("alg", &self.alg)
                    .field("state", &self.state)
                    .field("private_key", &"[redacted]")
                    .field("created_at", &self.created_at)
                    .field("activated_at", &self.activated_at)
                    .finish_non_exhaustive()
            }
        }
    };
}

redacted_key_debug!(SigningKeyRow);
redacted_key_debug!(NewSigningKey<'a>);

/// A stored key, its state parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    /// PKCS#8 PEM, or `enc:v1:` ciphertext. Never log it.
    pub private_key: String,
    pub public_jwk: String,
    pub created_at: UnixTime,
    pub activated_at: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
    pub publish_until: Option<UnixTime>,
}

/// A row as the table holds it (`state` as text).
#[derive(Queryable)]
struct RawKeyRow {
    kid: String,
    alg: String,
    state: String,
    private_key: String,
    public_jwk: String,
    created_at: UnixTime,
    activated_at: Option<UnixTime>,
    retired_at: Option<UnixTime>,
    publish_until: Option<UnixTime>,
}

impl TryFrom<RawKeyRow> for SigningKeyRow {
    type Error = DieselError;

    fn try_from(r: RawKeyRow) -> Result<Self, DieselError> {
        let state = KeyState::parse(&r.state).ok_or_else(|| {
            DieselError::DeserializationError(
                format!("signing key {}: unknown state {:?}", r.kid, r.state).into(),
            )
        })?;
        Ok(Self {
            kid: r.kid,
            alg: r.alg,
            state,
            private_key: r.private_key,
            public_jwk: r.public_jwk,
            created_at: r.created_at,
            activated_at: r.activated_at,
            retired_at: r.retired_at,
            publish_until: r.publish_until,
        })
    }
}

#[derive(Clone, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub state: &'a str,
    pub private_key: &'a str,
    pub public_jwk: &'a str,
    pub created_at: UnixTime,
    pub activated_at: Option<UnixTime>,
}

/// Every key, newest first.
pub fn all_keys(conn: &mut DbConn) -> Result<Vec<SigningKeyRow>, DieselError> {
    signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .load::<RawKeyRow>(conn)?
        .into_iter()
        .map(SigningKeyRow::try_from)
        .collect()
}

pub fn insert_key(conn: &mut DbConn, key: &NewSigningKey<'_>) -> Result<(), DieselError> {
    diesel::insert_into(signing_keys::table)
        .values(key)
        .execute(conn)
        .map(|_| ())
}

/// `alg`'s current key → retired, published until `publish_until`. Returns rows changed.
pub fn retire_current(
    conn: &mut DbConn,
    alg: &str,
    now: UnixTime,
    publish_until: UnixTime,
) -> Result<usize, DieselError> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::state.eq(STATE_CURRENT))
            .filter(signing_keys::alg.eq(alg)),
    )
    .set((
        signing_keys::state.eq(STATE_RETIRED),
        signing_keys::retired_at.eq(Some(now)),
        signing_keys::publish_until.eq(Some(publish_until)),
    ))
    .execute(conn)
}

/// `alg`'s next key → current. Returns rows changed.
pub fn promote_next(conn: &mut DbConn, alg: &str, now: UnixTime) -> Result<usize, DieselError> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::state.eq(STATE_NEXT))
            .filter(signing_keys::alg.eq(alg)),
    )
    .set((
        signing_keys::state.eq(STATE_CURRENT),
        signing_keys::activated_at.eq(Some(now)),
    ))
    .execute(conn)
}

/// Deletes retired keys no longer published: their tokens have all expired, and a private
/// key kept past its use is only a liability.
pub fn delete_unpublished_retired(conn: &mut DbConn, now: UnixTime) -> Result<usize, DieselError> {
    diesel::delete(
        signing_keys::table
            .filter(signing_keys::state.eq(STATE_RETIRED))
            .filter(signing_keys::publish_until.le(now)),
    )
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_row_never_shows_its_private_key() {
        let row = SigningKeyRow {
            kid: "k1".into(),
            alg: "ES256".into(),
            state: KeyState::Current,
            private_key: "-----BEGIN PRIVATE KEY-----secret".into(),
            public_jwk: "{}".into(),
            created_at: 1,
            activated_at: Some(2),
            retired_at: None,
            publish_until: None,
        };
        let shown = format!("{row:?}");
        assert!(
            !shown.contains("PRIVATE") && shown.contains("k1"),
            "{shown}"
        );
    }
}
