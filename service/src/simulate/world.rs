//! The simulated customers: their traits, the behavioural events those
//! traits produce (a 30-day history before the first round, a session in
//! each round they visit), the request context of their decisions, and what
//! a conversion changes. Everything is drawn from [`Draws`] keyed by the
//! run's seed and the customer's index, so customer 17 of seed 7 is the same
//! customer in every run, whatever else happens.

use std::collections::{BTreeMap, BTreeSet};

use nudge_models::time::{DAY_MS, HOUR_MS, Timestamp};
use nudge_models::value::AttrValue;

use super::random::{Draws, key};

/// Keys of the draws, one per purpose (the truth's outcomes use 5).
mod purpose {
    pub const TRAITS: u64 = 1;
    pub const HISTORY: u64 = 2;
    pub const SESSION: u64 = 3;
    pub const CONTEXT: u64 = 4;
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
        };
        Self {
            index,
            id: format!("{prefix}-{index:05}"),
            traits,
            state,
            start,
            seed,
        }
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

    /// The identify event setting `plan`, `seats` and `signup_at` at `at`.
    fn identify(&self, event_id: String, at: i64) -> SimEvent {
        let signup = Timestamp::from_millis(self.signup_at()).to_string();
        SimEvent {
            event_id,
            name: "identify",
            at,
            properties: BTreeMap::from([
                ("plan".to_owned(), text(self.state.plan.name())),
                (
                    "seats".to_owned(),
                    AttrValue::Num(f64::from(self.state.seats)),
                ),
                ("signup_at".to_owned(), text(&signup)),
            ]),
        }
    }

    /// The events before the first round, oldest first: an `identify`
    /// (plan, seats, signup_at) when the 30-day window opens or at signup,
    /// `trial_started`, `integration_connected`, usage events at the
    /// traits' daily rates (none in a lapsed customer's last days),
    /// `email_opened`, `support_ticket_opened`, and a recent
    /// `payment_failed` or `seat_limit_reached` where the traits say so.
    /// Sets the customer's last login.
    pub fn history(&mut self) -> Vec<SimEvent> {
        let traits = &self.traits;
        let mut draws = self.draws(purpose::HISTORY, &[]);
        let signup = self.signup_at();
        let window_start = signup.max(self.start - HISTORY_DAYS * DAY_MS);
        let end = self.start - HISTORY_GAP_MS;
        let active_end = traits
            .lapsed_days
            .map_or(end, |days| self.start - (days * DAY_MS as f64) as i64)
            .min(end);
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
                events.push((name, from + draws.below((to - from) as u64) as i64));
            }
        };
        for (name, rate) in usage {
            poisson(name, rate, window_start, active_end, &mut events);
        }
        let opens = 0.5 * super::truth::sigmoid(traits.responsiveness);
        poisson("email_opened", opens, window_start, end, &mut events);
        let tickets = if traits.lapsed_days.is_some() {
            0.06
        } else {
            0.015
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
        self.state.last_login = events
            .iter()
            .filter(|(name, _)| *name == "login")
            .map(|&(_, at)| at)
            .max();
        let mut out = Vec::with_capacity(events.len() + 1);
        out.push(self.identify(format!("{}:h0", self.id), window_start));
        out.extend(
            events
                .into_iter()
                .enumerate()
                .map(|(n, (name, at))| SimEvent {
                    event_id: format!("{}:h{}", self.id, n + 1),
                    name,
                    at,
                    properties: BTreeMap::new(),
                }),
        );
        out
    }

    /// A new event id in `round`.
    fn round_event(&mut self, round: u32) -> String {
        self.state.round_events += 1;
        format!("{}:r{round}.{}", self.id, self.state.round_events)
    }

    /// The customer's visit in `round` at `now` (ms): `None` if they do not come
    /// (a lapsed customer comes with probability 0.15, others with
    /// 0.4 + 0.3 × engagement, at most 0.95), else the session's events,
    /// spread evenly over the last [`SESSION_MS`] (or since their previous
    /// session, if that is later): a
    /// `login`, page views, pricing page views (intent), a feature
    /// activated, a report created (with a data source), an invite (larger
    /// teams), an email opened (responsiveness).
    pub fn session(&mut self, round: u32, now: i64) -> Option<Vec<SimEvent>> {
        self.state.round_events = 0;
        let since = self.state.last_seen;
        self.state.last_seen = now;
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
        if draws.chance(0.4 * super::truth::sigmoid(traits.responsiveness)) {
            names.push("email_opened");
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
                assert!(events.iter().any(|e| e.name == "payment_failed"));
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
