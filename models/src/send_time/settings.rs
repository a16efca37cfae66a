//! The catalog's `[send_time]`: which channels get a suggested send time
//! and which events show when a customer engages. Data only, so the catalog
//! that holds it depends on nothing that depends on the catalog.

use super::estimate::SendTimePolicy;

/// The catalog's `[send_time]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SendTimeSettings {
    /// The outbound channels a decision suggests a send time for.
    pub channels: Vec<String>,
    /// Events that show when a customer engages (an email opened, a
    /// login); a click or an impression on one of `channels` does too.
    pub engagement_events: Vec<String>,
    /// The estimate and the default window.
    pub policy: SendTimePolicy,
}

impl SendTimeSettings {
    /// Whether actions on `channel` get a suggested send time.
    pub fn covers(&self, channel: &str) -> bool {
        self.channels.iter().any(|known| known == channel)
    }

    /// Whether an event named `name` is an engagement.
    pub fn is_engagement(&self, name: &str) -> bool {
        self.engagement_events.iter().any(|known| known == name)
    }
}
