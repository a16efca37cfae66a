//! Profile scores, tiers and send times against the real server on the
//! demo catalog: a score updates when its inputs change and not otherwise
//! (throttled off the decision path, refreshed before a decision when
//! stale); an eligibility rule and a journey branch on a tier; a score
//! model refused when its features are not computable, and one loaded
//! driving the tier; scores in the decision log; a suggested send time
//! that follows the customer's engagement and gives way to quiet hours.

use nudge_proto::v1::{
    ExportDecisionsRequest, GetCustomerJourneysRequest, ListModelsRequest, LoadModelRequest,
    Profile, ProfileScores,
};
use nudge_tests::{DAY_MS, HOUR_MS, NOON, TestServer, decide_request, event, served_ids, text};
use tonic::Code;

fn scores(profile: &Profile) -> &ProfileScores {
    profile.scores.as_ref().expect("the demo declares scores")
}

async fn scores_of(server: &TestServer, customer: &str) -> ProfileScores {
    scores(&server.profile(customer).await.expect("a profile")).clone()
}

fn identify(
    customer: &str,
    id: &str,
    at: i64,
    attributes: &[(&str, &str)],
) -> nudge_proto::v1::Event {
    let mut identify = event(customer, id, "identify", at);
    for (name, value) in attributes {
        identify.properties.insert((*name).to_owned(), text(value));
    }
    identify
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_updates_when_its_inputs_change_and_not_otherwise() {
    let server = TestServer::start_on(nudge_tests::demo_without_journeys(), |_| {}).await;
    server
        .track(event("ada", "l1", "login", NOON - HOUR_MS))
        .await;
    let first = scores_of(&server, "ada").await;
    // ln(2) · 10 for one login in 7 days.
    let adoption = first.values["adoption"];
    assert!((adoption - 10.0 * 2f64.ln()).abs() < 1e-9, "{adoption}");
    assert_eq!(first.tiers["adoption"], "new");
    assert!(!first.stale);

    // A page view is no score's input: nothing is recomputed.
    server.clock.advance(nudge_models::time::Span(120_000));
    server.track(event("ada", "p1", "page_view", NOON)).await;
    assert_eq!(scores_of(&server, "ada").await, first);

    // An activation is: refreshed at once (the last refresh is older than
    // the one-minute throttle).
    server
        .track(event("ada", "f1", "feature_activated", NOON + 60_000))
        .await;
    let second = scores_of(&server, "ada").await;
    assert!(second.values["adoption"] > adoption, "{second:?}");
    assert_ne!(second.computed_at, first.computed_at);
    assert!(!second.stale);

    // Another within the minute: held back by the throttle, marked stale.
    server.clock.advance(nudge_models::time::Span(10_000));
    server
        .track(event("ada", "f2", "feature_activated", NOON + 70_000))
        .await;
    let held = scores_of(&server, "ada").await;
    assert!(held.stale);
    assert_eq!(held.values, second.values);

    // A decision refreshes stale scores first, and writes them.
    server.decide(decide_request("ada", "home_banner")).await;
    let fresh = scores_of(&server, "ada").await;
    assert!(!fresh.stale);
    assert!(fresh.values["adoption"] > second.values["adoption"]);

    // The decision log records the scores the decision saw.
    let mut admin = server.admin().await;
    let mut stream = admin
        .export_decisions(ExportDecisionsRequest::default())
        .await
        .expect("export")
        .into_inner();
    let logged = stream
        .message()
        .await
        .expect("a message")
        .expect("one decision");
    assert_eq!(logged.scores["adoption"], fresh.values["adoption"]);
    assert_eq!(logged.tiers["adoption"], fresh.tiers["adoption"]);
    server.stop().await;
}

/// The demo with an action only a high churn tier may get.
fn demo_with_rescue_offer() -> String {
    format!(
        "{}\n[[actions]]\nid = \"high_risk_offer\"\nchannel = \"in_app\"\ncategory = \"retention\"\nvalue = 50.0\nrule = \"profile.tiers.churn == 'high'\"\n",
        nudge_models::demo::CATALOG_TOML
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eligibility_rule_and_a_journey_branch_read_the_churn_tier() {
    let server = TestServer::start_on(&demo_with_rescue_offer(), |_| {}).await;
    // Away for 20 days on an enterprise plan, no team activity: high.
    server
        .track(identify(
            "gone",
            "i",
            NOON - 30 * DAY_MS,
            &[("plan", "enterprise")],
        ))
        .await;
    server
        .track(event("gone", "l", "login", NOON - 20 * DAY_MS))
        .await;
    // Active yesterday (past the one-minute throttle of the
    // refresh the identify made, so the login refreshes at once).
    server
        .track(identify(
            "here",
            "i",
            NOON - 30 * DAY_MS,
            &[("plan", "enterprise")],
        ))
        .await;
    server.clock.advance(nudge_models::time::Span(120_000));
    server
        .track(event("here", "l", "login", NOON - DAY_MS))
        .await;
    assert_eq!(scores_of(&server, "gone").await.tiers["churn"], "high");
    // A month in and nothing activated: low.
    assert_eq!(scores_of(&server, "here").await.tiers["churn"], "low");

    let mut probe = nudge_tests::probe_request("gone", "home_banner", &["high_risk_offer"]);
    let gone = server.decide(probe.clone()).await;
    assert_eq!(served_ids(&gone), ["high_risk_offer"]);
    probe.customer_id = "here".to_owned();
    let here = server.decide(probe).await;
    assert!(served_ids(&here).is_empty());
    assert_eq!(
        nudge_tests::filter_reason(&here, "high_risk_offer"),
        Some(nudge_proto::v1::FilterReason::NotEligible)
    );

    // A support ticket starts churn prevention, which routes by the tier.
    server
        .track(event("gone", "t", "support_ticket_opened", NOON))
        .await;
    server
        .track(event("here", "t", "support_ticket_opened", NOON))
        .await;
    let mut admin = server.admin().await;
    for (customer, step) in [("gone", "csm_call"), ("here", "feature_discovery")] {
        let runs = admin
            .get_customer_journeys(GetCustomerJourneysRequest {
                customer_id: customer.to_owned(),
            })
            .await
            .expect("runs")
            .into_inner()
            .runs;
        let run = runs
            .iter()
            .find(|run| run.journey_id == "churn_prevention")
            .expect("a churn prevention run");
        let steps: Vec<&str> = run
            .history
            .iter()
            .map(|entry| entry.step.as_str())
            .collect();
        assert!(steps.contains(&step), "{customer}: {steps:?}");
    }
    server.stop().await;
}

/// A churn model artifact over `features`.
fn churn_artifact(version: &str, features: &[&str], weights: &[f64], intercept: f64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "format": "nudge.logistic/v1",
        "version": version,
        "description": "churn within 30 days",
        "features": features,
        "weights": weights,
        "intercept": intercept,
    }))
    .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_model_is_refused_when_not_computable_and_drives_the_tier_once_loaded() {
    let server = TestServer::start_on(nudge_tests::demo_without_journeys(), |_| {}).await;
    server
        .track(identify(
            "bo",
            "i",
            NOON - 30 * DAY_MS,
            &[("plan", "pro"), ("seats", "10")],
        ))
        .await;
    server
        .track(event("bo", "l", "login", NOON - 3 * DAY_MS))
        .await;
    let before = scores_of(&server, "bo").await;
    assert!(!before.values.contains_key("churn_risk"));
    let mut admin = server.admin().await;

    // A feature of the request context: not computable for a profile.
    let status = admin
        .load_model(LoadModelRequest {
            artifact: churn_artifact(
                "churn-bad",
                &["ctx(page)", "days_since(login)"],
                &[1.0, 0.1],
                -2.0,
            ),
            holdout_auc: None,
            score: "churn_risk".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("ctx(page)"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("request context"),
        "{}",
        status.message()
    );
    // Not a model score of the catalog.
    let status = admin
        .load_model(LoadModelRequest {
            artifact: churn_artifact("churn-x", &["days_since(login)"], &[0.1], -2.0),
            holdout_auc: None,
            score: "adoption".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let listing = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listing.score_models.is_empty());

    // A computable one: loaded, computing the score for everyone.
    admin
        .load_model(LoadModelRequest {
            artifact: churn_artifact("churn-1", &["days_since(login)"], &[0.5], -1.0),
            holdout_auc: Some(0.8),
            score: "churn_risk".to_owned(),
        })
        .await
        .expect("loaded");
    let listing = admin
        .list_models(ListModelsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listing.score_models["churn_risk"], "churn-1");
    // The next decision recomputes it: σ(0.5 · 3 − 1) ≈ 0.62, tier high by
    // the model's band (0.5), whatever the rules would say.
    server.decide(decide_request("bo", "home_banner")).await;
    let after = scores_of(&server, "bo").await;
    let churn = after.values["churn_risk"];
    assert!(
        (churn - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-9,
        "{churn}"
    );
    assert_eq!(after.tiers["churn"], "high");
    // And the lifetime value uses it: 10 pro seats are 300 a month.
    assert!(
        after.values["clv"] < before.values["clv"],
        "{after:?} vs {before:?}"
    );
    assert_eq!(after.values["monthly_value"], 300.0);
    server.stop().await;
}

/// A starter customer in Berlin who opened an email at `utc_hour` on each
/// of the 14 days before the test's day.
async fn opens_email_daily(server: &TestServer, customer: &str, utc_hour: i64) {
    server
        .track(identify(
            customer,
            "i",
            NOON - 20 * DAY_MS,
            &[("timezone", "Europe/Berlin"), ("plan", "starter")],
        ))
        .await;
    // NOON is 12:00 UTC.
    for day in 1..=14 {
        server
            .track(event(
                customer,
                &format!("o{day}"),
                "email_opened",
                NOON - day * DAY_MS + (utc_hour - 12) * HOUR_MS,
            ))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_suggests_a_send_time_that_follows_engagement_and_gives_way_to_quiet_hours() {
    let server = TestServer::start_on(nudge_tests::demo_without_journeys(), |_| {}).await;
    // Opens email at 18:00 in Berlin (17:00 UTC) every day for two weeks.
    opens_email_daily(&server, "eve", 17).await;
    let response = server.decide(decide_request("eve", "daily_email")).await;
    let served = response.served.first().expect("an email is served");
    let send_at = served.send_at.as_ref().expect("email gets a send time");
    assert_eq!(send_at.at, Some(nudge_tests::at(NOON + 5 * HOUR_MS)));
    assert_eq!(send_at.local_hour, "Mon 18:00");
    assert_eq!(send_at.basis, "personal");
    assert_eq!(send_at.placement, "best");

    // A customer who opens at 22:00 Berlin (21:00 UTC), inside email's quiet
    // hours (21:00–08:00 local): the suggestion moves to an open hour.
    opens_email_daily(&server, "owl", 21).await;
    let response = server.decide(decide_request("owl", "daily_email")).await;
    let send_at = response.served[0].send_at.as_ref().expect("a send time");
    assert_eq!(send_at.placement, "moved");
    // Outside the quiet hours (where depends on the population's pattern:
    // eve's evenings count too).
    let hour: u32 = send_at.local_hour[4..6].parse().expect("HH");
    assert!((8..21).contains(&hour), "{}", send_at.local_hour);

    // In-app actions get none.
    let response = server.decide(decide_request("owl", "home_banner")).await;
    assert!(
        response
            .served
            .iter()
            .all(|served| served.send_at.is_none())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_and_clicks_of_outbound_sends_count_as_engagements() {
    use nudge_proto::v1::{Outcome as OutcomeKind, ReportOutcomeRequest};
    let server = TestServer::start_on(nudge_tests::demo_without_journeys(), |_| {}).await;
    server
        .track(identify(
            "ivy",
            "i",
            NOON - DAY_MS,
            &[("timezone", "Europe/Berlin"), ("plan", "starter")],
        ))
        .await;
    let engaged = |state: &nudge_models::customer::CustomerState| state.profile.send_times.total();
    let population = || server.engine.shared().population.snapshot().total();
    assert_eq!(
        engaged(&server.engine.profile("ivy").await.expect("ivy")),
        0
    );
    let before = population();
    let email = server.decide(decide_request("ivy", "daily_email")).await;
    let in_app = server.decide(decide_request("ivy", "home_banner")).await;
    let report =
        |response: &nudge_proto::v1::DecideResponse, kind: OutcomeKind| ReportOutcomeRequest {
            customer_id: "ivy".to_owned(),
            decision_id: response.decision_id.clone(),
            action_id: response.served[0].action_id.clone(),
            outcome: kind.into(),
            ..Default::default()
        };
    let mut decisions = server.decisions().await;
    for (response, kind) in [
        (&email, OutcomeKind::Impression),
        (&email, OutcomeKind::Click),
        // Neither a conversion nor an in-app impression says when the
        // customer reads their email.
        (&email, OutcomeKind::Conversion),
        (&in_app, OutcomeKind::Impression),
    ] {
        decisions
            .report_outcome(report(response, kind))
            .await
            .expect("the outcome is applied");
    }
    assert_eq!(
        engaged(&server.engine.profile("ivy").await.expect("ivy")),
        2
    );
    assert_eq!(population() - before, 2);
    server.stop().await;
}
