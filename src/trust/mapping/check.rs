//! Load-time checks of a mapping's CEL programs, so that `trust check`, `serve` and reload
//! refuse what could only ever fail at run time (where every such failure would look like
//! a token without the claim).
//!
//! cel 0.15 has no type checker: [`check`] walks the parsed (macro-expanded) expression
//! itself and refuses
//! - an identifier that is neither `assertion`, a variable a macro binds (`x` in
//!   `assertion.groups.exists(x, ...)`) nor a type name (`int`, `string`, ...);
//! - a call of a function the interpreter does not provide, or in a style it does not
//!   provide (`lowerAscii(x)` for `x.lowerAscii()`); what is provided is asked of the
//!   interpreter's own environment, never listed here;
//! - what the types known before any token arrives rule out: a literal of the wrong type
//!   for the field (`subject = "42.0"`, `condition = "'true'"`), a SAML field that the
//!   view never has (`assertion.email` instead of `assertion.attributes.email[0]`), a
//!   SAML attribute (a list of values) where a single value is needed, a string method
//!   on a list.
//!
//! Types are only known for literals, the SAML view and a few results (comparisons are
//! bool, `size()` is int); a JWT's claims are whatever the token carries, so anything read
//! from them is dynamic and passes.

use std::sync::Arc;

use cel::common::ast::{
    operators, CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue,
};
use cel::{Context, Env, ExecutionError, Value as CelValue};

use super::ASSERTION_VAR;

/// What the `assertion` variable holds for an issuer's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionKind {
    /// A JWT's claims or an introspection answer: any member may be there.
    Claims,
    /// The SAML view (SPEC §2): `subject`, `name_id_format`, `issuer`, `authn_context`,
    /// `session_index` (strings, absent when the assertion has none) and `attributes`
    /// (name → list of strings).
    Saml,
}

/// The string fields of the SAML view; `attributes` is the only other one.
const SAML_STRING_FIELDS: &[&str] = &[
    "subject",
    "name_id_format",
    "issuer",
    "authn_context",
    "session_index",
];
const SAML_ATTRIBUTES: &str = "attributes";

/// The field a program is for: what its result must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A non-empty string or an integer.
    Subject,
    /// Anything JSON can carry (null: the claim is omitted).
    Claim,
    /// A bool.
    Condition,
}

/// What is known of a value's type before any token is seen.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    /// Known only at run time: a claim, most functions' results.
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List(Box<Ty>),
    /// A map, with the type of its values.
    Map(Box<Ty>),
    /// The SAML `assertion` view.
    SamlView,
    /// A type name used as a value (`int`, `string`, ...).
    Type,
}

impl Ty {
    /// "a list", for messages.
    fn describe(&self) -> &'static str {
        match self {
            Ty::Dyn => "a value",
            Ty::Null => "null",
            Ty::Bool => "a bool",
            Ty::Int => "an int",
            Ty::Uint => "a uint",
            Ty::Double => "a double",
            Ty::String => "a string",
            Ty::Bytes => "bytes",
            Ty::List(_) => "a list",
            Ty::Map(_) | Ty::SamlView => "a map",
            Ty::Type => "a type",
        }
    }

    /// Whether a `.field` selection on it can ever succeed.
    fn has_fields(&self) -> bool {
        matches!(self, Ty::Dyn | Ty::Map(_) | Ty::SamlView)
    }

    /// Two branches of `?:`, the elements of a list literal: the common type, if any.
    fn join(self, other: Ty) -> Ty {
        if self == other {
            self
        } else {
            Ty::Dyn
        }
    }
}

/// Checks one compiled program for the field `role`. `Err` is the problem, worded for
/// the registry's author; the caller prefixes the file and the field.
pub fn check(
    env: &Arc<Env>,
    kind: AssertionKind,
    role: Role,
    expr: &IdedExpr,
) -> Result<(), String> {
    let mut checker = Checker {
        env,
        kind,
        scope: vec![(
            ASSERTION_VAR.to_owned(),
            match kind {
                AssertionKind::Claims => Ty::Map(Box::new(Ty::Dyn)),
                AssertionKind::Saml => Ty::SamlView,
            },
        )],
        reads_assertion: false,
    };
    let ty = checker.infer(expr)?;
    match role {
        Role::Subject => {
            if !checker.reads_assertion {
                return Err(
                    "does not read the token (`assertion`): every token would be mapped to the same subject"
                        .to_owned(),
                );
            }
            match &ty {
                Ty::Dyn | Ty::String | Ty::Int | Ty::Uint => {}
                Ty::List(_) if kind == AssertionKind::Saml => {
                    return Err(
                        "always yields a list, and a subject must be a string: a SAML attribute is a list of values, take one, e.g. `assertion.attributes.uid[0]`"
                            .to_owned(),
                    )
                }
                other => {
                    return Err(format!(
                        "always yields {}, and a subject must be a non-empty string or an integer",
                        other.describe()
                    ))
                }
            }
        }
        Role::Condition => {
            if !matches!(ty, Ty::Dyn | Ty::Bool) {
                return Err(format!(
                    "always yields {}, and a condition must be true or false",
                    ty.describe()
                ));
            }
        }
        Role::Claim => {
            if ty == Ty::Bytes {
                return Err(
                    "always yields bytes, which a JSON claim cannot carry: the claim would always be omitted"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}

struct Checker<'a> {
    env: &'a Arc<Env>,
    kind: AssertionKind,
    /// Variables in scope, innermost last: `assertion`, then what macros bind.
    scope: Vec<(String, Ty)>,
    /// The program reads `assertion` somewhere.
    reads_assertion: bool,
}

impl Checker<'_> {
    fn infer(&mut self, e: &IdedExpr) -> Result<Ty, String> {
        match &e.expr {
            Expr::Literal(l) => Ok(literal_type(l)),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(s) => {
                let operand = self.infer(&s.operand)?;
                if s.test {
                    // `has(x.f)`: false when absent, whatever `x` holds (an error only
                    // when `x` has no fields at all).
                    if !operand.has_fields() {
                        return Err(format!(
                            "has(…{}) tests a field of {}, which has no fields",
                            s.field,
                            operand.describe()
                        ));
                    }
                    return Ok(Ty::Bool);
                }
                self.field(&operand, &s.field)
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                for item in &list.elements {
                    let t = self.infer(item)?;
                    element = Some(match element {
                        None => t,
                        Some(prev) => prev.join(t),
                    });
                }
                Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(map) => {
                let mut value: Option<Ty> = None;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        self.infer(&m.key)?;
                        let t = self.infer(&m.value)?;
                        value = Some(match value {
                            None => t,
                            Some(prev) => prev.join(t),
                        });
                    }
                }
                Ok(Ty::Map(Box::new(value.unwrap_or(Ty::Dyn))))
            }
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::Struct(s) => {
                if self.env.types().find_struct(&s.type_name).is_none() {
                    return Err(format!(
                        "`{}{{…}}` names no message type: tessera's CEL has none",
                        s.type_name
                    ));
                }
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.infer(&f.value)?;
                    }
                }
                Ok(Ty::Dyn)
            }
            Expr::Unspecified => Err("incomplete expression".to_owned()),
        }
    }

    fn ident(&mut self, name: &str) -> Result<Ty, String> {
        if let Some((_, ty)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            if name == ASSERTION_VAR {
                self.reads_assertion = true;
            }
            return Ok(ty.clone());
        }
        if self.env.types().find_type(name).is_some() {
            return Ok(Ty::Type);
        }
        Err(format!(
            "undeclared variable `{name}`: the token is `{ASSERTION_VAR}`, e.g. `{ASSERTION_VAR}.{name}`"
        ))
    }

    /// `operand.name` on a value of type `operand`.
    fn field(&self, operand: &Ty, name: &str) -> Result<Ty, String> {
        match operand {
            Ty::SamlView => saml_field(name),
            Ty::Map(value) => Ok((**value).clone()),
            Ty::Dyn => Ok(Ty::Dyn),
            other => Err(format!(
                "`.{name}` selects a field of {}, which has no fields",
                other.describe()
            )),
        }
    }

    fn call(&mut self, call: &CallExpr) -> Result<Ty, String> {
        let name = call.func_name.as_str();
        if !is_identifier(name) {
            return self.operator(call);
        }
        // `strings.quote(x)`: a target that spells a namespace names a global function,
        // as the interpreter resolves it (before evaluating the target as a value).
        if let Some(target) = &call.target {
            if let Some(segments) = qualified_name(target) {
                let qualified = format!("{}.{name}", segments.join("."));
                if !self.in_scope(segments[0]) {
                    if provides(self.env, &qualified, false) {
                        for arg in &call.args {
                            self.infer(arg)?;
                        }
                        return Ok(Ty::Dyn);
                    }
                    // `math.greatest(..)`: a namespace tessera does not load, not a
                    // variable called `math` (`email.lowerAscii()` is a method on one).
                    if self.env.types().find_type(segments[0]).is_none()
                        && !provides(self.env, name, true)
                    {
                        return Err(unknown_function(self.env, &qualified, false));
                    }
                }
            }
        }
        let member = call.target.is_some();
        if !provides(self.env, name, member) {
            return Err(unknown_function(self.env, name, member));
        }
        let receiver = match &call.target {
            Some(target) => Some(self.infer(target)?),
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            args.push(self.infer(arg)?);
        }
        if let Some(receiver) = &receiver {
            if STRING_METHODS.contains(&name) && !matches!(receiver, Ty::Dyn | Ty::String) {
                let hint = match (name, receiver) {
                    ("contains", Ty::List(_)) => {
                        ": to test membership write `'value' in list`".to_owned()
                    }
                    (_, Ty::List(_)) if self.kind == AssertionKind::Saml => {
                        ": a SAML attribute is a list of values, take one first, e.g. `[0]`"
                            .to_owned()
                    }
                    _ => String::new(),
                };
                return Err(format!(
                    "`.{name}()` is a string method, called here on {}{hint}",
                    receiver.describe()
                ));
            }
        }
        Ok(result_type(name, receiver.as_ref(), &args))
    }

    /// Operators are the parser's own calls; the interpreter evaluates every one of them.
    fn operator(&mut self, call: &CallExpr) -> Result<Ty, String> {
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            args.push(self.infer(arg)?);
        }
        Ok(match call.func_name.as_str() {
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::NOT_STRICTLY_FALSE
            | operators::IN => Ty::Bool,
            operators::CONDITIONAL if args.len() == 3 => {
                let mut args = args.into_iter().skip(1);
                match (args.next(), args.next()) {
                    (Some(a), Some(b)) => a.join(b),
                    _ => Ty::Dyn,
                }
            }
            operators::INDEX if args.len() == 2 => {
                let key = match &call.args[1].expr {
                    Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_owned()),
                    _ => None,
                };
                match (&args[0], key) {
                    (Ty::List(element), _) => (**element).clone(),
                    (Ty::Map(value), _) => (**value).clone(),
                    (Ty::SamlView, Some(key)) => saml_field(&key)?,
                    (Ty::Dyn | Ty::SamlView, _) => Ty::Dyn,
                    (other, _) => {
                        return Err(format!(
                            "`[…]` indexes {}, which cannot be indexed",
                            other.describe()
                        ))
                    }
                }
            }
            operators::ADD if args.len() == 2 => match (&args[0], &args[1]) {
                (Ty::String, Ty::String) => Ty::String,
                (Ty::List(a), Ty::List(b)) => Ty::List(Box::new((**a).clone().join((**b).clone()))),
                _ => Ty::Dyn,
            },
            _ => Ty::Dyn,
        })
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Result<Ty, String> {
        let range = self.infer(&c.iter_range)?;
        let (first, second) = match &range {
            Ty::List(element) => (
                if c.iter_var2.is_some() {
                    Ty::Int
                } else {
                    (**element).clone()
                },
                (**element).clone(),
            ),
            Ty::Map(value) => (Ty::Dyn, (**value).clone()),
            Ty::SamlView => (Ty::String, Ty::Dyn),
            Ty::Dyn => (Ty::Dyn, Ty::Dyn),
            other => {
                return Err(format!(
                    "iterates over {}, which is neither a list nor a map",
                    other.describe()
                ))
            }
        };
        let accu = self.infer(&c.accu_init)?;
        let depth = self.scope.len();
        self.scope.push((c.iter_var.clone(), first));
        if let Some(var) = &c.iter_var2 {
            self.scope.push((var.clone(), second));
        }
        // The accumulator changes type as it goes (`map` appends): dynamic inside.
        self.scope.push((c.accu_var.clone(), Ty::Dyn));
        let inner = (|| {
            self.infer(&c.loop_cond)?;
            self.infer(&c.loop_step)?;
            match &c.result.expr {
                Expr::Ident(name) if *name == c.accu_var => Ok(accu),
                _ => self.infer(&c.result),
            }
        })();
        self.scope.truncate(depth);
        inner
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scope.iter().any(|(n, _)| n == name)
    }
}

fn literal_type(l: &LiteralValue) -> Ty {
    match l {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

/// A field of the SAML view.
fn saml_field(name: &str) -> Result<Ty, String> {
    if SAML_STRING_FIELDS.contains(&name) {
        Ok(Ty::String)
    } else if name == SAML_ATTRIBUTES {
        Ok(Ty::Map(Box::new(Ty::List(Box::new(Ty::String)))))
    } else {
        Err(format!(
            "a SAML `{ASSERTION_VAR}` has no field `{name}` (it has {}, {SAML_ATTRIBUTES}); attributes are read as `{ASSERTION_VAR}.{SAML_ATTRIBUTES}[\"{name}\"][0]`",
            SAML_STRING_FIELDS.join(", ")
        ))
    }
}

/// `a.b.c` as its segments, when the expression is only that.
fn qualified_name(e: &IdedExpr) -> Option<Vec<&str>> {
    match &e.expr {
        Expr::Ident(name) => Some(vec![name.as_str()]),
        Expr::Select(s) if !s.test => {
            let mut segments = qualified_name(&s.operand)?;
            segments.push(s.field.as_str());
            Some(segments)
        }
        _ => None,
    }
}

/// A name a CEL expression can spell as a function (operators are `_+_`, `@in`, ...).
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|seg| seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Methods that only strings have (standard library and strings extension): on a value
/// known to be something else they can only fail.
const STRING_METHODS: &[&str] = &[
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "lowerAscii",
    "upperAscii",
    "trim",
    "split",
    "replace",
    "substring",
    "charAt",
    "indexOf",
    "lastIndexOf",
];

/// What a function returns, where it is fixed.
fn result_type(name: &str, _receiver: Option<&Ty>, _args: &[Ty]) -> Ty {
    match name {
        "contains" | "startsWith" | "endsWith" | "matches" | "hasValue" => Ty::Bool,
        "size" | "int" | "indexOf" | "lastIndexOf" => Ty::Int,
        "uint" => Ty::Uint,
        "double" => Ty::Double,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt"
        | "join" | "format" | "quote" | "reverse" => Ty::String,
        "bool" => Ty::Bool,
        "bytes" => Ty::Bytes,
        "split" => Ty::List(Box::new(Ty::String)),
        "type" => Ty::Type,
        _ => Ty::Dyn,
    }
}

/// Whether the interpreter provides `name` as a method (`member`) or as a global function.
///
/// Asked of the interpreter itself: a call with no arguments (on `null`, for a method) is
/// evaluated in the mappings' environment; only an undeclared function answers "undeclared
/// reference" to it (a declared one finds no overload for these arguments, or runs: the
/// standard library's functions are pure).
fn provides(env: &Arc<Env>, name: &str, member: bool) -> bool {
    let probe = IdedExpr {
        id: 1,
        expr: Expr::Call(CallExpr {
            func_name: name.to_owned(),
            target: member.then(|| {
                Box::new(IdedExpr {
                    id: 2,
                    expr: Expr::Literal(LiteralValue::Null),
                })
            }),
            args: Vec::new(),
        }),
    };
    let ctx = Context::with_env(env.clone());
    !matches!(
        CelValue::resolve(&probe, &ctx),
        Err(ExecutionError::UndeclaredReference(r)) if r.as_str() == name
    )
}

/// The macros the standard environment expands at compile time, with their shape.
const MACROS: &[(&str, &str)] = &[
    ("has", "has(assertion.field)"),
    ("all", "list.all(x, predicate)"),
    ("exists", "list.exists(x, predicate)"),
    ("exists_one", "list.exists_one(x, predicate)"),
    ("map", "list.map(x, expression)"),
    ("filter", "list.filter(x, predicate)"),
];

/// Names people write from other languages, and the CEL function they mean.
const ALIASES: &[(&str, &str)] = &[
    ("lower", "lowerAscii"),
    ("toLower", "lowerAscii"),
    ("toLowerCase", "lowerAscii"),
    ("lowercase", "lowerAscii"),
    ("upper", "upperAscii"),
    ("toUpper", "upperAscii"),
    ("toUpperCase", "upperAscii"),
    ("uppercase", "upperAscii"),
    ("len", "size"),
    ("length", "size"),
    ("count", "size"),
    ("strip", "trim"),
    ("includes", "contains"),
    ("has_prefix", "startsWith"),
    ("hasPrefix", "startsWith"),
    ("has_suffix", "endsWith"),
    ("hasSuffix", "endsWith"),
    ("match", "matches"),
    ("regex", "matches"),
    ("str", "string"),
    ("any", "exists"),
];

/// Functions worth suggesting when a call differs only in case (`startswith`).
const KNOWN: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "size",
    "lowerAscii",
    "upperAscii",
    "trim",
    "split",
    "join",
    "replace",
    "substring",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "exists_one",
];

fn unknown_function(env: &Arc<Env>, name: &str, member: bool) -> String {
    let call = if member {
        format!("`.{name}()`")
    } else {
        format!("`{name}()`")
    };
    if let Some((_, shape)) = MACROS.iter().find(|(m, _)| *m == name) {
        return format!("{call} is a macro and is written `{shape}`");
    }
    if provides(env, name, !member) {
        return if member {
            format!("{call}: `{name}` is a function, not a method: write `{name}(x)`")
        } else {
            format!("{call}: `{name}` is a method, not a function: write `x.{name}()`")
        };
    }
    let suggestion = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, meant)| *meant)
        .or_else(|| KNOWN.iter().copied().find(|k| k.eq_ignore_ascii_case(name)));
    let is_macro = |f: &str| MACROS.iter().any(|(m, _)| *m == f);
    match suggestion {
        Some(meant) if is_macro(meant) => format!(
            "unknown function {call}: tessera's CEL has no `{name}`; did you mean the macro `{meant}`?"
        ),
        Some(meant) if provides(env, meant, member) => format!(
            "unknown function {call}: tessera's CEL has no `{name}`; did you mean `{meant}`?"
        ),
        Some(meant) if provides(env, meant, !member) => format!(
            "unknown function {call}: tessera's CEL has no `{name}`; did you mean `{meant}` (written `{})?",
            if member {
                format!("{meant}(x)`")
            } else {
                format!("x.{meant}()`")
            }
        ),
        _ => format!(
            "unknown function {call}: not in CEL's standard library or its strings extension"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `STRING_METHODS` is kept by hand: each of them must really fail on a list and on a
    /// map (no overload), with the arguments it takes on a string, in the interpreter.
    #[test]
    fn string_methods_apply_to_strings_only() {
        let env = super::super::shared_env();
        let calls = [
            ("contains", "'a'"),
            ("startsWith", "'a'"),
            ("endsWith", "'a'"),
            ("matches", "'a'"),
            ("lowerAscii", ""),
            ("upperAscii", ""),
            ("trim", ""),
            ("split", "','"),
            ("replace", "'a', 'b'"),
            ("substring", "1"),
            ("charAt", "0"),
            ("indexOf", "'a'"),
            ("lastIndexOf", "'a'"),
        ];
        assert_eq!(calls.len(), STRING_METHODS.len());
        for (method, args) in calls {
            assert!(STRING_METHODS.contains(&method), "{method}");
            let on_string = env.compile(&format!("'abc'.{method}({args})")).unwrap();
            let ctx = Context::with_env(env.clone());
            assert!(on_string.execute(&ctx).is_ok(), "{method} on a string");
            for receiver in ["['a']", "{'a': 1}"] {
                let program = env
                    .compile(&format!("{receiver}.{method}({args})"))
                    .unwrap();
                assert!(
                    matches!(
                        program.execute(&ctx),
                        Err(ExecutionError::NoSuchOverload(_))
                    ),
                    "{method} on {receiver}"
                );
            }
        }
    }
}
