//! The hard filters: policy first (cheapest first), the CEL rule last. Each
//! failure is a [`FilterReason`] and a message naming what exactly stopped the
//! candidate.

use super::FilterReason;
use super::rules::RuleScope;
use crate::budget::BudgetCounters;
use crate::catalog::{Action, CapScope, Catalog, ConsentPolicy, Placement};
use crate::customer::{ConsentState, CustomerState};
use crate::time::Timestamp;
use chrono::{NaiveDate, Timelike};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// The customer's local clock, for quiet hours and blackouts.
pub(super) struct LocalTime {
    pub(super) minute_of_day: u16,
    pub(super) date: NaiveDate,
    pub(super) timezone: Tz,
}

pub(super) fn local_time(catalog: &Catalog, state: &CustomerState, now: Timestamp) -> LocalTime {
    let timezone = catalog.timezone_of(&state.profile);
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
    placement: &'a Placement,
    requested: &'a [String],
) -> Candidates<'a> {
    if requested.is_empty() {
        return Candidates::Placement {
            catalog,
            positions: placement.candidates.iter(),
        };
    }
    let mut seen = BTreeSet::new();
    let requested: Vec<(&str, Option<&Action>)> = requested
        .iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .map(|id| (id, catalog.action(id)))
        .collect();
    Candidates::Requested(requested.into_iter())
}

/// The candidates of one decision: [`candidate_ids`].
pub(super) enum Candidates<'a> {
    /// The placement's own (the request named none).
    Placement {
        catalog: &'a Catalog,
        positions: std::slice::Iter<'a, usize>,
    },
    /// Those the request named.
    Requested(std::vec::IntoIter<(&'a str, Option<&'a Action>)>),
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (&'a str, Option<&'a Action>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Candidates::Placement { catalog, positions } => positions.next().map(|&position| {
                let action = &catalog.actions[position];
                (&*action.id, Some(action))
            }),
            Candidates::Requested(requested) => requested.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Candidates::Placement { positions, .. } => positions.size_hint(),
            Candidates::Requested(requested) => requested.size_hint(),
        }
    }
}

impl ExactSizeIterator for Candidates<'_> {}

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
    /// The verdict of the channel filters (suppression, consent, quiet hours,
    /// blackouts) on each catalog channel, by position: they depend on the
    /// channel alone, so each is decided once, for the first candidate on it.
    channel_verdicts: Vec<Option<Result<(), (FilterReason, String)>>>,
    /// When each action in the ledger was last served and last dismissed, so
    /// the cooldowns need not scan the ledger per candidate.
    recent: Vec<RecentContact>,
}

/// The ledger's last serve and last dismissal of one catalog action.
struct RecentContact {
    /// Position of the action in the catalog.
    action: usize,
    /// [`Ledger::last_served`](crate::ledger::Ledger::last_served).
    served: Option<Timestamp>,
    /// [`Ledger::last_dismissed`](crate::ledger::Ledger::last_dismissed).
    dismissed: Option<Timestamp>,
}

/// The last serve and dismissal of every catalog action in `state`'s ledger.
fn recent_contacts(catalog: &Catalog, state: &CustomerState) -> Vec<RecentContact> {
    let mut recent: Vec<RecentContact> = Vec::new();
    // Oldest first: a later serve replaces an earlier one.
    for contact in state.ledger.contacts() {
        let Some(action) = catalog.action(&contact.action_id) else {
            continue;
        };
        let entry = match recent.iter().position(|entry| entry.action == action.index) {
            Some(position) => &mut recent[position],
            None => {
                recent.push(RecentContact {
                    action: action.index,
                    served: None,
                    dismissed: None,
                });
                let last = recent.len() - 1;
                &mut recent[last]
            }
        };
        if !contact.released {
            entry.served = Some(contact.at);
        }
        entry.dismissed = entry.dismissed.max(contact.dismissed_at);
    }
    recent
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
            channel_verdicts: vec![None; catalog.channels.len()],
            recent: recent_contacts(catalog, state),
        }
    }

    /// Counts a served action against its caps.
    pub(super) fn count_serve(&mut self, action: &Action) {
        for &position in &action.caps {
            self.cap_counts[position] += 1;
        }
    }

    /// Whether one of `action`'s caps is reached.
    pub(super) fn fills_a_cap(&self, action: &Action) -> bool {
        action
            .caps
            .iter()
            .any(|&position| self.cap_counts[position] >= self.catalog.caps[position].limit)
    }

    /// The hard filters, cheapest first; the rule last.
    pub(super) fn check(
        &mut self,
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
        &mut self,
        id: &str,
        action: Option<&'c Action>,
    ) -> Result<&'c Action, (FilterReason, String)> {
        let (catalog, placement, now) = (self.catalog, self.placement, self.now);
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
        if !placement.allows_position(action.index) {
            return Err(placement_refusal(placement, action));
        }
        let verdict = &mut self.channel_verdicts[action.channel_position];
        if verdict.is_none() {
            *verdict = Some(channel_verdict(
                catalog,
                self.state,
                &self.local,
                &action.channel,
            ));
        }
        if let Some(Err(refusal)) = verdict {
            return Err(refusal.clone());
        }
        if action.cooldown.is_some() || action.dismiss_cooldown.is_some() {
            let recent = self
                .recent
                .iter()
                .find(|entry| entry.action == action.index);
            if let Some(cooldown) = action.cooldown
                && let Some(last) = recent.and_then(|entry| entry.served)
                && now < last.plus(cooldown)
            {
                return Err((
                    FilterReason::Cooldown,
                    format!("served at {last}; cooldown {cooldown}"),
                ));
            }
            if let Some(cooldown) = action.dismiss_cooldown.or(action.cooldown)
                && let Some(dismissed) = recent.and_then(|entry| entry.dismissed)
                && now < dismissed.plus(cooldown)
            {
                return Err((
                    FilterReason::Cooldown,
                    format!("dismissed at {dismissed}; dismiss cooldown {cooldown}"),
                ));
            }
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

/// Why `placement` does not allow `action`: its channel, else its category.
fn placement_refusal(placement: &Placement, action: &Action) -> (FilterReason, String) {
    if !placement.channels.contains(&action.channel) {
        return (
            FilterReason::ChannelNotAllowed,
            format!(
                "placement {} does not allow channel {}",
                placement.id, action.channel
            ),
        );
    }
    (
        FilterReason::CategoryNotAllowed,
        format!(
            "placement {} does not allow category {}",
            placement.id, action.category
        ),
    )
}

/// The filters that depend on the channel alone, in order: suppression,
/// consent, quiet hours, blackouts.
fn channel_verdict(
    catalog: &Catalog,
    state: &CustomerState,
    local: &LocalTime,
    channel_id: &str,
) -> Result<(), (FilterReason, String)> {
    if let Some(suppression) = state.suppression_of(channel_id) {
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
    let channel = catalog.channel(channel_id);
    match (
        state.consent(channel_id),
        channel.map(|channel| channel.consent),
    ) {
        (Some(ConsentState::OptedOut), _) => {
            return Err((
                FilterReason::OptedOut,
                format!("customer opted out of {channel_id}"),
            ));
        }
        (None, Some(ConsentPolicy::OptIn)) => {
            return Err((
                FilterReason::NoConsent,
                format!("{channel_id} requires an opt-in the customer has not given"),
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
                "{channel_id} quiet hours {} (it is {:02}:{:02} in {})",
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
        .find(|blackout| blackout.closes(channel_id, local.date))
    {
        return Err((
            FilterReason::Blackout,
            format!("{} is a blackout date ({})", local.date, blackout.name),
        ));
    }
    Ok(())
}
