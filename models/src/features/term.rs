//! One factor of a feature (`count(EVENT,W)`, `is(NAME,VALUE)`, …): parsing,
//! its value for a customer or an action, and its words in a rationale.

use super::FeatureInput;
use crate::action::Action;
use crate::profile::{EventStats, Window, days_since_last};
use crate::value::AttrValue;
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
    /// A profile score's last value (0 until computed).
    Score { id: String },
    /// Tier one-hot: 1 if the customer's tier `id` is `band`.
    Tier { id: String, band: String },
    /// Action category one-hot.
    Category { name: String },
    /// Action channel one-hot.
    Channel { name: String },
    /// Per-action indicator.
    Action { id: String },
    /// The action's business value.
    ActionValue,
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
    pub(super) fn parse(text: &str) -> Result<Self, String> {
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
            "score" => {
                arity(1)?;
                Term::Score {
                    id: args[0].clone(),
                }
            }
            "tier" => {
                arity(2)?;
                Term::Tier {
                    id: args[0].clone(),
                    band: args[1].clone(),
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
    pub(super) fn event(&self) -> Option<&str> {
        match self {
            Term::Count { event, .. }
            | Term::LogCount { event, .. }
            | Term::DaysSince { event } => Some(event),
            _ => None,
        }
    }

    /// The value of a customer/context term.
    pub(super) fn customer_value(&self, input: &FeatureInput<'_>) -> f64 {
        let stats = self
            .event()
            .and_then(|event| input.profile.events.get(event));
        self.customer_value_of(input, stats)
    }

    /// The value of a customer/context term, given the stats of the event it
    /// reads (`None` if the customer never had it, or the term reads none).
    pub(super) fn customer_value_of(
        &self,
        input: &FeatureInput<'_>,
        stats: Option<&EventStats>,
    ) -> f64 {
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
            Term::Score { id } => profile.scores.value(id).unwrap_or(0.0),
            Term::Tier { id, band } => indicator(profile.scores.tier(id) == Some(band.as_str())),
            Term::Category { .. }
            | Term::Channel { .. }
            | Term::Action { .. }
            | Term::ActionValue => 1.0,
        }
    }

    /// The value of an action term (1 for customer terms).
    pub(super) fn action_value(&self, action: &Action) -> f64 {
        match self {
            Term::Category { name } => indicator(action.category == *name),
            Term::Channel { name } => indicator(action.channel == *name),
            Term::Action { id } => indicator(*action.id == **id),
            Term::ActionValue => action.value,
            _ => 1.0,
        }
    }

    /// Appends the term in words, given its value, to `out`.
    pub(super) fn describe_into(
        &self,
        value: f64,
        input: &FeatureInput<'_>,
        out: &mut String,
    ) -> fmt::Result {
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
            Term::Score { id } => match input.profile.scores.value(id) {
                Some(score) => write!(out, "{} score {}", Human(id), Rounded(score)),
                None => write!(out, "no {} score yet", Human(id)),
            },
            Term::Tier { id, band } => {
                let negation = if value > 0.0 { "" } else { "not " };
                write!(out, "{} tier {negation}{band}", Human(id))
            }
            Term::Category { name } => write!(out, "for {} actions", Human(name)),
            Term::Channel { name } => write!(out, "on {name}"),
            Term::Action { .. } => out.write_str("this action's baseline"),
            Term::ActionValue => write!(out, "business value {value}"),
        }
    }
}

/// A score as people read it: two decimals below 10, whole numbers above.
struct Rounded(f64);

impl fmt::Display for Rounded {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.abs() < 10.0 {
            write!(formatter, "{:.2}", self.0)
        } else {
            write!(formatter, "{:.0}", self.0)
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
            Term::Score { id } => write!(formatter, "score({id})"),
            Term::Tier { id, band } => write!(formatter, "tier({id},{band})"),
            Term::Category { name } => write!(formatter, "category({name})"),
            Term::Channel { name } => write!(formatter, "channel({name})"),
            Term::Action { id } => write!(formatter, "action({id})"),
            Term::ActionValue => write!(formatter, "action_value"),
        }
    }
}
