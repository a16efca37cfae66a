//! The catalog file as written by people: TOML tables deserialized with serde,
//! every table closed to unknown fields so a typo is an error with its line.
//! [`super::compile`] turns this into the validated [`super::Catalog`].
//!
//! Every value `compile` validates is wrapped in [`Spanned`], so a problem
//! points at the line of the offending value (or list element) rather than at
//! its table's header. Keys with a default are `Option`s here, the default
//! being applied by `compile`, so that no span is ever made up.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogFile {
    pub catalog: CatalogHeader,
    #[serde(default)]
    pub channels: BTreeMap<String, Spanned<ChannelDef>>,
    #[serde(default)]
    pub actions: Vec<Spanned<ActionDef>>,
    #[serde(default)]
    pub placements: BTreeMap<String, Spanned<PlacementDef>>,
    #[serde(default)]
    pub caps: Vec<Spanned<CapDef>>,
    #[serde(default)]
    pub blackouts: Vec<Spanned<BlackoutDef>>,
    #[serde(default)]
    pub levers: LeversDef,
    #[serde(default)]
    pub segments: Vec<Spanned<SegmentDef>>,
    /// `[journey_policy]`: limits over all of a customer's journeys.
    #[serde(default)]
    pub journey_policy: JourneyPolicyDef,
    #[serde(default)]
    pub journeys: Vec<Spanned<JourneyDef>>,
    /// `[[scores]]`: profile scores, computed in this order.
    #[serde(default)]
    pub scores: Vec<Spanned<ScoreDef>>,
    /// `[[tiers]]`: named bands over a score or rules.
    #[serde(default)]
    pub tiers: Vec<Spanned<TierDef>>,
    /// `[score_policy]`: when scores are refreshed.
    #[serde(default)]
    pub score_policy: ScorePolicyDef,
    /// `[send_time]`: send-time optimization.
    pub send_time: Option<Spanned<SendTimeDef>>,
}

/// `[send_time]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendTimeDef {
    /// Outbound channels that get a suggested send time.
    pub channels: Spanned<Vec<Spanned<String>>>,
    /// Events that show when a customer engages.
    #[serde(default)]
    pub engagement_events: Vec<Spanned<String>>,
    /// The window searched by default (24h when absent).
    pub window: Option<Spanned<String>>,
    /// The prior's weight in pseudo-engagements (12 when absent).
    pub prior_strength: Option<Spanned<f64>>,
}

/// `[catalog]`: identity and defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogHeader {
    pub name: Spanned<String>,
    /// Optional; a content hash is used when absent.
    pub version: Option<String>,
    /// IANA timezone for customers without a `timezone` attribute (`UTC`
    /// when absent).
    pub timezone: Option<Spanned<String>>,
    /// Event names rules and features may rely on (counted as 0 until seen).
    #[serde(default)]
    pub events: Vec<String>,
}

/// `[channels.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelDef {
    /// `opt_out` (allowed unless opted out) or `opt_in` (needs explicit opt-in).
    #[serde(default)]
    pub consent: ConsentPolicyDef,
    pub quiet_hours: Option<QuietHoursDef>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConsentPolicyDef {
    #[default]
    OptOut,
    OptIn,
}

/// `quiet_hours = { start = "21:00", end = "08:00" }`, in the customer's timezone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuietHoursDef {
    pub start: Spanned<String>,
    pub end: Spanned<String>,
}

/// `[[actions]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionDef {
    pub id: Spanned<String>,
    #[serde(default)]
    pub name: String,
    pub channel: Spanned<String>,
    pub category: Spanned<String>,
    /// 1 when absent.
    pub value: Option<Spanned<f64>>,
    /// 1 when absent.
    pub lever: Option<Spanned<f64>>,
    #[serde(default = "yes")]
    pub active: bool,
    pub valid_from: Option<Spanned<String>>,
    pub valid_until: Option<Spanned<String>>,
    /// CEL eligibility rule over `profile`, `context` and `action`.
    pub rule: Option<Spanned<String>>,
    pub cooldown: Option<Spanned<String>>,
    pub dismiss_cooldown: Option<Spanned<String>>,
    /// At most this many served across all customers.
    pub budget: Option<Spanned<u64>>,
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// `[placements.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlacementDef {
    /// The list's span (for an empty list) and each element's.
    pub channels: Spanned<Vec<Spanned<String>>>,
    /// Empty: every category.
    #[serde(default)]
    pub categories: Vec<String>,
    /// 1 when absent.
    pub slots: Option<Spanned<u32>>,
    #[serde(default)]
    pub one_per_category: bool,
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// Context weight per action category (the C of P·V·L·C).
    #[serde(default)]
    pub context_weights: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    pub exploration: ExplorationDef,
}

/// `exploration = { method = "epsilon", epsilon = 0.05 }` or
/// `{ method = "softmax", temperature = 0.1 }` or `{ method = "none" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplorationDef {
    #[serde(default)]
    pub method: ExplorationMethodDef,
    pub epsilon: Option<Spanned<f64>>,
    pub temperature: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExplorationMethodDef {
    #[default]
    None,
    Epsilon,
    Softmax,
}

/// `[[caps]]`: at most `limit` contacts per `window` in a scope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapDef {
    pub scope: CapScopeDef,
    /// For `scope = "channel"`.
    pub channel: Option<Spanned<String>>,
    /// For `scope = "action"`.
    pub action: Option<Spanned<String>>,
    /// For `scope = "category"`.
    pub category: Option<Spanned<String>>,
    pub limit: Spanned<u32>,
    pub window: Spanned<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CapScopeDef {
    Channel,
    Total,
    Action,
    Category,
}

/// `[[blackouts]]`: calendar dates (customer's local date) closed to channels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlackoutDef {
    #[serde(default)]
    pub name: String,
    pub dates: Vec<Spanned<String>>,
    /// Empty: every channel.
    #[serde(default)]
    pub channels: Vec<Spanned<String>>,
}

/// `[levers]`: business multipliers (the L of P·V·L·C) per category.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeversDef {
    #[serde(default)]
    pub categories: BTreeMap<String, Spanned<f64>>,
}

/// `[[segments]]`: the first rung of the fallback ladder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SegmentDef {
    pub name: Spanned<String>,
    /// CEL over `profile` and `context`.
    pub rule: Spanned<String>,
    /// Default actions for the segment, best first.
    pub actions: Vec<Spanned<String>>,
}

/// `[journey_policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JourneyPolicyDef {
    /// Most journeys one customer is in at once (3 when absent).
    pub max_concurrent: Option<Spanned<u32>>,
}

/// `[[journeys]]`: a multi-step plan started by an event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JourneyDef {
    pub id: Spanned<String>,
    #[serde(default)]
    pub name: String,
    /// 1 when absent; a changed journey needs a new version.
    pub version: Option<Spanned<u32>>,
    /// `active` when absent.
    #[serde(default)]
    pub status: JourneyStatusDef,
    /// Higher wins a contested cap slot (0 when absent).
    pub priority: Option<Spanned<i32>>,
    pub trigger: Spanned<EventMatchDef>,
    /// CEL over `profile` and `event` (the trigger): must hold to enter.
    pub entry: Option<Spanned<String>>,
    /// Events that end a run as converted.
    #[serde(default)]
    pub goals: Vec<Spanned<EventMatchDef>>,
    /// Events that end a run as exited.
    #[serde(default)]
    pub exits: Vec<Spanned<EventMatchDef>>,
    /// The shortest time between two entries of one customer (absent: a
    /// customer enters once).
    pub reentry_after: Option<Spanned<String>>,
    /// The longest a `send` waits for caps or quiet hours to allow it
    /// (1d when absent).
    pub max_defer: Option<Spanned<String>>,
    /// Whether a customer who already did a goal event is kept out (true
    /// when absent).
    pub skip_if_goal_reached: Option<bool>,
    pub steps: Vec<Spanned<StepDef>>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JourneyStatusDef {
    #[default]
    Active,
    Paused,
}

/// `{ event = "login", when = "event.plan == 'pro'" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventMatchDef {
    pub event: Spanned<String>,
    /// CEL over `profile` and `event`.
    pub when: Option<Spanned<String>>,
}

/// `[[journeys.steps]]`: exactly one of the kinds, and where to go next.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepDef {
    pub id: Spanned<String>,
    pub send: Option<Spanned<SendDef>>,
    pub wait: Option<Spanned<String>>,
    /// A local time of day, `HH:MM`.
    pub wait_until: Option<Spanned<String>>,
    pub wait_for: Option<Spanned<WaitForDef>>,
    pub branch: Option<Spanned<Vec<Spanned<BranchCaseDef>>>>,
    pub split: Option<Spanned<Vec<Spanned<SplitArmDef>>>>,
    pub update: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    pub exit: Option<Spanned<bool>>,
    /// The next step (absent: the one below; after the last, the run ends).
    pub next: Option<Spanned<String>>,
    /// For `branch`: where no case holds (absent: `next`).
    #[serde(rename = "else")]
    pub otherwise: Option<Spanned<String>>,
    /// For `send`: where a send that cannot go goes (absent: `next`).
    pub on_blocked: Option<Spanned<String>>,
}

/// `send = { action = "login_push", failover = ["login_sms"] }` or
/// `{ placement = "daily_email" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendDef {
    pub action: Option<Spanned<String>>,
    pub placement: Option<Spanned<String>>,
    /// With `action`: the actions its send may fail over to when its
    /// delivery fails (each on another channel; the pipeline chooses).
    #[serde(default)]
    pub failover: Vec<Spanned<String>>,
    /// `"now"` (the default) or `"best_time"`: wait for the customer's
    /// best moment within `within` (the `[send_time]` window when absent).
    pub at: Option<Spanned<String>>,
    /// With `at = "best_time"`: the window searched.
    pub within: Option<Spanned<String>>,
}

/// `wait_for = { event = "login", when = "…", timeout = "1d", on_timeout = "remind" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitForDef {
    pub event: Spanned<String>,
    pub when: Option<Spanned<String>>,
    pub timeout: Spanned<String>,
    /// Absent: `next`, as when the event comes.
    pub on_timeout: Option<Spanned<String>>,
}

/// `{ when = "profile.tier == 'high'", goto = "csm_task" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BranchCaseDef {
    /// CEL over `profile`.
    pub when: Spanned<String>,
    pub goto: Spanned<String>,
}

/// `{ weight = 50, goto = "variant_a" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitArmDef {
    pub weight: Spanned<u32>,
    pub goto: Spanned<String>,
}

/// `[[scores]]`: exactly one of `formula`, `model` and `clv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScoreDef {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub formula: Option<Spanned<FormulaDef>>,
    /// `model = true`: the probability of the model loaded for the score.
    pub model: Option<Spanned<bool>>,
    pub clv: Option<Spanned<ClvDef>>,
}

/// `formula = { bias = 0, min = 0, max = 100, terms = [{ feature = "…", weight = 10 }] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormulaDef {
    /// 0 when absent.
    pub bias: Option<Spanned<f64>>,
    /// Unbounded when absent.
    pub min: Option<Spanned<f64>>,
    /// Unbounded when absent.
    pub max: Option<Spanned<f64>>,
    pub terms: Spanned<Vec<Spanned<WeightedFeatureDef>>>,
}

/// `{ feature = "count(login,7d)", weight = 10 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WeightedFeatureDef {
    pub feature: Spanned<String>,
    pub weight: Spanned<f64>,
}

/// `clv = { value = "attr(mrr)", churn = "churn_risk", months = 12 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClvDef {
    /// A feature: the value a month.
    pub value: Spanned<String>,
    /// A score declared before: the probability of leaving within a month.
    pub churn: Option<Spanned<String>>,
    /// The monthly churn when that score is not computed (0.03 when absent).
    pub default_churn: Option<Spanned<f64>>,
    /// The horizon (12 when absent).
    pub months: Option<Spanned<u32>>,
    /// The monthly discount rate (0 when absent).
    pub discount: Option<Spanned<f64>>,
}

/// `[[tiers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TierDef {
    pub id: Spanned<String>,
    /// The score the bands' `min` compare.
    pub score: Option<Spanned<String>>,
    pub bands: Spanned<Vec<Spanned<BandDef>>>,
}

/// `{ name = "high", min = 0.6, when = "profile.days_since_login >= 14" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BandDef {
    pub name: Spanned<String>,
    pub min: Option<Spanned<f64>>,
    /// CEL over `profile`.
    pub when: Option<Spanned<String>>,
}

/// `[score_policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScorePolicyDef {
    /// Scores older than this are refreshed before a decision (1h when absent).
    pub max_age: Option<Spanned<String>>,
    /// The shortest time between two refreshes an input change makes off
    /// the decision path (1m when absent).
    pub min_interval: Option<Spanned<String>>,
}
