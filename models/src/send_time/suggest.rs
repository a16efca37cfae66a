//! Send-time optimization on a customer: the engagements a profile counts,
//! and the suggestion for one action, with the policy that depends on time
//! — caps, cooldowns, quiet hours, blackout dates — always winning.

use super::{HourOfWeek, PopulationClock, SendTime, SendTimeEstimate};
use crate::catalog::{Action, Catalog};
use crate::customer::CustomerState;
use crate::pipeline::next_allowed;
use crate::profile::Profile;
use crate::time::{Span, Timestamp};

/// Counts an engagement at `at` on the customer's clock, in their own
/// timezone, and returns its hour of week (for the population's counts);
/// nothing when the catalog has no `[send_time]`.
pub fn record_engagement(
    catalog: &Catalog,
    profile: &mut Profile,
    at: Timestamp,
) -> Option<HourOfWeek> {
    catalog.send_time.as_ref()?;
    let timezone = catalog.timezone_of(profile);
    profile.send_times.record(at, timezone);
    Some(HourOfWeek::of(at, timezone))
}

/// The suggested moment to send `action` to the customer in `state` (their
/// state before the decision that serves it, so its own contact does not
/// count against its caps), within `window` (the catalog's default when
/// `None`): the best open hour of their estimated week, never where caps,
/// cooldowns, quiet hours or blackout dates say no. `None` when the
/// catalog has no `[send_time]`, or it does not cover the action's channel.
pub fn suggest(
    catalog: &Catalog,
    state: &CustomerState,
    action: &Action,
    population: &PopulationClock,
    now: Timestamp,
    window: Option<Span>,
) -> Option<SendTime> {
    let settings = catalog.send_time.as_ref()?;
    if !settings.covers(&action.channel) {
        return None;
    }
    let estimate = SendTimeEstimate::new(&state.profile.send_times, population, &settings.policy);
    let timezone = catalog.timezone_of(&state.profile);
    let window = window.unwrap_or(settings.policy.window);
    estimate.best_time(timezone, now, window, |at| {
        next_allowed(catalog, state, action, at).filter(|open| *open > at)
    })
}
