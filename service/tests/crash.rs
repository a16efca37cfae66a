//! The crash test: `nudge serve` is killed with SIGKILL at a random moment
//! under mixed load (events with ids, decisions, outcomes, consent changes
//! from several tasks), restarted on the same data directory, and checked:
//! every acknowledged write is there and applied exactly once, and no
//! frequency cap was exceeded across the restarts.

mod common;

use common::{Server, TempDir};
use nudge_proto::v1 as proto;
use nudge_proto::v1::decisions_client::DecisionsClient;
use nudge_proto::v1::events_client::EventsClient;
use nudge_proto::v1::profiles_client::ProfilesClient;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

const CYCLES: usize = 10;
const TASKS: usize = 4;
const CUSTOMERS_PER_TASK: usize = 3;
/// The demo's in-app cap: 5 per 7 days (the home banner is in-app only).
const IN_APP_CAP: usize = 5;

/// A small deterministic generator, seeded per run and printed on failure.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What the server acknowledged to one task (each task owns its customers,
/// so "the last acknowledged consent" is well defined).
#[derive(Debug, Default, Clone)]
struct Acknowledged {
    /// Event ids per customer.
    events: BTreeMap<String, Vec<String>>,
    /// (decision id, action id) served per customer.
    served: BTreeMap<String, Vec<(String, String)>>,
    /// (decision id, action id) whose impression was acknowledged.
    impressions: BTreeSet<(String, String, String)>,
    /// The last acknowledged email consent per customer.
    consent: BTreeMap<String, i32>,
    /// A consent change sent but not acknowledged when the server died: it
    /// may or may not have been stored.
    consent_in_flight: Option<(String, i32)>,
}

impl Acknowledged {
    /// Adds what `later` acknowledged after everything in `self`.
    fn absorb(&mut self, later: Acknowledged) {
        for (who, ids) in later.events {
            self.events.entry(who).or_default().extend(ids);
        }
        for (who, served) in later.served {
            self.served.entry(who).or_default().extend(served);
        }
        self.impressions.extend(later.impressions);
        self.consent.extend(later.consent);
    }
}

fn customer(task: usize, index: usize) -> String {
    format!("crash-{task}-{index}")
}

async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .expect("a valid url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the server")
}

/// One task's load until the server dies (every call then fails).
async fn drive(url: String, task: usize, cycle: usize, mut rng: Rng, ack: &mut Acknowledged) {
    let channel = connect(&url).await;
    let mut events = EventsClient::new(channel.clone());
    let mut decisions = DecisionsClient::new(channel.clone());
    let mut profiles = ProfilesClient::new(channel);
    for step in 0.. {
        let who = customer(task, rng.below(CUSTOMERS_PER_TASK as u64) as usize);
        let result = match rng.below(10) {
            0..=4 => {
                let event_id = format!("c{cycle}-t{task}-{step}");
                let event = proto::Event {
                    customer_id: who.clone(),
                    event_id: event_id.clone(),
                    name: "login".to_owned(),
                    ..Default::default()
                };
                events.track(event).await.map(|response| {
                    assert!(!response.into_inner().duplicate, "{event_id} is new");
                    ack.events.entry(who).or_default().push(event_id);
                })
            }
            5..=6 => {
                let request = proto::DecideRequest {
                    customer_id: who.clone(),
                    placement: "home_banner".to_owned(),
                    ..Default::default()
                };
                decisions.decide(request).await.map(|response| {
                    let response = response.into_inner();
                    for served in response.served {
                        ack.served
                            .entry(who.clone())
                            .or_default()
                            .push((response.decision_id.clone(), served.action_id));
                    }
                })
            }
            7..=8 => {
                let Some((decision_id, action_id)) = ack
                    .served
                    .get(&who)
                    .and_then(|served| served.last().cloned())
                else {
                    continue;
                };
                let request = proto::ReportOutcomeRequest {
                    customer_id: who.clone(),
                    decision_id: decision_id.clone(),
                    action_id: action_id.clone(),
                    outcome: proto::Outcome::Impression as i32,
                    ..Default::default()
                };
                decisions.report_outcome(request).await.map(|_| {
                    ack.impressions.insert((who, decision_id, action_id));
                })
            }
            _ => {
                let state = if rng.below(2) == 0 {
                    proto::ConsentState::OptedIn
                } else {
                    proto::ConsentState::OptedOut
                } as i32;
                let request = proto::SetConsentRequest {
                    customer_id: who.clone(),
                    channel: "email".to_owned(),
                    state,
                };
                ack.consent_in_flight = Some((who.clone(), state));
                profiles.set_consent(request).await.map(|_| {
                    ack.consent_in_flight = None;
                    ack.consent.insert(who, state);
                })
            }
        };
        if result.is_err() {
            // The server is gone; what was not acknowledged may or may not
            // have been stored.
            return;
        }
    }
}

/// Checks everything `ack` says against the restarted server; returns the
/// email consent now stored for each customer whose consent was changed.
async fn verify(url: &str, ack: &Acknowledged, seed: u64) -> BTreeMap<String, i32> {
    let mut observed = BTreeMap::new();
    let channel = connect(url).await;
    let mut events = EventsClient::new(channel.clone());
    let mut decisions = DecisionsClient::new(channel.clone());
    let mut profiles = ProfilesClient::new(channel);
    for (who, ids) in &ack.events {
        for event_id in ids {
            let event = proto::Event {
                customer_id: who.clone(),
                event_id: event_id.clone(),
                name: "login".to_owned(),
                ..Default::default()
            };
            let response = events.track(event).await.expect("track").into_inner();
            assert!(
                response.duplicate,
                "seed {seed}: acknowledged event {event_id} of {who} was lost"
            );
        }
    }
    for (who, decision_id, action_id) in &ack.impressions {
        let request = proto::ReportOutcomeRequest {
            customer_id: who.clone(),
            decision_id: decision_id.clone(),
            action_id: action_id.clone(),
            outcome: proto::Outcome::Impression as i32,
            ..Default::default()
        };
        let response = decisions
            .report_outcome(request)
            .await
            .unwrap_or_else(|status| {
                panic!("seed {seed}: decision {decision_id} of {who} was lost: {status}")
            })
            .into_inner();
        assert!(
            !response.applied,
            "seed {seed}: acknowledged impression of {decision_id} was lost (applied again)"
        );
    }
    let customers: BTreeSet<&String> = ack
        .events
        .keys()
        .chain(ack.served.keys())
        .chain(ack.consent.keys())
        .chain(ack.consent_in_flight.iter().map(|(who, _)| who))
        .collect();
    for who in customers {
        let profile = profiles
            .get_profile(proto::GetProfileRequest {
                customer_id: who.clone(),
            })
            .await
            .unwrap_or_else(|status| panic!("seed {seed}: {who} was lost: {status}"))
            .into_inner();
        let contacts: BTreeSet<(String, String)> = profile
            .contacts
            .iter()
            .map(|contact| (contact.decision_id.clone(), contact.action_id.clone()))
            .collect();
        for served in ack.served.get(who).into_iter().flatten() {
            assert!(
                contacts.contains(served),
                "seed {seed}: acknowledged decision {served:?} of {who} is not in the ledger"
            );
        }
        let in_app = profile
            .contacts
            .iter()
            .filter(|contact| contact.channel == "in_app" && !contact.released)
            .count();
        assert!(
            in_app <= IN_APP_CAP,
            "seed {seed}: {who} was served {in_app} in-app actions, cap {IN_APP_CAP}"
        );
        let stored = profile
            .consent
            .iter()
            .find(|consent| consent.channel == "email")
            .map(|consent| consent.state);
        let acknowledged = ack.consent.get(who).copied();
        let in_flight = ack
            .consent_in_flight
            .as_ref()
            .filter(|(customer, _)| customer == who)
            .map(|(_, state)| *state);
        // The last acknowledged consent, unless a later change that was not
        // acknowledged made it to disk.
        let changed = acknowledged.is_some() || in_flight.is_some();
        assert!(
            !changed || stored == acknowledged || (in_flight.is_some() && stored == in_flight),
            "seed {seed}: {who}'s consent is {stored:?}; last acknowledged {acknowledged:?}, \
             unacknowledged attempt {in_flight:?}"
        );
        if let Some(stored) = stored {
            observed.insert(who.clone(), stored);
        }
    }
    observed
}

#[test]
fn acknowledged_writes_survive_kill_9_and_caps_hold_across_restarts() {
    let seed = std::env::var("NUDGE_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test seed {seed} (NUDGE_CRASH_SEED={seed} reruns it)");
    let mut rng = Rng(seed);
    let dir = TempDir::new("crash");
    let data_dir = dir.join("data");
    let data_dir = data_dir.to_str().expect("a UTF-8 temp path").to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // Everything acknowledged so far, and in the last cycle.
    let mut acknowledged: Vec<Acknowledged> = (0..TASKS).map(|_| Acknowledged::default()).collect();
    let mut last_cycle: Vec<Acknowledged> = Vec::new();
    for cycle in 0..CYCLES {
        let server = Server::start(&dir, &["--data-dir", &data_dir]);
        let url = server.url().to_owned();
        // What the killed server acknowledged must be there after the restart.
        runtime.block_on(verify_restart(&url, &last_cycle, &mut acknowledged, seed));
        let kill_after = Duration::from_millis(50 + rng.below(400));
        let seeds: Vec<Rng> = (0..TASKS).map(|_| Rng(rng.next() | 1)).collect();
        let pid = server.pid();
        let mut this_cycle: Vec<Acknowledged> =
            (0..TASKS).map(|_| Acknowledged::default()).collect();
        runtime.block_on(async {
            let load = async {
                let mut tasks = Vec::new();
                for (task, (ack, rng)) in this_cycle.iter_mut().zip(seeds).enumerate() {
                    tasks.push(drive(url.clone(), task, cycle, rng, ack));
                }
                futures_join_all(tasks).await;
            };
            let kill = async {
                tokio::time::sleep(kill_after).await;
                let status = std::process::Command::new("kill")
                    .args(["-9", &pid])
                    .status()
                    .expect("run kill");
                assert!(status.success(), "kill -9 {pid}");
            };
            tokio::join!(load, kill);
        });
        drop(server);
        last_cycle = this_cycle
            .into_iter()
            .zip(acknowledged.iter_mut())
            .map(|(ack, all)| {
                let copy = ack.clone();
                all.absorb(ack);
                copy
            })
            .collect();
    }
    // And at the end, the last cycle, then everything from every cycle.
    let server = Server::start(&dir, &["--data-dir", &data_dir]);
    let url = server.url().to_owned();
    runtime.block_on(async {
        verify_restart(&url, &last_cycle, &mut acknowledged, seed).await;
        for ack in &acknowledged {
            verify(&url, ack, seed).await;
        }
    });
    let events: usize = acknowledged
        .iter()
        .map(|ack| ack.events.values().map(Vec::len).sum::<usize>())
        .sum();
    let served: usize = acknowledged
        .iter()
        .map(|ack| ack.served.values().map(Vec::len).sum::<usize>())
        .sum();
    assert!(
        events > CYCLES && served > 0,
        "the load did too little to prove anything: {events} events, {served} serves"
    );
    eprintln!(
        "{CYCLES} kill -9 cycles: {events} acknowledged events, {served} acknowledged serves, all present"
    );
}

/// Verifies what the last cycle acknowledged, then takes the consent now
/// stored as the reference for later checks (an unacknowledged change may
/// have been stored).
async fn verify_restart(
    url: &str,
    last_cycle: &[Acknowledged],
    acknowledged: &mut [Acknowledged],
    seed: u64,
) {
    for (ack, all) in last_cycle.iter().zip(acknowledged.iter_mut()) {
        // A customer's last acknowledged consent may come from an earlier
        // cycle: `all` holds it (it has absorbed this cycle's as well).
        let reference = Acknowledged {
            consent: all.consent.clone(),
            ..ack.clone()
        };
        let observed = verify(url, &reference, seed).await;
        all.consent.extend(observed);
    }
}

/// Runs futures concurrently on the current task and waits for all.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |context| {
        pinned.retain_mut(|future| future.as_mut().poll(context).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
