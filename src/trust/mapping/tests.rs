use super::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn claims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn default_for_jwt_maps_sub() {
    let m = Mapping::default_for_jwt();
    let out = m
        .apply(&obj(json!({"sub": "alice", "email": "a@x"})))
        .unwrap();
    assert_eq!(out.subject, "alice");
    assert!(out.claims.is_empty());
}

#[test]
fn compile_uses_the_default_subject_when_none_is_given() {
    let m = Mapping::compile(None, &BTreeMap::new(), None, AssertionKind::Saml).unwrap();
    let out = m.apply(&obj(json!({"subject": "bob"}))).unwrap();
    assert_eq!(out.subject, "bob");
}

#[test]
fn a_missing_subject_refuses_the_token_saying_why() {
    let m = Mapping::default_for_jwt();
    let refusal = |input: Value| m.apply(&obj(input)).unwrap_err();
    assert_eq!(
        refusal(json!({"email": "a@x"})),
        MappingError::NoSuchKey {
            field: "mapping.subject",
            key: "sub".into()
        }
    );
    assert_eq!(
        refusal(json!({"email": "a@x"})).to_string(),
        "mapping.subject: no such key: sub"
    );
    for (why, input, found) in [
        ("empty sub", json!({"sub": ""}), "an empty string"),
        ("null sub", json!({"sub": null}), "null"),
        ("list sub", json!({"sub": ["a"]}), "a list"),
        ("float sub", json!({"sub": 1.5}), "a float"),
    ] {
        assert_eq!(
            refusal(input),
            MappingError::SubjectUnusable {
                found: found.into()
            },
            "{why}"
        );
    }
}

#[test]
fn a_numeric_subject_is_written_in_decimal() {
    let m = Mapping::default_for_jwt();
    let out = m.apply(&obj(json!({"sub": 12345}))).unwrap();
    assert_eq!(out.subject, "12345");
}

#[test]
fn claims_are_mapped_and_omitted_when_missing_or_null() {
    let m = Mapping::compile(
        None,
        &claims(&[
            ("email", "assertion.email"),
            ("groups", "assertion.groups"),
            ("dept", "assertion.department"),
            ("nothing", "null"),
            ("lower", "assertion.email.lowerAscii()"),
            ("nested", "{'a': [1, 2u, 2.5, true]}"),
        ]),
        None,
        AssertionKind::Claims,
    )
    .unwrap();
    let out = m
        .apply(&obj(json!({
            "sub": "alice",
            "email": "Alice@Example.COM",
            "groups": ["a", "b"],
        })))
        .unwrap();
    assert_eq!(out.subject, "alice");
    assert_eq!(
        Value::Object(out.claims),
        json!({
            "email": "Alice@Example.COM",
            "groups": ["a", "b"],
            "lower": "alice@example.com",
            "nested": {"a": [1, 2, 2.5, true]},
        })
    );
}

#[test]
fn a_true_condition_admits_and_false_or_error_refuses() {
    let m = Mapping::compile(
        None,
        &BTreeMap::new(),
        Some("assertion.email.endsWith('@acme.example')"),
        AssertionKind::Claims,
    )
    .unwrap();
    assert!(m
        .apply(&obj(json!({"sub": "a", "email": "a@acme.example"})))
        .is_ok());
    assert!(matches!(
        m.apply(&obj(json!({"sub": "a", "email": "a@evil.example"}))),
        Err(MappingError::ConditionFalse)
    ));
    // cel 0.15: a missing key is an error, and an error is a refusal.
    assert_eq!(
        m.apply(&obj(json!({"sub": "a"}))).unwrap_err().to_string(),
        "mapping.condition: no such key: email"
    );
    // Wrong type at run time (a claim that is not a string): refused, as an evaluation
    // error and not as a missing claim.
    match m.apply(&obj(json!({"sub": "a", "email": 7}))) {
        Err(MappingError::Evaluation { field, message }) => {
            assert_eq!(field, "mapping.condition");
            assert!(message.contains("endsWith"), "{message}");
        }
        other => panic!("expected an evaluation error, got {other:?}"),
    }
    // Yields a non-bool at run time: refused, saying so.
    let m = Mapping::compile(
        None,
        &BTreeMap::new(),
        Some("assertion.flag"),
        AssertionKind::Claims,
    )
    .unwrap();
    assert_eq!(
        m.apply(&obj(json!({"sub": "a", "flag": "true"}))),
        Err(MappingError::ConditionNotBool {
            found: "a string".into()
        })
    );
}

#[test]
fn condition_errors_do_not_echo_claim_values() {
    let m = Mapping::compile(
        None,
        &BTreeMap::new(),
        Some("assertion.secret > 3"),
        AssertionKind::Claims,
    )
    .unwrap();
    let err = m
        .apply(&obj(json!({"sub": "a", "secret": "hunter2-very-secret"})))
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// (subject, claims, condition, the field the error must name)
type CompileCase<'a> = (
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

#[test]
fn compile_errors_name_the_field() {
    let cases: &[CompileCase<'_>] = &[
        (Some("assertion.("), &[], None, "mapping.subject"),
        (Some(""), &[], None, "mapping.subject"),
        (
            None,
            &[("email", "assertion..email")],
            None,
            "mapping.claims.email",
        ),
        (
            None,
            &[("sub", "assertion.email")],
            None,
            "mapping.claims.sub",
        ),
        (
            None,
            &[],
            Some("assertion.email.endsWith("),
            "mapping.condition",
        ),
    ];
    for (subject, cl, condition, field) in cases {
        let err =
            Mapping::compile(*subject, &claims(cl), *condition, AssertionKind::Claims).unwrap_err();
        match err {
            MappingError::Compile { field: f, .. } => assert_eq!(&f, field),
            other => panic!("expected Compile for {field}, got {other:?}"),
        }
    }
}

#[test]
fn compile_all_reports_every_problem() {
    let errors = Mapping::compile_all(
        Some("("),
        &claims(&[("a", "("), ("b", "assertion.b")]),
        Some(")"),
        AssertionKind::Claims,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn deep_input_is_cut_off_not_followed() {
    let mut v = json!("leaf");
    for _ in 0..100 {
        v = json!({ "n": v });
    }
    let m = Mapping::compile(
        None,
        &claims(&[("deep", "assertion.deep")]),
        None,
        AssertionKind::Claims,
    )
    .unwrap();
    let out = m.apply(&obj(json!({"sub": "a", "deep": v}))).unwrap();
    // Cut at the conversion depth limit: the claim is kept down to 32 nested objects
    // and the rest is null, never followed to a stack overflow.
    let mut level = out.claims.get("deep").expect("the claim is kept, cut");
    let mut depth = 0;
    while let Some(inner) = level.get("n") {
        level = inner;
        depth += 1;
    }
    assert_eq!(depth, 32);
    assert_eq!(*level, Value::Null, "cut off, not followed to the leaf");
}

#[test]
fn mapping_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Mapping>();
}

/// Issue 13: "expression failed" and "claim missing" are different refusals, and neither
/// echoes a value of the token.
#[test]
fn an_evaluation_error_and_a_missing_claim_are_told_apart() {
    let m = Mapping::compile(
        Some("assertion.uid.lowerAscii()"),
        &BTreeMap::new(),
        None,
        AssertionKind::Claims,
    )
    .unwrap();
    let missing = m.apply(&obj(json!({"sub": "a"}))).unwrap_err();
    assert_eq!(missing.to_string(), "mapping.subject: no such key: uid");
    let failed = m.apply(&obj(json!({"sub": "a", "uid": 4242}))).unwrap_err();
    assert!(
        matches!(
            &failed,
            MappingError::Evaluation {
                field: "mapping.subject",
                ..
            }
        ),
        "{failed:?}"
    );
    let text = failed.to_string();
    assert!(
        text.starts_with("mapping.subject: evaluation error: ") && text.contains("lowerAscii"),
        "{text}"
    );
    assert!(!text.contains("4242"), "{text}");
    assert_ne!(missing, failed);
}

/// A key computed from the token is one of its values: a refusal does not repeat it.
#[test]
fn a_missing_key_computed_from_the_token_is_not_echoed() {
    let m = Mapping::compile(
        Some("assertion.names[assertion.pick]"),
        &BTreeMap::new(),
        None,
        AssertionKind::Claims,
    )
    .unwrap();
    let err = m
        .apply(&obj(
            json!({"sub": "a", "names": {"x": "y"}, "pick": "hunter2-secret"}),
        ))
        .unwrap_err();
    assert!(matches!(err, MappingError::NoSuchKey { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn compile_problem(
    kind: AssertionKind,
    subject: Option<&str>,
    claim: Option<&str>,
    condition: Option<&str>,
) -> (String, String) {
    let claims = claim.map(|c| claims(&[("c", c)])).unwrap_or_default();
    match Mapping::compile(subject, &claims, condition, kind) {
        Err(MappingError::Compile { field, message }) => (field, message),
        Err(other) => panic!("expected a compile error, got {other:?}"),
        Ok(m) => panic!("expected a compile error, got {m:?}"),
    }
}

/// (assertion kind, subject, claim `c`, condition, the field named, words of the problem;
/// no words: the row must compile).
type RefusalCase<'a> = (
    AssertionKind,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
);

/// Issue 13: what parses but can only fail at run time is refused when the registry
/// loads, naming the field and what is wrong.
#[test]
fn what_can_only_fail_at_run_time_is_refused_at_load() {
    use AssertionKind::{Claims, Saml};
    #[rustfmt::skip]
    let cases: &[RefusalCase<'_>] = &[
        // undeclared identifiers
        (Claims, Some("sub"), None, None, "mapping.subject", "undeclared variable `sub`: the token is `assertion`, e.g. `assertion.sub`"),
        (Claims, Some("token.sub"), None, None, "mapping.subject", "undeclared variable `token`"),
        (Claims, None, Some("email"), None, "mapping.claims.c", "undeclared variable `email`"),
        (Claims, None, None, Some("has(claims.email)"), "mapping.condition", "undeclared variable `claims`"),
        (Claims, None, None, Some("assertion.groups.exists(g, x == 'a')"), "mapping.condition", "undeclared variable `x`"),
        // a macro's variable is not in scope outside it
        (Claims, None, Some("[assertion.groups.exists(g, g == 'a'), g]"), None, "mapping.claims.c", "undeclared variable `g`"),
        // functions the interpreter does not provide, or not that way
        (Claims, None, Some("lower(assertion.email)"), None, "mapping.claims.c", "did you mean `lowerAscii`"),
        (Claims, None, Some("assertion.email.toLowerCase()"), None, "mapping.claims.c", "did you mean `lowerAscii`"),
        (Claims, None, None, Some("assertion.email.startswith('a')"), "mapping.condition", "did you mean `startsWith`"),
        (Claims, None, Some("frobnicate(assertion.email)"), None, "mapping.claims.c", "unknown function `frobnicate()`"),
        (Claims, None, Some("lowerAscii(assertion.email)"), None, "mapping.claims.c", "`lowerAscii` is a method, not a function"),
        (Claims, None, None, Some("assertion.groups.exists(g)"), "mapping.condition", "is a macro and is written `list.exists(x, predicate)`"),
        (Claims, None, Some("math.greatest(1, 2)"), None, "mapping.claims.c", "unknown function `math.greatest()`"),
        (Claims, None, Some("acme.Thing{a: 1}"), None, "mapping.claims.c", "names no message type"),
        // literals of a type that can never work for the field
        (Claims, Some("1.5"), None, None, "mapping.subject", "does not read the token"),
        (Claims, Some("'alice'"), None, None, "mapping.subject", "does not read the token"),
        (Claims, Some("assertion.sub == 'x'"), None, None, "mapping.subject", "always yields a bool"),
        (Claims, Some("[assertion.sub]"), None, None, "mapping.subject", "always yields a list"),
        (Claims, Some("has(assertion.sub) ? assertion.sub : null"), None, None, "mapping.subject", ""),
        (Claims, None, None, Some("'true'"), "mapping.condition", "always yields a string"),
        (Claims, None, None, Some("assertion.groups.map(g, g == 'a')"), "mapping.condition", "always yields a list"),
        (Claims, None, None, Some("size(assertion.groups)"), "mapping.condition", "always yields an int"),
        (Claims, None, Some("b'raw'"), None, "mapping.claims.c", "always yields bytes"),
        (Claims, None, Some("'abc'.x"), None, "mapping.claims.c", "selects a field of a string"),
        (Claims, None, Some("true[0]"), None, "mapping.claims.c", "indexes a bool"),
        // the SAML view has fixed fields, and attributes are lists of strings
        (Saml, Some("assertion.email"), None, None, "mapping.subject", "a SAML `assertion` has no field `email`"),
        (Saml, None, Some("assertion.attributes_email"), None, "mapping.claims.c", "has no field `attributes_email`"),
        (Saml, Some("assertion.attributes.uid"), None, None, "mapping.subject", "a SAML attribute is a list of values, take one"),
        (Saml, None, None, Some("assertion.attributes.groups.contains('staff')"), "mapping.condition", "write `'value' in list`"),
        (Saml, None, None, Some("assertion.attributes.email.endsWith('@acme.example')"), "mapping.condition", "take one first"),
        (Saml, None, Some("assertion.subject.value"), None, "mapping.claims.c", "selects a field of a string"),
    ];
    for (kind, subject, claim, condition, field, words) in cases {
        if words.is_empty() {
            // A row that must compile (the `?:` above: its type is only known at run time).
            Mapping::compile(
                *subject,
                &claim.map(|c| claims(&[("c", c)])).unwrap_or_default(),
                *condition,
                *kind,
            )
            .unwrap_or_else(|e| panic!("{subject:?} {claim:?} {condition:?}: {e}"));
            continue;
        }
        let (f, message) = compile_problem(*kind, *subject, *claim, *condition);
        assert_eq!(&f, field, "{subject:?} {claim:?} {condition:?}: {message}");
        assert!(
            message.contains(words),
            "{subject:?} {claim:?} {condition:?}: {message:?} should say {words:?}"
        );
    }
}

/// Everything the repository's registries (demo, examples, tests) and real-world mappings
/// write stays valid: the load-time check refuses only what cannot work.
#[test]
fn valid_expressions_are_not_refused() {
    use AssertionKind::{Claims, Saml};
    let subjects: &[(AssertionKind, &str)] = &[
        (Claims, "assertion.sub"),
        (Claims, "assertion.oid"),
        (Claims, "assertion['sub']"),
        (Claims, "assertion.email.lowerAscii()"),
        (Claims, "string(assertion.id)"),
        (Claims, "assertion.uid"),
        (Claims, "has(assertion.oid) ? assertion.oid : assertion.sub"),
        (Claims, "assertion.email.split('@')[0]"),
        (Claims, "assertion.tid + ':' + assertion.oid"),
        (Claims, "dyn(assertion.sub)"),
        (Saml, "assertion.subject"),
        (Saml, "assertion.attributes[\"http://schemas.microsoft.com/identity/claims/objectidentifier\"][0]"),
        (Saml, "assertion.attributes['urn:oid:1.3.6.1.4.1.5923.1.1.1.6'][0]"),
        (Saml, "assertion.attributes.uid[0].lowerAscii()"),
        (Saml, "has(assertion.subject) ? assertion.subject : assertion.attributes.uid[0]"),
    ];
    for (kind, s) in subjects {
        Mapping::compile(Some(s), &BTreeMap::new(), None, *kind)
            .unwrap_or_else(|e| panic!("subject {s}: {e}"));
    }
    let claims_ok: &[(AssertionKind, &str)] = &[
        (Claims, "assertion.email"),
        (Claims, "assertion.realm_access.roles"),
        (Claims, "assertion.groups.map(g, g.lowerAscii())"),
        (Claims, "assertion.roles.filter(r, r.startsWith('app:'))"),
        (
            Claims,
            "assertion.groups.filter(g, g.matches('^team-[a-z]+$')).map(g, g.substring(5))",
        ),
        (Claims, "{'name': assertion.name, 'tid': assertion.tid}"),
        (Claims, "[assertion.a, assertion.b]"),
        (Claims, "size(assertion.groups)"),
        (Claims, "assertion.groups.size()"),
        (Claims, "int(assertion.age)"),
        (Claims, "assertion.email.trim().upperAscii()"),
        (Claims, "assertion.email.replace('@', ' at ')"),
        (Claims, "assertion.name.charAt(0)"),
        (Claims, "assertion.email.indexOf('@')"),
        (Claims, "assertion.groups.join(',')"),
        (Claims, "strings.quote(assertion.name)"),
        (Claims, "assertion.?email.orValue('')"),
        (Claims, "optional.of(assertion.email).value()"),
        (Claims, "type(assertion.x) == string ? assertion.x : ''"),
        (Claims, "timestamp(assertion.updated_at)"),
        (Claims, "duration('1h')"),
        (Claims, "null"),
        (Claims, "{'a': [1, 2u, 2.5, true]}"),
        (Saml, "assertion.attributes.email[0]"),
        (Saml, "assertion.attributes.groups"),
        (
            Saml,
            "assertion.attributes[\"http://schemas.xmlsoap.org/claims/Group\"]",
        ),
        (Saml, "assertion.attributes.groups.map(g, g.lowerAscii())"),
        (Saml, "assertion.name_id_format"),
        (Saml, "assertion.authn_context"),
        (Saml, "assertion.session_index"),
        (Saml, "assertion.issuer"),
        (
            Saml,
            "assertion.attributes.filter(k, k.startsWith('urn:oid:'))",
        ),
    ];
    for (kind, c) in claims_ok {
        Mapping::compile(None, &claims(&[("c", c)]), None, *kind)
            .unwrap_or_else(|e| panic!("claim {c}: {e}"));
    }
    let conditions: &[(AssertionKind, &str)] = &[
        (Claims, "assertion.email.endsWith('@acme.example')"),
        (Claims, "has(assertion.email_verified) && assertion.email_verified == true"),
        (Claims, "assertion.email_verified == true"),
        (Claims, "assertion.repository_owner_id == '1234567' &&\nassertion.repository_id == '7654321' &&\nassertion.ref == 'refs/heads/main'"),
        (Claims, "'admins' in assertion.groups"),
        (Claims, "assertion.groups.exists(g, g == 'admins')"),
        (Claims, "assertion.amr.all(m, m in ['pwd', 'mfa'])"),
        (Claims, "assertion.groups.exists_one(g, g.startsWith('team-'))"),
        (Claims, "assertion.email.matches('^[a-z]+@acme\\\\.example$')"),
        (Claims, "matches(assertion.email, '@acme')"),
        (Claims, "assertion.email.contains('@')"),
        (Claims, "size(assertion.email) > 3 && !assertion.disabled"),
        (Claims, "assertion.exp - assertion.iat <= 3600"),
        (Claims, "assertion.flag"),
        (Claims, "true"),
        (Saml, "'staff' in assertion.attributes.groups"),
        (Saml, "assertion.attributes.email[0].endsWith('@acme.example')"),
        (Saml, "has(assertion.attributes.email) && size(assertion.attributes.email) == 1"),
        (Saml, "assertion.attributes.groups.exists(g, g == 'staff')"),
        (Saml, "has(assertion.email)"),
        (Saml, "assertion.name_id_format == 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'"),
    ];
    for (kind, c) in conditions {
        Mapping::compile(None, &BTreeMap::new(), Some(c), *kind)
            .unwrap_or_else(|e| panic!("condition {c}: {e}"));
    }
}

/// The checker asks the interpreter what it provides: every function the examples above
/// use is really there, and an unknown one is really not.
#[test]
fn what_the_check_accepts_runs_and_what_it_refuses_fails() {
    let m = Mapping::compile(
        Some("assertion.email.lowerAscii().split('@')[0]"),
        &claims(&[
            ("n", "size(assertion.groups)"),
            ("quoted", "strings.quote(assertion.sub)"),
            ("admin", "'admins' in assertion.groups"),
        ]),
        Some("assertion.groups.exists(g, g.startsWith('adm'))"),
        AssertionKind::Claims,
    )
    .unwrap();
    let out = m
        .apply(&obj(
            json!({"sub": "s", "email": "Ann@X", "groups": ["admins"]}),
        ))
        .unwrap();
    assert_eq!(out.subject, "ann");
    assert_eq!(
        Value::Object(out.claims),
        json!({"n": 1, "quoted": "\"s\"", "admin": true})
    );
    // Unchecked, `frobnicate` would fail every time: the interpreter does not know it.
    let env = shared_env();
    let program = env.compile("frobnicate(assertion.sub)").unwrap();
    let mut ctx = Context::with_env(env);
    ctx.add_variable_from_value(ASSERTION_VAR, object_to_cel(&obj(json!({"sub": "s"})), 0));
    assert!(matches!(
        program.execute(&ctx),
        Err(ExecutionError::UndeclaredReference(_))
    ));
}

#[test]
fn what_a_mapping_is_fed_and_yields_is_bounded() {
    use super::cost::MAX_LIST_ITEMS;
    let claims = BTreeMap::from([
        ("groups".to_owned(), "assertion.groups".to_owned()),
        (
            "twice".to_owned(),
            "assertion.groups + assertion.groups".to_owned(),
        ),
    ]);
    let m = Mapping::compile(None, &claims, None, AssertionKind::Claims).unwrap();
    let groups =
        |n: usize, len: usize| -> Vec<String> { (0..n).map(|i| format!("{i:0len$}")).collect() };
    let token = |g: Vec<String>| {
        json!({"sub": "a", "groups": g})
            .as_object()
            .unwrap()
            .clone()
    };
    // Within every bound: mapped.
    assert!(m.apply(&token(groups(100, 8))).is_ok());
    // Fed too much: refused before any program runs.
    let err = m.apply(&token(groups(MAX_LIST_ITEMS + 1, 2))).unwrap_err();
    assert!(matches!(err, MappingError::InputTooLarge { .. }), "{err}");
    // Yields too much: refused, naming the claim.
    let err = m.apply(&token(groups(MAX_LIST_ITEMS, 8))).unwrap_err();
    match err {
        MappingError::OutputTooLarge { field, .. } => assert_eq!(field, "mapping.claims.groups"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_mapping_over_the_cost_budget_is_refused_at_load() {
    let nested = BTreeMap::from([(
        "pairs".to_owned(),
        "assertion.groups.map(g, assertion.groups.exists(h, h == g + 'x'))".to_owned(),
    )]);
    let err = Mapping::compile(None, &nested, None, AssertionKind::Claims).unwrap_err();
    assert!(err.to_string().contains("over the budget"), "{err}");
    // Many programs each within budget, too many together.
    let body = "assertion.groups.map(g, g.lowerAscii() + g.upperAscii() + g + g + g + g + g + g)";
    let many: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("c{i}"), body.to_owned()))
        .collect();
    let err = Mapping::compile(None, &many, None, AssertionKind::Claims).unwrap_err();
    assert!(err.to_string().contains("together"), "{err}");
}
