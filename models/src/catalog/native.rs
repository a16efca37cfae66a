//! Rules of the common shapes — comparisons, `in` a list of literals, `has`,
//! joined by `&&`, `||` and `!`, over `profile`, `context` and `action` —
//! evaluated without the CEL interpreter's name resolution: each step calls
//! the same CEL value methods the interpreter calls (`Indexer::get`,
//! `Comparer::compare`, value equality, `Container::contains`), so a verdict
//! is the interpreter's. Whenever a step fails (a missing key, a value that
//! is not a bool, values that do not compare), the plan gives no verdict and
//! the interpreter evaluates the rule, errors and all.

use cel::common::ast::{CallExpr, Expr, LiteralValue, operators};
use cel::common::types::{CelBool, CelList, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{ExecutionError, IdedExpr};
use std::cmp::Ordering;

/// The variables a plan may read: the ones the rules' resolver knows.
const VARIABLES: [&str; 3] = ["profile", "context", "action"];

/// A rule of a shape evaluated directly.
#[derive(Debug)]
pub(super) enum Plan {
    /// `a && b`.
    And(Box<Plan>, Box<Plan>),
    /// `a || b`.
    Or(Box<Plan>, Box<Plan>),
    /// `!a`.
    Not(Box<Plan>),
    /// `a == b`, `a < b`, …
    Compare(Comparison, Operand, Operand),
    /// `a in [literal, …]`.
    In(Operand, CelList<'static>),
    /// `has(path.field)`.
    Has(Path, String),
    /// A value that must be a bool.
    Bool(Operand),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy)]
pub(super) enum Comparison {
    Equals,
    NotEquals,
    Less,
    LessEquals,
    Greater,
    GreaterEquals,
}

/// A literal or a variable's field.
#[derive(Debug)]
pub(super) enum Operand {
    Literal(LiteralValue),
    Path(Path),
}

/// A variable and the fields selected on it: `profile.count_7d.login`.
#[derive(Debug)]
pub(super) struct Path {
    variable: &'static str,
    fields: Vec<String>,
}

impl Plan {
    /// The plan of `expr`, if it has one of the shapes evaluated directly.
    pub(super) fn of(expr: &IdedExpr) -> Option<Self> {
        match &expr.expr {
            Expr::Call(call) if call.target.is_none() => Self::of_call(call),
            Expr::Select(select) if select.test => {
                Some(Plan::Has(Path::of(&select.operand)?, select.field.clone()))
            }
            _ => Operand::of(expr).map(Plan::Bool),
        }
    }

    fn of_call(call: &CallExpr) -> Option<Self> {
        let comparison = match (call.func_name.as_str(), call.args.as_slice()) {
            (operators::LOGICAL_AND, [left, right]) => {
                return Some(Plan::And(
                    Box::new(Plan::of(left)?),
                    Box::new(Plan::of(right)?),
                ));
            }
            (operators::LOGICAL_OR, [left, right]) => {
                return Some(Plan::Or(
                    Box::new(Plan::of(left)?),
                    Box::new(Plan::of(right)?),
                ));
            }
            (operators::LOGICAL_NOT, [operand]) => {
                return Some(Plan::Not(Box::new(Plan::of(operand)?)));
            }
            (operators::IN, [needle, haystack]) => {
                let Expr::List(list) = &haystack.expr else {
                    return None;
                };
                if !list.optional_indices.is_empty() {
                    return None;
                }
                let elements = list
                    .elements
                    .iter()
                    .map(|element| match &element.expr {
                        Expr::Literal(literal) => Some(literal.to_val().into_owned()),
                        _ => None,
                    })
                    .collect::<Option<Vec<Box<dyn Val>>>>()?;
                return Some(Plan::In(Operand::of(needle)?, CelList::from(elements)));
            }
            (operators::EQUALS, [_, _]) => Comparison::Equals,
            (operators::NOT_EQUALS, [_, _]) => Comparison::NotEquals,
            (operators::LESS, [_, _]) => Comparison::Less,
            (operators::LESS_EQUALS, [_, _]) => Comparison::LessEquals,
            (operators::GREATER, [_, _]) => Comparison::Greater,
            (operators::GREATER_EQUALS, [_, _]) => Comparison::GreaterEquals,
            _ => return None,
        };
        Some(Plan::Compare(
            comparison,
            Operand::of(&call.args[0])?,
            Operand::of(&call.args[1])?,
        ))
    }

    /// The rule's verdict, or `None` when the interpreter must decide.
    pub(super) fn verdict(&self, vars: &dyn VariableResolver) -> Option<bool> {
        match self {
            // `false && x` is false whatever x is; anything else needs both.
            Plan::And(left, right) => match left.verdict(vars)? {
                false => Some(false),
                true => right.verdict(vars),
            },
            Plan::Or(left, right) => match left.verdict(vars)? {
                true => Some(true),
                false => right.verdict(vars),
            },
            Plan::Not(operand) => operand.verdict(vars).map(|verdict| !verdict),
            Plan::Compare(comparison, left, right) => {
                let (left, right) = (left.value(vars)?, right.value(vars)?);
                let ordering = |left: &CowVal<'_, '_>, right: &CowVal<'_, '_>| {
                    left.as_comparer()?.compare(right.as_ref()).ok()
                };
                Some(match comparison {
                    Comparison::Equals => left == right,
                    Comparison::NotEquals => left != right,
                    Comparison::Less => ordering(&left, &right)? == Ordering::Less,
                    Comparison::LessEquals => ordering(&left, &right)? != Ordering::Greater,
                    Comparison::Greater => ordering(&left, &right)? == Ordering::Greater,
                    Comparison::GreaterEquals => ordering(&left, &right)? != Ordering::Less,
                })
            }
            Plan::In(needle, list) => {
                let needle = needle.value(vars)?;
                list.as_container()?.contains(needle.as_ref()).ok()
            }
            Plan::Has(path, field) => {
                let value = path.value(vars)?;
                match value.as_indexer()?.get(&CelString::from(field.as_str())) {
                    Ok(_) => Some(true),
                    Err(ExecutionError::NoSuchKey(_)) => Some(false),
                    Err(_) => None,
                }
            }
            Plan::Bool(operand) => operand
                .value(vars)?
                .downcast_ref::<CelBool>()
                .map(|verdict| *verdict.inner()),
        }
    }
}

impl Operand {
    fn of(expr: &IdedExpr) -> Option<Self> {
        match &expr.expr {
            Expr::Literal(literal) => Some(Operand::Literal(literal.clone())),
            _ => Path::of(expr).map(Operand::Path),
        }
    }

    fn value<'a>(&'a self, vars: &'a dyn VariableResolver) -> Option<CowVal<'a, 'a>> {
        match self {
            Operand::Literal(literal) => Some(literal.to_val()),
            Operand::Path(path) => path.value(vars),
        }
    }
}

impl Path {
    fn of(expr: &IdedExpr) -> Option<Self> {
        match &expr.expr {
            Expr::Ident(name) => Some(Path {
                variable: VARIABLES.into_iter().find(|variable| variable == name)?,
                fields: Vec::new(),
            }),
            Expr::Select(select) if !select.test => {
                let mut path = Path::of(&select.operand)?;
                path.fields.push(select.field.clone());
                Some(path)
            }
            _ => None,
        }
    }

    /// The variable as the rules' resolver gives it, then each field as its
    /// value's indexer gives it.
    fn value<'a>(&'a self, vars: &'a dyn VariableResolver) -> Option<CowVal<'a, 'a>> {
        let mut value = vars.resolve(self.variable)?;
        for field in &self.fields {
            let key = CelString::from(field.as_str());
            value = match value {
                CowVal::Borrowed(value) => value.as_indexer()?.get(&key).ok()?,
                CowVal::Owned(value) => {
                    CowVal::Owned(value.as_indexer()?.get(&key).ok()?.into_owned())
                }
            };
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Rule, RuleEnv};
    use crate::profile::{Event, IDENTIFY_EVENT, Profile};
    use crate::rule_vars::RuleVars;
    use crate::time::{DAY_MS, Timestamp};
    use crate::value::AttrValue;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000_000;

    fn profile(plan: Option<AttrValue>) -> Profile {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        let mut identify = Event {
            event_id: "e0".into(),
            name: IDENTIFY_EVENT.into(),
            timestamp: Timestamp(NOW - 2 * DAY_MS),
            properties: BTreeMap::from([("seats".to_owned(), AttrValue::Num(12.0))]),
        };
        if let Some(plan) = plan {
            identify.properties.insert("plan".into(), plan);
        }
        profile.apply_event(&identify, now);
        for name in ["login", "login", "search"] {
            let event = Event {
                event_id: format!("{name}-{}", profile.events.len()),
                name: name.into(),
                timestamp: now,
                properties: BTreeMap::new(),
            };
            profile.apply_event(&event, now);
        }
        profile.engagement_mut("in_app").clicks = 2;
        profile
    }

    /// Wherever the plan gives a verdict it is the interpreter's, and the
    /// common shapes get one when nothing fails.
    #[test]
    fn direct_verdicts_are_the_interpreters() {
        let env = RuleEnv::standard();
        let known = vec!["login".to_owned(), "payment_failed".to_owned()];
        let context = BTreeMap::from([("page".to_owned(), AttrValue::from("home"))]);
        let rules = [
            ("profile.count_7d.login >= 1", true),
            (
                "profile.count_7d.login == 2 && profile.count_1d.search > 0",
                true,
            ),
            ("has(profile.plan) && profile.plan != \"enterprise\"", true),
            (
                "!has(profile.plan) || profile.plan in [\"trial\", \"starter\"]",
                true,
            ),
            (
                "profile.days_since_signup < 400.0 || profile.seats > 10.0",
                true,
            ),
            ("profile.days_since_payment_failed > 1.0", true),
            ("profile.engagement.in_app.click_rate < 0.9", true),
            ("profile.seats > 10", true),
            ("profile.seats == 12", true),
            ("context.page == 'home' && !(context.page < 'a')", true),
            ("true", true),
            ("profile.plan", false),
            ("profile.count_7d.unknown_event > 0", false),
            ("profile.plan == 'pro' && profile.tier == 'gold'", false),
            (
                "profile.tier == 'gold' || profile.count_7d.login > 0",
                false,
            ),
            ("profile.seats < 'ten'", false),
            ("size(profile.plan) > 2", false),
        ];
        for plan in [
            None,
            Some(AttrValue::from("trial")),
            Some(AttrValue::Num(3.0)),
        ] {
            let profile = profile(plan.clone());
            let vars = RuleVars::new(&profile, &known, &context, &[], Timestamp(NOW));
            let mut cel = cel::Context::with_env(env.0.clone());
            cel.set_variable_resolver(&vars);
            for (source, common) in rules {
                let rule = Rule::compile(&env.0, source).expect("compiles");
                let interpreted = rule.evaluate(&cel).map_err(|error| error.to_string());
                let direct = rule.direct_verdict(&vars);
                if let Some(verdict) = direct {
                    assert_eq!(
                        Ok(verdict),
                        interpreted.clone(),
                        "{source} with plan {plan:?}"
                    );
                }
                if common && interpreted.is_ok() {
                    assert!(
                        direct.is_some(),
                        "{source} with plan {plan:?} has no direct verdict"
                    );
                }
            }
        }
    }

    /// A comparison operator's CEL spelling.
    fn operator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="])
    }

    /// A literal of any type a rule might compare with.
    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![
            (0_i64..20).prop_map(|number| number.to_string()),
            (-1.0_f64..500.0).prop_map(|number| format!("{number:.1}")),
            prop::sample::select(vec!["'trial'", "'pro'", "'home'", "'a'", "''"])
                .prop_map(str::to_owned),
            prop::sample::select(vec!["true", "false"]).prop_map(str::to_owned),
        ]
    }

    /// A field the variables have, may lack, or have with another type.
    fn path() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "profile.count_7d.login",
            "profile.count_1d.search",
            "profile.count_7d.unknown_event",
            "profile.plan",
            "profile.seats",
            "profile.tier",
            "profile.days_since_signup",
            "profile.days_since_payment_failed",
            "profile.engagement.in_app.click_rate",
            "context.page",
            "context.hour",
        ])
    }

    /// Rules of the common shapes and of others, nested up to three deep.
    fn rule() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            (path(), operator(), literal())
                .prop_map(|(path, operator, literal)| format!("{path} {operator} {literal}")),
            (literal(), operator(), path())
                .prop_map(|(literal, operator, path)| format!("{literal} {operator} {path}")),
            (path(), literal(), literal())
                .prop_map(|(path, first, second)| format!("{path} in [{first}, {second}]")),
            path().prop_map(|path| format!("has({path})")),
            path().prop_map(str::to_owned),
            prop::sample::select(vec!["true", "false", "size(profile.plan) > 2"])
                .prop_map(str::to_owned),
        ];
        atom.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
                inner.prop_map(|a| format!("!({a})")),
            ]
        })
    }

    /// A plan attribute of any type, or none.
    fn plan() -> impl Strategy<Value = Option<AttrValue>> {
        prop_oneof![
            Just(None),
            prop::sample::select(vec!["trial", "pro", "home", ""])
                .prop_map(|plan| Some(AttrValue::from(plan))),
            (-5.0_f64..50.0).prop_map(|number| Some(AttrValue::Num(number.round()))),
        ]
    }

    /// A page in the request context of any type, or none.
    fn page() -> impl Strategy<Value = Option<AttrValue>> {
        prop_oneof![
            Just(None),
            prop::sample::select(vec!["home", "a", "pricing"])
                .prop_map(|page| Some(AttrValue::from(page))),
            (0.0_f64..24.0).prop_map(|number| Some(AttrValue::Num(number.round()))),
        ]
    }

    proptest! {
        /// Whatever the rule and the variables, a direct verdict, when there
        /// is one, is the interpreter's.
        #[test]
        fn a_direct_verdict_is_always_the_interpreters(
            source in rule(),
            plan in plan(),
            page in page(),
        ) {
            let env = RuleEnv::standard();
            let known = vec!["login".to_owned(), "search".to_owned(), "payment_failed".to_owned()];
            let mut context = BTreeMap::new();
            if let Some(page) = page {
                context.insert("page".to_owned(), page);
            }
            let profile = profile(plan);
            let vars = RuleVars::new(&profile, &known, &context, &[], Timestamp(NOW));
            let mut cel = cel::Context::with_env(env.0.clone());
            cel.set_variable_resolver(&vars);
            let Ok(rule) = Rule::compile(&env.0, &source) else {
                return Ok(());
            };
            if let Some(verdict) = rule.direct_verdict(&vars) {
                let interpreted = rule.evaluate(&cel).map_err(|error| error.to_string());
                prop_assert_eq!(Ok(verdict), interpreted, "{}", source);
            }
        }
    }
}
