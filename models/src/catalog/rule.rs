//! CEL rules, compiled once when the catalog loads and evaluated per decision.

use super::native::Plan;
use crate::Error;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A compiled CEL expression and the text it came from.
pub struct Rule {
    source: String,
    program: cel::Program,
    /// Whether the rule reads `action`: one that does not gives the same
    /// verdict for every candidate of a decision.
    reads_action: bool,
    /// For a rule that does not read `action`, its place among the
    /// catalog's distinct such rules (rules with the same text share one),
    /// so a decision evaluates each of them once.
    shared: Option<usize>,
    /// The rule evaluated directly, when it has one of the common shapes.
    plan: Option<Plan>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Rule").field(&self.source).finish()
    }
}

impl Rule {
    /// Compiles `source` in `env`; the error is CEL's parse message.
    pub fn compile(env: &cel::Env, source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("rule is empty".to_owned());
        }
        let program = env
            .compile(source)
            .map_err(|errors| errors.to_string().replace('\n', " "))?;
        // `.action` (an absolute name) is `action` too.
        let reads_action = program
            .references()
            .variables()
            .iter()
            .any(|name| name.trim_start_matches('.') == ACTION_VARIABLE);
        let plan = Plan::of(program.expression());
        Ok(Self {
            source: source.to_owned(),
            program,
            reads_action,
            shared: None,
            plan,
        })
    }

    /// The rule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the rule reads (`profile`, `context`, …), each once.
    pub fn variables(&self) -> Vec<String> {
        let mut variables: Vec<String> = self
            .program
            .references()
            .variables()
            .iter()
            .map(|name| name.trim_start_matches('.').to_owned())
            .collect();
        variables.sort();
        variables.dedup();
        variables
    }

    /// The fields the rule selects on `profile`, one path per read
    /// (`profile.count_7d.login` is `["count_7d", "login"]`), or `None` when
    /// it uses `profile` some other way (passed whole to a function,
    /// indexed with brackets): then it may read anything.
    pub fn profile_paths(&self) -> Option<Vec<Vec<String>>> {
        let mut paths = Vec::new();
        collect_profile_paths(self.program.expression(), &mut paths).then_some(paths)
    }

    /// Whether the rule reads the `action` variable.
    pub fn reads_action(&self) -> bool {
        self.reads_action
    }

    /// The place of this rule among the catalog's distinct rules that do not
    /// read `action` (its verdict is one per decision), if it is one.
    pub(crate) fn shared(&self) -> Option<usize> {
        self.shared
    }

    /// The verdict of a rule of one of the common shapes, read directly
    /// from the variables `vars` resolves: the verdict
    /// [`Rule::evaluate`] would give with `vars` as the context's resolver.
    /// `None` when the rule has another shape or a step fails: then only
    /// [`Rule::evaluate`] can say (and say why).
    pub(crate) fn direct_verdict(&self, vars: &dyn cel::context::VariableResolver) -> Option<bool> {
        self.plan.as_ref()?.verdict(vars)
    }

    /// Evaluates the rule; it must yield a boolean.
    pub fn evaluate(&self, context: &cel::Context<'_, '_>) -> Result<bool, Error> {
        match self.program.execute(context) {
            Ok(cel::Value::Bool(verdict)) => Ok(verdict),
            Ok(other) => Err(Error::RuleFailed {
                rule: self.source.clone(),
                reason: format!("it returned {:?}, not a bool", other.type_of()),
            }),
            Err(error) => Err(Error::RuleFailed {
                rule: self.source.clone(),
                reason: error.to_string(),
            }),
        }
    }
}

/// The variable rules read the customer's profile from.
const PROFILE_VARIABLE: &str = "profile";

/// Adds to `paths` every field path selected on `profile` in `expr`;
/// false when `profile` is used otherwise than by selecting fields.
fn collect_profile_paths(expr: &cel::IdedExpr, paths: &mut Vec<Vec<String>>) -> bool {
    use cel::common::ast::{EntryExpr, Expr};
    match &expr.expr {
        Expr::Ident(name) => name.trim_start_matches('.') != PROFILE_VARIABLE,
        Expr::Select(_) => {
            let mut fields = Vec::new();
            let mut current = expr;
            while let Expr::Select(select) = &current.expr {
                fields.push(select.field.clone());
                current = &select.operand;
            }
            match &current.expr {
                Expr::Ident(name) if name.trim_start_matches('.') == PROFILE_VARIABLE => {
                    fields.reverse();
                    paths.push(fields);
                    true
                }
                _ => collect_profile_paths(current, paths),
            }
        }
        Expr::Call(call) => call
            .target
            .iter()
            .map(|target| target.as_ref())
            .chain(&call.args)
            .all(|part| collect_profile_paths(part, paths)),
        Expr::Comprehension(comprehension) => [
            &comprehension.iter_range,
            &comprehension.accu_init,
            &comprehension.loop_cond,
            &comprehension.loop_step,
            &comprehension.result,
        ]
        .into_iter()
        .all(|part| collect_profile_paths(part, paths)),
        Expr::List(list) => list
            .elements
            .iter()
            .all(|element| collect_profile_paths(element, paths)),
        Expr::Map(cel::common::ast::MapExpr { entries })
        | Expr::Struct(cel::common::ast::StructExpr { entries, .. }) => {
            entries.iter().all(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => {
                    collect_profile_paths(&entry.key, paths)
                        && collect_profile_paths(&entry.value, paths)
                }
                EntryExpr::StructField(field) => collect_profile_paths(&field.value, paths),
            })
        }
        Expr::Literal(_) | Expr::Unspecified => true,
    }
}

/// The variable a rule reads the candidate action from.
const ACTION_VARIABLE: &str = "action";

/// Numbers the distinct rules (by text) among `rules` that do not read
/// `action`, from 0, and returns how many there are. A decision evaluates
/// each of them at most once, whichever candidates or segments carry it.
pub(crate) fn share_rules<'r>(rules: impl Iterator<Item = &'r mut Rule>) -> usize {
    let mut places: HashMap<String, usize> = HashMap::new();
    for rule in rules.filter(|rule| !rule.reads_action) {
        let next = places.len();
        rule.shared = Some(*places.entry(rule.source.clone()).or_insert(next));
    }
    places.len()
}

/// The CEL environment every rule of a catalog is compiled and run in.
#[derive(Clone)]
pub struct RuleEnv(pub Arc<cel::Env>);

impl RuleEnv {
    /// The standard CEL environment.
    pub fn standard() -> Self {
        Self(Arc::new(cel::Env::stdlib()))
    }
}

impl fmt::Debug for RuleEnv {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("RuleEnv(stdlib)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> Rule {
        Rule::compile(&RuleEnv::standard().0, source).expect("compiles")
    }

    #[test]
    fn rules_that_do_not_read_the_action_share_a_place_by_text() {
        let mut rules = [
            compile("profile.count_7d.login >= 1"),
            compile("action.value > 2.0"),
            compile("has(.action.id)"),
            compile("context.page == 'home'"),
            compile("profile.count_7d.login >= 1"),
        ];
        assert_eq!(share_rules(rules.iter_mut()), 2);
        let places: Vec<Option<usize>> = rules.iter().map(Rule::shared).collect();
        assert_eq!(places, [Some(0), None, None, Some(1), Some(0)]);
        assert!(rules[1].reads_action() && rules[2].reads_action());
    }
}
