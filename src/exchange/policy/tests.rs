use super::*;
use crate::exchange::request::Target;
use crate::trust::{AudienceId, ClientAuthMethod, ClientEntry, ScopeSet};
use serde_json::json;
use std::path::PathBuf;

fn audience(id: &str, aud: &str, scopes: &[&str]) -> AudienceEntry {
    AudienceEntry {
        id: id.into(),
        audience: aud.into(),
        resources: vec![format!("{aud}/")],
        scopes: ScopeSet::parse(&scopes.join(" ")).unwrap(),
        lifetime: Some(Duration::from_secs(600)),
        claims: vec!["email".into()],
        signing_alg: None,
        require_dpop: false,
        refresh: None,
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
        audiences: audiences.iter().map(|s| AudienceId::new(*s)).collect(),
        scopes: ScopeSet::parse(&scopes.join(" ")).unwrap(),
        on_behalf_of: OnBehalfOf::Delegate,
        max_lifetime: Some(Duration::from_secs(300)),
        rate_limit: Default::default(),
        refresh_tokens: false,
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
    let set = |s: &str| ScopeSet::parse(s).unwrap();
    assert_eq!(grant_scopes(None, &c, &a, None).unwrap(), set("o:r"));
    let req = set("o:r");
    assert_eq!(grant_scopes(Some(&req), &c, &a, None).unwrap(), set("o:r"));
    let esc = set("o:r o:w");
    assert!(matches!(
        grant_scopes(Some(&esc), &c, &a, None),
        Err(ExchangeError::InvalidScope(_))
    ));
    let none = client(&["orders"], &["x"]);
    assert!(matches!(
        grant_scopes(None, &none, &a, None),
        Err(ExchangeError::InvalidScope(_))
    ));
    let sub = set("o:w");
    let c2 = client(&["orders"], &["o:r", "o:w"]);
    assert_eq!(grant_scopes(None, &c2, &a, Some(&sub)).unwrap(), set("o:w"));
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
    let ids = |n: usize| {
        (0..n)
            .map(|i| Jti::new(format!("j{i}")))
            .collect::<Vec<_>>()
    };
    assert!(check_lineage(TokenRole::Subject, &ids(MAX_LINEAGE)).is_ok());
    assert_eq!(
        refused(check_lineage(TokenRole::Actor, &ids(MAX_LINEAGE + 1))),
        Refused::ExchangeChainTooLong
    );
}

/// The decision as a whole (issue 13): one test per step's refusal, the three rules that
/// were once inline (a local actor passing for a client, a foreign act claiming tessera,
/// a lineage too long) each covered through `decide` itself, and the record it leaves.
mod decide {
    use super::*;
    use crate::exchange::decision::{Record, Step};
    use crate::trust::{IssuerEntry, JwsAlg, KeySource, KindSettings, Mapping, OidcSettings};
    use crate::trust::{TokenType, LOCAL_ISSUER};
    use crate::verify::{Evidence, LocalToken, VerifiedSubject};

    const BROKER: &str = "https://tessera.example";
    const NOW: UnixTime = 1_000_000;

    fn issuer(id: &str, iss: &str) -> Arc<IssuerEntry> {
        Arc::new(IssuerEntry {
            id: id.into(),
            issuer: iss.into(),
            audiences: vec!["tessera".into()],
            token_types: vec![TokenType::IdToken, TokenType::AccessToken],
            clock_skew: Duration::from_secs(60),
            max_age: None,
            one_time_use: false,
            settings: KindSettings::Oidc(OidcSettings {
                keys: KeySource::Local,
                algorithms: vec![JwsAlg::ES256],
                require_access_token_typ: false,
            }),
            mapping: Mapping::default_for_jwt(),
            demo_signing_key_file: None,
            source: PathBuf::new(),
        })
    }

    fn token(entry: Arc<IssuerEntry>, claims: serde_json::Value) -> VerifiedSubject {
        let assertion = claims.as_object().unwrap().clone();
        VerifiedSubject {
            issuer: entry,
            token_type: TokenType::IdToken,
            act: assertion.get("act").map(|a| Act::from_claim(a).unwrap()),
            may_act: assertion
                .get("may_act")
                .map(|m| MayAct::from_claim(m).unwrap()),
            assertion,
            audiences: vec!["tessera".into()],
            expires_at: NOW + 3600,
            issued_at: Some(NOW),
            scopes: None,
            replay: None,
            local: None,
            evidence: Evidence::default(),
        }
    }

    fn foreign(claims: serde_json::Value) -> VerifiedSubject {
        token(issuer("acme", "https://idp.example"), claims)
    }

    fn local(sub: &str, lineage: Vec<Jti>) -> VerifiedSubject {
        let mut t = token(
            issuer(LOCAL_ISSUER, BROKER),
            json!({"sub": sub, "scope": "o:r"}),
        );
        t.scopes = Some(ScopeSet::parse("o:r").unwrap());
        t.local = Some(LocalToken {
            jti: lineage[0].clone(),
            client_id: "c".into(),
            lineage,
            src_iss: Some("https://idp.example".into()),
        });
        t
    }

    struct Case {
        registry: Registry,
        client: ClientEntry,
        target: Target,
    }

    impl Case {
        fn new() -> Self {
            Self {
                registry: registry(),
                client: client(&["orders", "inv"], &["o:r", "i:r"]),
                target: target(&["orders"], &[]),
            }
        }

        fn decide(
            &self,
            subject: &VerifiedSubject,
            actor: Option<&VerifiedSubject>,
        ) -> (Result<Plan, ExchangeError>, Record) {
            let bounds = LifetimeBounds {
                default_lifetime: Duration::from_secs(600),
                max_lifetime: Duration::from_secs(3600),
            };
            let input = DecisionInput {
                registry: &self.registry,
                client: &self.client,
                subject: (TokenRole::Subject, subject),
                actor,
                target: &self.target,
                issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
                broker_issuer: BROKER,
                lifetimes: &bounds,
                max_delegation_depth: 2,
                now: NOW,
                proof_jkt: None,
                wants_refresh: false,
            };
            let mut record = Record::detailed();
            let result = decide(&input, &mut record);
            if let Err(e) = &result {
                record.fail(e);
            }
            (result, record)
        }

        fn refused_at(&self, subject: &VerifiedSubject, actor: Option<&VerifiedSubject>) -> Step {
            let (result, record) = self.decide(subject, actor);
            let step = result.expect_err("refused").step();
            assert_eq!(
                record.steps().last().unwrap().step,
                step,
                "the record ends there"
            );
            step
        }
    }

    #[test]
    fn an_acceptable_request_becomes_the_claims_to_mint_and_a_record_of_every_rule() {
        let case = Case::new();
        let (plan, record) = case.decide(&foreign(json!({"sub": "alice"})), None);
        let plan = plan.unwrap();
        assert_eq!(
            (
                plan.subject.as_str(),
                plan.audience.id.as_str(),
                plan.scope()
            ),
            ("alice", "orders", "o:r".to_owned())
        );
        assert_eq!(
            plan.lifetime, 300,
            "the client's max_lifetime is the smallest bound"
        );
        assert_eq!(plan.src_iss.as_deref(), Some("https://idp.example"));
        assert_eq!(
            plan.act.as_ref().unwrap().sub,
            "c",
            "delegation records the client"
        );
        let steps: Vec<Step> = record.steps().iter().map(|s| s.step).collect();
        assert_eq!(
            steps,
            [
                Step::SubjectAudience,
                Step::Mapping,
                Step::Target,
                Step::Scope,
                Step::Lifetime,
                Step::MayAct,
                Step::Act,
                Step::Lineage,
                Step::Dpop
            ]
        );
        // A lean record (the /token hot path) keeps no details but the same decision.
        let mut lean = Record::default();
        let bounds = LifetimeBounds {
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
        };
        let subject = foreign(json!({"sub": "alice"}));
        let input = DecisionInput {
            registry: &case.registry,
            client: &case.client,
            subject: (TokenRole::Subject, &subject),
            actor: None,
            target: &case.target,
            issued_token_type: "x",
            broker_issuer: BROKER,
            lifetimes: &bounds,
            max_delegation_depth: 2,
            now: NOW,
            proof_jkt: None,
            wants_refresh: false,
        };
        assert_eq!(decide(&input, &mut lean).unwrap().scope(), "o:r");
        assert!(lean.steps().is_empty());
        assert_eq!(lean.facts.subject.as_deref(), Some("alice"));
    }

    #[test]
    fn each_rule_refuses_at_its_own_step() {
        let mut case = Case::new();
        case.client.subject_audiences = Some(vec!["app-only".into()]);
        let alice = foreign(json!({"sub": "alice"}));
        assert_eq!(case.refused_at(&alice, None), Step::SubjectAudience);

        let case = Case::new();
        assert_eq!(
            case.refused_at(&foreign(json!({"name": "no sub"})), None),
            Step::Mapping
        );

        let mut case = Case::new();
        case.target = target(&["nowhere"], &[]);
        assert_eq!(case.refused_at(&alice, None), Step::Target);

        let mut case = Case::new();
        case.target.scopes = Some(ScopeSet::parse("o:w").unwrap());
        assert_eq!(case.refused_at(&alice, None), Step::Scope);

        let case = Case::new();
        let mut spent = foreign(json!({"sub": "alice"}));
        spent.expires_at = NOW - 1;
        assert_eq!(case.refused_at(&spent, None), Step::Lifetime);

        let may_act = foreign(json!({"sub": "alice", "may_act": {"sub": "someone-else"}}));
        assert_eq!(case.refused_at(&may_act, None), Step::MayAct);

        let deep = foreign(json!({"sub": "alice", "act": {"sub": "a", "act": {"sub": "b"}}}));
        assert_eq!(case.refused_at(&deep, None), Step::Act, "depth 3 > 2");
    }

    /// Once inline in `Exchanger::issue`: a local actor token whose subject is a client id.
    #[test]
    fn a_local_actor_cannot_pass_for_a_client() {
        let mut case = Case::new();
        case.registry = Registry::new(
            vec![],
            vec![client(&["orders"], &["o:r"])],
            vec![audience("orders", "https://orders.example", &["o:r"])],
        );
        case.client = client(&["orders"], &["o:r"]);
        let actor = local("c", vec!["j1".into()]);
        let subject = foreign(json!({"sub": "alice"}));
        assert_eq!(case.refused_at(&subject, Some(&actor)), Step::Actor);
        let actor = local("robot", vec!["j1".into()]);
        assert!(case.decide(&subject, Some(&actor)).0.is_ok());
    }

    /// Once inline: a foreign token's act naming tessera as a link's issuer.
    #[test]
    fn a_foreign_act_cannot_claim_tessera() {
        let case = Case::new();
        let forged = foreign(json!({"sub": "alice", "act": {"sub": "svc", "iss": BROKER}}));
        assert_eq!(case.refused_at(&forged, None), Step::Act);
        let honest = foreign(json!({"sub": "alice", "act": {"sub": "svc"}}));
        let plan = case.decide(&honest, None).0.unwrap();
        let inner = plan.act.unwrap().act.unwrap();
        assert_eq!(
            inner.iss.as_deref(),
            Some("https://idp.example"),
            "attributed"
        );
    }

    /// Once inline: a lineage longer than MAX_LINEAGE is refused, never cut.
    #[test]
    fn a_lineage_too_long_is_refused_not_cut() {
        let case = Case::new();
        let long: Vec<Jti> = (0..=MAX_LINEAGE)
            .map(|i| Jti::new(format!("j{i}")))
            .collect();
        assert_eq!(case.refused_at(&local("alice", long), None), Step::Lineage);
        let ok: Vec<Jti> = (0..MAX_LINEAGE)
            .map(|i| Jti::new(format!("j{i}")))
            .collect();
        let plan = case.decide(&local("alice", ok.clone()), None).0.unwrap();
        assert_eq!(plan.exchanged_from, ok, "carried whole");
    }
}
