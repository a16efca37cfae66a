//! The contact ledger: what was served to one customer, when, on which channel,
//! and what happened to it. Frequency caps and cooldowns are counted from it.

use crate::catalog::CapRule;
use crate::time::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What happened to a served action, as reported by `ReportOutcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Shown to the customer.
    Impression,
    /// Clicked or tapped.
    Click,
    /// The customer did what the action asked.
    Conversion,
    /// Dismissed: the longer dismiss cooldown applies.
    Dismiss,
    /// Delivered by a delivery service.
    Delivered,
    /// Delivery failed: the cap slot is given back.
    Failed,
}

impl OutcomeKind {
    /// Every kind.
    pub const ALL: [OutcomeKind; 6] = [
        OutcomeKind::Impression,
        OutcomeKind::Click,
        OutcomeKind::Conversion,
        OutcomeKind::Dismiss,
        OutcomeKind::Delivered,
        OutcomeKind::Failed,
    ];

    /// Lowercase name, e.g. `click`.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Impression => "impression",
            OutcomeKind::Click => "click",
            OutcomeKind::Conversion => "conversion",
            OutcomeKind::Dismiss => "dismiss",
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Failed => "failed",
        }
    }

    /// What the kind means, in a few words (for help texts).
    pub fn meaning(self) -> &'static str {
        match self {
            OutcomeKind::Impression => "the action was shown to the customer",
            OutcomeKind::Click => "the customer clicked or tapped it",
            OutcomeKind::Conversion => "the customer did what the action asked",
            OutcomeKind::Dismiss => "the customer dismissed it (a longer cooldown applies)",
            OutcomeKind::Delivered => "a delivery service delivered it",
            OutcomeKind::Failed => {
                "a delivery service failed to deliver it (its cap slot is given back)"
            }
        }
    }

    /// The kind named `name` (`click`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One served action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The decision that served it.
    pub decision_id: String,
    /// The action.
    pub action_id: String,
    /// Its channel.
    pub channel: String,
    /// Its category.
    pub category: String,
    /// When it was served.
    pub at: Timestamp,
    /// A `failed` outcome gave the cap slot back.
    pub released: bool,
    /// When the customer dismissed it.
    pub dismissed_at: Option<Timestamp>,
    /// Sum of the rewards reported with its outcomes.
    pub reward: f64,
    /// Outcomes already applied (one bit per [`OutcomeKind`]), so a repeated
    /// report is acknowledged but not applied twice. Crate-visible for
    /// [`crate::delta`].
    pub(crate) outcomes: u8,
}

impl Contact {
    /// A fresh contact.
    pub fn new(
        decision_id: &str,
        action_id: &str,
        channel: &str,
        category: &str,
        at: Timestamp,
    ) -> Self {
        Self {
            decision_id: decision_id.to_owned(),
            action_id: action_id.to_owned(),
            channel: channel.to_owned(),
            category: category.to_owned(),
            at,
            released: false,
            dismissed_at: None,
            reward: 0.0,
            outcomes: 0,
        }
    }

    /// Marks `kind` as applied; false if it already was.
    pub fn mark(&mut self, kind: OutcomeKind) -> bool {
        let fresh = self.outcomes & kind.bit() == 0;
        self.outcomes |= kind.bit();
        fresh
    }

    /// Whether `kind` was reported.
    pub fn has(&self, kind: OutcomeKind) -> bool {
        self.outcomes & kind.bit() != 0
    }
}

/// Contacts of one customer, oldest first, kept for the catalog's ledger horizon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Oldest first. Crate-visible for [`crate::delta`].
    pub(crate) contacts: VecDeque<Contact>,
}

impl Ledger {
    /// Contacts that count toward `cap` at `now`: not released, within the window.
    pub fn count(&self, cap: &CapRule, now: Timestamp) -> u32 {
        let since = now.minus(cap.window);
        let counted = self
            .contacts
            .iter()
            .rev()
            .take_while(|contact| contact.at > since)
            .filter(|contact| {
                !contact.released
                    && cap.applies_to(&contact.action_id, &contact.channel, &contact.category)
            })
            .count();
        u32::try_from(counted).unwrap_or(u32::MAX)
    }

    /// When `action_id` was last served (released contacts excluded).
    pub fn last_served(&self, action_id: &str) -> Option<Timestamp> {
        self.contacts
            .iter()
            .rev()
            .find(|contact| contact.action_id == action_id && !contact.released)
            .map(|contact| contact.at)
    }

    /// When `action_id` was last dismissed.
    pub fn last_dismissed(&self, action_id: &str) -> Option<Timestamp> {
        self.contacts
            .iter()
            .filter(|contact| contact.action_id == action_id)
            .filter_map(|contact| contact.dismissed_at)
            .max()
    }

    /// Appends a contact, keeping time order.
    pub fn push(&mut self, contact: Contact) {
        let position = self
            .contacts
            .partition_point(|existing| existing.at <= contact.at);
        self.contacts.insert(position, contact);
    }

    /// The contact of `action_id` served by `decision_id`.
    pub fn find_mut(&mut self, decision_id: &str, action_id: &str) -> Option<&mut Contact> {
        self.contacts
            .iter_mut()
            .rev()
            .find(|contact| contact.decision_id == decision_id && contact.action_id == action_id)
    }

    /// Forgets contacts older than `horizon` before `now`.
    pub fn prune(&mut self, horizon: Span, now: Timestamp) {
        let oldest = now.minus(horizon);
        while self
            .contacts
            .front()
            .is_some_and(|contact| contact.at < oldest)
        {
            self.contacts.pop_front();
        }
    }

    /// All contacts, oldest first.
    pub fn contacts(&self) -> impl DoubleEndedIterator<Item = &Contact> {
        self.contacts.iter()
    }

    /// Number of contacts kept.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether no contact is kept.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CapScope;
    use crate::time::DAY_MS;

    fn cap(scope: CapScope, limit: u32, days: i64) -> CapRule {
        CapRule {
            scope,
            limit,
            window: Span::days(days),
        }
    }

    #[test]
    fn counts_only_unreleased_contacts_in_the_window_and_scope() {
        let mut ledger = Ledger::default();
        let now = Timestamp(100 * DAY_MS);
        ledger.push(Contact::new(
            "d1",
            "a",
            "email",
            "promo",
            Timestamp(now.0 - 8 * DAY_MS),
        ));
        ledger.push(Contact::new(
            "d2",
            "a",
            "email",
            "promo",
            Timestamp(now.0 - DAY_MS),
        ));
        ledger.push(Contact::new(
            "d3",
            "b",
            "push",
            "promo",
            Timestamp(now.0 - DAY_MS),
        ));
        let mut released = Contact::new("d4", "c", "email", "onboarding", now);
        released.released = true;
        ledger.push(released);
        assert_eq!(
            ledger.count(&cap(CapScope::Channel("email".into()), 2, 7), now),
            1
        );
        assert_eq!(ledger.count(&cap(CapScope::Total, 8, 7), now), 2);
        assert_eq!(ledger.count(&cap(CapScope::Total, 8, 30), now), 3);
        assert_eq!(
            ledger.count(&cap(CapScope::Action("a".into()), 1, 30), now),
            2
        );
        assert_eq!(
            ledger.count(&cap(CapScope::Category("onboarding".into()), 1, 30), now),
            0
        );
        assert_eq!(ledger.last_served("c"), None);
        assert_eq!(ledger.last_served("a"), Some(Timestamp(now.0 - DAY_MS)));
    }

    #[test]
    fn outcomes_are_marked_once_and_pruning_drops_old_contacts() {
        let mut ledger = Ledger::default();
        ledger.push(Contact::new("d1", "a", "email", "promo", Timestamp(0)));
        ledger.push(Contact::new(
            "d2",
            "a",
            "email",
            "promo",
            Timestamp(40 * DAY_MS),
        ));
        let contact = ledger.find_mut("d2", "a").expect("served");
        assert!(contact.mark(OutcomeKind::Click));
        assert!(!contact.mark(OutcomeKind::Click));
        assert!(contact.has(OutcomeKind::Click) && !contact.has(OutcomeKind::Dismiss));
        ledger.prune(Span::days(30), Timestamp(41 * DAY_MS));
        assert_eq!(ledger.len(), 1);
        assert!(ledger.find_mut("d1", "a").is_none());
    }
}
