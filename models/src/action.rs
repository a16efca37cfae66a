//! One thing nudge can recommend, as the catalog compiled it: what features,
//! rules, the pipeline and models read of an action. Its own module (the
//! catalog re-exports it) so the feature language, which reads actions,
//! does not depend on the catalog that holds features of its own (profile
//! scores).

use crate::catalog::rule::Rule;
use crate::time::{Span, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One thing nudge can recommend.
#[derive(Debug)]
pub struct Action {
    /// Position in [`Catalog::actions`].
    pub index: usize,
    /// Action id, shared with every decision that names the action (a
    /// filtered candidate's id is a reference count, not a copy).
    pub id: Arc<str>,
    /// Human name.
    pub name: String,
    /// Channel id.
    pub channel: String,
    /// Position of the channel in [`Catalog::channels`] (in id order).
    pub channel_position: usize,
    /// Category, e.g. `onboarding`, `upsell`, `retention`.
    pub category: String,
    /// Business value (the V of P·V·L·C).
    pub value: f64,
    /// Action lever (part of the L of P·V·L·C).
    pub lever: f64,
    /// Switched on.
    pub active: bool,
    /// Not before this instant.
    pub valid_from: Option<Timestamp>,
    /// Not after this instant.
    pub valid_until: Option<Timestamp>,
    /// Eligibility rule.
    pub rule: Option<Rule>,
    /// Minimum time between two serves of this action to one customer.
    pub cooldown: Option<Span>,
    /// Minimum time after a dismissal before it may be served again.
    pub dismiss_cooldown: Option<Span>,
    /// Maximum serves across all customers.
    pub budget: Option<u64>,
    /// Positions in [`Catalog::caps`] of the caps this action counts toward.
    pub caps: Vec<usize>,
    /// Personalization payload returned with the action.
    pub payload: BTreeMap<String, String>,
    /// The `action` variable of rules, converted once at load.
    pub(crate) cel_value: Box<dyn cel::common::value::Val>,
}

impl Action {
    /// The value rules see as `action`.
    pub fn cel_value(&self) -> &(dyn cel::common::value::Val + 'static) {
        self.cel_value.as_ref()
    }
}
