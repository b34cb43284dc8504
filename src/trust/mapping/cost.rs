//! Bounded CEL (SPEC §6): what a mapping is fed, what one evaluation may cost, and what it
//! may produce, so that no program can make an exchange expensive.
//!
//! cel 0.15 has no cost tracking at run time, so the cost is bounded before any token
//! arrives: [`worst_case`] walks the parsed (macro-expanded) program and counts the
//! expression nodes it evaluates in the worst case, multiplying by the largest range every
//! enclosing comprehension (`map`, `filter`, `all`, `exists`, ...) may iterate over. That
//! range is known for literals and bounded for everything read from a token by the input
//! bounds below, which [`check_input`] enforces on every token before a program runs.
//! A program whose worst case is over [`MAX_COST`] is refused at load; in practice that
//! is a comprehension over a token's values nested inside another.

use cel::common::ast::{operators, EntryExpr, Expr, IdedExpr, LiteralValue};
use serde_json::{Map, Value};

/// Most items of one list, or entries of one object, in the `assertion` a program reads.
pub const MAX_LIST_ITEMS: usize = 1_000;
/// Longest string in the `assertion`, in bytes.
pub const MAX_STRING_BYTES: usize = 4_096;
/// Most values (of any kind, nested ones included) in the `assertion`.
pub const MAX_VALUES: usize = 10_000;
/// The widest range a comprehension over something read from the token can have: a list
/// or object of the token ([`MAX_LIST_ITEMS`]) or a string split into pieces
/// ([`MAX_STRING_BYTES`]).
pub const UNKNOWN_RANGE: u64 = MAX_STRING_BYTES as u64;
/// Most expression nodes one program may evaluate in the worst case.
pub const MAX_COST: u64 = 300_000;
/// Most expression nodes all of a mapping's programs together may evaluate.
pub const MAX_MAPPING_COST: u64 = 1_000_000;
/// Largest mapped claim, as JSON.
pub const MAX_CLAIM_BYTES: usize = 8 * 1024;
/// Largest set of mapped claims of one token, as JSON.
pub const MAX_CLAIMS_BYTES: usize = 16 * 1024;
/// Longest mapped subject.
pub const MAX_SUBJECT_BYTES: usize = 1_024;

/// The worst-case number of nodes `e` evaluates.
pub fn worst_case(e: &IdedExpr) -> u64 {
    cost(e, 1)
}

/// Nodes of `e` evaluated when `e` itself is evaluated `times` times.
fn cost(e: &IdedExpr, times: u64) -> u64 {
    let children: u64 = match &e.expr {
        Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified => 0,
        Expr::Select(s) => cost(&s.operand, times),
        Expr::Call(c) => {
            let target = c.target.as_deref().map_or(0, |t| cost(t, times));
            target.saturating_add(
                c.args
                    .iter()
                    .map(|a| cost(a, times))
                    .fold(0, u64::saturating_add),
            )
        }
        Expr::List(l) => l
            .elements
            .iter()
            .map(|x| cost(x, times))
            .fold(0, u64::saturating_add),
        Expr::Map(m) => m
            .entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::MapEntry(m) => cost(&m.key, times).saturating_add(cost(&m.value, times)),
                EntryExpr::StructField(f) => cost(&f.value, times),
            })
            .fold(0, u64::saturating_add),
        Expr::Struct(s) => s
            .entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::StructField(f) => cost(&f.value, times),
                EntryExpr::MapEntry(m) => cost(&m.key, times).saturating_add(cost(&m.value, times)),
            })
            .fold(0, u64::saturating_add),
        Expr::Comprehension(c) => {
            let per_item = times.saturating_mul(range(&c.iter_range));
            cost(&c.iter_range, times)
                .saturating_add(cost(&c.accu_init, times))
                .saturating_add(cost(&c.loop_cond, per_item))
                .saturating_add(cost(&c.loop_step, per_item))
                .saturating_add(cost(&c.result, times))
        }
    };
    times.saturating_add(children)
}

/// The most items a comprehension over `e` iterates: a literal's own size, the sum of a
/// list concatenation's sides, the range of a comprehension that yields a list (`map`,
/// `filter`), a split string's pieces (at most its bytes: [`UNKNOWN_RANGE`] per string it
/// is built from, since no admitted function grows a string beyond its parts, see
/// [`check_functions`]), else [`UNKNOWN_RANGE`].
fn range(e: &IdedExpr) -> u64 {
    match &e.expr {
        Expr::List(l) => l.elements.len() as u64,
        Expr::Map(m) => m.entries.len() as u64,
        Expr::Call(c) if c.func_name == operators::ADD && c.args.len() == 2 => {
            range(&c.args[0]).saturating_add(range(&c.args[1]))
        }
        Expr::Call(c) if c.func_name == "split" => {
            let parts = c.target.as_deref().map_or(1, leaves).max(1);
            UNKNOWN_RANGE.saturating_mul(parts)
        }
        Expr::Comprehension(c) => range(&c.iter_range),
        _ => UNKNOWN_RANGE,
    }
}

/// The values a string expression is built from (reads and literals): a bound on its
/// size in units of [`MAX_STRING_BYTES`].
fn leaves(e: &IdedExpr) -> u64 {
    match &e.expr {
        Expr::Call(c) => c
            .target
            .iter()
            .map(|t| leaves(t))
            .chain(c.args.iter().map(leaves))
            .fold(0, u64::saturating_add)
            .max(1),
        _ => 1,
    }
}

/// Most a chain of `replace` calls may multiply a string's size by (`'@'` → `' at '` is 4).
pub const MAX_GROWTH: u64 = 32;

/// Functions whose cost or result is not bounded by their inputs' sizes, admitted only in
/// the shape that is: `replace` with a literal, non-empty pattern and a literal
/// replacement, its growth (replacement / pattern length, multiplied along a chain of
/// calls) at most [`MAX_GROWTH`] (an empty pattern, or a replacement read from the token,
/// multiplied a 4 KiB string into gigabytes in two calls); and `matches` with a literal
/// pattern (the pattern is compiled at every call).
pub fn check_functions(e: &IdedExpr) -> Result<(), String> {
    let growth = growth(e)?;
    if growth > MAX_GROWTH {
        return Err(format!(
            "its replace() calls may multiply a string's size by {growth}, more than {MAX_GROWTH}"
        ));
    }
    check_shapes(e)
}

/// How much `e`'s `replace` calls may multiply a string's size.
fn growth(e: &IdedExpr) -> Result<u64, String> {
    let mut most = 1u64;
    for child in children(e) {
        most = most.max(growth(child)?);
    }
    let Expr::Call(c) = &e.expr else {
        return Ok(most);
    };
    if c.func_name != "replace" {
        return Ok(most);
    }
    let literal = |x: Option<&IdedExpr>| match x.map(|x| &x.expr) {
        Some(Expr::Literal(LiteralValue::String(s))) => Some(s.inner().len() as u64),
        _ => None,
    };
    match (literal(c.args.first()), literal(c.args.get(1))) {
        (Some(p), Some(w)) if p > 0 => Ok(w.div_ceil(p).max(1).saturating_mul(most)),
        _ => Err("replace() takes a literal, non-empty pattern and a literal replacement here: an empty pattern, or a replacement read from the token, multiplies the string at each call".to_owned()),
    }
}

fn check_shapes(e: &IdedExpr) -> Result<(), String> {
    if let Expr::Call(c) = &e.expr {
        let literal = |e: &IdedExpr| matches!(&e.expr, Expr::Literal(LiteralValue::String(_)));
        if c.func_name == "matches" && !c.args.last().is_some_and(literal) {
            return Err("matches() takes a literal pattern here: a pattern read from the token would be compiled as a regular expression at every call".to_owned());
        }
    }
    children(e).into_iter().try_for_each(check_shapes)
}

/// The direct subexpressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    fn entry(entry: &EntryExpr) -> Vec<&IdedExpr> {
        match entry {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        }
    }
    match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::Select(s) => vec![&*s.operand],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(|x| entry(&x.expr)).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(|x| entry(&x.expr)).collect(),
        Expr::Comprehension(c) => {
            vec![
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]
        }
        Expr::Literal(_) | Expr::Ident(_) | Expr::Unspecified => Vec::new(),
    }
}

/// Why a token's `assertion` is more than a mapping may be fed.
pub fn check_input(assertion: &Map<String, Value>) -> Result<(), String> {
    let mut values = 0usize;
    check_object(assertion, &mut values)
}

fn check_object(obj: &Map<String, Value>, values: &mut usize) -> Result<(), String> {
    if obj.len() > MAX_LIST_ITEMS {
        return Err(format!(
            "an object of {} members (at most {MAX_LIST_ITEMS})",
            obj.len()
        ));
    }
    obj.iter().try_for_each(|(k, v)| {
        check_string(k)?;
        check_value(v, values)
    })
}

fn check_value(v: &Value, values: &mut usize) -> Result<(), String> {
    *values += 1;
    if *values > MAX_VALUES {
        return Err(format!("more than {MAX_VALUES} values"));
    }
    match v {
        Value::String(s) => check_string(s),
        Value::Array(items) if items.len() > MAX_LIST_ITEMS => Err(format!(
            "a list of {} items (at most {MAX_LIST_ITEMS})",
            items.len()
        )),
        Value::Array(items) => items.iter().try_for_each(|i| check_value(i, values)),
        Value::Object(obj) => check_object(obj, values),
        _ => Ok(()),
    }
}

fn check_string(s: &str) -> Result<(), String> {
    if s.len() > MAX_STRING_BYTES {
        return Err(format!(
            "a string of {} bytes (at most {MAX_STRING_BYTES})",
            s.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst(src: &str) -> u64 {
        let program = cel::Program::compile(src).unwrap();
        worst_case(program.expression())
    }

    #[test]
    fn plain_programs_cost_their_size_and_comprehensions_their_range() {
        assert!(worst("assertion.sub") < 10);
        assert!(worst("assertion.email.lowerAscii()") < 10);
        let one = worst("assertion.groups.filter(g, g.startsWith('app-'))");
        assert!(one > UNKNOWN_RANGE && one < MAX_COST, "{one}");
        // Over a literal, the literal's size counts.
        assert!(worst("['a', 'b'].exists(x, assertion.groups.exists(g, g == x))") < MAX_COST);
        // Sequential comprehensions add up; nested ones over token values multiply.
        let chained = worst("assertion.groups.filter(g, g.startsWith('a')).map(g, g.upperAscii())");
        assert!(chained < MAX_COST, "{chained}");
        let nested = worst("assertion.groups.map(g, assertion.groups.map(h, g + h))");
        assert!(nested > MAX_COST, "{nested}");
        let concat = worst("(assertion.groups + assertion.roles).map(g, g)");
        assert!(concat > worst("assertion.groups.map(g, g)"));
    }

    #[test]
    fn functions_that_grow_strings_or_compile_per_call_are_admitted_in_bounded_shapes_only() {
        let check = |src: &str| check_functions(cel::Program::compile(src).unwrap().expression());
        assert!(check("assertion.email.replace('@corp.example', '')").is_ok());
        assert!(check("assertion.email.replace('@', ' at ')").is_ok());
        assert!(check("assertion.email.replace('@', ' at ').replace('.', ' dot ')").is_ok());
        assert!(check("assertion.name.matches('^[a-z]+$')").is_ok());
        for bad in [
            "assertion.name.replace('', assertion.name)",
            "assertion.name.replace('a', 'aaaaa').replace('a', 'aaaaa').replace('a', 'aaaaa')",
            "assertion.name.replace(assertion.x, '')",
            "assertion.groups.filter(g, g.matches(assertion.pattern))",
            "assertion.groups.map(g, g.replace('', 'x'))",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        // A split of a string built from several reads ranges over all of them.
        let one = worst("assertion.a.split(',').map(p, p)");
        let three = worst("(assertion.a + assertion.b + assertion.c).split(',').map(p, p)");
        assert!(three > 2 * one, "{one} {three}");
    }

    #[test]
    fn input_beyond_the_bounds_is_named() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        assert!(check_input(&obj(
            serde_json::json!({"groups": vec!["g"; MAX_LIST_ITEMS]})
        ))
        .is_ok());
        let err = check_input(&obj(
            serde_json::json!({"groups": vec!["g"; MAX_LIST_ITEMS + 1]}),
        ))
        .unwrap_err();
        assert!(err.contains("1001 items"), "{err}");
        let long = "x".repeat(MAX_STRING_BYTES + 1);
        assert!(check_input(&obj(serde_json::json!({"name": long})))
            .unwrap_err()
            .contains("bytes"));
        let many: Vec<Vec<u8>> = vec![vec![1; 999]; 11];
        assert!(check_input(&obj(serde_json::json!({"m": many})))
            .unwrap_err()
            .contains("values"));
    }
}
