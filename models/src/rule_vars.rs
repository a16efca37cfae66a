//! The variables CEL rules see — `profile`, `context` and `action` — as lazy
//! views: a rule that reads `profile.count_7d.login` computes that one count, and
//! nothing is copied into CEL values up front. This keeps rule evaluation cheap
//! enough to run for every candidate of every decision.
//!
//! What a rule can read:
//! - `profile.<attribute>`: attributes set by `identify` events;
//! - `profile.days_since_signup`, `profile.days_since_last_seen` and
//!   `profile.days_since_<event>` (doubles; [`NEVER_DAYS`] for known events that
//!   never happened);
//! - `profile.count_1d` / `count_7d` / `count_30d` `.<event>` (ints; 0 for known
//!   events not seen yet);
//! - `profile.engagement.<channel>.{sends, impressions, clicks, conversions,
//!   dismisses, failures, click_rate}`;
//! - `profile.scores.<id>` (double) and `profile.tiers.<id>` (string): the
//!   customer's profile scores and tiers as last computed
//!   ([`crate::scores`]); absent until computed (`has(profile.scores.<id>)`);
//! - `context.<key>`: the request context;
//! - `action.{id, channel, category, value, payload}`.
//!
//! A key that does not exist is CEL's "no such key": `has(profile.plan)` is
//! false, and reading it makes the rule fail (reason `rule_error`).

use crate::action::Action;
use crate::profile::{ChannelEngagement, NEVER_DAYS, Profile, Window};
use crate::time::Timestamp;
use crate::value::AttrValue;
use cel::ExecutionError;
use cel::common::traits::Indexer;
use cel::common::types::{CelBool, CelDouble, CelInt, CelString, Type};
use cel::common::value::{CowVal, Val};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

static PROFILE_TYPE: Type = Type::new_unspecified_type("nudge.Profile");
static COUNTS_TYPE: Type = Type::new_unspecified_type("nudge.Counts");
static ENGAGEMENT_TYPE: Type = Type::new_unspecified_type("nudge.Engagement");
static CHANNEL_TYPE: Type = Type::new_unspecified_type("nudge.ChannelEngagement");
static CONTEXT_TYPE: Type = Type::new_unspecified_type("nudge.Context");
static SCORES_TYPE: Type = Type::new_unspecified_type("nudge.Scores");
static TIERS_TYPE: Type = Type::new_unspecified_type("nudge.Tiers");

fn key_of(key: &dyn Val) -> Result<&str, ExecutionError> {
    key.downcast_ref::<CelString>()
        .map(CelString::inner)
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: key.get_type().name().to_owned(),
            want: "string".to_owned(),
        })
}

fn missing(key: &str) -> ExecutionError {
    ExecutionError::no_such_key(key)
}

fn owned<'b, 'w>(value: impl Val + 'w) -> CowVal<'b, 'w> {
    CowVal::Owned(Box::new(value))
}

fn attr<'b, 'a>(value: &'a AttrValue) -> CowVal<'b, 'a> {
    match value {
        AttrValue::Str(text) => owned(CelString::from(text.as_str())),
        AttrValue::Num(number) => owned(CelDouble::from(*number)),
        AttrValue::Bool(flag) => owned(CelBool::from(*flag)),
    }
}

/// Implements [`Val`] and [`Indexer`] for a view type whose CEL type is `$ty`
/// and whose inherent `lookup(key)` resolves one key.
macro_rules! view_val {
    ($view:ident, $ty:ident) => {
        impl Indexer for $view<'_> {
            fn get<'b, 'v>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
            where
                Self: 'v,
            {
                self.lookup(key_of(key)?)
            }

            fn steal<'v>(
                self: Box<Self>,
                key: &dyn Val,
            ) -> Result<Box<dyn Val + 'v>, ExecutionError>
            where
                Self: 'v,
            {
                self.get(key).map(CowVal::into_owned)
            }
        }

        impl Val for $view<'_> {
            fn get_type(&self) -> &Type {
                &$ty
            }

            fn cel_type() -> &'static Type {
                &$ty
            }

            fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
            where
                Self: 'v,
            {
                Some(self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
            where
                Self: 'v,
            {
                Box::new(self.clone())
            }
        }
    };
}

/// `profile`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileView<'a> {
    profile: &'a Profile,
    known_events: &'a [String],
    now: Timestamp,
}

impl<'a> ProfileView<'a> {
    fn knows(&self, event: &str) -> bool {
        self.profile.events.contains_key(event)
            || self.known_events.iter().any(|known| known == event)
    }
}

impl<'a> ProfileView<'a> {
    fn lookup<'b>(&self, key: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        let now = self.now;
        let profile = self.profile;
        let window = match key {
            "count_1d" => Some(Window::Day),
            "count_7d" => Some(Window::Week),
            "count_30d" => Some(Window::Month),
            _ => None,
        };
        if let Some(window) = window {
            return Ok(owned(CountsView {
                view: *self,
                window,
            }));
        }
        match key {
            "engagement" => return Ok(owned(EngagementView { profile })),
            "scores" => return Ok(owned(ScoresView { profile })),
            "tiers" => return Ok(owned(TiersView { profile })),
            "days_since_signup" => return Ok(owned(CelDouble::from(profile.tenure_days(now)))),
            "days_since_last_seen" => {
                let days = profile
                    .last_seen
                    .map_or(NEVER_DAYS, |last| now.days_since(last).max(0.0));
                return Ok(owned(CelDouble::from(days)));
            }
            _ => {}
        }
        if let Some(event) = key.strip_prefix("days_since_")
            && self.knows(event)
        {
            return Ok(owned(CelDouble::from(profile.days_since(event, now))));
        }
        profile.attribute(key).map(attr).ok_or_else(|| missing(key))
    }
}

view_val!(ProfileView, PROFILE_TYPE);

/// `profile.count_<window>`.
#[derive(Debug, Clone, Copy)]
struct CountsView<'a> {
    view: ProfileView<'a>,
    window: Window,
}

impl<'a> CountsView<'a> {
    fn lookup<'b>(&self, event: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        if !self.view.knows(event) {
            return Err(missing(event));
        }
        let count = self.view.profile.count(event, self.window, self.view.now);
        Ok(owned(CelInt::from(i64::from(count))))
    }
}

view_val!(CountsView, COUNTS_TYPE);

/// `profile.scores`.
#[derive(Debug, Clone, Copy)]
struct ScoresView<'a> {
    profile: &'a Profile,
}

impl<'a> ScoresView<'a> {
    fn lookup<'b>(&self, id: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        let score = self.profile.scores.value(id).ok_or_else(|| missing(id))?;
        Ok(owned(CelDouble::from(score)))
    }
}

view_val!(ScoresView, SCORES_TYPE);

/// `profile.tiers`.
#[derive(Debug, Clone, Copy)]
struct TiersView<'a> {
    profile: &'a Profile,
}

impl<'a> TiersView<'a> {
    fn lookup<'b>(&self, id: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        let band = self.profile.scores.tier(id).ok_or_else(|| missing(id))?;
        Ok(owned(CelString::from(band)))
    }
}

view_val!(TiersView, TIERS_TYPE);

/// `profile.engagement`.
#[derive(Debug, Clone, Copy)]
struct EngagementView<'a> {
    profile: &'a Profile,
}

impl<'a> EngagementView<'a> {
    fn lookup<'b>(&self, channel: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        let stats = self
            .profile
            .engagement
            .get(channel)
            .ok_or_else(|| missing(channel))?;
        Ok(owned(ChannelView { stats }))
    }
}

view_val!(EngagementView, ENGAGEMENT_TYPE);

/// `profile.engagement.<channel>`.
#[derive(Debug, Clone, Copy)]
struct ChannelView<'a> {
    stats: &'a ChannelEngagement,
}

impl<'a> ChannelView<'a> {
    fn lookup<'b>(&self, field: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        let stats = self.stats;
        let count = match field {
            "sends" => stats.sends,
            "impressions" => stats.impressions,
            "clicks" => stats.clicks,
            "conversions" => stats.conversions,
            "dismisses" => stats.dismisses,
            "failures" => stats.failures,
            "click_rate" => return Ok(owned(CelDouble::from(stats.click_rate()))),
            other => return Err(missing(other)),
        };
        Ok(owned(CelInt::from(i64::from(count))))
    }
}

view_val!(ChannelView, CHANNEL_TYPE);

/// `context`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContextView<'a> {
    context: &'a BTreeMap<String, AttrValue>,
}

impl<'a> ContextView<'a> {
    fn lookup<'b>(&self, key: &str) -> Result<CowVal<'b, 'a>, ExecutionError> {
        self.context.get(key).map(attr).ok_or_else(|| missing(key))
    }
}

view_val!(ContextView, CONTEXT_TYPE);

/// Resolves `profile`, `context` and `action` for the rules of one decision.
/// The action is rebound per candidate, so one CEL context serves them all.
#[derive(Debug)]
pub(crate) struct RuleVars<'a> {
    profile: ProfileView<'a>,
    context: ContextView<'a>,
    /// The catalog's actions; `action` is the one at `current`.
    actions: &'a [Action],
    /// Index into `actions`, or [`NO_ACTION`].
    current: AtomicUsize,
}

/// `current` when no action is bound (segment rules).
const NO_ACTION: usize = usize::MAX;

impl<'a> RuleVars<'a> {
    /// Variables of one decision.
    pub(crate) fn new(
        profile: &'a Profile,
        known_events: &'a [String],
        context: &'a BTreeMap<String, AttrValue>,
        actions: &'a [Action],
        now: Timestamp,
    ) -> Self {
        Self {
            profile: ProfileView {
                profile,
                known_events,
                now,
            },
            context: ContextView { context },
            actions,
            current: AtomicUsize::new(NO_ACTION),
        }
    }

    /// Binds `action` (one of the catalog's) or unbinds it.
    pub(crate) fn bind(&self, action: Option<&Action>) {
        self.current.store(
            action.map_or(NO_ACTION, |action| action.index),
            Ordering::Relaxed,
        );
    }
}

impl cel::context::VariableResolver for RuleVars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "profile" => Some(CowVal::Borrowed(&self.profile)),
            "context" => Some(CowVal::Borrowed(&self.context)),
            "action" => self
                .actions
                .get(self.current.load(Ordering::Relaxed))
                .map(|action| CowVal::Borrowed(action.cel_value())),
            _ => None,
        }
    }
}

/// Resolves `profile` and `event` (the properties of the event a journey
/// is matching, when there is one) for a journey's rules: triggers, entry
/// conditions, goals, exits, `wait_for` and `branch`.
#[derive(Debug)]
pub(crate) struct JourneyVars<'a> {
    profile: ProfileView<'a>,
    event: Option<ContextView<'a>>,
}

impl<'a> JourneyVars<'a> {
    /// The variables of one journey rule.
    pub(crate) fn new(
        profile: &'a Profile,
        known_events: &'a [String],
        event: Option<&'a BTreeMap<String, AttrValue>>,
        now: Timestamp,
    ) -> Self {
        Self {
            profile: ProfileView {
                profile,
                known_events,
                now,
            },
            event: event.map(|context| ContextView { context }),
        }
    }
}

impl cel::context::VariableResolver for JourneyVars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "profile" => Some(CowVal::Borrowed(&self.profile)),
            "event" => self
                .event
                .as_ref()
                .map(|event| CowVal::Borrowed(event as &dyn Val)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Event;
    use crate::time::DAY_MS;

    const NOW: i64 = 1_800_000_000_000;

    fn evaluate(source: &str, vars: &RuleVars<'_>) -> Result<cel::Value, ExecutionError> {
        let program = cel::Program::compile(source).expect("compiles");
        let mut context = cel::Context::default();
        context.set_variable_resolver(vars);
        program.execute(&context)
    }

    fn profile() -> Profile {
        let mut profile = Profile::default();
        let now = Timestamp(NOW);
        let mut identify = Event {
            event_id: "e0".into(),
            name: crate::profile::IDENTIFY_EVENT.into(),
            timestamp: Timestamp(NOW - 2 * DAY_MS),
            properties: BTreeMap::new(),
        };
        identify.properties.insert("plan".into(), "trial".into());
        identify
            .properties
            .insert("seats".into(), AttrValue::Num(12.0));
        identify
            .properties
            .insert("vip".into(), AttrValue::Bool(true));
        profile.apply_event(&identify, now);
        let pricing = Event {
            event_id: "e1".into(),
            name: "pricing_page_view".into(),
            timestamp: now,
            properties: BTreeMap::new(),
        };
        profile.apply_event(&pricing, now);
        let email = profile.engagement_mut("email");
        email.sends = 4;
        email.clicks = 1;
        profile
    }

    #[test]
    fn rules_read_attributes_counts_recency_engagement_and_context() {
        let profile = profile();
        let known = vec!["login".to_owned()];
        let context = BTreeMap::from([("page".to_owned(), AttrValue::from("pricing"))]);
        let vars = RuleVars::new(&profile, &known, &context, &[], Timestamp(NOW));
        for rule in [
            "profile.plan == 'trial' && profile.seats > 10 && profile.vip",
            "profile.count_7d.pricing_page_view == 1 && profile.count_1d.login == 0",
            "profile.days_since_login > 1000.0 && profile.days_since_pricing_page_view == 0.0",
            "profile.days_since_signup >= 2.0 && profile.days_since_last_seen == 0.0",
            "profile.engagement.email.sends == 4 && profile.engagement.email.click_rate == 0.25",
            "context.page == 'pricing'",
            "has(profile.plan) && !has(profile.tier) && !has(profile.count_7d.unknown_event)",
        ] {
            assert_eq!(evaluate(rule, &vars), Ok(cel::Value::Bool(true)), "{rule}");
        }
    }

    #[test]
    fn missing_keys_are_errors_that_name_the_key() {
        let profile = profile();
        let context = BTreeMap::new();
        let vars = RuleVars::new(&profile, &[], &context, &[], Timestamp(NOW));
        let error = evaluate("profile.tier == 'gold'", &vars).expect_err("no tier");
        assert!(error.to_string().contains("tier"), "{error}");
        assert!(evaluate("profile.count_7d.login == 0", &vars).is_err());
        assert!(evaluate("context.page == 'x'", &vars).is_err());
        assert!(evaluate("action.id == 'x'", &vars).is_err());
    }
}
