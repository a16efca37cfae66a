//! The open-loop generator: each stream of calls has a constant target rate,
//! and call *i* is due at `start + i / rate` whether or not earlier calls
//! were answered. Its latency is measured from that intended start, so a
//! server (or a generator) that falls behind shows as latency instead of
//! silently lowering the rate (no coordinated omission).
//!
//! The scheduler of each stream wakes every millisecond, starts every call
//! that has come due as its own task, and stamps it with its intended start.
//! Calls due during the warmup are sent but not counted.

use super::traffic::{self, Customer, RecentServed, Sampler, Served};
use crate::report::new_histogram;
use hdrhistogram::Histogram;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::events_client::EventsClient;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// One kind of call, reported apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The empty unary call: health `Check`.
    Check,
    /// `Decide` for any customer but the hot one.
    Decide,
    /// `Decide` for the hot customer (`--hot-key`).
    DecideHot,
    /// `Track`: one durable event.
    Track,
    /// `ReportOutcome` about an action an earlier Decide served.
    Outcome,
}

impl Kind {
    /// Its name in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Decide => "decide",
            Kind::DecideHot => "decide_hot",
            Kind::Track => "track",
            Kind::Outcome => "outcome",
        }
    }
}

/// A stream of calls at a constant rate. A Decide stream's calls for the
/// hot customer are tallied as [`Kind::DecideHot`].
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// What it calls.
    pub kind: Kind,
    /// Calls per second.
    pub rate: f64,
}

/// One step of a run: streams side by side for `warmup + duration`.
#[derive(Debug, Clone)]
pub struct Step {
    /// The streams.
    pub streams: Vec<Stream>,
    /// Sent but not counted.
    pub warmup: Duration,
    /// Counted.
    pub duration: Duration,
    /// Each call's own deadline (sent as `grpc-timeout`).
    pub deadline: Duration,
    /// Progress lines on stderr every second.
    pub progress: bool,
}

/// What happened to the counted calls of one kind.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Latency of answered calls from their intended start, µs.
    pub answered: Histogram<u64>,
    /// Latency of refused or failed calls from their intended start, µs.
    pub refused: Histogram<u64>,
    /// In a cluster: latency of answered calls by the node that served
    /// them (the `x-nudge-owner` answer header), µs; empty when no answer
    /// named one.
    pub by_owner: BTreeMap<String, Histogram<u64>>,
    /// Calls started.
    pub sent: u64,
    /// Calls answered OK.
    pub ok: u64,
    /// Decide answers from the fallback ladder.
    pub fallbacks: u64,
    /// Calls not started: an outcome with no served action to be about.
    pub skipped: u64,
    /// Failed calls by gRPC status code name.
    pub errors: BTreeMap<String, u64>,
    /// The first failed call's message, by gRPC status code name (what a
    /// refusal said, e.g. which limit shed it).
    pub first_messages: BTreeMap<String, String>,
}

impl Tally {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            answered: new_histogram()?,
            refused: new_histogram()?,
            by_owner: BTreeMap::new(),
            sent: 0,
            ok: 0,
            fallbacks: 0,
            skipped: 0,
            errors: BTreeMap::new(),
            first_messages: BTreeMap::new(),
        })
    }

    /// Failed calls of every code.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Whether every started call ended, answered or failed.
    pub fn accounted(&self) -> bool {
        self.sent == self.ok + self.failed()
    }
}

/// The tallies of one step, by kind.
pub type Tallies = BTreeMap<Kind, Tally>;

/// What a call ended with.
enum Ending {
    Ok {
        fallback: bool,
        /// The node that served it, when the answer named one.
        owner: Option<String>,
    },
    Failed(tonic::Status),
}

/// What every call task shares.
struct Shared {
    channels: Vec<Channel>,
    tallies: Mutex<Tallies>,
    sampler: Mutex<Sampler>,
    recent: Mutex<RecentServed>,
    in_flight: AtomicU64,
    completed: AtomicU64,
    /// Calls due before this are not counted.
    measure_from: Instant,
    deadline: Duration,
    run: u64,
}

impl Shared {
    fn record(&self, kind: Kind, intended: Instant, ending: Ending) {
        if intended < self.measure_from {
            return;
        }
        let micros = u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut tallies = self
            .tallies
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(tally) = tallies.get_mut(&kind) else {
            return;
        };
        tally.sent += 1;
        match ending {
            Ending::Ok { fallback, owner } => {
                tally.ok += 1;
                tally.fallbacks += u64::from(fallback);
                tally.answered.saturating_record(micros.max(1));
                if let Some(owner) = owner {
                    let histogram = match tally.by_owner.entry(owner) {
                        Entry::Occupied(entry) => Some(entry.into_mut()),
                        Entry::Vacant(entry) => new_histogram().ok().map(|new| entry.insert(new)),
                    };
                    if let Some(histogram) = histogram {
                        histogram.saturating_record(micros.max(1));
                    }
                }
            }
            Ending::Failed(status) => {
                let code = format!("{:?}", status.code());
                tally
                    .first_messages
                    .entry(code.clone())
                    .or_insert_with(|| status.message().to_owned());
                *tally.errors.entry(code).or_default() += 1;
                tally.refused.saturating_record(micros.max(1));
            }
        }
    }

    fn skip(&self, kind: Kind, intended: Instant) {
        if intended < self.measure_from {
            return;
        }
        let mut tallies = self
            .tallies
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(tally) = tallies.get_mut(&kind) {
            tally.skipped += 1;
        }
    }
}

/// Runs `step` over `channels` (calls go round-robin over them) and
/// returns the tallies of the counted calls, once every started call has
/// ended. `on_measure` is called when counting starts and `on_end` when the
/// last call is due (the caller samples the server's counters there).
pub async fn run(
    step: &Step,
    channels: &[Channel],
    sampler: Sampler,
    run: u64,
    on_measure: impl FnOnce(),
    on_end: impl FnOnce(),
) -> anyhow::Result<Tallies> {
    anyhow::ensure!(!channels.is_empty(), "no connection to send on");
    let mut tallies = Tallies::new();
    for stream in &step.streams {
        tallies.insert(stream.kind, Tally::new()?);
        if stream.kind == Kind::Decide {
            tallies.insert(Kind::DecideHot, Tally::new()?);
        }
    }
    let start = Instant::now();
    let measure_from = start + step.warmup;
    let end = measure_from + step.duration;
    let shared = Arc::new(Shared {
        channels: channels.to_vec(),
        tallies: Mutex::new(tallies),
        sampler: Mutex::new(sampler),
        recent: Mutex::new(RecentServed::default()),
        in_flight: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        measure_from,
        deadline: step.deadline,
        run,
    });
    let schedulers: Vec<_> = step
        .streams
        .iter()
        .filter(|stream| stream.rate > 0.0)
        .enumerate()
        .map(|(index, stream)| {
            tokio::spawn(schedule(shared.clone(), *stream, start, end, index as u64))
        })
        .collect();

    let progress = step
        .progress
        .then(|| tokio::spawn(report_progress(shared.clone(), start, end)));
    tokio::time::sleep_until(measure_from.into()).await;
    on_measure();
    tokio::time::sleep_until(end.into()).await;
    on_end();
    for scheduler in schedulers {
        scheduler.await?;
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    // Every started call ends by its deadline; allow a margin beyond it.
    let give_up = Instant::now() + step.deadline + Duration::from_secs(5);
    while shared.in_flight.load(Ordering::Acquire) > 0 {
        anyhow::ensure!(
            Instant::now() < give_up,
            "{} calls still in flight {:?} past their deadline",
            shared.in_flight.load(Ordering::Acquire),
            step.deadline
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tallies = std::mem::take(
        &mut *shared
            .tallies
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    );
    Ok(tallies)
}

/// Starts the calls of `stream` as they come due, until `end`.
async fn schedule(shared: Arc<Shared>, stream: Stream, start: Instant, end: Instant, salt: u64) {
    let period = Duration::from_secs_f64(1.0 / stream.rate);
    let mut ordinal: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let due_until = now.min(end);
        loop {
            let intended = start + period.mul_f64(ordinal as f64);
            if intended > due_until || intended >= end {
                break;
            }
            let channel =
                shared.channels[(ordinal as usize + salt as usize) % shared.channels.len()].clone();
            // Stream-unique ordinals, so event ids never collide across streams.
            let call_ordinal = ordinal * 8 + salt;
            start_call(&shared, stream.kind, channel, intended, call_ordinal);
            ordinal += 1;
        }
        if now >= end {
            return;
        }
    }
}

/// Starts one call as its own task.
fn start_call(shared: &Arc<Shared>, kind: Kind, channel: Channel, intended: Instant, ordinal: u64) {
    let customer = match kind {
        Kind::Check | Kind::Outcome => None,
        Kind::Decide | Kind::DecideHot | Kind::Track => Some(
            shared
                .sampler
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .next(intended),
        ),
    };
    let served = if kind == Kind::Outcome {
        let taken = shared
            .recent
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if taken.is_none() {
            shared.skip(kind, intended);
            return;
        }
        taken
    } else {
        None
    };
    shared.in_flight.fetch_add(1, Ordering::AcqRel);
    let shared = shared.clone();
    tokio::spawn(async move {
        let (kind, ending) = call(&shared, kind, channel, customer, served, ordinal).await;
        shared.record(kind, intended, ending);
        shared.completed.fetch_add(1, Ordering::Relaxed);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Sends one call; returns the kind it is tallied as and how it ended.
async fn call(
    shared: &Shared,
    kind: Kind,
    channel: Channel,
    customer: Option<Customer>,
    served: Option<Served>,
    ordinal: u64,
) -> (Kind, Ending) {
    let deadline = shared.deadline;
    match (kind, customer, served) {
        (Kind::Check, _, _) => {
            let mut request = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            request.set_timeout(deadline);
            let ending = match HealthClient::new(channel).check(request).await {
                Ok(_) => Ending::Ok {
                    fallback: false,
                    owner: None,
                },
                Err(status) => Ending::Failed(status),
            };
            (Kind::Check, ending)
        }
        (Kind::Decide | Kind::DecideHot, Some(customer), _) => {
            let kind = if customer.hot {
                Kind::DecideHot
            } else {
                Kind::Decide
            };
            let mut request = tonic::Request::new(traffic::decide(&customer.id, ordinal));
            request.set_timeout(deadline);
            let ending = match DecisionsClient::new(channel).decide(request).await {
                Ok(answer) => {
                    let owner = owner_of(answer.metadata());
                    let answer = answer.into_inner();
                    if let Some(first) = answer.served.first() {
                        shared
                            .recent
                            .lock()
                            .unwrap_or_else(|poison| poison.into_inner())
                            .push(Served {
                                customer,
                                decision_id: answer.decision_id.clone(),
                                action_id: first.action_id.clone(),
                            });
                    }
                    Ending::Ok {
                        fallback: answer.fallback,
                        owner,
                    }
                }
                Err(status) => Ending::Failed(status),
            };
            (kind, ending)
        }
        (Kind::Track, Some(customer), _) => {
            let mut request =
                tonic::Request::new(traffic::event(&customer.id, shared.run, ordinal));
            request.set_timeout(deadline);
            let ending = match EventsClient::new(channel).track(request).await {
                Ok(answer) => Ending::Ok {
                    fallback: false,
                    owner: owner_of(answer.metadata()),
                },
                Err(status) => Ending::Failed(status),
            };
            (Kind::Track, ending)
        }
        (Kind::Outcome, _, Some(served)) => {
            let mut request = tonic::Request::new(traffic::outcome(&served, ordinal));
            request.set_timeout(deadline);
            let ending = match DecisionsClient::new(channel).report_outcome(request).await {
                Ok(answer) => Ending::Ok {
                    fallback: false,
                    owner: owner_of(answer.metadata()),
                },
                Err(status) => Ending::Failed(status),
            };
            (Kind::Outcome, ending)
        }
        (kind, _, _) => (
            kind,
            Ending::Failed(tonic::Status::internal(
                "the generator drew a call it cannot make",
            )),
        ),
    }
}

/// A line on stderr every second: calls answered in that second, in flight.
async fn report_progress(shared: Arc<Shared>, start: Instant, end: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let completed = shared.completed.load(Ordering::Relaxed);
        let phase = if Instant::now() < shared.measure_from {
            "warmup"
        } else {
            "measure"
        };
        eprintln!(
            "  {:>3} s / {} s  {phase}: {} answered in the last second, {} in flight",
            start.elapsed().as_secs(),
            end.duration_since(start).as_secs(),
            completed - last,
            shared.in_flight.load(Ordering::Relaxed),
        );
        last = completed;
    }
}

/// The node a cluster answer names in its `x-nudge-owner` header.
fn owner_of(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    metadata
        .get("x-nudge-owner")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
