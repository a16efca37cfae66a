//! The ground truth: each customer's true click and conversion probability
//! for any action in any context (for an email, push or SMS, at the instant
//! it is sent), the outcomes sampled from them, and each customer's true
//! daily hazard of cancelling. The formulas are documented (with their
//! reasons) in the module documentation of [`super`]; the unit tests below
//! check the properties they promise.

use super::random::{Draws, key};
use super::world::{Context, Customer, Page, Plan};

/// The key of outcome draws (the world's own keys are 1–4 and 6–9).
const OUTCOME: u64 = 5;
/// The key of the outcome draws of sends ([`Customer::send_outcome`]).
const SEND: u64 = 10;

/// The channels whose messages reach the customer outside the product, at
/// the instant they are sent: their opens depend on the local time.
pub const OUTBOUND_CHANNELS: [&str; 3] = ["email", "push", "sms"];
/// The send-time effect: the most added to the log-odds of opening an
/// outbound message, sent in the middle of the customer's preferred hour.
pub const SEND_TIME_PEAK: f64 = 0.9;
/// The send-time effect: its width, in hours (the standard deviation of
/// its Gaussian bump).
pub const SEND_TIME_WIDTH_HOURS: f64 = 1.5;
/// The send-time effect far from the preferred hour: added to the log-odds
/// of opening.
pub const SEND_TIME_FLOOR: f64 = -0.25;

/// Added to the conversion log-odds for the click log-odds: a click is
/// about 3.3 times as likely as a conversion at low rates.
pub const CLICK_LIFT: f64 = 1.2;
/// Subtracted from the log-odds of an action the customer already
/// converted on: a repeat conversion is rare.
pub const REPEAT_PENALTY: f64 = 2.0;
/// The chance that an in-app message seen and not clicked is dismissed.
pub const DISMISS_RATE: f64 = 0.08;

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// An action as the truth sees it: its id (the known actions of the demo
/// catalog have their own terms), channel and category (any other action
/// is judged by those alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionRef<'a> {
    /// The action id.
    pub id: &'a str,
    /// Its channel, e.g. `in_app`.
    pub channel: &'a str,
    /// Its category, e.g. `upsell`.
    pub category: &'a str,
}

/// A customer's true response probabilities to one served action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Response {
    /// That the customer sees it (reported as an `impression`).
    pub seen: f64,
    /// That they click it (`click`); at most `seen`.
    pub click: f64,
    /// That they convert (`conversion`); at most `click`. This is the
    /// true expected reward of serving the action.
    pub conversion: f64,
}

/// What happened to one served action, and when, after the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Seen, this many ms after the decision.
    pub impression: Option<i64>,
    /// Clicked, this many ms after the decision.
    pub click: Option<i64>,
    /// Converted, this many ms after the decision.
    pub conversion: Option<i64>,
    /// Dismissed, this many ms after the decision.
    pub dismiss: Option<i64>,
}

/// What the churn hazard reads: a paying customer's observable behaviour
/// at an instant, each through a feature the service computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnSignals {
    /// The plan (`is(plan, …)`).
    pub plan: Plan,
    /// Seats on the account (`attr(seats)`).
    pub seats: u32,
    /// The engagement trait E, which the service sees through login and
    /// page-view counts (`count(login, 7d)`).
    pub engagement: f64,
    /// Days since the last login (`days_since(login)`).
    pub days_since_login: f64,
    /// Support tickets opened in the last 30 days
    /// (`count(support_ticket_opened, 30d)`).
    pub tickets_30d: u32,
    /// Failed payments in the last 30 days (`count(payment_failed, 30d)`).
    pub failed_payments_30d: u32,
}

/// The churn hazard's intercept (log-odds of cancelling in a day).
pub const CHURN_BASE: f64 = -6.6;
/// Added per day since the last login, up to [`CHURN_LAPSE_CAP_DAYS`].
pub const CHURN_PER_IDLE_DAY: f64 = 0.06;
/// Days since the last login count up to this many.
pub const CHURN_LAPSE_CAP_DAYS: f64 = 30.0;
/// Times ln E: engaged customers stay.
pub const CHURN_ENGAGEMENT: f64 = -1.8;
/// Added per support ticket in the last 30 days, up to 3.
pub const CHURN_PER_TICKET: f64 = 0.6;
/// Added when a payment failed in the last 30 days.
pub const CHURN_FAILED_PAYMENT: f64 = 1.5;
/// Times ln(seats): larger teams stay.
pub const CHURN_SEATS: f64 = -0.5;
/// Added on the starter plan (pro adds nothing).
pub const CHURN_STARTER: f64 = 0.7;
/// Added on the enterprise plan: contracts.
pub const CHURN_ENTERPRISE: f64 = -1.0;

/// The true daily hazard of a paying customer cancelling their
/// subscription: `σ(η)` with η = [`CHURN_BASE`]
/// + [`CHURN_PER_IDLE_DAY`] · min(days since login, 30)
/// + [`CHURN_ENGAGEMENT`] · ln E + [`CHURN_PER_TICKET`] · min(tickets, 3)
/// + [`CHURN_FAILED_PAYMENT`] · [a failed payment] + [`CHURN_SEATS`] ·
///   ln(seats) + the plan's term ([`CHURN_STARTER`], pro 0,
///   [`CHURN_ENTERPRISE`]). A trial has no subscription to cancel: 0.
pub fn true_churn_hazard(signals: &ChurnSignals) -> f64 {
    let plan = match signals.plan {
        Plan::Trial => return 0.0,
        Plan::Starter => CHURN_STARTER,
        Plan::Pro => 0.0,
        Plan::Enterprise => CHURN_ENTERPRISE,
    };
    let idle = signals.days_since_login.clamp(0.0, CHURN_LAPSE_CAP_DAYS);
    let z = CHURN_BASE
        + CHURN_PER_IDLE_DAY * idle
        + CHURN_ENGAGEMENT * signals.engagement.max(1e-3).ln()
        + CHURN_PER_TICKET * f64::from(signals.tickets_30d.min(3))
        + if signals.failed_payments_30d > 0 {
            CHURN_FAILED_PAYMENT
        } else {
            0.0
        }
        + CHURN_SEATS * ln(signals.seats)
        + plan;
    sigmoid(z)
}

/// The send-time effect on the log-odds of opening an outbound message
/// sent `hours` local hours from the middle of the customer's preferred
/// hour: [`SEND_TIME_FLOOR`] + [`SEND_TIME_PEAK`] · exp(−hours² / (2 ·
/// [`SEND_TIME_WIDTH_HOURS`]²)).
pub fn send_time_shift(hours: f64) -> f64 {
    let width = SEND_TIME_WIDTH_HOURS;
    SEND_TIME_FLOOR + SEND_TIME_PEAK * (-hours * hours / (2.0 * width * width)).exp()
}

/// Whether messages on `channel` reach the customer outside the product
/// (email, push, SMS: [`OUTBOUND_CHANNELS`]).
pub fn is_outbound(channel: &str) -> bool {
    OUTBOUND_CHANNELS.contains(&channel)
}

/// The log-odds of `p` in (0, 1).
fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// The channel's baseline log-odds of a conversion.
fn channel_base(channel: &str) -> f64 {
    match channel {
        "in_app" => -2.4,
        "content" => -3.0,
        "email" => -3.2,
        "push" => -2.8,
        "sms" => -2.2,
        "task" => -1.0,
        _ => -3.0,
    }
}

/// The chance that a served action on `channel` is seen at all, clicks
/// aside: in-product messages and CSM tasks are, an email is opened less
/// than half the time.
fn channel_seen(channel: &str) -> f64 {
    match channel {
        "in_app" | "content" | "task" => 1.0,
        "sms" => 0.95,
        "push" => 0.7,
        "email" => 0.45,
        _ => 0.8,
    }
}

/// `ln(x)` of a count of at least 1.
fn ln(count: u32) -> f64 {
    f64::from(count.max(1)).ln()
}

impl Customer {
    /// The true log-odds that the customer converts on `action`, served in
    /// `context` at `now` (ms).
    pub fn true_logit(&self, action: ActionRef<'_>, context: Context, now: i64) -> f64 {
        let traits = &self.traits;
        let state = &self.state;
        let plan = state.plan;
        let trial = plan == Plan::Trial;
        let tenure = self.tenure_days(now);
        let lapsed = self.lapsed(now);
        let engagement = traits.engagement.ln();
        let intent = traits.intent;
        let mut z = channel_base(action.channel) + traits.responsiveness + 0.3 * engagement;
        if context.mobile {
            z += match action.channel {
                "in_app" => -0.4,
                "content" => -0.3,
                "push" => 0.5,
                _ => 0.0,
            };
        }
        if action.channel != "task" {
            z += match plan {
                Plan::Trial => 0.2,
                Plan::Enterprise => -0.4,
                Plan::Starter | Plan::Pro => 0.0,
            };
        }
        z += match (context.page, action.category) {
            (Page::Docs, "education") => 1.0,
            (Page::Billing, "upsell") => 0.8,
            (Page::Billing, "billing") => 0.6,
            (Page::Integrations, "activation") => 0.8,
            _ => 0.0,
        };
        let onboarding = if tenure <= 3.0 {
            1.0
        } else if tenure <= 14.0 {
            0.3
        } else {
            -1.0
        } + if trial { 0.4 } else { 0.0 };
        z += match (action.id, action.category) {
            ("connect_first_integration", _) => -1.5 + 1.5 * engagement,
            ("create_first_report", _) => {
                if state.integration {
                    1.0
                } else {
                    -1.2
                }
            }
            ("invite_teammates", _) => -0.8 + 0.45 * ln(state.seats),
            (_, "activation") => -0.5 + 0.8 * engagement,
            ("upgrade_to_pro_banner", _) => {
                -5.0 + 7.0 * intent
                    + match plan {
                        Plan::Trial => 0.3,
                        Plan::Starter => 0.5,
                        Plan::Pro | Plan::Enterprise => -2.0,
                    }
            }
            ("trial_discount_email", _) => -0.5 + 2.5 * intent,
            ("seat_limit_upgrade", _) => 1.2 + 0.3 * ln(state.seats),
            ("csm_expansion_call", _) => 0.5 + 0.3 * ln(state.seats),
            (_, "upsell") => -1.5 + 3.0 * intent,
            (_, "onboarding") => onboarding,
            ("template_gallery", _) => {
                if state.integration {
                    0.4
                } else {
                    -0.6
                }
            }
            ("guide_getting_started", _) => {
                if tenure <= 7.0 {
                    0.8
                } else {
                    -0.6
                }
            }
            ("roi_case_study", _) => -0.5 + 2.0 * intent,
            ("webinar_advanced_dashboards", _) => 0.3,
            ("tips_newsletter_email", _) => -0.3,
            (_, "billing") => 2.2,
            ("report_ready_push", _) => {
                if state.integration {
                    0.6
                } else {
                    -0.5
                }
            }
            ("csm_rescue_call", _) => 0.8 + if lapsed { 0.6 } else { 0.0 },
            ("csm_health_review", _) => 0.2,
            (_, "retention") => 0.3,
            (_, "winback") => -0.6 + if lapsed { 0.8 } else { 0.0 },
            _ => 0.0,
        };
        if state.converted.contains(action.id) {
            z -= REPEAT_PENALTY;
        }
        z
    }

    /// The customer's true response probabilities to `action` served in
    /// `context` at `now` (ms). An email, push or SMS is sent at `now`:
    /// the chance that it is seen (opened) moves with the send time (see
    /// [`Self::open_shift`]), and clicks and conversions, which need the
    /// open, move in proportion.
    pub fn respond(&self, action: ActionRef<'_>, context: Context, now: i64) -> Response {
        let z = self.true_logit(action, context, now);
        let conversion = sigmoid(z);
        let click = sigmoid(z + CLICK_LIFT);
        let seen = click + (1.0 - click) * channel_seen(action.channel);
        if !is_outbound(action.channel) {
            return Response {
                seen,
                click,
                conversion,
            };
        }
        let opened = sigmoid(logit(seen) + self.open_shift(now));
        let ratio = opened / seen;
        Response {
            seen: opened,
            click: click * ratio,
            conversion: conversion * ratio,
        }
    }

    /// The send-time effect on the log-odds of opening an outbound message
    /// sent at `sent_at` (ms): [`send_time_shift`] of the local hours
    /// between `sent_at` and the middle of the customer's preferred hour.
    pub fn open_shift(&self, sent_at: i64) -> f64 {
        send_time_shift(self.hours_from_preferred(sent_at))
    }

    /// The customer's true response to an outbound `action` (email, push,
    /// SMS) sent at `sent_at` (ms), away from the product (the context of
    /// a desktop home page: no device or page term): `seen` is the chance
    /// that it is opened, `click` that it is clicked, `conversion` that it
    /// converts. The same as [`Self::respond`] with that context.
    pub fn respond_to_send(&self, action: ActionRef<'_>, sent_at: i64) -> Response {
        let away = Context {
            mobile: false,
            page: Page::Home,
        };
        self.respond(action, away, sent_at)
    }

    /// What happens to `action` sent to the customer, given their
    /// `response` to it (e.g. [`Self::respond_to_send`]): opened (the
    /// impression), clicked and converted, each with exactly its
    /// probability, as [`Self::outcome`] samples them, times after the
    /// send. The draws are keyed by the customer, `send` (any number the
    /// caller gives a send: a day, a campaign) and the action, not by the
    /// instant: the same send at another time of day gets the same draws,
    /// a paired comparison; give each arm its own `send` for independent
    /// samples.
    pub fn send_outcome(&self, send: u64, action: ActionRef<'_>, response: Response) -> Outcome {
        let draws = self.draws(SEND, &[send, key(action.id)]);
        sample(draws, action, response)
    }

    /// What happens to `action`, served at `rank` in `placement` in
    /// `round`, given the customer's `response` to it: seen with its
    /// probability (after 1 s), clicked given seen (2–30 s later),
    /// converted given clicked (10–120 s later), so that each happens with
    /// exactly its probability in `response`; an in-app message seen and
    /// not clicked is dismissed with probability [`DISMISS_RATE`] (3–20 s
    /// later). The draws are keyed by the customer, round, placement, rank
    /// and action: the same action served in the same place gets the same
    /// outcome in every run, whatever the server served to anyone else.
    pub fn outcome(
        &self,
        round: u32,
        placement: &str,
        rank: u32,
        action: ActionRef<'_>,
        response: Response,
    ) -> Outcome {
        let draws = self.draws(
            OUTCOME,
            &[
                u64::from(round),
                key(placement),
                u64::from(rank),
                key(action.id),
            ],
        );
        sample(draws, action, response)
    }
}

/// The outcome of `action` given `response`, from `draws`: see
/// [`Customer::outcome`].
fn sample(mut draws: Draws, action: ActionRef<'_>, response: Response) -> Outcome {
    let (seen, click, convert, dismiss) = (
        draws.uniform(),
        draws.uniform(),
        draws.uniform(),
        draws.uniform(),
    );
    let mut outcome = Outcome::default();
    if seen >= response.seen {
        return outcome;
    }
    let shown = 1_000;
    outcome.impression = Some(shown);
    if click < response.click / response.seen {
        let clicked = shown + delay(&mut draws, 2, 30);
        outcome.click = Some(clicked);
        if convert < response.conversion / response.click {
            outcome.conversion = Some(clicked + delay(&mut draws, 10, 120));
        }
    } else if action.channel == "in_app" && dismiss < DISMISS_RATE {
        outcome.dismiss = Some(shown + delay(&mut draws, 3, 20));
    }
    outcome
}

/// A delay of `low` to `high` seconds, in ms.
fn delay(draws: &mut Draws, low: i64, high: i64) -> i64 {
    1_000 * low + draws.below((1_000 * (high - low)) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_models::time::DAY_MS;

    const START: i64 = 1_795_435_200_000;
    const HOME: Context = Context {
        mobile: false,
        page: Page::Home,
    };

    fn action<'a>(id: &'a str, channel: &'a str, category: &'a str) -> ActionRef<'a> {
        ActionRef {
            id,
            channel,
            category,
        }
    }

    const ACTIONS: [(&str, &str, &str); 23] = [
        ("welcome_tour", "in_app", "onboarding"),
        ("connect_first_integration", "in_app", "activation"),
        ("create_first_report", "in_app", "activation"),
        ("invite_teammates", "in_app", "activation"),
        ("upgrade_to_pro_banner", "in_app", "upsell"),
        ("template_gallery", "in_app", "education"),
        ("seat_limit_upgrade", "in_app", "upsell"),
        ("payment_failed_banner", "in_app", "billing"),
        ("guide_getting_started", "content", "education"),
        ("roi_case_study", "content", "education"),
        ("webinar_advanced_dashboards", "content", "education"),
        ("trial_checkin_email", "email", "onboarding"),
        ("trial_discount_email", "email", "upsell"),
        ("payment_failed_email", "email", "billing"),
        ("winback_email", "email", "winback"),
        ("tips_newsletter_email", "email", "education"),
        ("report_ready_push", "push", "retention"),
        ("trial_nudge_push", "push", "onboarding"),
        ("payment_failed_sms", "sms", "billing"),
        ("csm_rescue_call", "task", "retention"),
        ("csm_expansion_call", "task", "upsell"),
        ("csm_health_review", "task", "retention"),
        ("a_new_action", "carrier_pigeon", "novelty"),
    ];

    fn customers(n: u64) -> Vec<Customer> {
        (0..n)
            .map(|index| {
                let mut customer = Customer::new(11, "t", index, START);
                customer.history();
                customer
            })
            .collect()
    }

    #[test]
    fn probabilities_are_ordered_and_in_range() {
        for customer in customers(300) {
            for (id, channel, category) in ACTIONS {
                for mobile in [false, true] {
                    for page in [Page::Home, Page::Docs, Page::Billing, Page::Integrations] {
                        let r = customer.respond(
                            action(id, channel, category),
                            Context { mobile, page },
                            START + DAY_MS,
                        );
                        assert!(
                            0.0 < r.conversion
                                && r.conversion < r.click
                                && r.click <= r.seen
                                && r.seen <= 1.0,
                            "{id}: {r:?}"
                        );
                    }
                }
            }
        }
    }

    /// The mean true conversion probability of `id` over `customers` that
    /// pass `filter`.
    fn mean(
        customers: &[Customer],
        id: &str,
        channel: &str,
        category: &str,
        filter: impl Fn(&Customer) -> bool,
    ) -> f64 {
        let chosen: Vec<f64> = customers
            .iter()
            .filter(|c| filter(c))
            .map(|c| {
                c.respond(action(id, channel, category), HOME, START)
                    .conversion
            })
            .collect();
        assert!(chosen.len() >= 20, "{id}: only {} customers", chosen.len());
        chosen.iter().sum::<f64>() / chosen.len() as f64
    }

    #[test]
    fn the_documented_effects_hold_on_average() {
        let all = customers(3_000);
        let upgrade = |f: &dyn Fn(&Customer) -> bool| {
            mean(&all, "upgrade_to_pro_banner", "in_app", "upsell", f)
        };
        // Intent sells upgrades; paying Pro customers do not buy Pro again.
        assert!(
            upgrade(&|c: &Customer| c.traits.intent > 0.5)
                > 3.0 * upgrade(&|c: &Customer| c.traits.intent < 0.1)
        );
        assert!(
            upgrade(&|c: &Customer| c.state.plan == Plan::Starter)
                > 3.0 * upgrade(&|c: &Customer| c.state.plan == Plan::Pro)
        );
        // Activation steps convert engaged customers, not idle ones.
        let connect = |f: &dyn Fn(&Customer) -> bool| {
            mean(&all, "connect_first_integration", "in_app", "activation", f)
        };
        assert!(
            connect(&|c: &Customer| c.traits.engagement > 1.5)
                > 2.0 * connect(&|c: &Customer| c.traits.engagement < 0.7)
        );
        // A first report needs data.
        let report = |f: &dyn Fn(&Customer) -> bool| {
            mean(&all, "create_first_report", "in_app", "activation", f)
        };
        assert!(
            report(&|c: &Customer| c.state.integration)
                > 5.0 * report(&|c: &Customer| !c.state.integration)
        );
        // The tour is for the first days.
        let tour =
            |f: &dyn Fn(&Customer) -> bool| mean(&all, "welcome_tour", "in_app", "onboarding", f);
        assert!(
            tour(&|c: &Customer| c.traits.tenure_days < 3.0)
                > 4.0 * tour(&|c: &Customer| c.traits.tenure_days > 30.0)
        );
        // Bigger teams invite.
        let invite = |f: &dyn Fn(&Customer) -> bool| {
            mean(&all, "invite_teammates", "in_app", "activation", f)
        };
        assert!(
            invite(&|c: &Customer| c.state.seats >= 20)
                > 2.0 * invite(&|c: &Customer| c.state.seats <= 2)
        );
        // Billing fixes convert best of all.
        let billing = mean(&all, "payment_failed_banner", "in_app", "billing", |_| true);
        let tips = mean(&all, "tips_newsletter_email", "email", "education", |_| {
            true
        });
        assert!(billing > 0.2 && tips < 0.05, "{billing} {tips}");
    }

    #[test]
    fn context_and_history_move_the_logit_as_documented() {
        let customer = &customers(1)[0];
        let logit = |id, channel, category, context| {
            customer.true_logit(action(id, channel, category), context, START)
        };
        let mobile = Context {
            mobile: true,
            page: Page::Home,
        };
        let docs = Context {
            mobile: false,
            page: Page::Docs,
        };
        let tour = ("welcome_tour", "in_app", "onboarding");
        assert!(
            (logit(tour.0, tour.1, tour.2, mobile) - logit(tour.0, tour.1, tour.2, HOME) + 0.4)
                .abs()
                < 1e-12
        );
        let guide = ("guide_getting_started", "content", "education");
        assert!(
            (logit(guide.0, guide.1, guide.2, docs) - logit(guide.0, guide.1, guide.2, HOME) - 1.0)
                .abs()
                < 1e-12
        );
        let mut converted = customer.clone();
        converted.state.converted.insert("welcome_tour".to_owned());
        let before = customer.true_logit(action(tour.0, tour.1, tour.2), HOME, START);
        let after = converted.true_logit(action(tour.0, tour.1, tour.2), HOME, START);
        assert!((before - after - REPEAT_PENALTY).abs() < 1e-12);
    }

    #[test]
    fn the_send_time_truth_peaks_at_the_preferred_hour() {
        let all = customers(2_000);
        let email = action("tips_newsletter_email", "email", "education");
        let (mut at_best, mut at_ten) = ([0.0; 2], [0.0; 2]);
        for customer in &all {
            let zone = customer.timezone();
            let peak = f64::from(customer.preferred_hour()) + 0.5;
            let best = zone.next_at(START, peak);
            let open = |at| customer.respond_to_send(email, at);
            // Every other hour of the day opens less, and the effect
            // decays with the distance.
            let mut last = open(best).seen;
            for hours in 1..=12 {
                let later = open(best + i64::from(hours) * nudge_models::time::HOUR_MS);
                assert!(later.seen < last, "{hours} h later");
                last = later.seen;
            }
            let response = open(best);
            let base = customer.respond(email, HOME, best);
            assert_eq!(response, base);
            // The documented shift: the full peak at the preferred hour,
            // nothing of it 12 hours away.
            let far_shift = (-144.0 / (2.0 * SEND_TIME_WIDTH_HOURS.powi(2))).exp();
            assert!(
                (logit(response.seen)
                    - logit(open(best + 12 * 3_600_000).seen)
                    - SEND_TIME_PEAK * (1.0 - far_shift))
                    .abs()
                    < 1e-9,
                "{response:?}"
            );
            // A click needs the open: their ratio does not move.
            let far = open(best + 6 * 3_600_000);
            assert!((response.click / response.seen - far.click / far.seen).abs() < 1e-12);
            at_best[0] += response.seen;
            at_best[1] += response.click;
            let ten = open(zone.next_at(START, 10.0));
            at_ten[0] += ten.seen;
            at_ten[1] += ten.click;
            // In-product channels do not care about the hour.
            let gallery = action("template_gallery", "in_app", "education");
            assert_eq!(
                customer.respond(gallery, HOME, best),
                customer.respond(gallery, HOME, best + 6 * 3_600_000)
            );
        }
        // Sending at each customer's best hour instead of 10:00 local.
        let open_lift = at_best[0] / at_ten[0] - 1.0;
        let click_lift = at_best[1] / at_ten[1] - 1.0;
        assert!((0.2..0.4).contains(&open_lift), "{open_lift}");
        assert!((0.2..0.4).contains(&click_lift), "{click_lift}");
    }

    #[test]
    fn sends_are_sampled_with_their_probabilities() {
        let all = customers(500);
        let email = action("trial_discount_email", "email", "upsell");
        let (mut expected, mut counts) = ([0.0; 3], [0_u32; 3]);
        for send in 0..8_u32 {
            for customer in &all {
                let at = customer.timezone().next_at(START, 10.0 + f64::from(send));
                let response = customer.respond_to_send(email, at);
                let outcome = customer.send_outcome(u64::from(send), email, response);
                assert_eq!(
                    outcome,
                    customer.send_outcome(u64::from(send), email, response)
                );
                assert!(outcome.dismiss.is_none());
                expected[0] += response.seen;
                expected[1] += response.click;
                expected[2] += response.conversion;
                counts[0] += u32::from(outcome.impression.is_some());
                counts[1] += u32::from(outcome.click.is_some());
                counts[2] += u32::from(outcome.conversion.is_some());
            }
        }
        for (k, expected) in expected.iter().enumerate() {
            let observed = f64::from(counts[k]);
            assert!(
                (observed - expected).abs() < 4.0 * expected.sqrt() + 5.0,
                "{k}: {observed} vs {expected}"
            );
        }
    }

    #[test]
    fn the_churn_hazard_follows_its_formula() {
        let signals = ChurnSignals {
            plan: Plan::Starter,
            seats: 4,
            engagement: 1.0,
            days_since_login: 2.0,
            tickets_30d: 1,
            failed_payments_30d: 0,
        };
        let z = CHURN_BASE
            + 2.0 * CHURN_PER_IDLE_DAY
            + CHURN_PER_TICKET
            + CHURN_SEATS * 4_f64.ln()
            + CHURN_STARTER;
        assert!((true_churn_hazard(&signals) - sigmoid(z)).abs() < 1e-15);
        let hazard = |change: &dyn Fn(&mut ChurnSignals)| {
            let mut changed = signals;
            change(&mut changed);
            true_churn_hazard(&changed)
        };
        let base = true_churn_hazard(&signals);
        assert!(hazard(&|s| s.days_since_login = 20.0) > 2.5 * base);
        assert_eq!(
            hazard(&|s| s.days_since_login = 30.0),
            hazard(&|s| s.days_since_login = 300.0)
        );
        assert!(hazard(&|s| s.failed_payments_30d = 1) > 3.0 * base);
        assert!(hazard(&|s| s.tickets_30d = 3) > hazard(&|s| s.tickets_30d = 2));
        assert_eq!(
            hazard(&|s| s.tickets_30d = 3),
            hazard(&|s| s.tickets_30d = 9)
        );
        assert!(hazard(&|s| s.engagement = 3.0) < base);
        assert!(hazard(&|s| s.seats = 100) < base);
        assert!(hazard(&|s| s.plan = Plan::Enterprise) < hazard(&|s| s.plan = Plan::Pro));
        assert_eq!(hazard(&|s| s.plan = Plan::Trial), 0.0);
    }

    #[test]
    fn outcomes_are_sampled_with_the_true_probabilities() {
        let all = customers(400);
        let tour = action("welcome_tour", "in_app", "onboarding");
        let email = action("tips_newsletter_email", "email", "education");
        for served in [tour, email] {
            let (mut expected, mut counts) = ([0.0; 3], [0_u32; 4]);
            for round in 0..10 {
                for customer in &all {
                    let response = customer.respond(served, HOME, START);
                    let outcome = customer.outcome(round, "p", 1, served, response);
                    expected[0] += response.seen;
                    expected[1] += response.click;
                    expected[2] += response.conversion;
                    counts[0] += u32::from(outcome.impression.is_some());
                    counts[1] += u32::from(outcome.click.is_some());
                    counts[2] += u32::from(outcome.conversion.is_some());
                    counts[3] += u32::from(outcome.dismiss.is_some());
                    if let Some(click) = outcome.click {
                        assert!(outcome.impression.is_some_and(|seen| seen < click));
                        assert!(outcome.dismiss.is_none());
                    }
                    if let Some(conversion) = outcome.conversion {
                        assert!(outcome.click.is_some_and(|click| click < conversion));
                        assert!(conversion <= 151_000, "within the future skew");
                    }
                    assert_eq!(
                        outcome,
                        customer.outcome(round, "p", 1, served, response),
                        "the same draws"
                    );
                }
            }
            for (k, expected) in expected.iter().enumerate() {
                let observed = f64::from(counts[k]);
                // Within 4 binomial standard deviations (n = 4,000).
                assert!(
                    (observed - expected).abs() < 4.0 * expected.sqrt() + 5.0,
                    "{}: {k}: {observed} vs {expected}",
                    served.id
                );
            }
            if served.channel == "email" {
                assert_eq!(counts[3], 0, "only in-app messages are dismissed");
            } else {
                assert!(counts[3] > 0);
            }
        }
    }
}
