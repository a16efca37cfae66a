//! The catalog file as written by people: TOML tables deserialized with serde,
//! every table closed to unknown fields so a typo is an error with its line.
//! [`super::compile`] turns this into the validated [`super::Catalog`].

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
    pub name: String,
    /// Optional; a content hash is used when absent.
    pub version: Option<String>,
    /// IANA timezone for customers without a `timezone` attribute.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Event names rules and features may rely on (counted as 0 until seen).
    #[serde(default)]
    pub events: Vec<String>,
}

fn default_timezone() -> String {
    "UTC".to_owned()
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
    pub start: String,
    pub end: String,
}

/// `[[actions]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionDef {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub channel: String,
    pub category: String,
    #[serde(default = "one")]
    pub value: f64,
    #[serde(default = "one")]
    pub lever: f64,
    #[serde(default = "yes")]
    pub active: bool,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    /// CEL eligibility rule over `profile`, `context` and `action`.
    pub rule: Option<String>,
    pub cooldown: Option<String>,
    pub dismiss_cooldown: Option<String>,
    /// At most this many served across all customers.
    pub budget: Option<u64>,
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

/// `[placements.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlacementDef {
    pub channels: Vec<String>,
    /// Empty: every category.
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default = "one_slot")]
    pub slots: u32,
    #[serde(default)]
    pub one_per_category: bool,
    #[serde(default)]
    pub fallback: Vec<String>,
    /// Context weight per action category (the C of P·V·L·C).
    #[serde(default)]
    pub context_weights: BTreeMap<String, f64>,
    #[serde(default)]
    pub exploration: ExplorationDef,
}

fn one_slot() -> u32 {
    1
}

/// `exploration = { method = "epsilon", epsilon = 0.05 }` or
/// `{ method = "softmax", temperature = 0.1 }` or `{ method = "none" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplorationDef {
    #[serde(default)]
    pub method: ExplorationMethodDef,
    pub epsilon: Option<f64>,
    pub temperature: Option<f64>,
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
    pub channel: Option<String>,
    /// For `scope = "action"`.
    pub action: Option<String>,
    /// For `scope = "category"`.
    pub category: Option<String>,
    pub limit: u32,
    pub window: String,
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
    pub dates: Vec<String>,
    /// Empty: every channel.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// `[levers]`: business multipliers (the L of P·V·L·C) per category.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeversDef {
    #[serde(default)]
    pub categories: BTreeMap<String, f64>,
}

/// `[[segments]]`: the first rung of the fallback ladder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SegmentDef {
    pub name: String,
    /// CEL over `profile` and `context`.
    pub rule: String,
    /// Default actions for the segment, best first.
    pub actions: Vec<String>,
}
