//! The world of `nudge simulate`: synthetic customers, their behavioural
//! events, and a known ground truth of how they respond to each action,
//! when they open what is sent to them, and when they cancel.
//! Pure and deterministic: no I/O, no async, no wire types. The driver
//! (`cli/simulate.rs`) sends what this module produces to a running server
//! and reports what it served against the truth.
//!
//! - [`random`]: keyed SplitMix64 draws; every draw is keyed by the seed,
//!   the customer and its purpose, so a customer never depends on another.
//! - [`clock`]: the customers' timezones (a few IANA zones, their
//!   daylight-saving rules written out) and local hours.
//! - [`world`]: [`Customer`]s — traits, a 30-day event history, a day
//!   outside the product and a session per round, the request context,
//!   what a conversion changes, cancellations.
//! - [`truth`]: the true click and conversion probabilities of any action
//!   for a customer in a context (of an email, push or SMS at the instant
//!   it is sent), outcomes sampled from them, and the true churn hazard.
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
//! | timezone | America/New_York 30 %, America/Los_Angeles 15 %, Europe/Berlin 25 %, Asia/Kolkata 15 %, UTC 15 % | `identify` attribute `timezone` (the IANA name) |
//! | preferred hour h | local; morning 45 % (7, 8 or 9), lunch 20 % (12 or 13), evening 35 % (19, 20 or 21), uniform within each | the local hours of usage events and email opens |
//!
//! The history covers the 30 days before the first round (from signup if
//! later) and ends an hour before it; daily rates: `login` 0.5·E (×1.3 in a
//! trial), `page_view` E, `pricing_page_view` I, `feature_activated`
//! 0.25·E in a trial else 0.08·E, `report_created` 0.25·E with a data
//! source else 0.02, `invite_sent` 0.02·ln(seats + 1), `email_opened`
//! σ(R)/2, `support_ticket_opened` 0.015 (0.06 when lapsed). A paying
//! customer's data source was connected at signup (at most 300 days ago).
//! Every `identify` carries `plan`, `seats`, `signup_at` and `timezone`.
//!
//! Usage events (`login`, `page_view`, `pricing_page_view`,
//! `feature_activated`, `report_created`, `invite_sent`) and email opens
//! happen at the customer's time of day: each keeps the local day its
//! uniform draw gave and takes a local time uniform within an hour of the
//! middle of the preferred hour (h:30 ± 1 h, so in hours h − 1 to h + 1)
//! with probability 0.7, else uniform over 07:00–23:00 (moved a day if
//! that leaves its span, left where it was if no day fits). So about three
//! quarters of them fall within an hour of h, and a customer with a dozen
//! opens shows their hour; one who opens little (low R) leaves a thin
//! trace. Support tickets, billing and seat limits keep uniform times.
//!
//! Each round is a day. Before its decisions the customer's day outside
//! the product is sent, whether or not they visit: over the time since the
//! previous round (at most a day; the first round's is the hour since the
//! history), `email_opened` at σ(R)/2 a day at their time of day,
//! `support_ticket_opened` at 0.015 a day (0.06 when lapsed) and, for a
//! paying customer, `payment_failed` at 0.005 a day; then the churn draw
//! (below). Then a customer visits with probability 0.4 + 0.3·E (at most
//! 0.95; 0.15 when they have not logged in for 14 days; never once
//! cancelled). A visit is a session of events in the 10 minutes before the
//! decisions (a `login`, 1 + Poisson(1.5·E) page views, Poisson(I) pricing
//! page views, …; no email opens, which happen at the customer's hour),
//! then one decision per placement, each with a context: `device` (mobile
//! with the customer's phone share) and `page` (`billing` with probability
//! 0.05 + 0.25·I, `integrations` 0.12 without a data source else 0.02,
//! `docs` 0.1, else `home`).
//!
//! # Churn
//!
//! A paying customer (starter, pro, enterprise; a trial has no
//! subscription to cancel, and one that upgrades has a hazard from then
//! on) cancels on a given day with the true hazard `σ(η)`
//! ([`truth::true_churn_hazard`]), η the sum of:
//!
//! | term | value | the service sees it through |
//! |---|---|---|
//! | intercept | −6.6 | |
//! | days since the last login, up to 30 | +0.06 a day | `days_since(login)` |
//! | engagement | −1.8·ln E | `count(login, 7d)`, `count(page_view, 30d)`, … |
//! | support tickets in the last 30 days, up to 3 | +0.6 each | `count(support_ticket_opened, 30d)` |
//! | a failed payment in the last 30 days | +1.5 | `count(payment_failed, 30d)` |
//! | seats | −0.5·ln(seats) | `attr(seats)` |
//! | plan | starter +0.7, pro 0, enterprise −1.0 | `is(plan, …)` |
//!
//! (e.g. a starter account of 3 seats, E = 1, that logged in yesterday:
//! 0.17 % a day; the same account idle for 30 days with a failed payment:
//! 4.1 % a day). In the history the draw is made day by day from the
//! window's start, with the hazard as of the day's start (from the
//! history's events before it; before the window's first login the last
//! login is taken to be at the window's start, or when a customer who
//! lapsed before it stopped coming), the cancellation at a uniform instant
//! of the first day that draws it. In each round it is made once, with the
//! hazard as of the start of the round's day (a round counts as a day,
//! however close together the driver's rounds are). A cancellation sends
//! `subscription_cancelled` and an `identify` with plan `cancelled`; from
//! then on the customer sends no usage events, support tickets, failed
//! payments or seat limits, never visits (so is decided for no more) and
//! does not cancel again, but still opens emails. About 8 % of paying
//! customers cancel in the history's 30 days and 6–9 % in each 30 days of
//! rounds after; the true hazard ranks who cancels in the next 30 days at
//! an AUC of about 0.8, and so does the hazard with E read from page views
//! (a unit test checks both).
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
//! through `days_since(login)`, device and page through the context, the
//! best hour to send through the local hours of past opens and logins. Most
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
//! is dismissed with probability 0.08. A bench's own sends are sampled the
//! same way ([`Customer::send_outcome`]), keyed by the customer, a send
//! number and the action.
//!
//! An email, push or SMS is sent at the instant of its decision (for a
//! bench, at any instant: [`Customer::respond_to_send`]). The chance that
//! it is seen — opened — is `σ(logit(seen) + s(Δ))`, with `seen` as above,
//! Δ the local hours between the send and the middle of the customer's
//! preferred hour (around the clock, 0 to 12) and
//! `s(Δ) = −0.25 + 0.9·exp(−Δ² / (2·1.5²))` ([`truth::send_time_shift`]):
//! +0.65 on the log-odds at h:30, +0.12 two hours away, −0.25 far from
//! it. Clicks and conversions need the open, so they move in the same
//! ratio. Sending each customer's email at h:30 rather than at 10:00 local
//! lifts opens and clicks by about 30 % over the population (a unit test
//! holds it within 20–40 %); quiet hours may forbid the best hour
//! (21:30 for an evening customer: the demo's email is quiet from 21:00).
//!
//! A conversion changes the account: `connect_first_integration` connects a
//! data source (`integration_connected`), `create_first_report`,
//! `invite_teammates` and `welcome_tour` send `report_created`,
//! `invite_sent` and `feature_activated`, an upgrade (`upgrade_to_pro_banner`,
//! `trial_discount_email`) moves a trial or starter customer to pro
//! (`subscription_started` and an `identify`), added seats
//! (`seat_limit_upgrade`, `csm_expansion_call`) add 5 (an `identify`).

pub mod clock;
pub mod random;
pub mod summary;
pub mod truth;
pub mod world;

pub use clock::Zone;
pub use summary::{FirstSlot, SimDecision, SimServed, Summary, Tally};
pub use truth::{ActionRef, ChurnSignals, Outcome, Response, true_churn_hazard};
pub use world::{Context, Customer, Page, Plan, SimEvent, Traits};
