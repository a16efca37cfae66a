//! `nudge simulate`: drives the synthetic customers of [`crate::simulate`]
//! through a running server over gRPC — their event history
//! (`TrackStream`), then rounds: each customer's day outside the product
//! (`Track`: email opens, tickets, failed payments, cancellations), and
//! the visits: session events (`Track`), a
//! `Decide` per placement, and the sampled outcomes of what was served
//! (`ReportOutcome`: impressions, clicks, conversions, dismissals) — and
//! tallies what the server served against the world's ground truth.
//!
//! Time: the server keeps its own clock (the wall clock for `nudge serve`),
//! so the driver cannot move it. The history is stamped in the 30 days
//! before the first round, each visit's events in the minutes before its
//! decisions, outcomes a little after them (within the server's future
//! skew); rounds follow each other in real time, `--interval` apart. A
//! [`Pace`] says what "now" is and what happens between rounds: a test
//! drives a server on a manual clock by advancing it.
//!
//! Reproducibility: customers, their events, contexts and the outcome of
//! each served action are functions of the seed (and of the time the run
//! starts, which only shifts the timestamps). The server adds its own
//! randomness: exploration draws from a seed made of each decision's
//! random id, so a placement that explores may serve other actions in
//! another run, and from there the runs differ (an outcome is keyed by the
//! action served, so the same action in the same place still gets the
//! same outcome). Global budgets and overload fallbacks depend on the
//! order concurrent customers reach the server.
//!
//! A call the server sheds (RESOURCE_EXHAUSTED: its admission control, or
//! its Decide budget while the call was queued) is retried with backoff, as
//! the server asks; so are events and outcomes answered UNAVAILABLE (their
//! repeat changes nothing). What still fails is counted, with the first
//! message, and the run goes on.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nudge_models::catalog::Catalog;
use nudge_models::value::AttrValue;
use nudge_proto::v1::{
    self as proto, DecideRequest, DecideResponse, FilterReason, ReportOutcomeRequest,
    events_client::EventsClient,
};
use tokio::task::JoinSet;
use tonic::Code;

use super::ClientArgs;
use super::client::{self, Connection, Rpc};
use super::names::count_text;
use crate::simulate::summary::{ErrorKind, Errors};
use crate::simulate::{
    ActionRef, Context, Customer, FirstSlot, SimDecision, SimEvent, SimServed, Summary,
};

/// The placements simulated when none is given: the demo's in-product
/// ones, which have no quiet hours, so a run does not depend on the time
/// of day.
pub const DEFAULT_PLACEMENTS: [&str; 2] = ["home_banner", "onboarding_sidebar"];
/// Customers per `TrackStream` of the history.
const HISTORY_BATCH: usize = 20;
/// Most history streams at once (each is a long call).
const HISTORY_STREAMS: usize = 4;
/// Most customers in one run.
pub const MAX_CUSTOMERS: u64 = 1_000_000;

/// Arguments of `nudge simulate`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Each customer is drawn from the seed alone (plan, seats, tenure, engagement, buying intent, \
responsiveness, timezone, ...). Their 30-day event history is sent first; then, in each round (a \
day), each customer's day outside the product (email opens at their hour, support tickets, failed \
payments, a cancellation), and every customer who visits sends a session of events, gets a \
decision in each placement, and reports what happened to each served action, sampled from the \
world's true click and conversion probabilities. The summary gives, per placement and per model version, the observed conversion \
rate and the true expected reward: the mean true conversion probability of what was served.

Run it again with the same --seed and another --prefix to face another model with the very same \
customers and outcome draws (fresh customer ids, so no state carries over).")]
pub struct SimulateArgs {
    /// How many customers.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CUSTOMERS))]
    pub customers: u64,
    /// How many rounds of visits. Against a server on the wall clock the
    /// rounds follow each other at once (or --interval apart): cooldowns
    /// and caps see repeat visits minutes apart.
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub rounds: u32,
    /// The seed of the world: customers, events, contexts and outcomes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// A placement to decide in at each visit (repeatable) [default:
    /// home_banner and onboarding_sidebar].
    #[arg(long = "placement", value_name = "P")]
    pub placements: Vec<String>,
    /// Customers served at once.
    #[arg(long, value_name = "C", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1_024))]
    pub concurrency: u32,
    /// Seconds to wait between rounds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_pause)]
    pub interval: Duration,
    /// The customer ids' prefix: ids are PREFIX-00000, PREFIX-00001, …
    /// [default: sim<SEED>].
    #[arg(long, value_name = "ID")]
    pub prefix: Option<String>,
    /// The catalog the server runs, for the placements and the channel and
    /// category of actions that competed but were not served [default: the
    /// embedded demo catalog].
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// A pause between rounds: a number of seconds from 0 to a day.
fn parse_pause(arg: &str) -> Result<Duration, String> {
    let seconds: f64 = arg
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite())
        .ok_or_else(|| format!("expected a number of seconds such as 0, 2 or 0.5, got '{arg}'"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!(
            "the interval must be between 0 and 86400 seconds, got '{arg}'"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The channel and category of an action of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    /// The channel.
    pub channel: String,
    /// The category.
    pub category: String,
}

/// A validated simulation: what to simulate against which catalog.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// How many customers.
    pub customers: u64,
    /// How many rounds.
    pub rounds: u32,
    /// The seed.
    pub seed: u64,
    /// The placements, in the order decided at each visit.
    pub placements: Arc<[String]>,
    /// Customers served at once.
    pub concurrency: usize,
    /// The customer ids' prefix.
    pub prefix: String,
    /// The catalog's actions by id.
    pub actions: Arc<HashMap<String, ActionInfo>>,
    /// Keep every decision's record in [`Run::records`] (tests; memory
    /// grows with the run).
    pub keep_records: bool,
}

impl SimulateArgs {
    /// The simulation these arguments describe, checked against the
    /// catalog; every problem names its flag.
    pub fn simulation(&self) -> anyhow::Result<Simulation> {
        let text = match &self.catalog {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--catalog: cannot read {}", path.display()))?,
            None => nudge_models::demo::CATALOG_TOML.to_owned(),
        };
        let origin = self.catalog.as_ref().map_or_else(
            || "the demo catalog".to_owned(),
            |path| path.display().to_string(),
        );
        let catalog = Catalog::from_toml(&text).map_err(|problems| {
            anyhow::anyhow!("--catalog: {origin} is not a valid catalog: {problems}")
        })?;
        let placements: Vec<String> = if self.placements.is_empty() {
            DEFAULT_PLACEMENTS.iter().map(|p| (*p).to_owned()).collect()
        } else {
            self.placements.clone()
        };
        let mut seen = BTreeSet::new();
        for placement in &placements {
            if !seen.insert(placement) {
                bail!("--placement: '{placement}' is given twice");
            }
            if catalog.placement(placement).is_none() {
                let known: Vec<&str> = catalog.placements.keys().map(String::as_str).collect();
                bail!(
                    "--placement: '{placement}' is not a placement of {origin} (it has {}); give the server's catalog with --catalog",
                    known.join(", ")
                );
            }
        }
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("sim{}", self.seed));
        if prefix.is_empty()
            || prefix.len() > 200
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!(
                "--prefix: '{prefix}' must be 1 to 200 letters, digits, '-', '_' or '.' (customer ids are PREFIX-00000, …)"
            );
        }
        let actions = catalog
            .actions
            .iter()
            .map(|action| {
                (
                    action.id.to_string(),
                    ActionInfo {
                        channel: action.channel.clone(),
                        category: action.category.clone(),
                    },
                )
            })
            .collect();
        Ok(Simulation {
            customers: self.customers,
            rounds: self.rounds,
            seed: self.seed,
            placements: placements.into(),
            concurrency: self.concurrency as usize,
            prefix,
            actions: Arc::new(actions),
            keep_records: false,
        })
    }
}

/// What "now" is for the server, and what happens between rounds.
pub trait Pace: Clone + Send + Sync + 'static {
    /// The server's time now, in ms since the epoch.
    fn now(&self) -> i64;
    /// Runs between round `finished` and the next one.
    fn between_rounds(&self, finished: u32) -> impl Future<Output = ()> + Send;
}

/// The wall clock, as a `nudge serve` keeps it, with a pause between
/// rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealTime {
    /// The pause between rounds.
    pub interval: Duration,
}

impl Pace for RealTime {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    async fn between_rounds(&self, _finished: u32) {
        tokio::time::sleep(self.interval).await;
    }
}

/// A finished simulation.
#[derive(Debug, Clone)]
pub struct Run {
    /// What was simulated.
    pub seed: u64,
    /// The customer ids' prefix.
    pub prefix: String,
    /// The placements.
    pub placements: Vec<String>,
    /// The first round's time (ms).
    pub started_at: i64,
    /// How long the run took.
    pub elapsed: Duration,
    /// The tallies.
    pub summary: Summary,
    /// Every decision, in round then customer order, when
    /// [`Simulation::keep_records`].
    pub records: Vec<SimDecision>,
}

/// A domain attribute as a wire value.
fn wire_value(value: &AttrValue) -> proto::Value {
    use proto::value::Kind;
    let kind = match value {
        AttrValue::Str(text) => Kind::StringValue(text.clone()),
        AttrValue::Num(number) => Kind::NumberValue(*number),
        AttrValue::Bool(flag) => Kind::BoolValue(*flag),
    };
    proto::Value { kind: Some(kind) }
}

/// Milliseconds since the epoch as a wire timestamp.
fn wire_time(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1_000),
        nanos: (millis.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// A world event as a wire event of `customer_id`.
fn wire_event(customer_id: &str, event: SimEvent) -> proto::Event {
    proto::Event {
        customer_id: customer_id.to_owned(),
        event_id: event.event_id,
        name: event.name.to_owned(),
        timestamp: Some(wire_time(event.at)),
        properties: event
            .properties
            .iter()
            .map(|(key, value)| (key.clone(), wire_value(value)))
            .collect(),
    }
}

/// The Decide request of a visit.
fn decide_request(
    customer: &Customer,
    round: u32,
    placement: &str,
    context: Context,
) -> DecideRequest {
    let text = |value: &str| wire_value(&AttrValue::Str(value.to_owned()));
    DecideRequest {
        customer_id: customer.id.clone(),
        placement: placement.to_owned(),
        context: [
            (
                "device".to_owned(),
                text(if context.mobile { "mobile" } else { "desktop" }),
            ),
            ("page".to_owned(), text(context.page.name())),
        ]
        .into_iter()
        .collect(),
        explain: true,
        request_id: format!("{}:r{round}:{placement}", customer.id),
        ..DecideRequest::default()
    }
}

/// What one visit did.
#[derive(Debug, Default)]
struct Visit {
    visited: bool,
    sessions: u64,
    daily: u64,
    effects: u64,
    duplicates: u64,
    decisions: Vec<SimDecision>,
    errors: Errors,
}

/// Everything a visit task needs besides its customer.
#[derive(Clone)]
struct VisitPlan<P> {
    connection: Connection,
    pace: P,
    placements: Arc<[String]>,
    actions: Arc<HashMap<String, ActionInfo>>,
}

/// How often a call the server shed is tried again.
const RETRIES: u32 = 16;
/// The pause before the first retry; it doubles each time, to at most
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether a refused call may be tried again: the server shed it before
/// applying anything (RESOURCE_EXHAUSTED, "retry with backoff"), or, for a
/// call whose repeat changes nothing (events carry their ids, an outcome
/// is applied once per decision, action and kind), it could not say
/// whether it was stored (UNAVAILABLE). A Decide refused UNAVAILABLE may
/// have been logged: it is not repeated, the server says to treat it as
/// not shown.
fn retryable(code: Code, idempotent: bool) -> bool {
    code == Code::ResourceExhausted || (idempotent && code == Code::Unavailable)
}

/// Sends `request`, retrying with backoff while the server sheds it (see
/// [`retryable`]); counts the retries in `errors`.
async fn send<R: Rpc + Clone>(
    connection: &Connection,
    request: &R,
    idempotent: bool,
    errors: &mut Errors,
) -> anyhow::Result<R::Response> {
    let mut pause = FIRST_PAUSE;
    let mut attempts = 0;
    loop {
        match request.clone().send(connection.clone()).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if attempts < RETRIES && retryable(status.code(), idempotent) => {
                attempts += 1;
                errors.retried += 1;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(status) => return Err(client::status_error(status)),
        }
    }
}

/// Tracks one event; `Some(duplicate)` once applied or acknowledged.
async fn track(connection: &Connection, event: proto::Event, errors: &mut Errors) -> Option<bool> {
    match send(connection, &event, true, errors).await {
        Ok(response) => Some(response.duplicate),
        Err(error) => {
            errors.record(ErrorKind::Event, || {
                format!("Track {}: {error:#}", event.event_id)
            });
            None
        }
    }
}

/// `score / propensity`: the V·L·C of an action in a decision, when a
/// model scored it.
fn weight(score: f64, propensity: f64) -> Option<f64> {
    (propensity > 0.0 && score.is_finite()).then(|| score / propensity)
}

/// The first slot against the actions that competed for it: the served
/// ones and those filtered only for the limit or diversity, whose channel
/// and category the catalog gives. `None` when nothing was served.
fn first_slot(
    customer: &Customer,
    response: &DecideResponse,
    served: &[SimServed],
    actions: &HashMap<String, ActionInfo>,
    context: Context,
    now: i64,
) -> Option<FirstSlot> {
    let first = served.first()?;
    let competing = response
        .filtered
        .iter()
        .filter(|candidate| {
            matches!(
                candidate.reason(),
                FilterReason::RankedBelowLimit | FilterReason::Diversity
            )
        })
        .filter_map(|candidate| {
            let info = actions.get(&candidate.action_id)?;
            let action = ActionRef {
                id: &candidate.action_id,
                channel: &info.channel,
                category: &info.category,
            };
            let truth = customer.respond(action, context, now).conversion;
            Some((truth, weight(candidate.score, candidate.propensity)))
        });
    let served_weights = response
        .served
        .iter()
        .map(|action| weight(action.score, action.propensity));
    let all: Vec<(f64, Option<f64>)> = served
        .iter()
        .map(|s| s.truth.conversion)
        .zip(served_weights)
        .chain(competing)
        .collect();
    let priority = all[0].1.map(|weight| all[0].0 * weight);
    let best_priority = priority.map(|first| {
        all.iter()
            .filter_map(|&(truth, weight)| weight.map(|weight| truth * weight))
            .fold(first, f64::max)
    });
    Some(FirstSlot {
        reward: first.truth.conversion,
        best_reward: all.iter().map(|&(truth, _)| truth).fold(0.0, f64::max),
        priority,
        best_priority,
    })
}

/// Reports the sampled outcomes of one served action, stamped after the
/// decision at `decided` (ms).
async fn report(
    connection: &Connection,
    customer_id: &str,
    decision_id: &str,
    served: &SimServed,
    decided: i64,
    errors: &mut Errors,
) {
    let kinds = [
        (proto::Outcome::Impression, served.outcome.impression),
        (proto::Outcome::Click, served.outcome.click),
        (proto::Outcome::Conversion, served.outcome.conversion),
        (proto::Outcome::Dismiss, served.outcome.dismiss),
    ];
    for (kind, after) in kinds {
        let Some(after) = after else { continue };
        let request = ReportOutcomeRequest {
            customer_id: customer_id.to_owned(),
            decision_id: decision_id.to_owned(),
            action_id: served.action_id.clone(),
            outcome: kind.into(),
            reward: (kind == proto::Outcome::Conversion).then_some(served.value),
            timestamp: Some(wire_time(decided + after)),
            dispatch_id: String::new(),
        };
        if let Err(error) = send(connection, &request, true, errors).await {
            errors.record(ErrorKind::Outcome, || {
                format!(
                    "ReportOutcome {} of {decision_id}: {error:#}",
                    kind.as_str_name()
                )
            });
        }
    }
}

/// One customer's round: their day outside the product, then, if they
/// visit, their session, a decision per placement, the outcomes and what
/// conversions change.
async fn visit<P: Pace>(
    plan: VisitPlan<P>,
    mut customer: Customer,
    round: u32,
) -> (Customer, Visit) {
    let mut out = Visit::default();
    let now = plan.pace.now();
    let connection = &plan.connection;
    for event in customer.day(round, now) {
        if let Some(duplicate) =
            track(connection, wire_event(&customer.id, event), &mut out.errors).await
        {
            out.daily += 1;
            out.duplicates += u64::from(duplicate);
        }
    }
    let Some(session) = customer.session(round, now) else {
        return (customer, out);
    };
    out.visited = true;
    for event in session {
        if let Some(duplicate) =
            track(connection, wire_event(&customer.id, event), &mut out.errors).await
        {
            out.sessions += 1;
            out.duplicates += u64::from(duplicate);
        }
    }
    for placement in plan.placements.iter() {
        let context = customer.context(round, placement);
        let request = decide_request(&customer, round, placement, context);
        let response = match send(connection, &request, false, &mut out.errors).await {
            Ok(response) => response,
            Err(error) => {
                out.errors.record(ErrorKind::Decide, || {
                    format!("Decide {} in {placement}: {error:#}", customer.id)
                });
                continue;
            }
        };
        // Everything served is judged on the account as it was when the
        // decision was made; conversions change it afterwards.
        let served: Vec<SimServed> = response
            .served
            .iter()
            .map(|served| {
                let action = ActionRef {
                    id: &served.action_id,
                    channel: &served.channel,
                    category: &served.category,
                };
                let truth = customer.respond(action, context, now);
                SimServed {
                    action_id: served.action_id.clone(),
                    rank: served.rank,
                    value: served.value,
                    truth,
                    outcome: customer.outcome(round, placement, served.rank, action, truth),
                }
            })
            .collect();
        let first_slot = first_slot(&customer, &response, &served, &plan.actions, context, now);
        for record in &served {
            report(
                connection,
                &customer.id,
                &response.decision_id,
                record,
                now,
                &mut out.errors,
            )
            .await;
            if let Some(after) = record.outcome.conversion {
                for event in customer.convert(&record.action_id, round, now + after) {
                    if let Some(duplicate) =
                        track(connection, wire_event(&customer.id, event), &mut out.errors).await
                    {
                        out.effects += 1;
                        out.duplicates += u64::from(duplicate);
                    }
                }
            }
        }
        out.decisions.push(SimDecision {
            decision_id: response.decision_id,
            customer_id: customer.id.clone(),
            round,
            placement: placement.clone(),
            model_version: response.model_version,
            variant: response.variant,
            fallback: response.fallback,
            served,
            first_slot,
        });
    }
    (customer, out)
}

/// Puts a finished visit task's customer back in its slot and keeps its
/// visit.
fn collect(
    result: Result<(usize, Customer, Visit), tokio::task::JoinError>,
    slots: &mut [Option<Customer>],
    visits: &mut [Option<Visit>],
) -> anyhow::Result<()> {
    let (index, customer, visit) = result.context("a visit task failed")?;
    slots[index] = Some(customer);
    visits[index] = Some(visit);
    Ok(())
}

/// Sends the customers' histories, [`HISTORY_BATCH`] customers per
/// `TrackStream`, `concurrency` streams at once (at most [`HISTORY_STREAMS`]); returns the events
/// applied and acknowledged as duplicates.
async fn send_history(
    connection: &Connection,
    customers: &mut [Customer],
    concurrency: usize,
    errors: &mut Errors,
) -> anyhow::Result<(u64, u64)> {
    let mut streams = JoinSet::new();
    let (mut applied, mut duplicates) = (0, 0);
    let mut finish = |result: Result<(anyhow::Result<proto::TrackStreamResponse>, u32, u64), _>,
                      errors: &mut Errors|
     -> anyhow::Result<()> {
        let (response, retried, count) = result.context("a history stream task failed")?;
        errors.retried += u64::from(retried);
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                // None of the stream's events is known to be applied.
                errors.record(ErrorKind::Event, || format!("TrackStream: {error:#}"));
                errors.events += count.saturating_sub(1);
                return Ok(());
            }
        };
        applied += response.accepted;
        duplicates += response.duplicates;
        errors.events += response.rejected;
        if let Some(first) = response.rejections.first()
            && errors.first.is_none()
        {
            errors.first = Some(format!(
                "TrackStream rejected {}: {}",
                first.event_id, first.message
            ));
        }
        Ok(())
    };
    for batch in customers.chunks_mut(HISTORY_BATCH) {
        let events: Vec<proto::Event> = batch
            .iter_mut()
            .flat_map(|customer| {
                let id = customer.id.clone();
                customer
                    .history()
                    .into_iter()
                    .map(move |event| wire_event(&id, event))
            })
            .collect();
        let connection = connection.clone();
        let count = events.len() as u64;
        streams.spawn(async move {
            let mut retried = 0;
            let mut pause = FIRST_PAUSE;
            loop {
                let stream = tokio_stream::iter(events.clone());
                match EventsClient::new(connection.clone())
                    .track_stream(stream)
                    .await
                {
                    Ok(response) => return (Ok(response.into_inner()), retried, count),
                    Err(status) if retried < RETRIES && retryable(status.code(), true) => {
                        retried += 1;
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_PAUSE);
                    }
                    Err(status) => return (Err(client::status_error(status)), retried, count),
                }
            }
        });
        while streams.len() >= concurrency {
            if let Some(result) = streams.join_next().await {
                finish(result, errors)?;
            }
        }
    }
    while let Some(result) = streams.join_next().await {
        finish(result, errors)?;
    }
    Ok((applied, duplicates))
}

/// Runs `simulation` against the server in `options`, with `pace` for the
/// time; `progress` gets a line after the history and after each round.
pub async fn simulate<P: Pace>(
    options: &ClientArgs,
    simulation: &Simulation,
    pace: &P,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Run> {
    let began = Instant::now();
    let connection = client::connect(options).await?;
    let started_at = pace.now();
    let mut summary = Summary {
        customers: simulation.customers,
        rounds: simulation.rounds,
        ..Summary::default()
    };
    let mut customers: Vec<Customer> = (0..simulation.customers)
        .map(|index| Customer::new(simulation.seed, &simulation.prefix, index, started_at))
        .collect();
    let (applied, duplicates) = send_history(
        &connection,
        &mut customers,
        simulation.concurrency.min(HISTORY_STREAMS),
        &mut summary.errors,
    )
    .await?;
    summary.events.history = applied;
    summary.events.duplicates = duplicates;
    progress(&format!(
        "history: {} events for {} customers ({:.1} s)",
        count_text(applied + duplicates),
        count_text(simulation.customers),
        began.elapsed().as_secs_f64()
    ));
    let plan = VisitPlan {
        connection,
        pace: pace.clone(),
        placements: simulation.placements.clone(),
        actions: simulation.actions.clone(),
    };
    let mut records = Vec::new();
    let mut slots: Vec<Option<Customer>> = customers.into_iter().map(Some).collect();
    for round in 1..=simulation.rounds {
        let round_began = Instant::now();
        let before = summary.overall.clone();
        let mut visits: Vec<Option<Visit>> = (0..slots.len()).map(|_| None).collect();
        let mut tasks = JoinSet::new();
        for index in 0..slots.len() {
            let Some(customer) = slots[index].take() else {
                continue;
            };
            let plan = plan.clone();
            tasks.spawn(async move {
                let (customer, visit) = visit(plan, customer, round).await;
                (index, customer, visit)
            });
            while tasks.len() >= simulation.concurrency {
                if let Some(result) = tasks.join_next().await {
                    collect(result, &mut slots, &mut visits)?;
                }
            }
        }
        while let Some(result) = tasks.join_next().await {
            collect(result, &mut slots, &mut visits)?;
        }
        // In customer order, whatever order the tasks finished in.
        for visit in visits.into_iter().flatten() {
            summary.visits += u64::from(visit.visited);
            summary.events.sessions += visit.sessions;
            summary.events.daily += visit.daily;
            summary.events.effects += visit.effects;
            summary.events.duplicates += visit.duplicates;
            summary.errors.merge(visit.errors);
            for decision in visit.decisions {
                summary.add(&decision);
                if simulation.keep_records {
                    records.push(decision);
                }
            }
        }
        let mut this_round = summary.overall.clone();
        this_round.decisions -= before.decisions;
        this_round.served -= before.served;
        this_round.true_conversions -= before.true_conversions;
        progress(&format!(
            "round {round}/{}: {} decisions, {} served, true reward {} ({:.1} s)",
            simulation.rounds,
            count_text(this_round.decisions),
            count_text(this_round.served),
            this_round
                .true_reward()
                .map_or_else(|| "-".to_owned(), |r| format!("{:.2} %", 100.0 * r)),
            round_began.elapsed().as_secs_f64()
        ));
        if round < simulation.rounds {
            pace.between_rounds(round).await;
        }
    }
    Ok(Run {
        seed: simulation.seed,
        prefix: simulation.prefix.clone(),
        placements: simulation.placements.to_vec(),
        started_at,
        elapsed: began.elapsed(),
        summary,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> SimulateArgs {
        SimulateArgs {
            customers: 10,
            rounds: 1,
            seed: 4,
            placements: Vec::new(),
            concurrency: 2,
            interval: Duration::ZERO,
            prefix: None,
            catalog: None,
        }
    }

    #[test]
    fn arguments_are_checked_against_the_catalog() {
        let simulation = args().simulation().expect("valid");
        assert_eq!(
            &*simulation.placements,
            DEFAULT_PLACEMENTS.map(str::to_owned)
        );
        assert_eq!(simulation.prefix, "sim4");
        assert_eq!(
            simulation.actions["welcome_tour"],
            ActionInfo {
                channel: "in_app".to_owned(),
                category: "onboarding".to_owned()
            }
        );
        let error = |args: SimulateArgs| args.simulation().expect_err("refused").to_string();
        let text = error(SimulateArgs {
            placements: vec!["lobby".to_owned()],
            ..args()
        });
        assert!(
            text.contains("--placement: 'lobby'") && text.contains("home_banner"),
            "{text}"
        );
        let text = error(SimulateArgs {
            placements: vec!["home_banner".to_owned(), "home_banner".to_owned()],
            ..args()
        });
        assert!(text.contains("twice"), "{text}");
        let text = error(SimulateArgs {
            prefix: Some("a b".to_owned()),
            ..args()
        });
        assert!(text.contains("--prefix"), "{text}");
        let text = error(SimulateArgs {
            catalog: Some("/nonexistent/catalog.toml".into()),
            ..args()
        });
        assert!(text.contains("--catalog: cannot read"), "{text}");
    }

    #[test]
    fn pauses_parse_in_seconds() {
        assert_eq!(parse_pause("0"), Ok(Duration::ZERO));
        assert_eq!(parse_pause("1.5"), Ok(Duration::from_millis(1_500)));
        assert!(parse_pause("-1").is_err());
        assert!(parse_pause("soon").is_err());
        assert!(parse_pause("NaN").is_err());
    }

    #[test]
    fn the_decide_request_carries_the_context_and_explains() {
        let customer = Customer::new(1, "p", 3, 1_795_435_200_000);
        let context = customer.context(2, "home_banner");
        let request = decide_request(&customer, 2, "home_banner", context);
        assert_eq!(request.customer_id, "p-00003");
        assert!(request.explain && !request.dry_run);
        assert_eq!(request.request_id, "p-00003:r2:home_banner");
        let page = request.context.get("page").and_then(|v| v.kind.clone());
        assert_eq!(
            page,
            Some(proto::value::Kind::StringValue(
                context.page.name().to_owned()
            ))
        );
        let event = wire_event(
            "p-00003",
            SimEvent {
                event_id: "e".to_owned(),
                name: "identify",
                at: 1_500,
                properties: [("seats".to_owned(), AttrValue::Num(3.0))]
                    .into_iter()
                    .collect(),
            },
        );
        assert_eq!(
            event.timestamp,
            Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            event.properties["seats"].kind,
            Some(proto::value::Kind::NumberValue(3.0))
        );
    }
}
