//! Feature specifications and extraction, shared by serving and training so both
//! compute identical features.
//!
//! A feature is written as a product of terms, e.g. `count(pricing_page_view,7d)`
//! or `category(upsell) * is(plan,pro)`:
//!
//! | term | value |
//! |---|---|
//! | `count(EVENT,W)` | occurrences of EVENT in window W (`1d`, `7d`, `30d`) |
//! | `log_count(EVENT,W)` | ln(1 + count) |
//! | `days_since(EVENT)` | days since EVENT last happened, capped at 365 (never = 365) |
//! | `tenure_days` | days since signup, capped at 365 |
//! | `attr(NAME)` | numeric attribute (booleans 0/1; missing or text: 0) |
//! | `is(NAME,VALUE)` | 1 if attribute NAME equals VALUE, else 0 |
//! | `is_none_of(NAME,A\|B\|C)` | 1 if attribute NAME is set and equals none of A, B, C (the "other" bucket of a one-hot); 0 if missing |
//! | `ctx(KEY)` | numeric request-context value (missing: 0) |
//! | `ctx_is(KEY,VALUE)` | 1 if context KEY equals VALUE |
//! | `click_rate(CHANNEL)` | the customer's clicks per impression on CHANNEL |
//! | `score(ID)` | the customer's profile score ID (see [`crate::scores`]; 0 until computed) |
//! | `tier(ID,BAND)` | 1 if the customer's tier ID is BAND |
//! | `category(CAT)` | 1 if the action's category is CAT |
//! | `channel(CH)` | 1 if the action's channel is CH |
//! | `action(ID)` | 1 if the action is ID (a per-action bias) |
//! | `action_value` | the action's business value |
//!
//! Terms of the customer and context are computed once per decision; terms of
//! the action once per candidate.

use crate::Error;
use crate::action::Action;
use crate::profile::{EventStats, Profile};
use crate::time::Timestamp;
use crate::value::AttrValue;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::fmt;
pub use term::Term;

mod term;

/// What a feature is computed from: the customer, the request and the time.
#[derive(Debug, Clone, Copy)]
pub struct FeatureInput<'a> {
    /// The customer's profile.
    pub profile: &'a Profile,
    /// The request context.
    pub context: &'a BTreeMap<String, AttrValue>,
    /// The decision time.
    pub now: Timestamp,
}

/// The customer side of a feature set, planned once when it is parsed: each
/// distinct customer term is computed once per decision, and each event the
/// terms read is looked up once.
#[derive(Debug, Clone, PartialEq, Default)]
struct CustomerPlan {
    /// The events the customer terms read, each once.
    events: Vec<String>,
    /// The distinct customer terms, each with the position in `events` of the
    /// event it reads.
    terms: Vec<(Term, Option<usize>)>,
    /// For each feature, the positions in `terms` of its customer terms, in
    /// written order: its customer factor is their product.
    features: Vec<Vec<usize>>,
}

impl CustomerPlan {
    fn new(specs: &[FeatureSpec]) -> Self {
        let mut plan = Self::default();
        for spec in specs {
            let mut positions = Vec::new();
            for term in spec.terms.iter().filter(|term| !term.is_action_term()) {
                let position = match plan.terms.iter().position(|(known, _)| known == term) {
                    Some(position) => position,
                    None => {
                        let event = term.event().map(|event| {
                            match plan.events.iter().position(|known| known == event) {
                                Some(position) => position,
                                None => {
                                    plan.events.push(event.to_owned());
                                    plan.events.len() - 1
                                }
                            }
                        });
                        plan.terms.push((term.clone(), event));
                        plan.terms.len() - 1
                    }
                };
                positions.push(position);
            }
            plan.features.push(positions);
        }
        plan
    }

    /// The customer factor of every feature: the same numbers as
    /// [`FeatureSpec::customer_factor`], with the same products in the same
    /// order.
    fn factors(&self, input: &FeatureInput<'_>) -> Vec<f64> {
        let stats: Vec<Option<&EventStats>> = self
            .events
            .iter()
            .map(|event| input.profile.events.get(event))
            .collect();
        let values: Vec<f64> = self
            .terms
            .iter()
            .map(|(term, event)| {
                term.customer_value_of(input, event.and_then(|position| stats[position]))
            })
            .collect();
        self.features
            .iter()
            .map(|terms| terms.iter().map(|&position| values[position]).product())
            .collect()
    }
}

/// One feature: a product of terms.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    terms: Vec<Term>,
    /// The canonical text, e.g. `category(upsell) * is(plan,pro)`.
    text: String,
}

impl FeatureSpec {
    /// Parses `term` or `term * term * ...`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let terms = text
            .split('*')
            .map(Term::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| Error::InvalidFeature {
                spec: text.to_owned(),
                reason,
            })?;
        let text = terms
            .iter()
            .map(Term::to_string)
            .collect::<Vec<_>>()
            .join(" * ");
        Ok(Self { terms, text })
    }

    /// The canonical text, as written in a model artifact.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The terms, in written order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The product of the customer/context terms (1 if none).
    fn customer_factor(&self, input: &FeatureInput<'_>) -> f64 {
        self.terms
            .iter()
            .filter(|term| !term.is_action_term())
            .map(|term| term.customer_value(input))
            .product()
    }

    /// The feature's value for a customer when it has only customer terms
    /// (what a profile score reads; action terms count as 1).
    pub fn customer_value(&self, input: &FeatureInput<'_>) -> f64 {
        self.customer_factor(input)
    }

    /// Whether every term reads only the customer's profile: no request
    /// context and no action (what a profile score may use).
    pub fn reads_only_profile(&self) -> bool {
        self.terms.iter().all(|term| {
            !term.is_action_term() && !matches!(term, Term::Ctx { .. } | Term::CtxIs { .. })
        })
    }

    /// The product of the action terms (1 if none).
    fn action_factor(&self, action: &Action) -> f64 {
        self.terms
            .iter()
            .filter(|term| term.is_action_term())
            .map(|term| term.action_value(action))
            .product()
    }

    /// The feature's value for one customer, context and action.
    pub fn value(&self, input: &FeatureInput<'_>, action: &Action) -> f64 {
        self.customer_factor(input) * self.action_factor(action)
    }

    /// The feature in words for this customer and action, customer terms first,
    /// e.g. "pricing page view 3× in the last 7 days, for upsell actions".
    pub fn describe(&self, input: &FeatureInput<'_>, action: &Action) -> String {
        let customer = self.terms.iter().filter(|term| !term.is_action_term());
        let action_terms = self.terms.iter().filter(|term| term.is_action_term());
        let mut text = String::with_capacity(48);
        let values = customer
            .map(|term| (term, term.customer_value(input)))
            .chain(action_terms.map(|term| (term, term.action_value(action))));
        for (position, (term, value)) in values.enumerate() {
            if position > 0 {
                text.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = term.describe_into(value, input, &mut text);
        }
        text
    }
}

impl fmt::Display for FeatureSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// The ordered features of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    specs: Vec<FeatureSpec>,
    /// How the customer factors are computed (derived from `specs`).
    customer: CustomerPlan,
}

impl FeatureSet {
    /// Parses every spec; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, Error> {
        let specs = specs
            .iter()
            .map(|spec| FeatureSpec::parse(spec.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let customer = CustomerPlan::new(&specs);
        Ok(Self { specs, customer })
    }

    /// The specs, in column order.
    pub fn specs(&self) -> &[FeatureSpec] {
        &self.specs
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The customer/context factor of every feature (1 for features with only
    /// action terms).
    pub fn customer_factors(&self, input: &FeatureInput<'_>) -> Vec<f64> {
        self.customer.factors(input)
    }

    /// The action factor of every feature (1 for features with only customer
    /// terms). A feature's value is its customer factor times its action factor.
    pub fn action_factors(&self, action: &Action) -> Vec<f64> {
        self.specs
            .iter()
            .map(|spec| spec.action_factor(action))
            .collect()
    }

    /// The feature matrix: one row per action, one column per feature. Customer
    /// terms are computed once for all rows.
    pub fn extract(&self, input: &FeatureInput<'_>, actions: &[&Action]) -> Array2<f64> {
        let factors = self.customer_factors(input);
        let mut matrix = Array2::zeros((actions.len(), self.specs.len()));
        for (mut row, action) in matrix.rows_mut().into_iter().zip(actions) {
            for ((cell, spec), factor) in row.iter_mut().zip(&self.specs).zip(&factors) {
                *cell = factor * spec.action_factor(action);
            }
        }
        matrix
    }

    /// One row: the features of one customer, context and action. Training uses
    /// this; it equals the matching row of [`FeatureSet::extract`].
    pub fn extract_one(&self, input: &FeatureInput<'_>, action: &Action) -> Vec<f64> {
        self.specs
            .iter()
            .map(|spec| spec.value(input, action))
            .collect()
    }
}

#[cfg(test)]
mod tests;
