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
