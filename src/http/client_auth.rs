//! Reads client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: id and secret
//! are form-urlencoded before base64). Form-body credentials are the exchange's to read.

use crate::secret::Secret;
use actix_web::http::header;
use actix_web::HttpRequest;
use base64::Engine;

use crate::exchange::{ClientAuthFailure, ClientCredentials, ExchangeError};

pub fn credentials(req: &HttpRequest) -> Result<ClientCredentials, ExchangeError> {
    let basic_failed = || ExchangeError::InvalidClient(ClientAuthFailure::MalformedBasic);
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| basic_failed())?;
        let Some((scheme, rest)) = value.split_once(' ') else {
            return Err(basic_failed());
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ExchangeError::InvalidClient(
                ClientAuthFailure::UnsupportedScheme,
            ));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| basic_failed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| basic_failed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(basic_failed)?;
        let unescape = |s: &str| form_urlencoded_decode(s).ok_or_else(basic_failed);
        return Ok(ClientCredentials::Basic {
            client_id: unescape(id)?.into(),
            secret: Secret::new(unescape(secret)?),
        });
    }
    Ok(ClientCredentials::None)
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a byte.
fn form_urlencoded_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::form_urlencoded_decode as d;

    #[test]
    fn decodes_basic_credential_escapes() {
        assert_eq!(d("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(d("plain-_~").as_deref(), Some("plain-_~"));
        assert_eq!(d("%zz"), None);
        assert_eq!(d("%4"), None);
        assert_eq!(d("%"), None);
    }
}
