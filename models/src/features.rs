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
//! | `category(CAT)` | 1 if the action's category is CAT |
//! | `channel(CH)` | 1 if the action's channel is CH |
//! | `action(ID)` | 1 if the action is ID (a per-action bias) |
//! | `action_value` | the action's business value |
//!
//! Terms of the customer and context are computed once per decision; terms of
//! the action once per candidate.

use crate::Error;
use crate::catalog::Action;
use crate::profile::{EventStats, Profile, Window, days_since_last};
use crate::time::Timestamp;
use crate::value::AttrValue;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// Cap applied to day-valued features so one stale customer cannot dominate.
const MAX_DAYS: f64 = 365.0;

/// One factor of a feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// Occurrences of an event in a window.
    Count { event: String, window: Window },
    /// ln(1 + occurrences) of an event in a window.
    LogCount { event: String, window: Window },
    /// Days since an event last happened.
    DaysSince { event: String },
    /// Days since signup.
    Tenure,
    /// A numeric attribute.
    Attr { name: String },
    /// Attribute one-hot.
    Is { name: String, value: String },
    /// The "other" bucket of an attribute one-hot: set, and none of `values`.
    IsNoneOf { name: String, values: Vec<String> },
    /// A numeric context value.
    Ctx { key: String },
    /// Context one-hot.
    CtxIs { key: String, value: String },
    /// Click rate on a channel.
    ClickRate { channel: String },
    /// Action category one-hot.
    Category { name: String },
    /// Action channel one-hot.
    Channel { name: String },
    /// Per-action indicator.
    Action { id: String },
    /// The action's business value.
    ActionValue,
}

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

/// Displays an identifier with spaces for underscores (`pricing_page_view` →
/// `pricing page view`), without allocating.
struct Human<'a>(&'a str);

impl fmt::Display for Human<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, part) in self.0.split('_').enumerate() {
            if position > 0 {
                formatter.write_char(' ')?;
            }
            formatter.write_str(part)?;
        }
        Ok(())
    }
}

fn window_words(window: Window) -> &'static str {
    match window {
        Window::Day => "in the last day",
        Window::Week => "in the last 7 days",
        Window::Month => "in the last 30 days",
    }
}

impl Term {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, args) = match text.split_once('(') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("'{text}' is missing its closing ')'"))?;
                let args: Vec<String> = inner.split(',').map(|arg| arg.trim().to_owned()).collect();
                if args.iter().any(String::is_empty) {
                    return Err(format!("'{text}' has an empty argument"));
                }
                (name.trim(), args)
            }
            None => (text, Vec::new()),
        };
        let arity = |expected: usize| -> Result<(), String> {
            if args.len() == expected {
                Ok(())
            } else {
                Err(format!(
                    "'{name}' takes {expected} argument(s), got {}",
                    args.len()
                ))
            }
        };
        let window = |text: &str| {
            Window::parse(text).ok_or_else(|| format!("window '{text}' must be 1d, 7d or 30d"))
        };
        let term = match name {
            "count" => {
                arity(2)?;
                Term::Count {
                    event: args[0].clone(),
                    window: window(&args[1])?,
                }
            }
            "log_count" => {
                arity(2)?;
                Term::LogCount {
                    event: args[0].clone(),
                    window: window(&args[1])?,
                }
            }
            "days_since" => {
                arity(1)?;
                Term::DaysSince {
                    event: args[0].clone(),
                }
            }
            "tenure_days" => {
                arity(0)?;
                Term::Tenure
            }
            "attr" => {
                arity(1)?;
                Term::Attr {
                    name: args[0].clone(),
                }
            }
            "is" => {
                arity(2)?;
                Term::Is {
                    name: args[0].clone(),
                    value: args[1].clone(),
                }
            }
            "is_none_of" => {
                arity(2)?;
                let values: Vec<String> = args[1]
                    .split('|')
                    .map(|value| value.trim().to_owned())
                    .collect();
                if values.iter().any(String::is_empty) {
                    return Err(format!("'{text}' has an empty value in '{}'", args[1]));
                }
                Term::IsNoneOf {
                    name: args[0].clone(),
                    values,
                }
            }
            "ctx" => {
                arity(1)?;
                Term::Ctx {
                    key: args[0].clone(),
                }
            }
            "ctx_is" => {
                arity(2)?;
                Term::CtxIs {
                    key: args[0].clone(),
                    value: args[1].clone(),
                }
            }
            "click_rate" => {
                arity(1)?;
                Term::ClickRate {
                    channel: args[0].clone(),
                }
            }
            "category" => {
                arity(1)?;
                Term::Category {
                    name: args[0].clone(),
                }
            }
            "channel" => {
                arity(1)?;
                Term::Channel {
                    name: args[0].clone(),
                }
            }
            "action" => {
                arity(1)?;
                Term::Action {
                    id: args[0].clone(),
                }
            }
            "action_value" => {
                arity(0)?;
                Term::ActionValue
            }
            other => return Err(format!("unknown term '{other}'")),
        };
        Ok(term)
    }

    /// Whether the term depends on the action (rather than on the customer).
    pub fn is_action_term(&self) -> bool {
        matches!(
            self,
            Term::Category { .. } | Term::Channel { .. } | Term::Action { .. } | Term::ActionValue
        )
    }

    /// The event a customer term reads, if it reads one.
    fn event(&self) -> Option<&str> {
        match self {
            Term::Count { event, .. }
            | Term::LogCount { event, .. }
            | Term::DaysSince { event } => Some(event),
            _ => None,
        }
    }

    /// The value of a customer/context term.
    fn customer_value(&self, input: &FeatureInput<'_>) -> f64 {
        let stats = self
            .event()
            .and_then(|event| input.profile.events.get(event));
        self.customer_value_of(input, stats)
    }

    /// The value of a customer/context term, given the stats of the event it
    /// reads (`None` if the customer never had it, or the term reads none).
    fn customer_value_of(&self, input: &FeatureInput<'_>, stats: Option<&EventStats>) -> f64 {
        let profile = input.profile;
        let count = |window: Window| stats.map_or(0, |stats| stats.count(window, input.now));
        match self {
            Term::Count { window, .. } => f64::from(count(*window)),
            Term::LogCount { window, .. } => f64::from(count(*window)).ln_1p(),
            Term::DaysSince { .. } => days_since_last(stats, input.now).min(MAX_DAYS),
            Term::Tenure => profile.tenure_days(input.now).min(MAX_DAYS),
            Term::Attr { name } => profile
                .attribute(name)
                .and_then(AttrValue::as_number)
                .unwrap_or(0.0),
            Term::Is { name, value } => indicator(
                profile
                    .attribute(name)
                    .is_some_and(|v| v.matches_text(value)),
            ),
            Term::IsNoneOf { name, values } => {
                indicator(profile.attribute(name).is_some_and(|attribute| {
                    !values.iter().any(|value| attribute.matches_text(value))
                }))
            }
            Term::Ctx { key } => input
                .context
                .get(key)
                .and_then(AttrValue::as_number)
                .unwrap_or(0.0),
            Term::CtxIs { key, value } => indicator(
                input
                    .context
                    .get(key)
                    .is_some_and(|v| v.matches_text(value)),
            ),
            Term::ClickRate { channel } => profile.engagement(channel).click_rate(),
            Term::Category { .. }
            | Term::Channel { .. }
            | Term::Action { .. }
            | Term::ActionValue => 1.0,
        }
    }

    /// The value of an action term (1 for customer terms).
    fn action_value(&self, action: &Action) -> f64 {
        match self {
            Term::Category { name } => indicator(action.category == *name),
            Term::Channel { name } => indicator(action.channel == *name),
            Term::Action { id } => indicator(*action.id == **id),
            Term::ActionValue => action.value,
            _ => 1.0,
        }
    }

    /// Appends the term in words, given its value, to `out`.
    fn describe_into(&self, value: f64, input: &FeatureInput<'_>, out: &mut String) -> fmt::Result {
        match self {
            Term::Count { event, window } | Term::LogCount { event, window } => {
                let count = input.profile.count(event, *window, input.now);
                write!(out, "{} {count}× {}", Human(event), window_words(*window))
            }
            Term::DaysSince { event } => {
                let days = input.profile.days_since(event, input.now);
                if days >= crate::profile::NEVER_DAYS {
                    write!(out, "never had {}", Human(event))
                } else if days < 1.0 {
                    write!(out, "{} today", Human(event))
                } else {
                    write!(out, "last {} {} days ago", Human(event), days as i64)
                }
            }
            Term::Tenure => write!(out, "customer for {} days", value as i64),
            Term::Attr { name } => write!(out, "{} is {value}", Human(name)),
            Term::Is {
                name,
                value: expected,
            } => {
                let negation = if value > 0.0 { "" } else { "not " };
                write!(out, "{} is {negation}{expected}", Human(name))
            }
            Term::IsNoneOf { name, values } => {
                let listed = values.join(", ");
                if value > 0.0 {
                    write!(out, "{} is none of {listed}", Human(name))
                } else {
                    write!(out, "{} is one of {listed} or not set", Human(name))
                }
            }
            Term::Ctx { key } => write!(out, "{} is {value}", Human(key)),
            Term::CtxIs {
                key,
                value: expected,
            } => {
                let negation = if value > 0.0 { "" } else { "not " };
                write!(out, "{} is {negation}{expected}", Human(key))
            }
            Term::ClickRate { channel } => {
                write!(
                    out,
                    "{channel} click rate {}%",
                    (value * 100.0).round() as i64
                )
            }
            Term::Category { name } => write!(out, "for {} actions", Human(name)),
            Term::Channel { name } => write!(out, "on {name}"),
            Term::Action { .. } => out.write_str("this action's baseline"),
            Term::ActionValue => write!(out, "business value {value}"),
        }
    }
}

fn indicator(condition: bool) -> f64 {
    if condition { 1.0 } else { 0.0 }
}

impl fmt::Display for Term {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Count { event, window } => write!(formatter, "count({event},{})", window.label()),
            Term::LogCount { event, window } => {
                write!(formatter, "log_count({event},{})", window.label())
            }
            Term::DaysSince { event } => write!(formatter, "days_since({event})"),
            Term::Tenure => write!(formatter, "tenure_days"),
            Term::Attr { name } => write!(formatter, "attr({name})"),
            Term::Is { name, value } => write!(formatter, "is({name},{value})"),
            Term::IsNoneOf { name, values } => {
                write!(formatter, "is_none_of({name},{})", values.join("|"))
            }
            Term::Ctx { key } => write!(formatter, "ctx({key})"),
            Term::CtxIs { key, value } => write!(formatter, "ctx_is({key},{value})"),
            Term::ClickRate { channel } => write!(formatter, "click_rate({channel})"),
            Term::Category { name } => write!(formatter, "category({name})"),
            Term::Channel { name } => write!(formatter, "channel({name})"),
            Term::Action { id } => write!(formatter, "action({id})"),
            Term::ActionValue => write!(formatter, "action_value"),
        }
    }
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
