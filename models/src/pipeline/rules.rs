//! One CEL context per decision for the eligibility and segment rules.

use crate::Error;
use crate::catalog::{Action, Catalog, Rule};
use crate::rule_vars::RuleVars;

/// One CEL context for every rule of a decision, over lazy views of the
/// profile and the request context, with `action` rebound per candidate.
/// A rule that does not read `action` has one verdict per decision: it is
/// evaluated once and its verdict kept for every other candidate or segment
/// that carries the same rule.
pub(super) struct RuleScope<'a> {
    vars: &'a RuleVars<'a>,
    context: cel::Context<'a, 'a>,
    /// The verdict of each shared rule evaluated so far, by its place
    /// ([`Rule`]'s `shared`); empty until the first one is.
    verdicts: Vec<Option<Result<bool, Error>>>,
    /// How many shared rules the catalog has.
    shared_rules: usize,
}

impl<'a> RuleScope<'a> {
    pub(super) fn new(catalog: &'a Catalog, vars: &'a RuleVars<'a>) -> Self {
        let mut context = cel::Context::with_env(catalog.cel_env().clone());
        context.set_variable_resolver(vars);
        Self {
            vars,
            context,
            verdicts: Vec::new(),
            shared_rules: catalog.shared_rules(),
        }
    }

    pub(super) fn evaluate(&mut self, rule: &Rule, action: Option<&Action>) -> Result<bool, Error> {
        let Some(place) = rule.shared() else {
            self.vars.bind(action);
            return self.run(rule);
        };
        if self.verdicts.is_empty() {
            self.verdicts.resize(self.shared_rules, None);
        }
        if let Some(verdict) = &self.verdicts[place] {
            return verdict.clone();
        }
        let verdict = self.run(rule);
        self.verdicts[place] = Some(verdict.clone());
        verdict
    }

    /// The rule's verdict with the variables as bound: read directly when
    /// it has a common shape, else from the CEL interpreter.
    fn run(&self, rule: &Rule) -> Result<bool, Error> {
        match rule.direct_verdict(self.vars) {
            Some(verdict) => Ok(verdict),
            None => rule.evaluate(&self.context),
        }
    }
}
