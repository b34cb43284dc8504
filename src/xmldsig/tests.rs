use super::*;

/// A `ds:Signature` naming `method`, `digest`, `c14n` and `transforms`.
fn info(method: &str, digest: &str, c14n: &str, transforms: &[&str]) -> SignatureInfo {
    let transforms: String = transforms
        .iter()
        .map(|t| format!(r#"<ds:Transform Algorithm="{t}"/>"#))
        .collect();
    let xml = format!(
        r##"<ds:Signature xmlns:ds="{NS_DSIG}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{c14n}"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="#a"><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue/></ds:Reference></ds:SignedInfo></ds:Signature>"##
    );
    let doc = roxmltree::Document::parse(&xml).unwrap();
    SignatureInfo::read(doc.root_element(), &["#a"]).unwrap()
}

const ENV: &str = TRANSFORM_ENVELOPED;
const EXC: &str = C14N_EXCLUSIVE;

/// The policy's refusals and their order, as the SAML and metadata paths report them.
#[test]
fn the_algorithm_policy_refuses_in_its_order() {
    let ok = info(ALG_RSA_SHA256, DIGEST_SHA256, EXC, &[ENV, EXC]);
    assert_eq!(ok.check_algorithms(false), Ok(()));
    assert_eq!(ok.check_exclusive(), Ok(()));
    assert_eq!(
        ok.reference_c14n(),
        Ok(c14n::Method::Exclusive {
            inclusive_prefixes: Vec::new()
        })
    );
    let hmac = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
    let cases = [
        (
            info(hmac, DIGEST_SHA1, "urn:x", &[]),
            DsigError::Algorithm("hmac-sha1".into()),
        ),
        (
            info(ALG_RSA_SHA256, "urn:x#md5", "urn:x", &[]),
            DsigError::Algorithm("md5".into()),
        ),
        (
            info(ALG_ECDSA_SHA1, DIGEST_SHA256, "urn:x#c", &[]),
            DsigError::Sha1,
        ),
        (
            info(ALG_RSA_SHA256, DIGEST_SHA1, "urn:x#c", &[]),
            DsigError::Sha1,
        ),
        (
            info(
                ALG_RSA_SHA256,
                DIGEST_SHA256,
                ENV,
                &["urn:x#t", "urn:x#t", "urn:x#t"],
            ),
            DsigError::Transform("enveloped-signature".into()),
        ),
        (
            info(ALG_RSA_SHA256, DIGEST_SHA256, EXC, &[ENV, ENV, EXC]),
            DsigError::Shape(
                "at most two transforms (enveloped-signature and one canonicalisation)",
            ),
        ),
        (
            info(ALG_RSA_SHA256, DIGEST_SHA256, EXC, &[ENV, "urn:x#xpath"]),
            DsigError::Transform("xpath".into()),
        ),
    ];
    for (info, refusal) in cases {
        assert_eq!(info.check_algorithms(false), Err(refusal), "{info:?}");
    }
    assert_eq!(
        info(ALG_RSA_SHA1, DIGEST_SHA1, EXC, &[ENV]).check_algorithms(true),
        Ok(())
    );
    // Inclusive C14N anywhere is refused for metadata, by name.
    assert_eq!(
        info(ALG_RSA_SHA256, DIGEST_SHA256, C14N_11, &[ENV, EXC]).check_exclusive(),
        Err(DsigError::Transform("xml-c14n11".into()))
    );
    assert_eq!(
        info(ALG_RSA_SHA256, DIGEST_SHA256, EXC, &[ENV, C14N_10]).check_exclusive(),
        Err(DsigError::Transform("REC-xml-c14n-20010315".into()))
    );
}

/// Enveloped-signature, then at most one canonicalisation (C14N 1.0 without one).
#[test]
fn the_reference_is_enveloped_then_canonicalised_once() {
    let reference =
        |transforms: &[&str]| info(ALG_RSA_SHA256, DIGEST_SHA256, EXC, transforms).reference_c14n();
    assert_eq!(
        reference(&[ENV]),
        Ok(c14n::Method::Inclusive { v11: false })
    );
    assert_eq!(
        reference(&[ENV, C14N_11]),
        Ok(c14n::Method::Inclusive { v11: true })
    );
    assert_eq!(
        reference(&[ENV, ENV]),
        Err(DsigError::Transform("enveloped-signature".into()))
    );
    let order = DsigError::Shape(
        "the transforms must be enveloped-signature, then at most one canonicalisation",
    );
    for wrong in [&[][..], &[EXC], &[EXC, ENV], &[ENV, EXC, EXC]] {
        assert_eq!(reference(wrong), Err(order.clone()), "{wrong:?}");
    }
}
