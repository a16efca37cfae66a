//! Admin.Stats as the `nudge stats` dashboard reads it: recent Decide latency
//! percentiles, and totals that agree with each other and with the answers the
//! calls got.

use nudge_proto::v1::{
    ConsentState, DecideRequest, DecideResponse, FilterReason, LatencySummary, Outcome,
    ReportOutcomeRequest, SetConsentRequest, StatsRequest, StatsResponse,
};
use nudge_tests::{MINUTE_MS, NOON, TestServer, decide_request, event};
use std::collections::BTreeMap;

async fn stats(server: &TestServer) -> StatsResponse {
    server
        .admin()
        .await
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner()
}

fn latency(stats: &StatsResponse) -> LatencySummary {
    stats.latency.expect("the server reports a latency summary")
}

/// A FilterReason as the lowercase code Stats uses, e.g. `opted_out`.
fn reason_code(reason: i32) -> String {
    let reason = FilterReason::try_from(reason).expect("a known reason");
    reason
        .as_str_name()
        .strip_prefix("FILTER_REASON_")
        .expect("prefixed")
        .to_ascii_lowercase()
}

/// What a list of Decide answers served and filtered, by action and reason.
#[derive(Debug, Default)]
struct Tally {
    served: BTreeMap<String, u64>,
    filtered: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, response: &DecideResponse) {
        for action in &response.served {
            *self.served.entry(action.action_id.clone()).or_default() += 1;
        }
        for count in &response.filtered_counts {
            *self.filtered.entry(reason_code(count.reason)).or_default() += u64::from(count.count);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_latency_percentiles_and_consistent_totals() {
    let server = TestServer::start().await;
    let empty = stats(&server).await;
    assert_eq!(
        latency(&empty),
        LatencySummary {
            window_seconds: 60,
            ..LatencySummary::default()
        },
        "no decisions yet"
    );
    assert!(empty.variants.is_empty() && empty.fallbacks_by_reason.is_empty());

    // One customer opted out of in_app: home_banner's in_app actions are
    // filtered as opted_out for them.
    server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: "c-stats-out".into(),
            channel: "in_app".into(),
            state: ConsentState::OptedOut as i32,
        })
        .await
        .expect("consent recorded");

    let mut tally = Tally::default();
    let mut decisions = 0_u64;
    let mut first = None;
    for round in 0..4 {
        for customer in ["c-stats-1", "c-stats-2", "c-stats-3", "c-stats-out"] {
            for placement in ["home_banner", "onboarding_sidebar", "push_moment"] {
                let response = server
                    .decide(DecideRequest {
                        dry_run: round == 3,
                        ..decide_request(customer, placement)
                    })
                    .await;
                tally.add(&response);
                decisions += 1;
                if first.is_none() && !response.served.is_empty() {
                    first = Some(response);
                }
            }
        }
    }
    for (index, name) in ["login", "pricing_page_view", "login"].iter().enumerate() {
        let id = format!("e-{index}");
        assert!(
            !server
                .track(event("c-stats-1", &id, name, NOON - MINUTE_MS))
                .await
        );
    }
    let first = first.expect("some decision served an action");
    let applied = server
        .decisions()
        .await
        .report_outcome(ReportOutcomeRequest {
            customer_id: "c-stats-1".into(),
            decision_id: first.decision_id.clone(),
            action_id: first.served[0].action_id.clone(),
            outcome: Outcome::Impression as i32,
            reward: None,
            timestamp: None,
            dispatch_id: String::new(),
        })
        .await
        .expect("outcome accepted")
        .into_inner();
    assert!(applied.applied);
    let refused = server
        .decisions()
        .await
        .decide(decide_request("c-stats-1", "no_such_placement"))
        .await;
    assert!(refused.is_err());

    let stats = stats(&server).await;
    let latency = latency(&stats);
    assert_eq!(latency.window_seconds, 60);
    assert_eq!(
        latency.count, decisions,
        "every answered decision is in the window"
    );
    assert!(latency.p50_micros > 0, "{latency:?}");
    let percentiles = [
        latency.p50_micros,
        latency.p90_micros,
        latency.p99_micros,
        latency.p999_micros,
        latency.max_micros,
    ];
    assert!(percentiles.is_sorted(), "{latency:?}");
    assert!(
        latency.max_micros < 10_000_000,
        "within the 10 s budget: {latency:?}"
    );

    assert_eq!(stats.decisions, decisions);
    assert_eq!(stats.fallbacks, 0);
    assert!(stats.fallbacks_by_reason.is_empty());
    assert_eq!(stats.variants.len(), 1, "{:?}", stats.variants);
    assert_eq!(stats.variants[0].variant, "default");
    assert_eq!(stats.variants[0].decisions, decisions);
    assert_eq!((stats.events, stats.duplicate_events), (3, 0));
    assert_eq!(stats.outcomes, 1);
    assert_eq!(stats.rejected_requests, 1);
    assert_eq!(stats.live_customers, 4);

    let served: BTreeMap<String, u64> = stats
        .served
        .iter()
        .map(|action| (action.action_id.clone(), action.count))
        .collect();
    assert_eq!(served, tally.served, "serves per action, dry runs included");
    let filtered: BTreeMap<String, u64> = stats
        .filtered
        .iter()
        .map(|reason| (reason.reason.clone(), reason.count))
        .collect();
    assert_eq!(filtered, tally.filtered, "filtered candidates per reason");
    for reason in ["opted_out", "no_consent", "not_eligible"] {
        assert!(
            filtered.get(reason).is_some_and(|count| *count > 0),
            "{reason} in {filtered:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_counted_by_reason() {
    // Headroom above the budget: every decision is answered from the ladder.
    let server = TestServer::start_with(|config| {
        config.budget_ms = 5_000;
        config.fallback_headroom_ms = 10_000;
    })
    .await;
    for customer in ["c-fallback-1", "c-fallback-2", "c-fallback-3"] {
        let response = server.decide(decide_request(customer, "home_banner")).await;
        assert!(response.fallback);
    }
    let stats = stats(&server).await;
    assert_eq!((stats.decisions, stats.fallbacks), (3, 3));
    assert_eq!(stats.fallbacks_by_reason.len(), 1);
    assert_eq!(stats.fallbacks_by_reason[0].reason, "deadline");
    assert_eq!(stats.fallbacks_by_reason[0].count, 3);
    assert_eq!(latency(&stats).count, 3);
    server.stop().await;
}
