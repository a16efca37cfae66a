//! The simulated customers: their traits, the behavioural events those
//! traits produce (a 30-day history before the first round, a day outside
//! the product and a session in each round), the request context of their
//! decisions, what a conversion changes, and when they cancel. Everything
//! is drawn from [`Draws`] keyed by the run's seed and the customer's
//! index, so customer 17 of seed 7 is the same customer in every run,
//! whatever else happens.

use std::collections::{BTreeMap, BTreeSet};

use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;

use super::clock::Zone;
use super::random::{Draws, key};
use super::truth::{ChurnSignals, true_churn_hazard};

/// Keys of the draws, one per purpose (the truth's outcomes use 5, its
/// sends 10). A new purpose gets a new key, so no existing draw changes.
mod purpose {
    pub const TRAITS: u64 = 1;
    pub const HISTORY: u64 = 2;
    pub const SESSION: u64 = 3;
    pub const CONTEXT: u64 = 4;
    /// The timezone and the preferred hour.
    pub const CLOCK: u64 = 6;
    /// The times of day of the history's engagement events.
    pub const HOURS: u64 = 7;
    /// Cancellations: the history's days (key 0), each round (its number).
    pub const CHURN: u64 = 8;
    /// A round's day outside the product.
    pub const DAY: u64 = 9;
}

/// How far back the history reaches: the service's rolling counters keep
/// 30 days.
pub const HISTORY_DAYS: i64 = 30;
/// The history ends this long before the first round.
pub const HISTORY_GAP_MS: i64 = HOUR_MS;
/// The oldest event the history holds (an old integration), well inside the
/// service's default `limits.max_past_days` (365).
pub const OLDEST_EVENT_DAYS: i64 = 300;
/// A session's events fall in the last this-many milliseconds before its
/// decisions (or since the previous round, if that is later).
pub const SESSION_MS: i64 = 10 * 60_000;
/// A customer who has not logged in for this many days counts as lapsed.
pub const LAPSED_DAYS: f64 = 14.0;
/// The `plan` attribute of a customer who cancelled their subscription.
pub const CANCELLED_PLAN: &str = "cancelled";
/// The share of engagement events within an hour of the middle of the
/// customer's preferred hour; the rest fall anywhere in waking hours.
pub const PEAK_SHARE: f64 = 0.7;
/// Waking hours, local: engagement events off the peak fall in them.
pub const WAKING_HOURS: (f64, f64) = (7.0, 23.0);
/// The history's events that happen at the customer's time of day: usage
/// and email opens (support tickets, billing and seat limits do not).
pub const TIMED_EVENTS: [&str; 7] = [
    "login",
    "page_view",
    "pricing_page_view",
    "feature_activated",
    "report_created",
    "invite_sent",
    "email_opened",
];
/// The events a cancelled customer no longer sends: usage, support
/// tickets, billing and seat limits (they still open emails).
pub const STOPPED_BY_CANCELLING: [&str; 9] = [
    "login",
    "page_view",
    "pricing_page_view",
    "feature_activated",
    "report_created",
    "invite_sent",
    "support_ticket_opened",
    "payment_failed",
    "seat_limit_reached",
];
/// Daily rate of support tickets (as in the history).
pub const TICKET_RATE: f64 = 0.015;
/// Daily rate of support tickets while lapsed (as in the history).
pub const LAPSED_TICKET_RATE: f64 = 0.06;
/// Daily rate of failed payments of a paying customer in the rounds.
pub const FAILED_PAYMENT_RATE: f64 = 0.005;

/// A customer's plan, sent as the `plan` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plan {
    /// A 14-day trial.
    Trial,
    /// The small paid plan.
    Starter,
    /// The larger paid plan.
    Pro,
    /// Contract customers with a success manager.
    Enterprise,
}

impl Plan {
    /// The attribute value, as the demo catalog's rules spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trial => "trial",
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    /// Every plan.
    pub const ALL: [Self; 4] = [Self::Trial, Self::Starter, Self::Pro, Self::Enterprise];
}

/// What a customer is, drawn once. Some traits are sent as attributes
/// (plan, seats, signup time); the latent ones (engagement, intent,
/// responsiveness) show only through the events they produce and the
/// outcomes they cause.
#[derive(Debug, Clone, PartialEq)]
pub struct Traits {
    /// The plan at the start.
    pub plan: Plan,
    /// Seats on the account at the start (the `seats` attribute).
    pub seats: u32,
    /// Days since signup at the start (the `signup_at` attribute).
    pub tenure_days: f64,
    /// Activity level, a multiplier of every usage event rate (log-normal,
    /// median 1, within [0.2, 4]).
    pub engagement: f64,
    /// Buying intent in [0, 1]: drives pricing page views and upsell
    /// conversions.
    pub intent: f64,
    /// A log-odds offset on every click and conversion (normal, sd 0.6):
    /// some people respond to anything, some to nothing.
    pub responsiveness: f64,
    /// The share of the customer's sessions on a phone.
    pub mobile_share: f64,
    /// Days without a login before the start, for customers who drifted
    /// away.
    pub lapsed_days: Option<f64>,
    /// Whether a data source was connected before the start.
    pub integration: bool,
    /// Whether a payment failed in the last days before the start.
    pub payment_failed: bool,
    /// How often the seat limit was hit in the last week before the start.
    pub seat_limit_hits: u32,
    /// Where the customer lives (the `timezone` attribute).
    pub timezone: Zone,
    /// The local hour of day the customer is most active in (0–23): their
    /// engagement events cluster around its middle (`preferred_hour`:30),
    /// and an email, push or SMS sent then is opened most.
    pub preferred_hour: u32,
}

/// `Draws::between` over a log scale, as a whole number.
fn log_uniform(draws: &mut Draws, low: u32, high: u32) -> u32 {
    let value = draws
        .between(f64::from(low).ln(), f64::from(high + 1).ln())
        .exp();
    (value.floor() as u32).clamp(low, high)
}

impl Traits {
    /// The traits of customer `index` of `seed`.
    pub fn draw(seed: u64, index: u64) -> Self {
        let mut draws = Draws::new(seed, &[purpose::TRAITS, index]);
        let plan = match draws.uniform() {
            u if u < 0.40 => Plan::Trial,
            u if u < 0.70 => Plan::Starter,
            u if u < 0.90 => Plan::Pro,
            _ => Plan::Enterprise,
        };
        let (tenure_days, seats) = match plan {
            Plan::Trial => (draws.between(0.0, 14.0), log_uniform(&mut draws, 1, 5)),
            Plan::Starter => (draws.between(20.0, 400.0), log_uniform(&mut draws, 1, 10)),
            Plan::Pro => (draws.between(30.0, 700.0), log_uniform(&mut draws, 5, 50)),
            Plan::Enterprise => (
                draws.between(60.0, 1_000.0),
                log_uniform(&mut draws, 20, 200),
            ),
        };
        let engagement = (0.5 * draws.normal()).exp().clamp(0.2, 4.0);
        let intent_scale = match plan {
            Plan::Trial => 1.0,
            Plan::Starter => 0.8,
            Plan::Pro => 0.3,
            Plan::Enterprise => 0.1,
        };
        let intent = draws.uniform().powf(1.5) * intent_scale;
        let responsiveness = 0.6 * draws.normal();
        let mobile_share = draws.between(0.0, 0.6);
        let paying = plan != Plan::Trial;
        let lapse = draws.uniform();
        let lapse_days = draws.uniform();
        let lapsed_days = if paying && lapse < 0.2 {
            Some(8.0 + 37.0 * lapse_days)
        } else if !paying && tenure_days > 3.0 && lapse < 0.15 {
            Some(2.0 + (tenure_days.min(10.0) - 2.0) * lapse_days)
        } else {
            None
        };
        let integration = if paying {
            draws.chance(0.95)
        } else {
            draws.chance(0.35 + 0.15 * engagement.min(2.0))
        };
        let payment_failed = paying && draws.chance(0.06);
        let seat_limit_hits = if paying && draws.chance(0.12) {
            1 + draws.below(3) as u32
        } else {
            0
        };
        let mut clock = Draws::new(seed, &[purpose::CLOCK, index]);
        let timezone = match clock.uniform() {
            u if u < 0.30 => Zone::NewYork,
            u if u < 0.45 => Zone::LosAngeles,
            u if u < 0.70 => Zone::Berlin,
            u if u < 0.85 => Zone::Kolkata,
            _ => Zone::Utc,
        };
        let preferred_hour = match clock.uniform() {
            u if u < 0.45 => 7 + clock.below(3) as u32,
            u if u < 0.65 => 12 + clock.below(2) as u32,
            _ => 19 + clock.below(3) as u32,
        };
        Self {
            plan,
            seats,
            tenure_days,
            engagement,
            intent,
            responsiveness,
            mobile_share,
            lapsed_days,
            integration,
            payment_failed,
            seat_limit_hits,
            timezone,
            preferred_hour,
        }
    }
}

/// A behavioural event as the world produces it; the driver sends it as a
/// `nudge.v1.Event`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// Unique per customer and stable across runs: `<customer>:h<n>` in
    /// the history, `<customer>:r<round>.<n>` in a round.
    pub event_id: String,
    /// The event name (`identify` sets attributes).
    pub name: &'static str,
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// The properties (an `identify` event's attributes).
    pub properties: BTreeMap<String, AttrValue>,
}

/// Where the customer is when a decision is asked for: the request
/// context the driver sends (`device`, `page`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// On a phone (`device = mobile`, else `desktop`).
    pub mobile: bool,
    /// The page (`page`).
    pub page: Page,
}

/// The page a decision is asked for on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The home screen.
    Home,
    /// The documentation.
    Docs,
    /// Billing and plans.
    Billing,
    /// Data sources.
    Integrations,
}

impl Page {
    /// The context value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Docs => "docs",
            Self::Billing => "billing",
            Self::Integrations => "integrations",
        }
    }
}

/// What a customer's account is now: the traits as the simulation changed
/// them (an upgrade, more seats, a connected data source) and what they
/// already converted on.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The current plan.
    pub plan: Plan,
    /// The current seats.
    pub seats: u32,
    /// Whether a data source is connected.
    pub integration: bool,
    /// The last login (ms), if any.
    pub last_login: Option<i64>,
    /// Actions the customer converted on (in any placement).
    pub converted: BTreeSet<String>,
    /// The end of the customer's previous session (or of the history):
    /// the next session's events come after it.
    pub last_seen: i64,
    /// Events made in the current round so far (for their ids).
    round_events: u32,
    /// When the customer cancelled their subscription, if they did: they
    /// no longer visit, use the product, open tickets or fail payments.
    pub cancelled: Option<i64>,
    /// The last login before the history, as the truth assumes it (the
    /// history's events do not reach back further): when the 30-day window
    /// opens, or when a customer who lapsed before it last came.
    pub prior_login: i64,
    /// Support tickets opened (ms), the last 30 days of them.
    pub tickets: Vec<i64>,
    /// Failed payments (ms), the last 30 days of them.
    pub failed_payments: Vec<i64>,
    /// The end of the previous round's day (or of the history): the next
    /// day's events come after it.
    pub day_end: i64,
}

/// One simulated customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// The customer's position in the population (0-based).
    pub index: u64,
    /// The customer id sent to the server.
    pub id: String,
    /// What the customer is.
    pub traits: Traits,
    /// What the customer's account is now.
    pub state: State,
    /// When the simulation started (ms): the history ends before it.
    pub start: i64,
    seed: u64,
}

/// `text` as an attribute value.
fn text(value: &str) -> AttrValue {
    AttrValue::Str(value.to_owned())
}

impl Customer {
    /// Customer `index` of `seed`, named `<prefix>-<index>`, for a
    /// simulation starting at `start` (ms).
    pub fn new(seed: u64, prefix: &str, index: u64, start: i64) -> Self {
        let traits = Traits::draw(seed, index);
        let state = State {
            plan: traits.plan,
            seats: traits.seats,
            integration: traits.integration,
            last_login: None,
            converted: BTreeSet::new(),
            last_seen: start - HISTORY_GAP_MS,
            round_events: 0,
            cancelled: None,
            prior_login: start,
            tickets: Vec::new(),
            failed_payments: Vec::new(),
            day_end: start - HISTORY_GAP_MS,
        };
        let mut customer = Self {
            index,
            id: format!("{prefix}-{index:05}"),
            traits,
            state,
            start,
            seed,
        };
        customer.state.prior_login = customer.window_start().min(customer.active_end());
        customer
    }

    /// When the history's window opens: 30 days before the start, or at
    /// signup if later.
    fn window_start(&self) -> i64 {
        self.signup_at().max(self.start - HISTORY_DAYS * DAY_MS)
    }

    /// When the history's usage ends: an hour before the start, or when a
    /// lapsed customer stopped coming.
    fn active_end(&self) -> i64 {
        let end = self.start - HISTORY_GAP_MS;
        self.traits
            .lapsed_days
            .map_or(end, |days| self.start - (days * DAY_MS as f64) as i64)
            .min(end)
    }

    /// The customer's timezone.
    pub fn timezone(&self) -> Zone {
        self.traits.timezone
    }

    /// The customer's preferred local hour of day (0–23).
    pub fn preferred_hour(&self) -> u32 {
        self.traits.preferred_hour
    }

    /// The local hours between the instant `at` and the middle of the
    /// customer's preferred hour, around the clock: in [0, 12].
    pub fn hours_from_preferred(&self, at: i64) -> f64 {
        let peak = f64::from(self.traits.preferred_hour) + 0.5;
        let apart = (self.timezone().hour_of_day(at) - peak).rem_euclid(24.0);
        apart.min(24.0 - apart)
    }

    /// A local time of day (hours) of one of the customer's engagement
    /// events: with probability [`PEAK_SHARE`] uniform within an hour of
    /// the middle of their preferred hour, else uniform over
    /// [`WAKING_HOURS`].
    fn engagement_hour(&self, draws: &mut Draws) -> f64 {
        let hour = if draws.chance(PEAK_SHARE) {
            f64::from(self.traits.preferred_hour) + 0.5 + draws.between(-1.0, 1.0)
        } else {
            draws.between(WAKING_HOURS.0, WAKING_HOURS.1)
        };
        hour.rem_euclid(24.0)
    }

    /// `at` moved to an engagement hour of its local day (see
    /// [`Self::engagement_hour`]), a day earlier or later if that leaves
    /// [`from`, `to`), and left where it was if no such day fits.
    fn at_engagement_hour(&self, at: i64, from: i64, to: i64, draws: &mut Draws) -> i64 {
        let zone = self.timezone();
        let hour = self.engagement_hour(draws);
        let local = zone.local(at);
        let moved = local - local.rem_euclid(DAY_MS) + (hour * HOUR_MS as f64) as i64;
        [0, -DAY_MS, DAY_MS]
            .into_iter()
            .map(|shift| zone.instant(moved + shift))
            .find(|instant| (from..to).contains(instant))
            .unwrap_or(at)
    }

    /// The draws of this customer for `purpose` and `key`.
    pub(super) fn draws(&self, purpose: u64, key: &[u64]) -> Draws {
        let mut full = vec![purpose, self.index];
        full.extend_from_slice(key);
        Draws::new(self.seed, &full)
    }

    /// The signup instant (ms).
    pub fn signup_at(&self) -> i64 {
        self.start - (self.traits.tenure_days * DAY_MS as f64) as i64
    }

    /// Days since signup at `now` (ms).
    pub fn tenure_days(&self, now: i64) -> f64 {
        ((now - self.signup_at()) as f64 / DAY_MS as f64).max(0.0)
    }

    /// Whether the customer has not logged in for [`LAPSED_DAYS`] at `now`
    /// (a customer who never logged in is lapsed once past their first
    /// fortnight).
    pub fn lapsed(&self, now: i64) -> bool {
        let since = self.state.last_login.unwrap_or_else(|| self.signup_at());
        (now - since) as f64 / DAY_MS as f64 >= LAPSED_DAYS
    }

    /// The identify event setting `plan` ([`CANCELLED_PLAN`] once
    /// cancelled), `seats`, `signup_at` and `timezone` at `at`.
    fn identify(&self, event_id: String, at: i64) -> SimEvent {
        let signup = Timestamp::from_millis(self.signup_at()).to_string();
        let plan = if self.state.cancelled.is_some() {
            CANCELLED_PLAN
        } else {
            self.state.plan.name()
        };
        SimEvent {
            event_id,
            name: "identify",
            at,
            properties: BTreeMap::from([
                ("plan".to_owned(), text(plan)),
                (
                    "seats".to_owned(),
                    AttrValue::Num(f64::from(self.state.seats)),
                ),
                ("signup_at".to_owned(), text(&signup)),
                ("timezone".to_owned(), text(self.timezone().name())),
            ]),
        }
    }

    /// The churn signals at `at` of a customer whose last login was
    /// `last_login` and whose tickets and failed payments are `tickets` and
    /// `failed` (any order; those in the 30 days before `at` count).
    fn signals_at(
        &self,
        at: i64,
        last_login: i64,
        tickets: &[i64],
        failed: &[i64],
    ) -> ChurnSignals {
        let within = |times: &[i64]| {
            times
                .iter()
                .filter(|&&t| t < at && t >= at - HISTORY_DAYS * DAY_MS)
                .count() as u32
        };
        ChurnSignals {
            plan: self.state.plan,
            seats: self.state.seats,
            engagement: self.traits.engagement,
            days_since_login: ((at - last_login) as f64 / DAY_MS as f64).max(0.0),
            tickets_30d: within(tickets),
            failed_payments_30d: within(failed),
        }
    }

    /// The customer's churn signals at `at` (ms), from what their account
    /// holds: see [`true_churn_hazard`].
    pub fn churn_signals(&self, at: i64) -> ChurnSignals {
        let last_login = self.state.last_login.unwrap_or(self.state.prior_login);
        self.signals_at(
            at,
            last_login,
            &self.state.tickets,
            &self.state.failed_payments,
        )
    }

    /// The customer's true daily hazard of cancelling at `at` (ms): 0 on a
    /// trial or once cancelled, else [`true_churn_hazard`] of
    /// [`Self::churn_signals`].
    pub fn churn_hazard(&self, at: i64) -> f64 {
        if self.state.cancelled.is_some() {
            return 0.0;
        }
        true_churn_hazard(&self.churn_signals(at))
    }

    /// The cancellation in the history, if any: day by day from the window
    /// start, a draw with the hazard as of the day's start (from the
    /// history's events before it, oldest first in `events`), the
    /// cancellation at a uniform instant of the first day it hits.
    fn history_cancellation(
        &self,
        events: &[(&'static str, i64)],
        from: i64,
        end: i64,
    ) -> Option<i64> {
        if self.state.plan == Plan::Trial {
            return None;
        }
        let mut draws = self.draws(purpose::CHURN, &[0]);
        let (mut next, mut last_login) = (0, self.state.prior_login);
        let (mut tickets, mut failed) = (Vec::new(), Vec::new());
        let mut day = from;
        while day < end {
            while let Some(&(name, at)) = events.get(next).filter(|(_, at)| *at < day) {
                match name {
                    "login" => last_login = last_login.max(at),
                    "support_ticket_opened" => tickets.push(at),
                    "payment_failed" => failed.push(at),
                    _ => {}
                }
                next += 1;
            }
            let day_end = (day + DAY_MS).min(end);
            let hazard = true_churn_hazard(&self.signals_at(day, last_login, &tickets, &failed));
            let (hit, when) = (draws.uniform(), draws.uniform());
            if hit < hazard {
                return Some(day + (when * (day_end - day) as f64) as i64);
            }
            day = day_end;
        }
        None
    }

    /// The events before the first round, oldest first: an `identify`
    /// (plan, seats, signup_at, timezone) when the 30-day window opens or
    /// at signup, `trial_started`, `integration_connected`, usage events at
    /// the traits' daily rates (none in a lapsed customer's last days),
    /// `email_opened`, `support_ticket_opened`, and a recent
    /// `payment_failed` or `seat_limit_reached` where the traits say so.
    /// Usage events and email opens fall at the customer's time of day
    /// ([`TIMED_EVENTS`]). A paying customer may cancel, day by day with
    /// the hazard of the day's start: `subscription_cancelled` and an
    /// `identify` with plan [`CANCELLED_PLAN`], and none of
    /// [`STOPPED_BY_CANCELLING`] after it. Sets the customer's last login,
    /// tickets, failed payments and cancellation.
    pub fn history(&mut self) -> Vec<SimEvent> {
        let traits = &self.traits;
        let mut draws = self.draws(purpose::HISTORY, &[]);
        let mut hours = self.draws(purpose::HOURS, &[]);
        let signup = self.signup_at();
        let window_start = self.window_start();
        let end = self.start - HISTORY_GAP_MS;
        let active_end = self.active_end();
        let mut events: Vec<(&'static str, i64)> = Vec::new();
        let trial = traits.plan == Plan::Trial;
        if trial {
            events.push(("trial_started", signup));
        }
        if traits.integration {
            let at = if trial {
                signup + (draws.uniform() * (end - signup).max(0) as f64) as i64
            } else {
                (signup + DAY_MS).max(self.start - OLDEST_EVENT_DAYS * DAY_MS)
            };
            events.push(("integration_connected", at.min(end)));
        }
        let engagement = traits.engagement;
        let usage: [(&'static str, f64); 6] = [
            ("login", 0.5 * engagement * if trial { 1.3 } else { 1.0 }),
            ("page_view", 1.0 * engagement),
            ("pricing_page_view", traits.intent),
            (
                "feature_activated",
                if trial { 0.25 } else { 0.08 } * engagement,
            ),
            (
                "report_created",
                if traits.integration {
                    0.25 * engagement
                } else {
                    0.02
                },
            ),
            ("invite_sent", 0.02 * f64::from(traits.seats + 1).ln()),
        ];
        let mut poisson = |name, rate: f64, from: i64, to: i64, events: &mut Vec<_>| {
            if to <= from {
                return;
            }
            let days = (to - from) as f64 / DAY_MS as f64;
            for _ in 0..draws.poisson(rate * days) {
                let mut at = from + draws.below((to - from) as u64) as i64;
                if TIMED_EVENTS.contains(&name) {
                    at = self.at_engagement_hour(at, from, to, &mut hours);
                }
                events.push((name, at));
            }
        };
        for (name, rate) in usage {
            poisson(name, rate, window_start, active_end, &mut events);
        }
        let opens = 0.5 * super::truth::sigmoid(traits.responsiveness);
        poisson("email_opened", opens, window_start, end, &mut events);
        let tickets = if traits.lapsed_days.is_some() {
            LAPSED_TICKET_RATE
        } else {
            TICKET_RATE
        };
        poisson(
            "support_ticket_opened",
            tickets,
            window_start,
            end,
            &mut events,
        );
        let mut recent = |name, count: u32, within_days: f64, events: &mut Vec<_>| {
            for _ in 0..count {
                let ago = draws.between(0.1, within_days) * DAY_MS as f64;
                events.push((name, (self.start - ago as i64).clamp(window_start, end)));
            }
        };
        if traits.payment_failed {
            recent("payment_failed", 1, 5.0, &mut events);
        }
        recent(
            "seat_limit_reached",
            traits.seat_limit_hits,
            6.5,
            &mut events,
        );
        events.sort_by_key(|&(_, at)| at);
        let cancelled = self.history_cancellation(&events, window_start, end);
        if let Some(at) = cancelled {
            events.retain(|(name, when)| *when <= at || !STOPPED_BY_CANCELLING.contains(name));
            // Stable: the identify after the cancellation, at the same instant.
            events.push(("subscription_cancelled", at));
            events.push(("identify", at));
            events.sort_by_key(|&(_, at)| at);
        }
        // The first identify says what the customer was when the window
        // opened; the cancellation's, what they are after it.
        let mut out = Vec::with_capacity(events.len() + 1);
        out.push(self.identify(format!("{}:h0", self.id), window_start));
        self.state.cancelled = cancelled;
        let times = |wanted: &str| -> Vec<i64> {
            events
                .iter()
                .filter(|&&(name, at)| name == wanted && at >= end - HISTORY_DAYS * DAY_MS)
                .map(|&(_, at)| at)
                .collect()
        };
        self.state.tickets = times("support_ticket_opened");
        self.state.failed_payments = times("payment_failed");
        self.state.last_login = events
            .iter()
            .filter(|(name, _)| *name == "login")
            .map(|&(_, at)| at)
            .max();
        for (n, (name, at)) in events.into_iter().enumerate() {
            let event_id = format!("{}:h{}", self.id, n + 1);
            out.push(if name == "identify" {
                self.identify(event_id, at)
            } else {
                SimEvent {
                    event_id,
                    name,
                    at,
                    properties: BTreeMap::new(),
                }
            });
        }
        out
    }

    /// What happens to the customer outside the product in the day before
    /// round `round`'s decisions at `now` (ms), oldest first: from the end
    /// of the previous round's day (or of the history), at most a day back,
    /// `email_opened` at the history's rate and the customer's time of day,
    /// `support_ticket_opened` at the history's rates ([`TICKET_RATE`], or
    /// [`LAPSED_TICKET_RATE`] when lapsed) and, for a paying customer,
    /// `payment_failed` at [`FAILED_PAYMENT_RATE`], all in proportion to
    /// the time since. A paying customer cancels with probability
    /// [`Self::churn_hazard`] as of the day's start, once a round (a round
    /// is a day): `subscription_cancelled` and an `identify` with plan
    /// [`CANCELLED_PLAN`] at a uniform instant of the day, no ticket or
    /// failed payment after it, and no visit from then on. Call it before
    /// [`Self::session`]; a cancelled customer still opens emails.
    pub fn day(&mut self, round: u32, now: i64) -> Vec<SimEvent> {
        let from = self.state.day_end.max(now - DAY_MS);
        self.state.day_end = self.state.day_end.max(now);
        let span = (now - from).max(0);
        let days = span as f64 / DAY_MS as f64;
        let at_random = |draws: &mut Draws| from + draws.below(span as u64) as i64;
        let mut cancelled = None;
        if self.state.cancelled.is_none() {
            let hazard = self.churn_hazard(from);
            let mut draws = self.draws(purpose::CHURN, &[u64::from(round)]);
            if draws.uniform() < hazard {
                cancelled = Some(if span > 0 { at_random(&mut draws) } else { now });
            }
        }
        let mut draws = self.draws(purpose::DAY, &[u64::from(round)]);
        let mut events: Vec<(&'static str, i64)> = Vec::new();
        if span > 0 {
            let opens = 0.5 * super::truth::sigmoid(self.traits.responsiveness);
            for _ in 0..draws.poisson(opens * days) {
                let at = at_random(&mut draws);
                let at = self.at_engagement_hour(at, from, now, &mut draws);
                events.push(("email_opened", at));
            }
            let tickets = if self.lapsed(from) {
                LAPSED_TICKET_RATE
            } else {
                TICKET_RATE
            };
            for _ in 0..draws.poisson(tickets * days) {
                events.push(("support_ticket_opened", at_random(&mut draws)));
            }
            if self.state.plan != Plan::Trial {
                for _ in 0..draws.poisson(FAILED_PAYMENT_RATE * days) {
                    events.push(("payment_failed", at_random(&mut draws)));
                }
            }
        }
        let stop = self.state.cancelled.or(cancelled);
        events.retain(|(name, at)| {
            stop.is_none_or(|stop| *at <= stop) || !STOPPED_BY_CANCELLING.contains(name)
        });
        if let Some(at) = cancelled {
            self.state.cancelled = Some(at);
            events.push(("subscription_cancelled", at));
            events.push(("identify", at));
        }
        events.sort_by_key(|&(_, at)| at);
        let recent = now - HISTORY_DAYS * DAY_MS;
        for &(name, at) in &events {
            match name {
                "support_ticket_opened" => self.state.tickets.push(at),
                "payment_failed" => self.state.failed_payments.push(at),
                _ => {}
            }
        }
        self.state.tickets.retain(|&at| at >= recent);
        self.state.failed_payments.retain(|&at| at >= recent);
        events
            .into_iter()
            .enumerate()
            .map(|(n, (name, at))| {
                let event_id = format!("{}:d{round}.{}", self.id, n + 1);
                if name == "identify" {
                    self.identify(event_id, at)
                } else {
                    SimEvent {
                        event_id,
                        name,
                        at,
                        properties: BTreeMap::new(),
                    }
                }
            })
            .collect()
    }

    /// A new event id in `round`.
    fn round_event(&mut self, round: u32) -> String {
        self.state.round_events += 1;
        format!("{}:r{round}.{}", self.id, self.state.round_events)
    }

    /// The customer's visit in `round` at `now` (ms): `None` if they do not come
    /// (a cancelled customer never does, a lapsed customer comes with
    /// probability 0.15, others with 0.4 + 0.3 × engagement, at most 0.95),
    /// else the session's events, spread evenly over the last
    /// [`SESSION_MS`] (or since their previous session, if that is later):
    /// a `login`, page views, pricing page views (intent), a feature
    /// activated, a report created (with a data source), an invite (larger
    /// teams). Emails are opened at the customer's time of day, outside
    /// sessions (see [`Self::day`]).
    pub fn session(&mut self, round: u32, now: i64) -> Option<Vec<SimEvent>> {
        self.state.round_events = 0;
        let since = self.state.last_seen;
        self.state.last_seen = now;
        if self.state.cancelled.is_some() {
            return None;
        }
        let mut draws = self.draws(purpose::SESSION, &[u64::from(round)]);
        let traits = &self.traits;
        let visit = if self.lapsed(now) {
            0.15
        } else {
            (0.4 + 0.3 * traits.engagement).min(0.95)
        };
        if !draws.chance(visit) {
            return None;
        }
        let engagement = traits.engagement;
        let trial = self.state.plan == Plan::Trial;
        let mut names = vec!["login"];
        names.extend(std::iter::repeat_n(
            "page_view",
            1 + draws.poisson(1.5 * engagement) as usize,
        ));
        names.extend(std::iter::repeat_n(
            "pricing_page_view",
            draws.poisson(traits.intent) as usize,
        ));
        let activation = if trial { 0.25 } else { 0.1 } * engagement;
        if draws.chance(activation.min(0.6)) {
            names.push("feature_activated");
        }
        let report = if self.state.integration {
            (0.2 * engagement).min(0.5)
        } else {
            0.02
        };
        if draws.chance(report) {
            names.push("report_created");
        }
        if draws.chance(0.02 * f64::from(self.state.seats + 1).ln()) {
            names.push("invite_sent");
        }
        let from = since.max(now - SESSION_MS);
        let step = (now - from).max(0) / (names.len() as i64 + 1);
        let events: Vec<SimEvent> = names
            .into_iter()
            .enumerate()
            .map(|(n, name)| SimEvent {
                event_id: self.round_event(round),
                name,
                at: from + step * (n as i64 + 1),
                properties: BTreeMap::new(),
            })
            .collect();
        self.state.last_login = Some(events[0].at);
        Some(events)
    }

    /// The context of the customer's decision in `placement` in `round`: a
    /// phone with their mobile share; the billing page more often with
    /// buying intent, the integrations page more often without a data
    /// source, the docs sometimes, else home.
    pub fn context(&self, round: u32, placement: &str) -> Context {
        let mut draws = self.draws(purpose::CONTEXT, &[u64::from(round), key(placement)]);
        let mobile = draws.chance(self.traits.mobile_share);
        let billing = 0.05 + 0.25 * self.traits.intent;
        let integrations = if self.state.integration { 0.02 } else { 0.12 };
        let page = match draws.uniform() {
            u if u < billing => Page::Billing,
            u if u < billing + integrations => Page::Integrations,
            u if u < billing + integrations + 0.1 => Page::Docs,
            _ => Page::Home,
        };
        Context { mobile, page }
    }

    /// Records a conversion on `action_id` at `at` (ms) in `round` and
    /// returns the events it causes: connecting a data source
    /// (`integration_connected`), building a report (`report_created`),
    /// inviting (`invite_sent`), the tour (`feature_activated`), an upgrade
    /// or the trial discount (`subscription_started` and an `identify` with
    /// plan `pro`), more seats (an `identify` with 5 more). Other actions
    /// change nothing but the record that the customer converted.
    pub fn convert(&mut self, action_id: &str, round: u32, at: i64) -> Vec<SimEvent> {
        self.state.converted.insert(action_id.to_owned());
        let plain = |name| (name, BTreeMap::new());
        let effects: Vec<(&'static str, BTreeMap<String, AttrValue>)> = match action_id {
            "connect_first_integration" => {
                self.state.integration = true;
                vec![plain("integration_connected")]
            }
            "create_first_report" => vec![plain("report_created")],
            "invite_teammates" => vec![plain("invite_sent")],
            "welcome_tour" => vec![plain("feature_activated")],
            "upgrade_to_pro_banner" | "trial_discount_email"
                if matches!(self.state.plan, Plan::Trial | Plan::Starter) =>
            {
                self.state.plan = Plan::Pro;
                let identify = self.identify(String::new(), at);
                vec![
                    plain("subscription_started"),
                    ("identify", identify.properties),
                ]
            }
            "seat_limit_upgrade" | "csm_expansion_call" => {
                self.state.seats += 5;
                let identify = self.identify(String::new(), at);
                vec![("identify", identify.properties)]
            }
            _ => Vec::new(),
        };
        effects
            .into_iter()
            .map(|(name, properties)| SimEvent {
                event_id: self.round_event(round),
                name,
                at,
                properties,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_795_435_200_000; // 2026-11-23 12:00 UTC

    fn population(seed: u64, n: u64) -> Vec<Customer> {
        (0..n)
            .map(|index| Customer::new(seed, "t", index, START))
            .collect()
    }

    #[test]
    fn a_seed_gives_the_same_customers_and_events() {
        let mut first = population(7, 50);
        let mut second = population(7, 50);
        assert_eq!(first, second);
        for (a, b) in first.iter_mut().zip(&mut second) {
            assert_eq!(a.history(), b.history());
            assert_eq!(a.session(1, START + DAY_MS), b.session(1, START + DAY_MS));
            assert_eq!(a.context(1, "home_banner"), b.context(1, "home_banner"));
            assert_eq!(a, b);
        }
        let other = population(8, 50);
        assert_ne!(
            first.iter().map(|c| &c.traits).collect::<Vec<_>>(),
            other.iter().map(|c| &c.traits).collect::<Vec<_>>()
        );
        // A customer does not depend on the size of the population.
        assert_eq!(population(7, 3)[2].traits, first[2].traits);
    }

    #[test]
    fn traits_stay_in_their_ranges_and_mix_the_plans() {
        let customers = population(1, 2_000);
        let mut plans = BTreeMap::new();
        for customer in &customers {
            let t = &customer.traits;
            *plans.entry(t.plan).or_insert(0) += 1;
            assert!((0.2..=4.0).contains(&t.engagement), "{t:?}");
            assert!((0.0..=1.0).contains(&t.intent), "{t:?}");
            assert!((0.0..0.6).contains(&t.mobile_share), "{t:?}");
            assert!((1..=200).contains(&t.seats), "{t:?}");
            assert!(t.tenure_days >= 0.0 && t.tenure_days < 1_000.0, "{t:?}");
            if t.plan == Plan::Trial {
                assert!(t.tenure_days < 14.0 && !t.payment_failed, "{t:?}");
            }
        }
        for plan in Plan::ALL {
            assert!(plans.get(&plan).copied().unwrap_or(0) > 100, "{plans:?}");
        }
    }

    #[test]
    fn histories_are_ordered_inside_the_accepted_window_and_identify_first() {
        for mut customer in population(3, 300) {
            let events = customer.history();
            let first = &events[0];
            assert_eq!(first.name, "identify");
            assert_eq!(
                first.properties.get("plan"),
                Some(&text(customer.traits.plan.name()))
            );
            assert!(first.properties.contains_key("signup_at"));
            let ids: BTreeSet<_> = events.iter().map(|e| &e.event_id).collect();
            assert_eq!(ids.len(), events.len(), "unique ids");
            for pair in events[1..].windows(2) {
                assert!(pair[0].at <= pair[1].at, "oldest first");
            }
            for event in &events {
                assert!(event.at <= START - HISTORY_GAP_MS, "{event:?}");
                assert!(event.at >= START - OLDEST_EVENT_DAYS * DAY_MS, "{event:?}");
                if event.name != "integration_connected" {
                    assert!(event.at >= START - HISTORY_DAYS * DAY_MS, "{event:?}");
                }
            }
            if let Some(days) = customer.traits.lapsed_days {
                let cut = START - (days * DAY_MS as f64) as i64;
                assert!(
                    events
                        .iter()
                        .filter(|e| e.name == "login")
                        .all(|e| e.at <= cut)
                );
            }
            if customer.traits.payment_failed {
                // Unless the customer cancelled before it came.
                assert!(
                    events.iter().any(|e| e.name == "payment_failed")
                        || customer.state.cancelled.is_some()
                );
            }
        }
    }

    #[test]
    fn event_rates_follow_the_traits() {
        // Engaged customers log in more; intent shows as pricing page views.
        let mut customers = population(5, 2_000);
        let mut logins = [(0_usize, 0_usize); 2];
        let mut pricing = [(0_usize, 0_usize); 2];
        for customer in &mut customers {
            let events = customer.history();
            let count = |name| events.iter().filter(|e| e.name == name).count();
            if customer.traits.lapsed_days.is_none() && customer.traits.tenure_days > 30.0 {
                let high = usize::from(customer.traits.engagement > 1.0);
                logins[high].0 += count("login");
                logins[high].1 += 1;
                let intent = usize::from(customer.traits.intent > 0.3);
                pricing[intent].0 += count("pricing_page_view");
                pricing[intent].1 += 1;
            }
        }
        let mean = |(total, n): (usize, usize)| total as f64 / n.max(1) as f64;
        assert!(mean(logins[1]) > 1.5 * mean(logins[0]), "{logins:?}");
        assert!(mean(pricing[1]) > 3.0 * mean(pricing[0]), "{pricing:?}");
    }

    #[test]
    fn sessions_fall_between_the_rounds_and_log_in_first() {
        let now = START + DAY_MS;
        let mut visits = 0;
        for mut customer in population(9, 400) {
            customer.history();
            let Some(events) = customer.session(1, now) else {
                continue;
            };
            visits += 1;
            assert_eq!(events[0].name, "login");
            assert_eq!(customer.state.last_login, Some(events[0].at));
            assert!(!customer.lapsed(now));
            for event in &events {
                assert!(event.at > now - SESSION_MS && event.at <= now, "{event:?}");
                assert!(event.event_id.contains(":r1."), "{event:?}");
            }
            // Rounds in quick succession: the session fits in between.
            let soon = now + 2_000;
            if let Some(events) = customer.session(2, soon) {
                assert!(events.iter().all(|e| e.at > now && e.at <= soon));
            }
        }
        assert!((150..390).contains(&visits), "{visits}");
    }

    /// Whether local hour bucket `hour` is within an hour of `preferred`,
    /// around the clock.
    fn near(hour: f64, preferred: u32) -> bool {
        let apart = (hour.floor() as i64 - i64::from(preferred)).rem_euclid(24);
        apart <= 1 || apart == 23
    }

    #[test]
    fn clocks_mix_the_zones_and_peak_at_the_documented_hours() {
        let customers = population(4, 4_000);
        let mut zones = BTreeMap::new();
        let mut hours = [0_u32; 24];
        for customer in &customers {
            *zones.entry(customer.timezone()).or_insert(0) += 1;
            hours[customer.preferred_hour() as usize] += 1;
        }
        let share = |zone| f64::from(zones[&zone]) / 4_000.0;
        for (zone, expected) in [
            (Zone::NewYork, 0.30),
            (Zone::LosAngeles, 0.15),
            (Zone::Berlin, 0.25),
            (Zone::Kolkata, 0.15),
            (Zone::Utc, 0.15),
        ] {
            assert!((share(zone) - expected).abs() < 0.03, "{zones:?}");
        }
        let group = |range: std::ops::RangeInclusive<usize>| {
            f64::from(hours[range].iter().sum::<u32>()) / 4_000.0
        };
        assert!((group(7..=9) - 0.45).abs() < 0.03, "{hours:?}");
        assert!((group(12..=13) - 0.20).abs() < 0.03, "{hours:?}");
        assert!((group(19..=21) - 0.35).abs() < 0.03, "{hours:?}");
        assert_eq!(group(7..=9) + group(12..=13) + group(19..=21), 1.0);
    }

    #[test]
    fn the_preferred_hour_shows_in_the_history() {
        // Opens and logins cluster within an hour of the preferred hour, in
        // the customer's own time; the identify says which zone that is.
        let (mut timed, mut close, mut customers_with_opens, mut found) = (0, 0, 0, 0);
        for mut customer in population(6, 1_000) {
            let events = customer.history();
            assert_eq!(
                events[0].properties.get("timezone"),
                Some(&text(customer.timezone().name()))
            );
            let zone = customer.timezone();
            let preferred = customer.preferred_hour();
            let mut opens = [0_u32; 24];
            for event in events
                .iter()
                .filter(|e| matches!(e.name, "email_opened" | "login"))
            {
                let hour = zone.hour_of_day(event.at);
                timed += 1;
                close += u32::from(near(hour, preferred));
                if event.name == "email_opened" {
                    opens[hour.floor() as usize] += 1;
                }
            }
            if opens.iter().sum::<u32>() >= 6 {
                customers_with_opens += 1;
                let top = (0..24).max_by_key(|&h| opens[h]).unwrap_or(0);
                found += u32::from(near(top as f64, preferred));
            }
        }
        let share = f64::from(close) / f64::from(timed);
        // 70 % by construction, plus the waking-hours rest that lands there.
        assert!((0.7..0.85).contains(&share), "{share}");
        assert!(customers_with_opens > 200, "{customers_with_opens}");
        assert!(
            f64::from(found) > 0.9 * f64::from(customers_with_opens),
            "{found} of {customers_with_opens}"
        );
    }

    #[test]
    fn cancellations_appear_in_the_history_and_stop_the_usage() {
        let mut cancelled = 0;
        let mut paying = 0;
        for mut customer in population(12, 3_000) {
            let events = customer.history();
            paying += u32::from(customer.traits.plan != Plan::Trial);
            let Some(at) = customer.state.cancelled else {
                assert!(events.iter().all(|e| e.name != "subscription_cancelled"));
                continue;
            };
            cancelled += 1;
            assert_ne!(customer.traits.plan, Plan::Trial, "trials do not cancel");
            let position = events
                .iter()
                .position(|e| e.name == "subscription_cancelled")
                .expect("the cancellation is sent");
            assert_eq!(events[position].at, at);
            let identify = &events[position + 1];
            assert_eq!(identify.name, "identify");
            assert_eq!(identify.properties.get("plan"), Some(&text(CANCELLED_PLAN)));
            for event in &events {
                if STOPPED_BY_CANCELLING.contains(&event.name) {
                    assert!(event.at <= at, "{event:?} after the cancellation at {at}");
                }
            }
            assert!(customer.session(1, START + DAY_MS).is_none(), "gone");
            assert_eq!(customer.churn_hazard(START), 0.0);
        }
        // About 8 % of paying customers in the history's 30 days.
        let share = f64::from(cancelled) / f64::from(paying);
        assert!((0.05..0.12).contains(&share), "{cancelled} of {paying}");
    }

    #[test]
    fn cancellations_follow_the_hazard_in_the_rounds() {
        // The frequency of cancellations in a round matches the hazard the
        // customers had, lapsed or not, and the lapsed cancel more often.
        let mut customers = population(13, 4_000);
        for customer in &mut customers {
            customer.history();
        }
        // [lapsed]: (expected, observed, customer-rounds)
        let mut tally = [(0.0, 0_u32, 0_u32); 2];
        for round in 1..=20 {
            let now = START + i64::from(round - 1) * DAY_MS;
            for customer in &mut customers {
                let from = customer.state.day_end.max(now - DAY_MS);
                let hazard = customer.churn_hazard(from);
                let lapsed = usize::from(customer.lapsed(from));
                let before = customer.state.cancelled;
                let events = customer.day(round, now);
                let cancelled = customer.state.cancelled.is_some() && before.is_none();
                if hazard > 0.0 {
                    tally[lapsed].0 += hazard;
                    tally[lapsed].1 += u32::from(cancelled);
                    tally[lapsed].2 += 1;
                }
                assert_eq!(
                    events.iter().any(|e| e.name == "subscription_cancelled"),
                    cancelled
                );
                let session = customer.session(round, now);
                if customer.state.cancelled.is_some() {
                    assert!(session.is_none());
                }
            }
        }
        for (expected, observed, _) in tally {
            // Within 4 Poisson standard deviations.
            assert!(
                (f64::from(observed) - expected).abs() < 4.0 * expected.sqrt() + 3.0,
                "{tally:?}"
            );
        }
        let rate = |(_, observed, n): (f64, u32, u32)| f64::from(observed) / f64::from(n);
        assert!(tally[1].1 > 20, "{tally:?}");
        assert!(rate(tally[1]) > 3.0 * rate(tally[0]), "{tally:?}");
    }

    #[test]
    fn a_round_day_is_deterministic_and_timed() {
        let run = || {
            let mut customers = population(14, 300);
            let mut all = Vec::new();
            for customer in &mut customers {
                customer.history();
            }
            for round in 1..=10 {
                let now = START + i64::from(round - 1) * DAY_MS;
                for customer in &mut customers {
                    let from = customer.state.day_end.max(now - DAY_MS);
                    let events = customer.day(round, now);
                    for event in &events {
                        assert!(event.at >= from && event.at <= now, "{event:?}");
                        assert!(event.event_id.contains(&format!(":d{round}.")));
                    }
                    all.extend(events);
                    all.extend(customer.session(round, now).unwrap_or_default());
                }
            }
            (customers, all)
        };
        let (customers, events) = run();
        assert_eq!((customers.clone(), events.clone()), run());
        let ids: BTreeSet<_> = events.iter().map(|e| &e.event_id).collect();
        assert_eq!(ids.len(), events.len(), "unique ids");
        let count = |name| events.iter().filter(|e| e.name == name).count();
        assert!(count("email_opened") > 300, "{}", count("email_opened"));
        assert!(count("support_ticket_opened") > 10);
        assert!(count("payment_failed") > 0);
        assert!(count("subscription_cancelled") > 0);
        assert_eq!(
            count("subscription_cancelled"),
            customers
                .iter()
                .filter(|c| c
                    .state
                    .cancelled
                    .is_some_and(|at| at >= START - HISTORY_GAP_MS))
                .count()
        );
        // The first round's day is the hour since the history ended: few
        // events; the same seed and customer give the same day again.
        let mut customer = Customer::new(14, "t", 7, START);
        customer.history();
        let first = customer.day(1, START);
        assert!(first.iter().all(|e| e.at > START - HISTORY_GAP_MS));
        assert!(customer.day(1, START).is_empty(), "no time has passed");
    }

    /// The area under the ROC curve of `scored` (score, label).
    fn auc(scored: &mut [(f64, bool)]) -> f64 {
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut rank_sum, mut positives) = (0.0, 0.0);
        for (rank, (_, label)) in scored.iter().enumerate() {
            if *label {
                rank_sum += (rank + 1) as f64;
                positives += 1.0;
            }
        }
        let negatives = scored.len() as f64 - positives;
        (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
    }

    #[test]
    fn a_churn_score_on_what_the_service_sees_ranks_who_cancels() {
        // 60 rounds a day apart after the history. At the first round and
        // at round 31, score the paying customers still subscribed and see
        // who cancels in the next 30 days: the true hazard ranks them well,
        // and so does the hazard with E read from 30 days of page views
        // (what a model trained on the event log can do).
        let mut customers = population(5, 4_000);
        let mut page_views: Vec<Vec<i64>> = customers
            .iter_mut()
            .map(|customer| {
                let events = customer.history();
                events
                    .iter()
                    .filter(|e| e.name == "page_view")
                    .map(|e| e.at)
                    .collect()
            })
            .collect();
        let mut scores = BTreeMap::new();
        for round in 1..=60 {
            let now = START + i64::from(round - 1) * DAY_MS;
            if round == 1 || round == 31 {
                let scored: Vec<_> = customers
                    .iter()
                    .zip(&page_views)
                    .enumerate()
                    .filter(|(_, (c, _))| c.churn_hazard(now) > 0.0)
                    .map(|(index, (customer, views))| {
                        let mut signals = customer.churn_signals(now);
                        let month = views
                            .iter()
                            .filter(|&&at| at < now && at >= now - HISTORY_DAYS * DAY_MS)
                            .count();
                        signals.engagement = (month as f64 + 1.0) / 30.0;
                        let seen = true_churn_hazard(&signals);
                        (index, customer.churn_hazard(now), seen)
                    })
                    .collect();
                scores.insert(now, scored);
            }
            for (customer, views) in customers.iter_mut().zip(&mut page_views) {
                customer.day(round, now);
                if let Some(events) = customer.session(round, now) {
                    views.extend(
                        events
                            .iter()
                            .filter(|e| e.name == "page_view")
                            .map(|e| e.at),
                    );
                }
            }
        }
        for (at, scored) in scores {
            let until = at + 30 * DAY_MS;
            let label = |index: usize| {
                customers[index]
                    .state
                    .cancelled
                    .is_some_and(|when| when >= at && when < until)
            };
            let mut truth: Vec<_> = scored.iter().map(|s| (s.1, label(s.0))).collect();
            let mut seen: Vec<_> = scored.iter().map(|s| (s.2, label(s.0))).collect();
            let cancelled = truth.iter().filter(|s| s.1).count() as f64 / truth.len() as f64;
            let (truth, seen) = (auc(&mut truth), auc(&mut seen));
            assert!((0.03..0.12).contains(&cancelled), "{cancelled}");
            assert!((0.75..0.88).contains(&truth), "{truth}");
            assert!((0.72..0.88).contains(&seen), "{seen}");
        }
    }

    #[test]
    fn conversions_change_the_account_and_send_their_events() {
        let mut customer = (0..)
            .map(|index| Customer::new(2, "t", index, START))
            .find(|c| c.traits.plan == Plan::Trial && !c.traits.integration)
            .expect("a trial without a data source");
        let events = customer.convert("connect_first_integration", 1, START);
        assert!(customer.state.integration);
        assert_eq!(events[0].name, "integration_connected");
        let events = customer.convert("upgrade_to_pro_banner", 1, START + 1);
        assert_eq!(customer.state.plan, Plan::Pro);
        assert_eq!(events[1].name, "identify");
        assert_eq!(events[1].properties.get("plan"), Some(&text("pro")));
        assert_ne!(events[0].event_id, events[1].event_id);
        assert!(
            customer
                .convert("template_gallery", 1, START + 2)
                .is_empty()
        );
        assert!(customer.state.converted.contains("template_gallery"));
        assert_eq!(customer.state.converted.len(), 3);
    }
}
