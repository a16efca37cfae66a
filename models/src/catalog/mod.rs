//! The catalog: actions, channels, placements and policy, loaded from one TOML
//! file and validated as a whole.
//!
//! - [`file`]: the file's serde shape (private).
//! - [`compile`]: validation, turning the file into a [`Catalog`] or a list of
//!   [`CatalogProblem`]s that name the field and line.
//! - [`rule`]: CEL eligibility and segment rules.
//! - [`journeys`]: journeys as declared, compiled (run by [`crate::journey`]).

mod compile;
mod file;
pub mod journeys;
mod native;
pub(crate) mod rule;

pub use crate::action::Action;
pub use compile::{CatalogProblem, CatalogProblems};
pub use journeys::{Journey, JourneyPolicy};
pub use rule::{Rule, RuleEnv};

use crate::features::{FeatureSet, Term};
use crate::time::Span;
use chrono::NaiveDate;
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The validated, compiled catalog. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct Catalog {
    /// Human name from `[catalog]`.
    pub name: String,
    /// `[catalog].version`, or a hash of the file's text.
    pub version: String,
    /// Timezone for customers without a `timezone` attribute.
    pub default_timezone: Tz,
    /// Event names rules and features may rely on.
    pub known_events: Vec<String>,
    /// Channels by id.
    pub channels: BTreeMap<String, Channel>,
    /// Actions in file order.
    pub actions: Vec<Action>,
    /// Position of each action in `actions`, by id.
    action_index: HashMap<String, usize>,
    /// Placements by id.
    pub placements: BTreeMap<String, Placement>,
    /// Frequency caps.
    pub caps: Vec<CapRule>,
    /// Blackout dates.
    pub blackouts: Vec<Blackout>,
    /// Lever per category (1.0 when absent).
    pub category_levers: BTreeMap<String, f64>,
    /// Fallback segments, first match wins.
    pub segments: Vec<Segment>,
    /// Limits over all of one customer's journeys.
    pub journey_policy: JourneyPolicy,
    /// Journeys in file order (the versions new entries take).
    pub journeys: Vec<Arc<Journey>>,
    /// Profile scores and tiers, and when they are refreshed.
    pub scores: crate::scores::definitions::Scores,
    /// Send-time optimization (`[send_time]`), when declared.
    pub send_time: Option<crate::send_time::settings::SendTimeSettings>,
    /// The CEL environment the rules were compiled in.
    cel_env: RuleEnv,
    /// How many distinct rules do not read `action` (see [`Rule`]): the
    /// verdicts one decision keeps.
    shared_rules: usize,
    /// Unique per loaded catalog, so derived data (such as a model's
    /// action-side features) can be cached against it.
    instance: u64,
}

/// Whether a channel needs an explicit opt-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentPolicy {
    /// Allowed unless the customer opted out (e.g. in-app, transactional email).
    OptOut,
    /// Allowed only after an explicit opt-in (e.g. SMS).
    OptIn,
}

/// A delivery channel.
#[derive(Debug)]
pub struct Channel {
    /// Channel id, e.g. `email`.
    pub id: String,
    /// Consent policy.
    pub consent: ConsentPolicy,
    /// Local times when the channel must not be used.
    pub quiet_hours: Option<QuietHours>,
}

/// A daily quiet period in the customer's local time; may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minute of the day it starts (inclusive).
    pub start_minute: u16,
    /// Minute of the day it ends (exclusive).
    pub end_minute: u16,
}

impl QuietHours {
    /// Whether `minute_of_day` (0..1440) is inside the quiet period.
    pub fn contains(&self, minute_of_day: u16) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start_minute || minute_of_day < self.end_minute
        }
    }

    /// `HH:MM–HH:MM`.
    pub fn describe(&self) -> String {
        format!(
            "{:02}:{:02}–{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// How a placement explores beyond the best-scored action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exploration {
    /// Always the best.
    None,
    /// With probability ε, a uniformly random eligible action.
    Epsilon(f64),
    /// Sample with probability ∝ exp(priority / temperature).
    Softmax(f64),
}

/// Where decisions are shown or used.
#[derive(Debug)]
pub struct Placement {
    /// Placement id.
    pub id: String,
    /// Channels allowed here.
    pub channels: Vec<String>,
    /// Categories allowed here (empty: all).
    pub categories: Vec<String>,
    /// Default number of actions served.
    pub slots: u32,
    /// Serve at most one action per category.
    pub one_per_category: bool,
    /// Last rung of the fallback ladder, best first.
    pub fallback: Vec<String>,
    /// Context weight per category (the C of P·V·L·C).
    pub context_weights: BTreeMap<String, f64>,
    /// Exploration policy.
    pub exploration: Exploration,
    /// Positions in [`Catalog::actions`] of the active actions this placement
    /// allows: the candidates when a request names none.
    pub candidates: Vec<usize>,
    /// Whether the placement allows each catalog action's channel and
    /// category ([`Placement::allows`]), by the action's position.
    allowed: Vec<bool>,
    /// V·L·C of each catalog action here (its value × its lever × this
    /// placement's context weight of its category), by the action's position.
    value_lever_context: Vec<f64>,
}

impl Placement {
    /// Whether the placement allows the action's channel and category.
    pub fn allows(&self, action: &Action) -> bool {
        self.channels.contains(&action.channel)
            && (self.categories.is_empty() || self.categories.contains(&action.category))
    }

    /// Derives what the placement allows of the catalog's `actions`: the
    /// candidates and the allowed mask.
    fn set_actions(&mut self, actions: &[Action], category_levers: &BTreeMap<String, f64>) {
        self.allowed = actions.iter().map(|action| self.allows(action)).collect();
        self.value_lever_context = actions
            .iter()
            .map(|action| {
                action.value
                    * lever(category_levers, action)
                    * self.context_weight(&action.category)
            })
            .collect();
        self.candidates = actions
            .iter()
            .filter(|action| action.active && self.allowed[action.index])
            .map(|action| action.index)
            .collect();
    }

    /// P·V·L·C without the P for the catalog action at `position`
    /// ([`Action::index`]): its value × [`Catalog::lever`] × the context
    /// weight of its category.
    pub fn value_lever_context(&self, position: usize) -> f64 {
        self.value_lever_context[position]
    }

    /// [`Placement::allows`] for the catalog action at `position`.
    pub(crate) fn allows_position(&self, position: usize) -> bool {
        self.allowed.get(position).copied().unwrap_or(false)
    }

    /// The context weight of `category` (1.0 when not configured).
    pub fn context_weight(&self, category: &str) -> f64 {
        self.context_weights.get(category).copied().unwrap_or(1.0)
    }
}

/// What a frequency cap counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapScope {
    /// Contacts on one channel.
    Channel(String),
    /// Contacts on every channel.
    Total,
    /// Serves of one action.
    Action(String),
    /// Serves of actions in one category.
    Category(String),
}

/// At most `limit` contacts in the scope per rolling `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapRule {
    /// What is counted.
    pub scope: CapScope,
    /// The maximum.
    pub limit: u32,
    /// The rolling window.
    pub window: Span,
}

impl CapRule {
    /// Whether a contact with this action, channel and category counts toward the cap.
    pub fn applies_to(&self, action: &str, channel: &str, category: &str) -> bool {
        match &self.scope {
            CapScope::Channel(id) => id == channel,
            CapScope::Total => true,
            CapScope::Action(id) => id == action,
            CapScope::Category(id) => id == category,
        }
    }

    /// `email cap 2 per 7d`.
    pub fn describe(&self) -> String {
        let scope = match &self.scope {
            CapScope::Channel(id) => format!("{id} channel"),
            CapScope::Total => "total".to_owned(),
            CapScope::Action(id) => format!("action {id}"),
            CapScope::Category(id) => format!("{id} category"),
        };
        format!("{scope} cap {} per {}", self.limit, self.window)
    }
}

/// Dates closed to some channels.
#[derive(Debug)]
pub struct Blackout {
    /// Human name, e.g. `Christmas`.
    pub name: String,
    /// Local calendar dates.
    pub dates: Vec<NaiveDate>,
    /// Channels closed (empty: all).
    pub channels: Vec<String>,
}

impl Blackout {
    /// Whether `channel` is closed on `date`.
    pub fn closes(&self, channel: &str, date: NaiveDate) -> bool {
        (self.channels.is_empty() || self.channels.iter().any(|id| id == channel))
            && self.dates.contains(&date)
    }
}

/// A customer segment and its default actions: the first fallback rung.
#[derive(Debug)]
pub struct Segment {
    /// Segment name.
    pub name: String,
    /// Who is in it (CEL over `profile` and `context`).
    pub rule: Rule,
    /// Default actions, best first.
    pub actions: Vec<String>,
}

/// The lever of `action` under `category_levers`: its own times its
/// category's (1.0 when absent).
fn lever(category_levers: &BTreeMap<String, f64>, action: &Action) -> f64 {
    action.lever
        * category_levers
            .get(&action.category)
            .copied()
            .unwrap_or(1.0)
}

/// Counts shown after a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSummary {
    /// Version.
    pub version: String,
    /// Actions.
    pub actions: usize,
    /// Placements.
    pub placements: usize,
    /// Channels.
    pub channels: usize,
    /// Caps.
    pub caps: usize,
}

impl Catalog {
    /// What `features` name that this catalog does not have: a category,
    /// a channel or an action no catalog action carries, a score or a
    /// tier band it does not declare. Such a feature is 0 for every
    /// candidate, so a model trained with it would score this catalog's
    /// actions differently from how it was trained (events and attributes
    /// are not checked: one never seen reads 0 by design).
    pub fn unknown_features(&self, features: &FeatureSet) -> Vec<String> {
        let mut unknown = Vec::new();
        for spec in features.specs() {
            for term in spec.terms() {
                let missing = match term {
                    Term::Category { name } => {
                        !self.actions.iter().any(|action| action.category == *name)
                    }
                    Term::Channel { name } | Term::ClickRate { channel: name } => {
                        !self.channels.contains_key(name)
                    }
                    Term::Action { id } => self.action(id).is_none(),
                    Term::Score { id } => self.scores.definition(id).is_none(),
                    Term::Tier { id, band } => self
                        .scores
                        .tier(id)
                        .is_none_or(|tier| !tier.bands.iter().any(|known| known.name == *band)),
                    _ => false,
                };
                if missing {
                    unknown.push(format!("{} (in {})", term, spec.text()));
                }
            }
        }
        unknown
    }

    /// Parses and validates a catalog file. Every problem found is reported, each
    /// with its field path and line.
    pub fn from_toml(text: &str) -> Result<Self, CatalogProblems> {
        compile::compile(text)
    }

    /// The action with this id.
    pub fn action(&self, id: &str) -> Option<&Action> {
        self.action_index
            .get(id)
            .map(|&position| &self.actions[position])
    }

    /// The placement with this id.
    pub fn placement(&self, id: &str) -> Option<&Placement> {
        self.placements.get(id)
    }

    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.get(id)
    }

    /// The lever of `action`: its own times its category's.
    pub fn lever(&self, action: &Action) -> f64 {
        lever(&self.category_levers, action)
    }

    /// A number no other catalog loaded by this process has.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// How many distinct rules of the catalog do not read `action`.
    pub(crate) fn shared_rules(&self) -> usize {
        self.shared_rules
    }

    /// The CEL environment for evaluating this catalog's rules.
    pub fn cel_env(&self) -> &Arc<cel::Env> {
        &self.cel_env.0
    }

    /// The customer's timezone: their `timezone` attribute when it names
    /// one, else the catalog's default. Quiet hours, blackouts and a
    /// journey's `wait_until` count in it.
    pub fn timezone_of(&self, profile: &crate::profile::Profile) -> chrono_tz::Tz {
        profile
            .attribute(crate::profile::TIMEZONE_ATTRIBUTE)
            .and_then(crate::value::AttrValue::as_str)
            .and_then(|name| name.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(self.default_timezone)
    }

    /// The longest span any cap or cooldown looks back: how long the ledger
    /// must remember a contact (at least 30 days, for outcomes and the profile).
    pub fn ledger_horizon(&self) -> Span {
        let caps = self.caps.iter().map(|cap| cap.window);
        let cooldowns = self
            .actions
            .iter()
            .flat_map(|action| [action.cooldown, action.dismiss_cooldown])
            .flatten();
        caps.chain(cooldowns)
            .chain([Span::days(30)])
            .max()
            .unwrap_or(Span::days(30))
    }

    /// Counts for humans (the placements the file declares: not the
    /// journeys' own).
    pub fn summary(&self) -> CatalogSummary {
        CatalogSummary {
            version: self.version.clone(),
            actions: self.actions.len(),
            placements: self
                .placements
                .keys()
                .filter(|id| !journeys::is_journey_placement(id))
                .count(),
            channels: self.channels.len(),
            caps: self.caps.len(),
        }
    }
}
