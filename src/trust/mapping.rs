//! Claim mapping: CEL programs over the verified `assertion`, compiled once when the
//! registry loads and evaluated on every exchange.
//!
//! The rule (SPEC §2, §2.1): the `subject` program must yield a non-empty string, or the
//! token is refused; a `claims` program that fails or yields `null` contributes nothing
//! (the claim is omitted); the `condition`, when set, must yield exactly `true` — `false`
//! refuses the token, and so does any evaluation error (cel 0.15 reports a missing key as
//! an error, and a policy that cannot be evaluated must never admit anyone).
//!
//! What can only fail is refused at load ([`check`]): an undeclared variable, a function
//! the interpreter does not provide, a literal of the wrong type for its field. At run
//! time a refusal says which of these happened: a claim the token lacks (`no such key`),
//! another evaluation error, a false condition, a subject of the wrong type or empty.
//!
//! `assertion` is the verified claim set (JWT payload, or the SAML view), converted to a
//! CEL value once per `apply` and shared by every program of the mapping. What a mapping
//! is fed, what one evaluation may cost and what it may yield are bounded ([`cost`]):
//! beyond a bound the token is refused at the mapping step, and a program whose worst
//! case is over the budget is refused at load.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use serde_json::{Map, Number, Value};

pub use self::check::AssertionKind;
use self::check::Role;

mod check;
pub mod cost;

/// The CEL variable the verified token is bound to.
pub const ASSERTION_VAR: &str = "assertion";

/// Subject program used for JWT issuers when the entry has no `mapping.subject`.
pub const DEFAULT_JWT_SUBJECT: &str = "assertion.sub";

/// Subject program used for SAML issuers when the entry has no `mapping.subject`: the
/// NameID (SPEC §2).
pub const DEFAULT_SAML_SUBJECT: &str = "assertion.subject";

/// Deeper JSON is replaced by `null` when handed to CEL. Verified tokens are at most
/// 48 KiB and parsed with serde_json's own recursion limit (128); this keeps the
/// conversion's recursion, and the programs' view, shallow regardless.
const MAX_DEPTH: usize = 32;

/// Claim names a mapping may not produce: tessera sets these itself on issued tokens
/// (RFC 9068 §2.2, RFC 8693 §4), so a mapped value must never override them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "act",
    "may_act",
    "cnf",
    "auth_time",
    "azp",
    "typ",
    // tessera's own lineage of exchanged tokens (revocation): never a mapped value.
    "exchanged_from",
    "acted_from",
    "src_iss",
];

/// Registry field names of a mapping's programs (what messages name).
pub const SUBJECT_FIELD: &str = "mapping.subject";
pub const CONDITION_FIELD: &str = "mapping.condition";

/// Why a mapping was refused at load (`Compile`) or refused a token. The run-time texts
/// become the refusal's `error_description` and log line: they name keys, functions and
/// types, never a value from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// `field` is the registry field, e.g. `mapping.subject`, `mapping.claims.email`.
    #[error("{field}: {message}")]
    Compile { field: String, message: String },
    /// The program read a claim (a map key) the token does not carry.
    #[error("{field}: no such key: {key}")]
    NoSuchKey { field: &'static str, key: String },
    /// The program failed for another reason: a claim of another type than it expects,
    /// a function that failed. `message` is the interpreter's error, without values.
    #[error("{field}: evaluation error: {message}")]
    Evaluation {
        field: &'static str,
        message: String,
    },
    #[error("mapping.condition is false")]
    ConditionFalse,
    /// The condition yielded something else than a bool (`found` is its type).
    #[error("mapping.condition: yielded {found}, not a bool")]
    ConditionNotBool { found: String },
    /// The token's `assertion` is more than a mapping is fed ([`cost`]'s input bounds).
    #[error("the token carries {what}: more than a mapping is fed")]
    InputTooLarge { what: String },
    /// A program yielded more than a mapped value may be.
    #[error("{field}: yielded {size}, over the bound of {limit}")]
    OutputTooLarge {
        field: String,
        size: String,
        limit: String,
    },
    /// The subject is empty, or neither a string nor an integer (`found` says which).
    #[error("mapping.subject: yielded {found}; a subject is a non-empty string or an integer")]
    SubjectUnusable { found: String },
}

/// A compiled mapping. `Send + Sync`: it lives in `Arc<IssuerEntry>` shared across the
/// workers (asserted at compile time below).
pub struct Mapping {
    env: Arc<Env>,
    kind: AssertionKind,
    subject: Compiled,
    claims: Vec<(String, Compiled)>,
    condition: Option<Compiled>,
}

/// A program and the source it came from (for `Debug` and `tessera trust check`).
struct Compiled {
    source: String,
    program: Program,
    /// Every field name and string literal the source spells: a run-time `no such key`
    /// names its key only when it is one of these (a key computed from the token, as in
    /// `assertion.attributes[assertion.subject]`, is a value of the token).
    spelled: Vec<String>,
    /// Its worst-case cost ([`cost::worst_case`]).
    worst: u64,
}

// `Program` holds only the parsed AST and `Env` only declarations; both are plain data.
// If a future cel release broke this, the build fails here rather than at the use site.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mapping>();
};

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("subject", &self.subject.source)
            .field(
                "claims",
                &self
                    .claims
                    .iter()
                    .map(|(k, c)| (k.as_str(), c.source.as_str()))
                    .collect::<Vec<_>>(),
            )
            .field("condition", &self.condition.as_ref().map(|c| &c.source))
            .finish()
    }
}

/// What a mapping produced for one verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// The CEL environment every mapping is compiled and run with: the standard library
/// plus the strings extension (`lowerAscii()`, `split()`, ... are handy for emails and
/// group names). Built once per process; contexts only clone the `Arc`.
fn shared_env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // The extension only declares functions; it cannot conflict with a fresh stdlib
        // env. Should it ever fail, the plain stdlib still serves.
        let _ = env.add_extension(cel::extensions::strings);
        Arc::new(env)
    })
    .clone()
}

impl Mapping {
    /// Compiles and checks every program for tokens whose `assertion` is `kind`; the
    /// kind's default subject ([`AssertionKind::default_subject`]) is used when `subject`
    /// is `None`. Returns the first problem; see [`Mapping::compile_all`].
    pub fn compile(
        subject: Option<&str>,
        claims: &BTreeMap<String, String>,
        condition: Option<&str>,
        kind: AssertionKind,
    ) -> Result<Self, MappingError> {
        Self::compile_all(subject, claims, condition, kind).map_err(|mut errors| {
            // compile_all never returns an empty error list.
            errors.swap_remove(0)
        })
    }

    /// Like [`Mapping::compile`], but reports every problem (the registry loader shows
    /// them all at once). Never returns `Err` with an empty vector.
    pub fn compile_all(
        subject: Option<&str>,
        claims: &BTreeMap<String, String>,
        condition: Option<&str>,
        kind: AssertionKind,
    ) -> Result<Self, Vec<MappingError>> {
        let env = shared_env();
        let mut errors = Vec::new();
        let subject_source = subject.unwrap_or(kind.default_subject());

        let subject = compile_one(&env, kind, Role::Subject, SUBJECT_FIELD, subject_source)
            .map_err(|e| errors.push(e))
            .ok();

        let mut compiled_claims = Vec::with_capacity(claims.len());
        for (name, source) in claims {
            let field = format!("mapping.claims.{name}");
            if let Some(problem) = claim_name_problem(name) {
                errors.push(MappingError::Compile {
                    field,
                    message: problem,
                });
                continue;
            }
            match compile_one(&env, kind, Role::Claim, &field, source) {
                Ok(c) => compiled_claims.push((name.clone(), c)),
                Err(e) => errors.push(e),
            }
        }

        let condition = match condition {
            Some(source) => {
                match compile_one(&env, kind, Role::Condition, CONDITION_FIELD, source) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
            None => None,
        };

        // Every program runs for every token: the mapping as a whole has a budget too.
        let total = subject
            .iter()
            .chain(compiled_claims.iter().map(|(_, c)| c))
            .chain(condition.iter())
            .map(|c| c.worst)
            .fold(0u64, u64::saturating_add);
        if errors.is_empty() && total > cost::MAX_MAPPING_COST {
            errors.push(MappingError::Compile {
                field: "mapping".to_owned(),
                message: format!(
                    "its programs together may evaluate {total} expressions for one token, over \
                     the budget of {}: fewer or simpler claims",
                    cost::MAX_MAPPING_COST
                ),
            });
        }
        match subject {
            Some(subject) if errors.is_empty() => Ok(Self {
                env,
                kind,
                subject,
                claims: compiled_claims,
                condition,
            }),
            _ => Err(errors),
        }
    }

    /// Subject = `assertion.sub`, no claims, no condition: what an OIDC issuer without a
    /// `[mapping]` table gets.
    pub fn default_for_jwt() -> Self {
        Self::default_for(AssertionKind::Claims)
    }

    /// The kind's default subject, no claims, no condition: what an issuer without a
    /// `[mapping]` table gets.
    pub fn default_for(kind: AssertionKind) -> Self {
        Self::constant(kind, kind.default_subject())
    }

    /// Subject = `subject` (one of the `DEFAULT_*_SUBJECT` constants), no claims, no
    /// condition.
    pub fn default_with_subject(subject: &'static str) -> Self {
        let kind = if subject == DEFAULT_SAML_SUBJECT {
            AssertionKind::Saml
        } else {
            AssertionKind::Claims
        };
        Self::constant(kind, subject)
    }

    fn constant(kind: AssertionKind, subject: &'static str) -> Self {
        let env = shared_env();
        #[expect(
            clippy::expect_used,
            reason = "constant expressions; mapping::tests::default_for_jwt_maps_sub covers them"
        )]
        let program = env.compile(subject).expect("default subject compiles");
        Self {
            env,
            kind,
            subject: Compiled {
                source: subject.to_owned(),
                spelled: spelled(program.expression()),
                worst: cost::worst_case(program.expression()),
                program,
            },
            claims: Vec::new(),
            condition: None,
        }
    }

    /// What `assertion` holds for the tokens this mapping was checked for.
    pub fn kind(&self) -> AssertionKind {
        self.kind
    }

    /// The source of the subject program.
    pub fn subject_source(&self) -> &str {
        &self.subject.source
    }

    /// Names of the claims this mapping may produce, in order.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.claims.iter().map(|(name, _)| name.as_str())
    }

    pub fn has_condition(&self) -> bool {
        self.condition.is_some()
    }

    /// Evaluates the mapping against a verified claim set.
    ///
    /// Subject: a non-empty string; an integer (signed or unsigned) is accepted and
    /// written in decimal, since some IdPs use numeric user ids. Anything else — a
    /// float, a list, `null`, an empty string — is [`MappingError::SubjectUnusable`]; a
    /// claim it reads that the token lacks is [`MappingError::NoSuchKey`], any other
    /// failure [`MappingError::Evaluation`].
    pub fn apply(&self, assertion: &Map<String, Value>) -> Result<Mapped, MappingError> {
        cost::check_input(assertion).map_err(|what| MappingError::InputTooLarge { what })?;
        let mut ctx = Context::with_env(self.env.clone());
        ctx.add_variable_from_value(ASSERTION_VAR, object_to_cel(assertion, 0));

        // The condition gates everything else, so it runs first.
        if let Some(condition) = &self.condition {
            match condition.program.execute(&ctx) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Err(MappingError::ConditionFalse),
                Ok(other) => {
                    return Err(MappingError::ConditionNotBool {
                        found: a_value_of_type(&other),
                    })
                }
                Err(e) => return Err(condition.failed(CONDITION_FIELD, &e)),
            }
        }

        let subject = match self.subject.program.execute(&ctx) {
            Ok(CelValue::String(s)) if !s.is_empty() => s.as_str().to_owned(),
            Ok(CelValue::Int(i)) => i.to_string(),
            Ok(CelValue::UInt(u)) => u.to_string(),
            Ok(CelValue::String(_)) => {
                return Err(MappingError::SubjectUnusable {
                    found: "an empty string".to_owned(),
                })
            }
            Ok(other) => {
                return Err(MappingError::SubjectUnusable {
                    found: a_value_of_type(&other),
                })
            }
            Err(e) => return Err(self.subject.failed(SUBJECT_FIELD, &e)),
        };
        if subject.len() > cost::MAX_SUBJECT_BYTES {
            return Err(too_large(
                SUBJECT_FIELD.to_owned(),
                subject.len(),
                cost::MAX_SUBJECT_BYTES,
            ));
        }

        let mut claims = Map::new();
        let mut total = 0;
        for (name, compiled) in &self.claims {
            // SPEC §2.1: a claim that yields nothing is omitted — errors included.
            let Ok(value) = compiled.program.execute(&ctx) else {
                continue;
            };
            let field = || format!("mapping.claims.{name}");
            let mut budget = cost::MAX_VALUES;
            let json = match cel_to_json(&value, 0, &mut budget) {
                Err(TooMany) => {
                    return Err(MappingError::OutputTooLarge {
                        field: field(),
                        size: format!("more than {} values", cost::MAX_VALUES),
                        limit: format!("{} values", cost::MAX_VALUES),
                    })
                }
                Ok(None | Some(Value::Null)) => continue,
                Ok(Some(json)) => json,
            };
            let bytes = json_len(&json);
            if bytes > cost::MAX_CLAIM_BYTES {
                return Err(too_large(field(), bytes, cost::MAX_CLAIM_BYTES));
            }
            total += bytes;
            if total > cost::MAX_CLAIMS_BYTES {
                return Err(too_large(
                    "mapping.claims".to_owned(),
                    total,
                    cost::MAX_CLAIMS_BYTES,
                ));
            }
            claims.insert(name.clone(), json);
        }

        Ok(Mapped { subject, claims })
    }
}

impl AssertionKind {
    /// The subject program of an issuer without `mapping.subject` (SPEC §2): `sub` of a
    /// JWT or introspection answer, the NameID of a SAML assertion.
    pub const fn default_subject(self) -> &'static str {
        match self {
            Self::Claims => DEFAULT_JWT_SUBJECT,
            Self::Saml => DEFAULT_SAML_SUBJECT,
        }
    }
}

impl Compiled {
    /// The refusal for an evaluation error of this program, the registry field `field`.
    fn failed(&self, field: &'static str, e: &ExecutionError) -> MappingError {
        match e {
            ExecutionError::NoSuchKey(key) => MappingError::NoSuchKey {
                field,
                key: if self.spelled.iter().any(|s| s == key.as_str()) {
                    key.as_str().to_owned()
                } else {
                    "(a key computed from the token)".to_owned()
                },
            },
            other => MappingError::Evaluation {
                field,
                message: describe_execution_error(other),
            },
        }
    }
}

/// "a list", "an int", "null": what a program yielded, by type only.
fn a_value_of_type(v: &CelValue) -> String {
    let ty = v.type_of().to_string();
    match v {
        CelValue::Null => ty,
        _ if ty.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {ty}"),
        _ => format!("a {ty}"),
    }
}

/// Parses `source`, then checks it for `role` ([`check`]).
fn compile_one(
    env: &Arc<Env>,
    kind: AssertionKind,
    role: Role,
    field: &str,
    source: &str,
) -> Result<Compiled, MappingError> {
    let problem = |message: String| MappingError::Compile {
        field: field.to_owned(),
        message,
    };
    if source.trim().is_empty() {
        return Err(problem("empty CEL expression".to_owned()));
    }
    let program = env.compile(source).map_err(|e| {
        problem(format!(
            "CEL does not compile: {}",
            e.to_string().replace('\n', "; ")
        ))
    })?;
    check::check(env, kind, role, program.expression()).map_err(problem)?;
    cost::check_functions(program.expression()).map_err(problem)?;
    let worst = cost::worst_case(program.expression());
    if worst > cost::MAX_COST {
        return Err(problem(format!(
            "may evaluate {worst} expressions for one token, over the budget of {}: a \
             comprehension over the token's values (each at most {} items) nested in another \
             multiplies; iterate once, or over a literal list",
            cost::MAX_COST,
            cost::MAX_LIST_ITEMS
        )));
    }
    Ok(Compiled {
        source: source.to_owned(),
        spelled: spelled(program.expression()),
        program,
        worst,
    })
}

/// Every field name and string literal in `e` (see [`Compiled::spelled`]).
fn spelled(e: &IdedExpr) -> Vec<String> {
    fn walk(e: &IdedExpr, out: &mut Vec<String>) {
        match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => out.push(s.inner().to_owned()),
            Expr::Select(s) => {
                out.push(s.field.clone());
                walk(&s.operand, out);
            }
            Expr::Call(c) => {
                if let Some(t) = &c.target {
                    walk(t, out);
                }
                c.args.iter().for_each(|a| walk(a, out));
            }
            Expr::List(l) => l.elements.iter().for_each(|a| walk(a, out)),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        walk(&m.key, out);
                        walk(&m.value, out);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        walk(&f.value, out);
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    walk(part, out);
                }
            }
            Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified => {}
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out.sort();
    out.dedup();
    out
}

fn claim_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a claim name must not be empty".to_owned());
    }
    if RESERVED_CLAIMS.contains(&name) {
        return Some(format!(
            "\"{name}\" is a claim tessera sets itself on issued tokens; a mapping may not produce it"
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some(format!(
            "{name:?} is not a usable claim name (whitespace or control characters)"
        ));
    }
    None
}

/// The interpreter's error, summarised without the values it may carry (they come
/// from the token and end up in `error_description` and log lines): names of keys,
/// functions, operators and types only.
fn describe_execution_error(e: &ExecutionError) -> String {
    let ty = |v: &CelValue| v.type_of().to_string();
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::UndeclaredReference(r) => format!("undeclared reference to '{r}'"),
        ExecutionError::NoSuchOverload(o) => o.to_string(),
        ExecutionError::UnexpectedType { got, want } => {
            format!("unexpected type: got '{got}', want '{want}'")
        }
        ExecutionError::FunctionError { function, .. } => {
            format!("function '{function}' failed")
        }
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("invalid argument count: expected {expected}, got {actual}")
        }
        ExecutionError::ValuesNotComparable(a, b) => {
            format!("a {} cannot be compared with a {}", ty(a), ty(b))
        }
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => {
            format!("operator '{op}' does not apply to {} and {}", ty(a), ty(b))
        }
        ExecutionError::UnsupportedIndex(index, target) => {
            format!("a {} cannot be indexed with a {}", ty(target), ty(index))
        }
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".to_owned(),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".to_owned(),
        ExecutionError::Overflow(op, _, _) => format!("overflow in '{op}'"),
        ExecutionError::UnsupportedKeyType(v) => format!("a {} cannot be a map key", ty(v)),
        ExecutionError::NotSupportedAsMethod { method, target } => {
            format!("'{method}' is not a method of a {}", ty(target))
        }
        ExecutionError::UnsupportedTargetType { target } => {
            format!("unsupported target: a {}", ty(target))
        }
        ExecutionError::DuplicateKey(_) => "a map literal repeats a key".to_owned(),
        ExecutionError::MissingArgumentOrTarget => "missing argument or target".to_owned(),
        _ => "evaluation error".to_owned(),
    }
}

fn object_to_cel(obj: &Map<String, Value>, depth: usize) -> CelValue {
    let mut map = HashMap::with_capacity(obj.len());
    for (k, v) in obj {
        map.insert(Key::String(Arc::new(k.clone())), json_to_cel(v, depth + 1));
    }
    CelValue::Map(CelMap { map: Arc::new(map) })
}

fn json_to_cel(value: &Value, depth: usize) -> CelValue {
    if depth > MAX_DEPTH {
        return CelValue::Null;
    }
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                n.as_f64().map_or(CelValue::Null, CelValue::Float)
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(
            items.iter().map(|v| json_to_cel(v, depth + 1)).collect(),
        )),
        Value::Object(obj) => object_to_cel(obj, depth),
    }
}

/// The length of `value` as compact JSON, without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn too_large(field: String, bytes: usize, limit: usize) -> MappingError {
    MappingError::OutputTooLarge {
        field,
        size: format!("{bytes} bytes"),
        limit: format!("{limit} bytes"),
    }
}

/// A result with more values than [`cost::MAX_VALUES`] (lists share their items inside
/// CEL, so a small program can name a huge value: it is never expanded past the budget).
struct TooMany;

/// CEL result → JSON claim value, spending one of `budget` per value. `None` for what
/// JSON cannot carry faithfully (non-finite floats, bytes, durations, functions, opaque
/// values); such a claim is omitted. Timestamps become RFC 3339 strings.
fn cel_to_json(
    value: &CelValue,
    depth: usize,
    budget: &mut usize,
) -> Result<Option<Value>, TooMany> {
    *budget = budget.checked_sub(1).ok_or(TooMany)?;
    if depth > MAX_DEPTH {
        return Ok(None);
    }
    Ok(Some(match value {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::Number((*i).into()),
        CelValue::UInt(u) => Value::Number((*u).into()),
        CelValue::Float(f) => match Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => return Ok(None),
        },
        CelValue::String(s) => Value::String(s.as_str().to_owned()),
        CelValue::List(items) => {
            let mut out = Vec::with_capacity(items.len().min(*budget));
            for v in items.iter() {
                match cel_to_json(v, depth + 1, budget)? {
                    Some(json) => out.push(json),
                    None => return Ok(None),
                }
            }
            Value::Array(out)
        }
        CelValue::Map(m) => {
            // Sorted keys: deterministic output whatever the HashMap order.
            let mut entries: Vec<(String, Value)> = Vec::with_capacity(m.map.len());
            for (k, v) in m.map.iter() {
                let key = match k {
                    Key::String(s) => s.as_str().to_owned(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                match cel_to_json(v, depth + 1, budget)? {
                    Some(json) => entries.push((key, json)),
                    None => return Ok(None),
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        CelValue::Timestamp(t) => Value::String(t.to_rfc3339()),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests;
