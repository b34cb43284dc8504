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
    let m = Mapping::compile(None, &BTreeMap::new(), None, "assertion.subject").unwrap();
    let out = m.apply(&obj(json!({"subject": "bob"}))).unwrap();
    assert_eq!(out.subject, "bob");
}

#[test]
fn a_missing_subject_refuses_the_token() {
    let m = Mapping::default_for_jwt();
    for (why, input) in [
        ("no sub", json!({"email": "a@x"})),
        ("empty sub", json!({"sub": ""})),
        ("null sub", json!({"sub": null})),
        ("list sub", json!({"sub": ["a"]})),
        ("float sub", json!({"sub": 1.5})),
    ] {
        assert!(
            matches!(m.apply(&obj(input)), Err(MappingError::SubjectMissing)),
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
        DEFAULT_JWT_SUBJECT,
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
        DEFAULT_JWT_SUBJECT,
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
    match m.apply(&obj(json!({"sub": "a"}))) {
        Err(MappingError::ConditionError { message }) => {
            assert!(message.contains("email"), "{message}")
        }
        other => panic!("expected ConditionError, got {other:?}"),
    }
    // Wrong type: not a bool ⇒ refused.
    let m = Mapping::compile(None, &BTreeMap::new(), Some("'true'"), DEFAULT_JWT_SUBJECT).unwrap();
    assert!(matches!(
        m.apply(&obj(json!({"sub": "a"}))),
        Err(MappingError::ConditionError { .. })
    ));
}

#[test]
fn condition_errors_do_not_echo_claim_values() {
    let m = Mapping::compile(
        None,
        &BTreeMap::new(),
        Some("assertion.secret > 3"),
        DEFAULT_JWT_SUBJECT,
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
            Mapping::compile(*subject, &claims(cl), *condition, DEFAULT_JWT_SUBJECT).unwrap_err();
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
        DEFAULT_JWT_SUBJECT,
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
        DEFAULT_JWT_SUBJECT,
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
