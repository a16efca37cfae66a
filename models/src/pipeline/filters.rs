//! The hard filters: policy first (cheapest first), the CEL rule last. Each
//! failure is a [`FilterReason`] and a message naming what exactly stopped the
//! candidate.

use super::FilterReason;
use super::rules::RuleScope;
use crate::budget::BudgetCounters;
use crate::catalog::{Action, CapScope, Catalog, ConsentPolicy, Placement};
use crate::customer::{ConsentState, CustomerState};
use crate::profile::TIMEZONE_ATTRIBUTE;
use crate::time::Timestamp;
use crate::value::AttrValue;
use chrono::{NaiveDate, Timelike};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// The customer's local clock, for quiet hours and blackouts.
pub(super) struct LocalTime {
    minute_of_day: u16,
    date: NaiveDate,
    timezone: Tz,
}

pub(super) fn local_time(catalog: &Catalog, state: &CustomerState, now: Timestamp) -> LocalTime {
    let timezone = state
        .profile
        .attribute(TIMEZONE_ATTRIBUTE)
        .and_then(AttrValue::as_str)
        .and_then(|name| name.parse::<Tz>().ok())
        .unwrap_or(catalog.default_timezone);
    let utc = now.to_utc().unwrap_or_default();
    let local = utc.with_timezone(&timezone);
    let minute_of_day = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    LocalTime {
        minute_of_day,
        date: local.date_naive(),
        timezone,
    }
}

/// The request's candidates in order without repeats, or every active action the
/// placement allows; each with its action when the catalog has it.
pub(super) fn candidate_ids<'a>(
    catalog: &'a Catalog,
    placement: &Placement,
    requested: &'a [String],
) -> Vec<(&'a str, Option<&'a Action>)> {
    if requested.is_empty() {
        return placement
            .candidates
            .iter()
            .map(|&position| {
                let action = &catalog.actions[position];
                (action.id.as_str(), Some(action))
            })
            .collect();
    }
    let mut seen = BTreeSet::new();
    requested
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .map(|id| (id, catalog.action(id)))
        .collect()
}

/// The eligibility rule of `action`, if it has one: the last hard filter.
pub(super) fn check_rule(
    rules: &mut RuleScope<'_>,
    action: &Action,
) -> Result<(), (FilterReason, String)> {
    let Some(rule) = &action.rule else {
        return Ok(());
    };
    match rules.evaluate(rule, Some(action)) {
        Ok(true) => Ok(()),
        Ok(false) => Err((
            FilterReason::NotEligible,
            format!("rule is false: {}", rule.source()),
        )),
        Err(error) => Err((FilterReason::RuleError, error.to_string())),
    }
}

/// Everything the filters of one decision read, and the running cap counts
/// that the selection updates as it serves.
pub(super) struct Filters<'c> {
    pub(super) catalog: &'c Catalog,
    pub(super) placement: &'c Placement,
    state: &'c CustomerState,
    local: LocalTime,
    budgets: &'c BudgetCounters,
    now: Timestamp,
    /// Contacts per catalog cap, from the ledger plus this decision's serves.
    pub(super) cap_counts: Vec<u32>,
}

impl<'c> Filters<'c> {
    pub(super) fn new(
        catalog: &'c Catalog,
        placement: &'c Placement,
        state: &'c CustomerState,
        budgets: &'c BudgetCounters,
        now: Timestamp,
    ) -> Self {
        let cap_counts = catalog
            .caps
            .iter()
            .map(|cap| state.ledger.count(cap, now))
            .collect();
        let local = local_time(catalog, state, now);
        Self {
            catalog,
            placement,
            state,
            local,
            budgets,
            now,
            cap_counts,
        }
    }

    /// Counts a served action against its caps.
    pub(super) fn count_serve(&mut self, action: &Action) {
        for &position in &action.caps {
            self.cap_counts[position] += 1;
        }
    }

    /// The hard filters, cheapest first; the rule last.
    pub(super) fn check(
        &self,
        rules: &mut RuleScope<'_>,
        id: &str,
        action: Option<&'c Action>,
    ) -> Result<&'c Action, (FilterReason, String)> {
        let action = self.check_policy(id, action)?;
        check_rule(rules, action)?;
        Ok(action)
    }

    /// The policy filters (every hard filter but the rule), cheapest first.
    pub(super) fn check_policy(
        &self,
        id: &str,
        action: Option<&'c Action>,
    ) -> Result<&'c Action, (FilterReason, String)> {
        let (catalog, placement, state, local, now) = (
            self.catalog,
            self.placement,
            self.state,
            &self.local,
            self.now,
        );
        let action = action.ok_or_else(|| {
            (
                FilterReason::UnknownAction,
                format!("'{id}' is not in catalog {}", catalog.version),
            )
        })?;
        if !action.active {
            return Err((
                FilterReason::Inactive,
                "the action is switched off".to_owned(),
            ));
        }
        if let Some(from) = action.valid_from.filter(|from| now < *from) {
            return Err((FilterReason::OutsideValidity, format!("valid from {from}")));
        }
        if let Some(until) = action.valid_until.filter(|until| now > *until) {
            return Err((FilterReason::OutsideValidity, format!("expired at {until}")));
        }
        if !placement.channels.contains(&action.channel) {
            return Err((
                FilterReason::ChannelNotAllowed,
                format!(
                    "placement {} does not allow channel {}",
                    placement.id, action.channel
                ),
            ));
        }
        if !placement.categories.is_empty() && !placement.categories.contains(&action.category) {
            return Err((
                FilterReason::CategoryNotAllowed,
                format!(
                    "placement {} does not allow category {}",
                    placement.id, action.category
                ),
            ));
        }
        if let Some(suppression) = state.suppression_of(&action.channel) {
            let scope = suppression.channel.as_deref().unwrap_or("every channel");
            return Err((
                FilterReason::Suppressed,
                format!(
                    "{scope} suppressed ({}) since {}",
                    suppression.reason.name(),
                    suppression.since
                ),
            ));
        }
        let channel = catalog.channel(&action.channel);
        match (
            state.consent(&action.channel),
            channel.map(|channel| channel.consent),
        ) {
            (Some(ConsentState::OptedOut), _) => {
                return Err((
                    FilterReason::OptedOut,
                    format!("customer opted out of {}", action.channel),
                ));
            }
            (None, Some(ConsentPolicy::OptIn)) => {
                return Err((
                    FilterReason::NoConsent,
                    format!(
                        "{} requires an opt-in the customer has not given",
                        action.channel
                    ),
                ));
            }
            _ => {}
        }
        if let Some(quiet) = channel.and_then(|channel| channel.quiet_hours)
            && quiet.contains(local.minute_of_day)
        {
            return Err((
                FilterReason::QuietHours,
                format!(
                    "{} quiet hours {} (it is {:02}:{:02} in {})",
                    action.channel,
                    quiet.describe(),
                    local.minute_of_day / 60,
                    local.minute_of_day % 60,
                    local.timezone
                ),
            ));
        }
        if let Some(blackout) = catalog
            .blackouts
            .iter()
            .find(|blackout| blackout.closes(&action.channel, local.date))
        {
            return Err((
                FilterReason::Blackout,
                format!("{} is a blackout date ({})", local.date, blackout.name),
            ));
        }
        if let Some(cooldown) = action.cooldown
            && let Some(last) = state.ledger.last_served(&action.id)
            && now < last.plus(cooldown)
        {
            return Err((
                FilterReason::Cooldown,
                format!("served at {last}; cooldown {cooldown}"),
            ));
        }
        if let Some(cooldown) = action.dismiss_cooldown.or(action.cooldown)
            && let Some(dismissed) = state.ledger.last_dismissed(&action.id)
            && now < dismissed.plus(cooldown)
        {
            return Err((
                FilterReason::Cooldown,
                format!("dismissed at {dismissed}; dismiss cooldown {cooldown}"),
            ));
        }
        if let Some(blocked) = self.capped(action) {
            return Err(blocked);
        }
        if let Some(budget) = action.budget
            && self.budgets.used(&action.id) >= budget
        {
            return Err((
                FilterReason::BudgetExhausted,
                format!("global budget of {budget} is used up"),
            ));
        }
        Ok(action)
    }

    /// The first cap `action` would exceed, given the running counts.
    pub(super) fn capped(&self, action: &Action) -> Option<(FilterReason, String)> {
        let (catalog, cap_counts) = (self.catalog, &self.cap_counts);
        action
            .caps
            .iter()
            .map(|&position| (&catalog.caps[position], cap_counts[position]))
            .find(|(cap, count)| *count >= cap.limit)
            .map(|(cap, count)| {
                let reason = match cap.scope {
                    CapScope::Channel(_) => FilterReason::CapChannel,
                    CapScope::Total => FilterReason::CapTotal,
                    CapScope::Action(_) => FilterReason::CapAction,
                    CapScope::Category(_) => FilterReason::CapCategory,
                };
                (
                    reason,
                    format!("{} reached ({count} contacts)", cap.describe()),
                )
            })
    }
}
