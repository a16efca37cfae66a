//! Point-in-time replay against the real server: the features training
//! recomputes for a logged decision, from the exported event log replayed
//! through the profile code, equal — bit for bit — the features the serving
//! model scored when it decided. Events, late events, duplicates, identify
//! attributes, request context and reported outcomes all take part.

use nudge_models::catalog::Catalog;
use nudge_models::features::FeatureSet;
use nudge_models::model::Model;
use nudge_proto::v1::{DecideRequest, Outcome, ReportOutcomeRequest};
use nudge_service::cli::export::read;
use nudge_service::cli::{ClientArgs, ExportArgs, export_decisions};
use nudge_tests::{HOUR_MS, MINUTE_MS, NOON, TempDir, TestServer, event, text};
use nudge_training::log::{Features, dataset};
use std::collections::HashMap;

fn decide(customer: &str, placement: &str, context: &[(&str, &str)]) -> DecideRequest {
    DecideRequest {
        customer_id: customer.to_owned(),
        placement: placement.to_owned(),
        context: context
            .iter()
            .map(|(key, value)| ((*key).to_owned(), text(value)))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_features_equal_the_features_logged_at_decision_time() {
    let server = TestServer::start().await;
    let minute = nudge_models::time::Span(MINUTE_MS);
    let mut decisions = 0;
    for (customer, plan) in [("replay-a", "trial"), ("replay-b", "enterprise")] {
        let mut identify = event(
            customer,
            &format!("{customer}-id"),
            "identify",
            NOON - 40 * HOUR_MS,
        );
        identify.properties = [("plan".to_owned(), text(plan))].into_iter().collect();
        server.track(identify).await;
        for (n, name) in [
            "login",
            "page_view",
            "pricing_page_view",
            "feature_activated",
            "email_opened",
            "report_created",
        ]
        .iter()
        .enumerate()
        {
            let at = NOON - (n as i64 + 1) * 3 * HOUR_MS;
            server
                .track(event(customer, &format!("{customer}-{n}"), name, at))
                .await;
            server.clock.advance(minute);
        }
        for round in 0..4 {
            let context: &[(&str, &str)] = if round % 2 == 0 {
                &[("device", "mobile"), ("page", "billing")]
            } else {
                &[("page", "docs")]
            };
            let placement = if round < 2 {
                "home_banner"
            } else {
                "onboarding_sidebar"
            };
            let response = server.decide(decide(customer, placement, context)).await;
            decisions += 1;
            if let Some(served) = response.served.first() {
                for outcome in [Outcome::Impression, Outcome::Click] {
                    server
                        .decisions()
                        .await
                        .report_outcome(ReportOutcomeRequest {
                            customer_id: customer.to_owned(),
                            decision_id: response.decision_id.clone(),
                            action_id: served.action_id.clone(),
                            outcome: outcome.into(),
                            ..Default::default()
                        })
                        .await
                        .expect("the outcome is accepted");
                }
            }
            // More behaviour between decisions: a late event (an old
            // timestamp), a duplicate (not applied, not logged), a login.
            server.clock.advance(minute);
            server
                .track(event(
                    customer,
                    &format!("{customer}-late-{round}"),
                    "login",
                    NOON - 20 * HOUR_MS,
                ))
                .await;
            assert!(
                server
                    .track(event(customer, &format!("{customer}-0"), "login", NOON))
                    .await,
                "a duplicate"
            );
            server
                .track(event(
                    customer,
                    &format!("{customer}-pricing-{round}"),
                    "pricing_page_view",
                    NOON + round * MINUTE_MS,
                ))
                .await;
            server.clock.advance(minute);
        }
    }

    let scratch = TempDir::new("replay");
    let options = ClientArgs {
        server: format!("http://{}", server.addr),
        ..ClientArgs::default()
    };
    let export = |out, events| ExportArgs {
        out,
        since: None,
        until: None,
        format: None,
        data_dir: None,
        events,
    };
    let decisions_file = scratch.join("decisions.parquet");
    let events_file = scratch.join("events.parquet");
    let summary = export_decisions(&export(decisions_file.clone(), false), &options)
        .await
        .expect("the decision export succeeds");
    assert_eq!(summary.decisions, decisions);
    let summary = export_decisions(&export(events_file.clone(), true), &options)
        .await
        .expect("the event export succeeds");
    // Per customer: identify, 6 events, 3 per round (the duplicate is not
    // applied).
    assert_eq!(summary.events, Some(2 * (1 + 6 + 4 * 2)));

    let logged = read::decisions(&decisions_file).expect("the decision export reads back");
    let events = read::events(&events_file).expect("the event export reads back");
    let ordinals: Vec<u64> = events
        .iter()
        .filter(|event| event.customer_id == "replay-a")
        .map(|event| event.ordinal)
        .collect();
    assert_eq!(ordinals, (1..=15).collect::<Vec<_>>(), "numbered in order");
    assert!(
        logged
            .iter()
            .all(|decision| decision.record.events_applied.is_some()
                && !decision.record.eligible.is_empty()),
        "every decision records its event count and its eligible actions"
    );
    assert!(
        logged
            .iter()
            .any(|decision| decision.record.context.contains_key("device")),
        "the context is logged"
    );

    let model =
        Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes()).expect("the demo model");
    let features = FeatureSet::parse(&model.feature_names()).expect("its features parse");
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("the demo catalog");
    let (data, summary) = dataset(
        "decisions.parquet",
        &logged,
        Features::Replayed {
            features: &features,
            events: &events,
            catalog: &catalog,
        },
    )
    .expect("the decisions replay");
    assert!(summary.rows > 0, "{summary:?}");
    assert_eq!(summary.skipped_unreplayable, 0, "{summary:?}");
    assert_eq!(summary.replay_checked, summary.rows, "{summary:?}");
    assert_eq!(
        summary.replay_mismatches, 0,
        "replayed features differ from the logged ones: {summary:?}"
    );
    // The logged-features dataset holds the very same matrix.
    let (logged_data, _) =
        dataset("decisions.parquet", &logged, Features::Logged).expect("logged features");
    assert_eq!(data.x, logged_data.x);
    assert_eq!(data.propensities, logged_data.propensities);

    // Without the customers' first events the replay refuses, saying why.
    let truncated: Vec<_> = events
        .iter()
        .filter(|event| event.ordinal > 1)
        .cloned()
        .collect();
    let error = dataset(
        "decisions.parquet",
        &logged,
        Features::Replayed {
            features: &features,
            events: &truncated,
            catalog: &catalog,
        },
    )
    .expect_err("no decision is replayable")
    .to_string();
    assert!(error.contains("not replayable"), "{error}");
    assert!(error.contains("start at number 2"), "{error}");
}
