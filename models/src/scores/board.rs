//! What a customer's profile keeps of its scores: the last values, the
//! tiers they put the customer in, and what is needed to tell whether they
//! are still fresh.

use crate::small_map::SmallMap;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The scores and tiers of one customer, as last computed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreBoard {
    /// Each score's value by id. A score that could not be computed (a
    /// model score with no model loaded) is absent, so a rule can test it
    /// with `has(profile.scores.<id>)`.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub values: SmallMap<f64>,
    /// Each tier's band by tier id; a tier no band matched is absent.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub tiers: SmallMap<String>,
    /// When they were computed; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_at: Option<Timestamp>,
    /// The fingerprint of the definitions and score models they were
    /// computed with: a catalog or model change makes them stale.
    #[serde(default)]
    pub basis: u64,
    /// Whether an input changed since they were computed (an event or an
    /// outcome the scores read) and a refresh was held back by the
    /// throttle: the next decision refreshes them first.
    #[serde(default)]
    pub stale: bool,
}

impl ScoreBoard {
    /// Whether nothing was ever computed (the state's encoding omits it).
    pub fn is_empty(&self) -> bool {
        self.computed_at.is_none() && self.values.is_empty() && self.tiers.is_empty()
    }

    /// A score's value, if computed.
    pub fn value(&self, id: &str) -> Option<f64> {
        self.values.get(id).copied()
    }

    /// A tier's band, if one matched.
    pub fn tier(&self, id: &str) -> Option<&str> {
        self.tiers.get(id).map(String::as_str)
    }
}
