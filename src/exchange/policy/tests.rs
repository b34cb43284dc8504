use super::*;
use crate::exchange::request::Target;
use crate::trust::{ClientAuthMethod, ClientEntry};
use serde_json::json;
use std::path::PathBuf;

fn audience(id: &str, aud: &str, scopes: &[&str]) -> AudienceEntry {
    AudienceEntry {
        id: id.into(),
        audience: aud.into(),
        resources: vec![format!("{aud}/")],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        lifetime: Some(Duration::from_secs(600)),
        claims: vec!["email".into()],
        source: PathBuf::new(),
    }
}

fn client(audiences: &[&str], scopes: &[&str]) -> ClientEntry {
    ClientEntry {
        client_id: "c".into(),
        auth: ClientAuthMethod::ClientSecretBasic,
        secret_sha256: Some([0; 32]),
        jwks: None,
        subject_issuers: vec![],
        subject_audiences: None,
        actor_issuers: vec![],
        audiences: audiences.iter().map(|s| s.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        on_behalf_of: OnBehalfOf::Delegate,
        max_lifetime: Some(Duration::from_secs(300)),
        source: PathBuf::new(),
    }
}

fn registry() -> Registry {
    Registry::new(
        vec![],
        vec![],
        vec![
            audience("orders", "https://orders.example", &["o:r", "o:w"]),
            audience("inv", "https://inv.example", &["i:r"]),
        ],
    )
}

fn target(aud: &[&str], res: &[&str]) -> Target {
    Target {
        audiences: aud.iter().map(|s| s.to_string()).collect(),
        resources: res.iter().map(|s| s.to_string()).collect(),
        scopes: None,
    }
}

#[test]
fn audience_resolution_rules() {
    let r = registry();
    let both = client(&["orders", "inv"], &[]);
    let one = client(&["orders"], &[]);
    // by value, by id, by resource
    assert_eq!(
        resolve_audience(&r, &both, &target(&["https://orders.example"], &[]))
            .unwrap()
            .id,
        "orders"
    );
    assert_eq!(
        resolve_audience(&r, &both, &target(&["inv"], &[]))
            .unwrap()
            .id,
        "inv"
    );
    assert_eq!(
        resolve_audience(&r, &both, &target(&[], &["https://orders.example/"]))
            .unwrap()
            .id,
        "orders"
    );
    // nothing named: only audience, else invalid_target
    assert_eq!(
        resolve_audience(&r, &one, &target(&[], &[])).unwrap().id,
        "orders"
    );
    assert!(matches!(
        resolve_audience(&r, &both, &target(&[], &[])),
        Err(ExchangeError::InvalidTarget(_))
    ));
    // not allowed, unknown, two targets
    assert!(matches!(
        resolve_audience(&r, &one, &target(&["inv"], &[])),
        Err(ExchangeError::InvalidTarget(_))
    ));
    assert!(matches!(
        resolve_audience(&r, &both, &target(&["nope"], &[])),
        Err(ExchangeError::InvalidTarget(_))
    ));
    assert!(matches!(
        resolve_audience(&r, &both, &target(&["inv"], &["https://orders.example/"])),
        Err(ExchangeError::InvalidTarget(_))
    ));
}

#[test]
fn scopes_are_intersected_and_never_silently_narrowed() {
    let a = audience("orders", "https://orders.example", &["o:r", "o:w"]);
    let c = client(&["orders"], &["o:r", "x"]);
    assert_eq!(grant_scopes(None, &c, &a, None).unwrap(), vec!["o:r"]);
    let req = vec!["o:r".to_string()];
    assert_eq!(grant_scopes(Some(&req), &c, &a, None).unwrap(), vec!["o:r"]);
    let esc = vec!["o:r".to_string(), "o:w".to_string()];
    assert!(matches!(
        grant_scopes(Some(&esc), &c, &a, None),
        Err(ExchangeError::InvalidScope(_))
    ));
    let none = client(&["orders"], &["x"]);
    assert!(matches!(
        grant_scopes(None, &none, &a, None),
        Err(ExchangeError::InvalidScope(_))
    ));
    let sub = vec!["o:w".to_string()];
    let c2 = client(&["orders"], &["o:r", "o:w"]);
    assert_eq!(
        grant_scopes(None, &c2, &a, Some(&sub)).unwrap(),
        vec!["o:w"]
    );
}

#[test]
fn lifetime_is_the_smallest_bound() {
    let a = audience("orders", "https://orders.example", &[]);
    let c = client(&[], &[]);
    let b = LifetimeBounds {
        default_lifetime: Duration::from_secs(900),
        max_lifetime: Duration::from_secs(3600),
    };
    use TokenRole::{Actor as A, Assertion as B, Subject as S};
    assert_eq!(lifetime(1000, &b, &a, &c, &[(S, 5000)]).unwrap(), 300); // client max
    assert_eq!(lifetime(1000, &b, &a, &c, &[(S, 1100)]).unwrap(), 100); // subject exp
    assert_eq!(
        lifetime(1000, &b, &a, &c, &[(S, 5000), (A, 1050)]).unwrap(),
        50
    ); // actor exp
       // Expired within the skew: refused as a refusal of that token (its role picks the
       // RFC error code: invalid_grant for the bearer grant).
    for (role, expiries) in [
        (S, vec![(S, 1000)]),
        (A, vec![(S, 5000), (A, 990)]),
        (B, vec![(B, 999)]),
    ] {
        match lifetime(1000, &b, &a, &c, &expiries) {
            Err(ExchangeError::Unacceptable {
                role: r,
                refused: Refused::NoLifetimeLeft,
                ..
            }) => assert_eq!(r, role),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn act_nests_and_is_never_dropped() {
    let prev = Act::from_claim(&json!({"sub": "svc-a"})).unwrap();
    let v = |a: Option<Act>| a.map(|a| a.to_value());
    assert_eq!(
        v(act_claim(OnBehalfOf::Delegate, "c", None, None)),
        Some(json!({"sub": "c"}))
    );
    assert_eq!(act_claim(OnBehalfOf::Impersonate, "c", None, None), None);
    assert_eq!(
        act_claim(OnBehalfOf::Impersonate, "c", None, Some(&prev)),
        Some(prev.clone())
    );
    assert_eq!(
        v(act_claim(OnBehalfOf::Delegate, "c", None, Some(&prev))),
        Some(json!({"sub": "c", "act": {"sub": "svc-a"}}))
    );
    let actor = Actor {
        sub: "bot".into(),
        iss: Some("https://idp".into()),
    };
    assert_eq!(
        v(act_claim(OnBehalfOf::Impersonate, "c", Some(&actor), None)),
        Some(json!({"sub": "bot", "iss": "https://idp"}))
    );
}

#[test]
fn may_act_must_admit_the_actor() {
    let m = MayAct::from_claim(&json!({"sub": "c"})).unwrap();
    let check = |m: Option<&MayAct>, sub, iss| check_may_act(TokenRole::Subject, m, sub, iss);
    assert!(check(None, "c", "x").is_ok());
    assert!(check(Some(&m), "c", "x").is_ok());
    assert!(check(Some(&m), "d", "x").is_err());
    let mi = MayAct::from_claim(&json!({"sub": "c", "iss": "https://t"})).unwrap();
    assert!(check(Some(&mi), "c", "https://t").is_ok());
    assert!(check(Some(&mi), "c", "https://u").is_err());
    assert!(matches!(
        check_may_act(TokenRole::Assertion, Some(&m), "d", "x"),
        Err(ExchangeError::Unacceptable {
            role: TokenRole::Assertion,
            refused: Refused::MayActRefused,
            ..
        })
    ));
}

#[test]
fn audiences_see_only_their_claims_and_never_reserved_ones() {
    let a = audience("orders", "https://orders.example", &[]);
    let mut m = Map::new();
    m.insert("email".into(), json!("a@x"));
    m.insert("groups".into(), json!(["g"]));
    let out = audience_claims(&m, &a);
    assert_eq!(out.len(), 1);
    assert!(out.contains_key("email"));
}

fn refused(r: Result<impl std::fmt::Debug, ExchangeError>) -> Refused {
    match r {
        Err(ExchangeError::Unacceptable { refused, .. }) => refused,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn subject_audiences_bound_what_a_client_exchanges() {
    let mut c = client(&["orders"], &["orders:read"]);
    let auds = vec!["https://app.example".to_owned()];
    assert!(check_subject_audience(TokenRole::Subject, &c, &auds).is_ok());
    c.subject_audiences = Some(vec!["https://other.example".into()]);
    assert_eq!(
        refused(check_subject_audience(TokenRole::Subject, &c, &auds)),
        Refused::SubjectAudienceNotAllowed
    );
    c.subject_audiences = Some(vec!["https://app.example".into()]);
    assert!(check_subject_audience(TokenRole::Subject, &c, &auds).is_ok());
}

#[test]
fn a_local_actor_named_like_a_client_is_refused() {
    let reg = Registry::new(
        vec![],
        vec![client(&["orders"], &["o:r"])],
        vec![audience("orders", "https://orders.example", &["o:r"])],
    );
    assert_eq!(
        refused(check_local_actor(&reg, "c")),
        Refused::ActorPassesForClient
    );
    assert!(check_local_actor(&reg, "robot").is_ok());
}

#[test]
fn may_act_is_read_in_its_issuers_namespace() {
    let bare = MayAct::from_claim(&json!({"sub": "agent-7"})).unwrap();
    let named = MayAct::from_claim(&json!({"sub": "agent-7", "iss": "https://b"})).unwrap();
    let r = TokenRole::Subject;
    assert_eq!(
        attributed_may_act(r, Some(&bare), Some("https://a")).unwrap(),
        Some(bare.attributed_to("https://a"))
    );
    assert_eq!(
        attributed_may_act(r, Some(&named), Some("https://a")).unwrap(),
        Some(named.clone()),
        "an explicit iss stays"
    );
    assert_eq!(attributed_may_act(r, None, None).unwrap(), None);
    assert_eq!(
        attributed_may_act(r, Some(&named), None).unwrap(),
        Some(named)
    );
    assert_eq!(
        refused(attributed_may_act(r, Some(&bare), None)),
        Refused::MayActRefused,
        "a legacy local token's bare may_act"
    );
}

#[test]
fn a_foreign_act_is_attributed_and_may_not_claim_tessera() {
    let act =
        Act::from_claim(&json!({"sub": "svc", "act": {"sub": "x", "iss": "https://c"}})).unwrap();
    let out = foreign_act(TokenRole::Subject, &act, "https://idp", "https://tessera").unwrap();
    assert_eq!(
        out.to_value(),
        json!({"sub": "svc", "iss": "https://idp", "act": {"sub": "x", "iss": "https://c"}})
    );
    let forged = Act::from_claim(&json!({"sub": "svc", "iss": "https://tessera/"})).unwrap();
    assert_eq!(
        refused(foreign_act(
            TokenRole::Subject,
            &forged,
            "https://idp",
            "https://tessera"
        )),
        Refused::ActClaimsTessera
    );
}

#[test]
fn a_lineage_longer_than_the_limit_is_refused_not_cut() {
    let ids = |n: usize| (0..n).map(|i| format!("j{i}")).collect::<Vec<_>>();
    assert!(check_lineage(TokenRole::Subject, &ids(MAX_LINEAGE)).is_ok());
    assert_eq!(
        refused(check_lineage(TokenRole::Actor, &ids(MAX_LINEAGE + 1))),
        Refused::ExchangeChainTooLong
    );
}
