//! One CEL context per decision for the eligibility and segment rules.

use crate::Error;
use crate::catalog::{Action, Catalog, Rule};
use crate::rule_vars::RuleVars;

/// One CEL context for every rule of a decision, over lazy views of the
/// profile and the request context, with `action` rebound per candidate.
pub(super) struct RuleScope<'a> {
    vars: &'a RuleVars<'a>,
    context: cel::Context<'a, 'a>,
}

impl<'a> RuleScope<'a> {
    pub(super) fn new(catalog: &'a Catalog, vars: &'a RuleVars<'a>) -> Self {
        let mut context = cel::Context::with_env(catalog.cel_env().clone());
        context.set_variable_resolver(vars);
        Self { vars, context }
    }

    pub(super) fn evaluate(&mut self, rule: &Rule, action: Option<&Action>) -> Result<bool, Error> {
        self.vars.bind(action);
        rule.evaluate(&self.context)
    }
}
