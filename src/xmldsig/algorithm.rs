//! The algorithms a `ds:Signature` names, parsed once from their `Algorithm` URIs. An
//! algorithm tessera does not know is kept as its URI ([`Named::Unknown`]), not refused
//! while reading: which refusal a document gets is the policy's
//! ([`super::SignatureInfo::check_algorithms`]), in its order.

use openssl::hash::MessageDigest;

use super::c14n;
use super::{
    ALG_ECDSA_SHA1, ALG_ECDSA_SHA256, ALG_ECDSA_SHA384, ALG_ECDSA_SHA512, ALG_RSA_SHA1,
    ALG_RSA_SHA256, ALG_RSA_SHA384, ALG_RSA_SHA512, C14N_10, C14N_11, C14N_EXCLUSIVE, DIGEST_SHA1,
    DIGEST_SHA256, DIGEST_SHA384, DIGEST_SHA512, TRANSFORM_ENVELOPED,
};

/// What an `Algorithm` attribute names: an algorithm tessera knows, or the URI of one it
/// does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named<T> {
    Known(T),
    Unknown(String),
}

/// An algorithm's URI, as XML-DSig names it.
pub trait AlgorithmUri {
    fn uri(&self) -> &'static str;
}

impl<T: AlgorithmUri> Named<T> {
    /// The URI as the document wrote it.
    pub fn uri(&self) -> &str {
        match self {
            Self::Known(t) => t.uri(),
            Self::Unknown(uri) => uri,
        }
    }

    /// The known algorithm, or `refusal` with the algorithm's name ([`super::algorithm_name`]).
    pub fn known_or(
        &self,
        refusal: impl FnOnce(String) -> super::DsigError,
    ) -> Result<&T, super::DsigError> {
        match self {
            Self::Known(t) => Ok(t),
            Self::Unknown(uri) => Err(refusal(super::algorithm_name(uri))),
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Self::Known(_))
    }

    fn parse(uri: &str, known: impl FnOnce(&str) -> Option<T>) -> Self {
        known(uri).map_or_else(|| Self::Unknown(uri.to_owned()), Self::Known)
    }
}

/// A `SignatureMethod` tessera verifies (SPEC §4.1: the SHA-1 ones only for an issuer with
/// `allow_sha1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMethod {
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaSha1,
    EcdsaSha1,
}

impl SignatureMethod {
    const ALL: [Self; 8] = [
        Self::RsaSha256,
        Self::RsaSha384,
        Self::RsaSha512,
        Self::EcdsaSha256,
        Self::EcdsaSha384,
        Self::EcdsaSha512,
        Self::RsaSha1,
        Self::EcdsaSha1,
    ];

    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.uri() == uri)
    }

    /// The digest the signature is computed over.
    pub fn digest(self) -> DigestMethod {
        match self {
            Self::RsaSha256 | Self::EcdsaSha256 => DigestMethod::Sha256,
            Self::RsaSha384 | Self::EcdsaSha384 => DigestMethod::Sha384,
            Self::RsaSha512 | Self::EcdsaSha512 => DigestMethod::Sha512,
            Self::RsaSha1 | Self::EcdsaSha1 => DigestMethod::Sha1,
        }
    }

    pub fn is_sha1(self) -> bool {
        self.digest() == DigestMethod::Sha1
    }

    pub fn is_ecdsa(self) -> bool {
        matches!(
            self,
            Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512 | Self::EcdsaSha1
        )
    }
}

impl AlgorithmUri for SignatureMethod {
    fn uri(&self) -> &'static str {
        match self {
            Self::RsaSha256 => ALG_RSA_SHA256,
            Self::RsaSha384 => ALG_RSA_SHA384,
            Self::RsaSha512 => ALG_RSA_SHA512,
            Self::EcdsaSha256 => ALG_ECDSA_SHA256,
            Self::EcdsaSha384 => ALG_ECDSA_SHA384,
            Self::EcdsaSha512 => ALG_ECDSA_SHA512,
            Self::RsaSha1 => ALG_RSA_SHA1,
            Self::EcdsaSha1 => ALG_ECDSA_SHA1,
        }
    }
}

/// A Reference's `DigestMethod` (SHA-1 only with `allow_sha1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestMethod {
    Sha256,
    Sha384,
    Sha512,
    Sha1,
}

impl DigestMethod {
    const ALL: [Self; 4] = [Self::Sha256, Self::Sha384, Self::Sha512, Self::Sha1];

    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.uri() == uri)
    }

    pub fn is_sha1(self) -> bool {
        self == Self::Sha1
    }

    pub fn message_digest(self) -> MessageDigest {
        match self {
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
            Self::Sha1 => MessageDigest::sha1(),
        }
    }
}

impl AlgorithmUri for DigestMethod {
    fn uri(&self) -> &'static str {
        match self {
            Self::Sha256 => DIGEST_SHA256,
            Self::Sha384 => DIGEST_SHA384,
            Self::Sha512 => DIGEST_SHA512,
            Self::Sha1 => DIGEST_SHA1,
        }
    }
}

/// Canonicalisation without comments only (SPEC §4.1): exclusive, inclusive 1.0 and 1.1.
impl AlgorithmUri for c14n::Method {
    fn uri(&self) -> &'static str {
        match self {
            Self::Exclusive { .. } => C14N_EXCLUSIVE,
            Self::Inclusive { v11: false } => C14N_10,
            Self::Inclusive { v11: true } => C14N_11,
        }
    }
}

/// A Reference's `Transform`: the enveloped signature (XML-DSig §6.6.4) or a
/// canonicalisation. XPath and XSLT, whose programs are their children, are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Enveloped,
    Canonicalize(c14n::Method),
}

impl AlgorithmUri for Transform {
    fn uri(&self) -> &'static str {
        match self {
            Self::Enveloped => TRANSFORM_ENVELOPED,
            Self::Canonicalize(method) => method.uri(),
        }
    }
}

pub(super) fn signature_method(uri: &str) -> Named<SignatureMethod> {
    Named::parse(uri, SignatureMethod::from_uri)
}

pub(super) fn digest_method(uri: &str) -> Named<DigestMethod> {
    Named::parse(uri, DigestMethod::from_uri)
}

/// A `CanonicalizationMethod` or canonicalisation `Transform` with the Algorithm `uri`;
/// `prefix_list` is its `InclusiveNamespaces PrefixList`, read only for exclusive C14N
/// (`#default` is the default namespace).
pub(super) fn canonicalization<'p>(
    uri: &str,
    prefix_list: impl Iterator<Item = &'p str>,
) -> Named<c14n::Method> {
    Named::parse(uri, |uri| match uri {
        C14N_EXCLUSIVE => Some(c14n::Method::Exclusive {
            inclusive_prefixes: prefix_list
                .flat_map(str::split_ascii_whitespace)
                .map(|p| if p == "#default" { "" } else { p }.to_owned())
                .collect(),
        }),
        C14N_10 => Some(c14n::Method::Inclusive { v11: false }),
        C14N_11 => Some(c14n::Method::Inclusive { v11: true }),
        _ => None,
    })
}

pub(super) fn transform<'p>(
    uri: &str,
    prefix_list: impl Iterator<Item = &'p str>,
) -> Named<Transform> {
    if uri == TRANSFORM_ENVELOPED {
        return Named::Known(Transform::Enveloped);
    }
    match canonicalization(uri, prefix_list) {
        Named::Known(method) => Named::Known(Transform::Canonicalize(method)),
        Named::Unknown(uri) => Named::Unknown(uri),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_algorithm_parses_back_from_its_uri() {
        for m in SignatureMethod::ALL {
            assert_eq!(SignatureMethod::from_uri(m.uri()), Some(m));
        }
        for d in DigestMethod::ALL {
            assert_eq!(DigestMethod::from_uri(d.uri()), Some(d));
        }
        for uri in [C14N_EXCLUSIVE, C14N_10, C14N_11, TRANSFORM_ENVELOPED] {
            assert_eq!(transform(uri, std::iter::empty()).uri(), uri);
        }
        assert_eq!(
            transform(C14N_EXCLUSIVE, ["xs  #default", "ds"].into_iter()),
            Named::Known(Transform::Canonicalize(c14n::Method::Exclusive {
                inclusive_prefixes: vec!["xs".into(), "".into(), "ds".into()]
            }))
        );
        // Names are compared exactly: a URI that differs in case is another algorithm.
        let upper = ALG_RSA_SHA256.to_uppercase();
        assert_eq!(signature_method(&upper), Named::Unknown(upper.clone()));
        assert_eq!(signature_method(&upper).uri(), upper);
        assert_eq!(
            canonicalization(TRANSFORM_ENVELOPED, std::iter::empty()),
            Named::Unknown(TRANSFORM_ENVELOPED.to_owned())
        );
    }

    #[test]
    fn sha1_and_key_types_are_read_from_the_method() {
        assert!(SignatureMethod::RsaSha1.is_sha1() && SignatureMethod::EcdsaSha1.is_sha1());
        assert!(!SignatureMethod::RsaSha256.is_sha1());
        assert!(SignatureMethod::EcdsaSha384.is_ecdsa() && !SignatureMethod::RsaSha384.is_ecdsa());
        assert_eq!(SignatureMethod::EcdsaSha512.digest(), DigestMethod::Sha512);
        assert!(DigestMethod::Sha1.is_sha1() && !DigestMethod::Sha256.is_sha1());
    }
}
