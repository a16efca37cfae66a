//! The world of `nudge simulate`: synthetic customers, their behavioural
//! events, and a known ground truth of how they respond to each action.
//! Pure and deterministic: no I/O, no async, no wire types. The driver
//! (`cli/simulate.rs`) sends what this module produces to a running server
//! and reports what it served against the truth.
//!
//! - [`random`]: keyed SplitMix64 draws; every draw is keyed by the seed,
//!   the customer and its purpose, so a customer never depends on another.
//! - [`world`]: [`Customer`]s — traits, a 30-day event history, a session
//!   per round, the request context, what a conversion changes.
//! - [`truth`]: the true click and conversion probabilities of any action
//!   for a customer in a context, and outcomes sampled from them.
//! - [`summary`]: the tallies a run reports.
//!
//! # The customers
//!
//! Customer `i` of seed `s` is drawn from `(s, i)` alone:
//!
//! | trait | distribution | how the service sees it |
//! |---|---|---|
//! | plan | trial 40 %, starter 30 %, pro 20 %, enterprise 10 % | `identify` attribute `plan` |
//! | tenure | trial 0–14 days, starter 20–400, pro 30–700, enterprise 60–1000 | `signup_at` (RFC 3339) |
//! | seats | log-uniform: trial 1–5, starter 1–10, pro 5–50, enterprise 20–200 | attribute `seats` |
//! | engagement E | log-normal, median 1 (σ 0.5), within [0.2, 4] | rates of `login`, `page_view`, `feature_activated`, `report_created`; visits |
//! | intent I | U^1.5 × (trial 1, starter 0.8, pro 0.3, enterprise 0.1) | `pricing_page_view` (I a day), the billing page |
//! | responsiveness R | normal, sd 0.6 (log-odds) | `email_opened`, and clicks: `click_rate(in_app)` |
//! | lapsed | 20 % of paying customers (8–45 days), 15 % of trials older than 3 days (2–10 days) | no usage events in those days: `days_since(login)` |
//! | data source | paying 95 %; trials 35 % + 15 %·min(E, 2) | `integration_connected` |
//! | failed payment | 6 % of paying customers, in the last 5 days | `payment_failed` |
//! | seat limit | 12 % of paying customers, 1–3 times in the last week | `seat_limit_reached` |
//! | phone | a share of sessions, U[0, 0.6) | context `device` |
//!
//! The history covers the 30 days before the first round (from signup if
//! later) and ends an hour before it; daily rates: `login` 0.5·E (×1.3 in a
//! trial), `page_view` E, `pricing_page_view` I, `feature_activated`
//! 0.25·E in a trial else 0.08·E, `report_created` 0.25·E with a data
//! source else 0.02, `invite_sent` 0.02·ln(seats + 1), `email_opened`
//! σ(R)/2, `support_ticket_opened` 0.015 (0.06 when lapsed). A paying
//! customer's data source was connected at signup (at most 300 days ago).
//!
//! In each round a customer visits with probability 0.4 + 0.3·E (at most
//! 0.95; 0.15 when they have not logged in for 14 days). A visit is a
//! session of events in the 10 minutes before the decisions (a `login`,
//! 1 + Poisson(1.5·E) page views, Poisson(I) pricing page views, …),
//! then one decision per placement, each with a context: `device` (mobile
//! with the customer's phone share) and `page` (`billing` with probability
//! 0.05 + 0.25·I, `integrations` 0.12 without a data source else 0.02,
//! `docs` 0.1, else `home`).
//!
//! # The truth
//!
//! The true probability that a customer converts on a served action is
//! `σ(z)`, with `z` the sum of:
//!
//! - the channel: in_app −2.4, content −3.0, email −3.2, push −2.8,
//!   sms −2.2, task −1.0, any other −3.0;
//! - the customer: R + 0.3·ln E; trial +0.2, enterprise −0.4 (not on task);
//! - the device: on a phone in_app −0.4, content −0.3, push +0.5;
//! - the page: docs × education +1.0, billing × upsell +0.8,
//!   billing × billing +0.6, integrations × activation +0.8;
//! - the action (by id for the demo catalog's, else by category):
//!
//! | action | term | the hand-set starting model (`models/demo/handset-model.json`) says |
//! |---|---|---|
//! | `welcome_tour`, onboarding | +1.0 in the first 3 days, +0.3 to day 14, −1.0 after; +0.4 in a trial | about the same |
//! | `connect_first_integration` | −1.5 + 1.5·ln E: engaged customers connect, idle ones do not | +0.73 for *never* having activated a feature: the opposite |
//! | `create_first_report` | +1.0 with a data source, −1.2 without | −0.5 per data source connected: the opposite |
//! | `invite_teammates` | −0.8 + 0.45·ln(seats) | nothing about team size |
//! | other activation | −0.5 + 0.8·ln E | |
//! | `upgrade_to_pro_banner` | −5 + 7·I; trial +0.3, starter +0.5, pro or enterprise −2: worth showing only to those who mean to buy | −0.8 for upsell, +0.35 trial, +0.25 starter, +0.45 per pricing view a week: it sells to everyone on a trial or starter plan |
//! | `trial_discount_email` | −0.5 + 2.5·I | |
//! | `seat_limit_upgrade` | +1.2 + 0.3·ln(seats) | +0.7 per seat limit hit |
//! | `csm_expansion_call` | +0.5 + 0.3·ln(seats) | |
//! | other upsell | −1.5 + 3·I | |
//! | `template_gallery` | +0.4 with a data source, −0.6 without | +0.15·log reports |
//! | `guide_getting_started` | +0.8 in the first week, −0.6 after | |
//! | `roi_case_study` | −0.5 + 2·I | |
//! | `webinar_advanced_dashboards` | +0.3 | |
//! | `tips_newsletter_email` | −0.3 | |
//! | billing | +2.2: people fix a declined card | +0.8 |
//! | `report_ready_push` | +0.6 with a data source, −0.5 without | |
//! | `csm_rescue_call` | +0.8, +0.6 more when lapsed | |
//! | `csm_health_review` | +0.2 | |
//! | other retention | +0.3 | |
//! | winback | −0.6, +0.8 when lapsed | |
//! | any other category | 0 | |
//!
//! - and −2 for an action the customer already converted on.
//!
//! Tenure, lapse, plan, seats and the data source are read at the decision
//! (a conversion can change them, see below). Every term is visible to the
//! service through a feature it can compute: the plan, seats and tenure as
//! attributes, E through login, page-view and activation counts, I through
//! pricing page views, R through past clicks (`click_rate(in_app)`) and
//! email opens, the data source through `integration_connected`, lapse
//! through `days_since(login)`, device and page through the context. Most
//! of it is in the demo models' own feature specs, so
//! `nudge train --log --events` can learn it without `--feature`; seats
//! need `attr(seats)` terms.
//!
//! The click probability is `σ(z + 1.2)`; the chance of being seen is the
//! click probability plus the rest times the channel's reach (in_app,
//! content, task 1; sms 0.95; push 0.7; email 0.45). Outcomes are sampled
//! so each happens with exactly its probability: an impression 1 s after
//! the decision, a click 2–30 s after that, a conversion 10–120 s after
//! the click (so every outcome is at most 151 s after its decision, within
//! the server's 300 s future skew); an in-app message seen and not clicked
//! is dismissed with probability 0.08.
//!
//! A conversion changes the account: `connect_first_integration` connects a
//! data source (`integration_connected`), `create_first_report`,
//! `invite_teammates` and `welcome_tour` send `report_created`,
//! `invite_sent` and `feature_activated`, an upgrade (`upgrade_to_pro_banner`,
//! `trial_discount_email`) moves a trial or starter customer to pro
//! (`subscription_started` and an `identify`), added seats
//! (`seat_limit_upgrade`, `csm_expansion_call`) add 5 (an `identify`).

pub mod random;
pub mod summary;
pub mod truth;
pub mod world;

pub use summary::{FirstSlot, SimDecision, SimServed, Summary, Tally};
pub use truth::{ActionRef, Outcome, Response};
pub use world::{Context, Customer, Page, Plan, SimEvent, Traits};
