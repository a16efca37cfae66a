//! When an action could go: the earliest moment, at or after `now`, at which
//! the policy that depends on time — frequency caps, cooldowns, the channel's
//! quiet hours and blackout dates — lets it be sent to this customer.
//!
//! A journey's send that caps or quiet hours put off waits for this moment:
//! it is deferred, not dropped. Consent, suppression and eligibility do not
//! change with time and are not looked at here; the pipeline still checks
//! everything when the moment comes.

use super::filters::local_time;
use crate::catalog::{Action, Catalog};
use crate::customer::CustomerState;
use crate::time::{Span, Timestamp, next_local_minute};

/// How many times the constraints are re-checked: a cap that frees inside
/// quiet hours moves to their end, which may fall on a blackout date, and
/// so on. Past this, no moment is given.
const MAX_ROUNDS: usize = 32;

/// The earliest moment at or after `now` when `action` is allowed by caps,
/// cooldowns, quiet hours and blackouts; `now` when nothing of these stops
/// it, `None` when no moment is found (blackouts on every day of the
/// rounds, say).
pub fn next_allowed(
    catalog: &Catalog,
    state: &CustomerState,
    action: &Action,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut at = now;
    for _ in 0..MAX_ROUNDS {
        let later = [
            caps_free(catalog, state, action, at),
            cooldown_over(state, action, at),
            channel_open(catalog, state, &action.channel, at),
        ]
        .into_iter()
        .flatten()
        .max();
        match later {
            Some(later) if later > at => at = later,
            _ => return Some(at),
        }
    }
    None
}

/// When every cap on `action` has a free slot, if one is full at `at`: a
/// full cap frees when enough of its counted contacts leave its window.
fn caps_free(
    catalog: &Catalog,
    state: &CustomerState,
    action: &Action,
    at: Timestamp,
) -> Option<Timestamp> {
    action
        .caps
        .iter()
        .filter_map(|position| catalog.caps.get(*position))
        .filter_map(|cap| {
            let since = at.minus(cap.window);
            let counted: Vec<Timestamp> = state
                .ledger
                .contacts
                .iter()
                .filter(|contact| {
                    contact.at > since
                        && contact.at <= at
                        && !contact.released
                        && cap.applies_to(&contact.action_id, &contact.channel, &contact.category)
                })
                .map(|contact| contact.at)
                .collect();
            let over = (counted.len() + 1).checked_sub(usize::try_from(cap.limit).ok()?)?;
            // The oldest `over` contacts must leave the window: the last of
            // them leaves it `window` after it was made.
            let mut oldest = counted;
            oldest.sort_unstable();
            oldest
                .get(over.checked_sub(1)?)
                .map(|contact| contact.plus(cap.window))
        })
        .max()
}

/// When the action's cooldowns are over, if one runs at `at`.
fn cooldown_over(state: &CustomerState, action: &Action, at: Timestamp) -> Option<Timestamp> {
    let served = action
        .cooldown
        .zip(state.ledger.last_served(&action.id))
        .map(|(cooldown, last)| last.plus(cooldown));
    let dismissed = action
        .dismiss_cooldown
        .or(action.cooldown)
        .zip(state.ledger.last_dismissed(&action.id))
        .map(|(cooldown, last)| last.plus(cooldown));
    [served, dismissed]
        .into_iter()
        .flatten()
        .filter(|end| *end > at)
        .max()
}

/// When `channel` opens, if quiet hours or a blackout date close it at
/// `at`, in the customer's own timezone.
fn channel_open(
    catalog: &Catalog,
    state: &CustomerState,
    channel: &str,
    at: Timestamp,
) -> Option<Timestamp> {
    let local = local_time(catalog, state, at);
    let quiet_end = catalog
        .channel(channel)
        .and_then(|channel| channel.quiet_hours)
        .filter(|quiet| quiet.contains(local.minute_of_day))
        .map(|quiet| next_local_minute(at, local.timezone, quiet.end_minute));
    let blackout_end = catalog
        .blackouts
        .iter()
        .any(|blackout| blackout.closes(channel, local.date))
        .then(|| next_local_minute(at.plus(Span(1)), local.timezone, 0));
    [quiet_end, blackout_end].into_iter().flatten().max()
}
