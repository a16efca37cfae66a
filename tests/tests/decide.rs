//! Decide: ranked and explained answers, events that change the next decision,
//! and dry runs that record nothing.

use nudge_proto::v1::{DecideRequest, FilterReason};
use nudge_tests::{
    MINUTE_MS, NOON, TestServer, contacts_on, decide_request, event, filtered, probe_request,
    reason_count, served, served_ids,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_returns_ranked_explained_actions() {
    let server = TestServer::start().await;
    let response = server
        .decide(DecideRequest {
            explain: true,
            request_id: "req-1".into(),
            ..decide_request("c-ranked", "onboarding_sidebar")
        })
        .await;

    assert!(!response.decision_id.is_empty());
    assert!(!response.dry_run);
    assert!(!response.fallback);
    assert_eq!(response.model_version, nudge_models::demo::MODEL_VERSION);
    assert_eq!(response.catalog_version, "demo-2026-11");
    assert_eq!(response.request_id, "req-1");
    assert_eq!(response.variant, "default");

    // The placement's three slots, ranked 1..=3, best first, one per category.
    assert_eq!(response.served.len(), 3, "{:?}", served_ids(&response));
    let ranks: Vec<u32> = response.served.iter().map(|action| action.rank).collect();
    assert_eq!(ranks, vec![1, 2, 3]);
    let categories: std::collections::BTreeSet<&str> = response
        .served
        .iter()
        .map(|action| action.category.as_str())
        .collect();
    assert_eq!(categories.len(), 3, "one action per category");
    for action in &response.served {
        assert!(
            ["in_app", "content"].contains(&action.channel.as_str()),
            "{}",
            action.channel
        );
        assert!(
            ["onboarding", "activation", "education"].contains(&action.category.as_str()),
            "{}",
            action.category
        );
        assert!(action.propensity > 0.0 && action.propensity < 1.0);
        assert!(action.score > 0.0);
        assert!((0.0..=1.0).contains(&action.confidence));
        assert!(action.selection_probability > 0.0 && action.selection_probability <= 1.0);
        assert!(action.value > 0.0);
        assert!(action.payload.contains_key("title"));
        assert!(
            !action.rationale.is_empty(),
            "{} has no rationale",
            action.action_id
        );
        for reason in &action.rationale {
            assert!(!reason.feature.is_empty());
            assert!(!reason.text.trim().is_empty(), "{reason:?}");
        }
        // Largest effect first.
        let effects: Vec<f64> = action
            .rationale
            .iter()
            .map(|reason| reason.contribution.abs())
            .collect();
        assert!(
            effects.windows(2).all(|pair| pair[0] >= pair[1]),
            "{effects:?}"
        );
    }

    // Every candidate not served is explained, and the counts agree.
    assert!(!response.filtered.is_empty());
    assert!(
        response
            .filtered
            .iter()
            .all(|candidate| candidate.reason() != FilterReason::Unspecified
                && !candidate.message.is_empty())
    );
    let counted: u32 = response
        .filtered_counts
        .iter()
        .map(|count| count.count)
        .sum();
    assert_eq!(counted as usize, response.filtered.len());
    assert!(reason_count(&response, FilterReason::NotEligible) > 0);
    // Email is not allowed in the sidebar: its actions are not even candidates.
    assert!(filtered(&response, "tips_newsletter_email").is_none());

    // Without explain: the same counts, no per-candidate list.
    let quiet = server
        .decide(DecideRequest {
            dry_run: true,
            ..decide_request("c-ranked-2", "onboarding_sidebar")
        })
        .await;
    assert!(quiet.filtered.is_empty());
    assert!(!quiet.filtered_counts.is_empty());
    assert_eq!(served_ids(&quiet), served_ids(&response));

    // `limit` overrides the slots.
    let one = server
        .decide(DecideRequest {
            limit: 1,
            dry_run: true,
            ..decide_request("c-ranked-3", "onboarding_sidebar")
        })
        .await;
    assert_eq!(one.served.len(), 1);
    assert_eq!(one.served[0].rank, 1);
    assert_eq!(one.served[0].action_id, response.served[0].action_id);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pricing_page_views_raise_the_upsell_and_explain_it() {
    let server = TestServer::start().await;
    let customer = "c-pricing";
    let upsell = "upgrade_to_pro_banner";

    let before = server
        .decide(probe_request(customer, "home_banner", &[upsell]))
        .await;
    let before_action = served(&before, upsell).expect("the upsell is eligible for a new customer");
    assert!(
        !before_action
            .rationale
            .iter()
            .any(|reason| reason.feature.contains("pricing_page_view")),
        "{:?}",
        before_action.rationale
    );
    // The demo model, trained on simulated customers who all have a plan,
    // already shows the upgrade to a customer with none (the plan terms are
    // what hold it down); the views raise it and explain it.
    let banner_before = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(served_ids(&banner_before), vec![upsell]);

    for (index, minutes_ago) in [50, 30, 10].into_iter().enumerate() {
        let duplicate = server
            .track(event(
                customer,
                &format!("pricing-{index}"),
                "pricing_page_view",
                NOON - minutes_ago * MINUTE_MS,
            ))
            .await;
        assert!(!duplicate);
    }

    let after = server
        .decide(probe_request(customer, "home_banner", &[upsell]))
        .await;
    let after_action = served(&after, upsell).expect("the upsell is still eligible");
    assert!(
        after_action.propensity > before_action.propensity,
        "propensity {} -> {}",
        before_action.propensity,
        after_action.propensity
    );
    assert!(
        after_action.score > before_action.score,
        "score {} -> {}",
        before_action.score,
        after_action.score
    );
    let pricing = after_action
        .rationale
        .iter()
        .find(|reason| {
            reason.feature.contains("count(pricing_page_view,7d)")
                || reason.text.contains("pricing")
        })
        .unwrap_or_else(|| panic!("no pricing reason in {:?}", after_action.rationale));
    assert!(pricing.contribution > 0.0);
    assert_eq!(pricing.value, 3.0, "three views in the last 7 days");
    assert!(pricing.text.contains("pricing"), "{}", pricing.text);
    // It is the largest contribution.
    assert_eq!(after_action.rationale[0], *pricing);

    // The upgrade banner wins the home banner, now explained by the views.
    let banner_after = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(served_ids(&banner_after), vec![upsell]);
    assert_eq!(banner_after.served[0].rationale[0], *pricing);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_record_nothing() {
    let server = TestServer::start().await;
    let customer = "c-dry";
    let mut first_served = None;
    for _ in 0..10 {
        let response = server
            .decide(DecideRequest {
                dry_run: true,
                ..decide_request(customer, "home_banner")
            })
            .await;
        assert!(
            response.decision_id.is_empty(),
            "a dry run has no decision id"
        );
        assert!(response.dry_run);
        assert_eq!(response.served.len(), 1);
        assert_eq!(response.served[0].channel, "in_app");
        // Nothing recorded: no cooldown, so every dry run gives the same answer.
        let id = response.served[0].action_id.clone();
        assert_eq!(first_served.get_or_insert(id.clone()), &id);
        assert_eq!(reason_count(&response, FilterReason::Cooldown), 0);
    }
    // Dry runs leave no trace at all: the customer is still unknown.
    let status = server
        .profile(customer)
        .await
        .expect_err("nothing was recorded");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    // The in-app cap of 5 is untouched: five real serves still go through.
    for serve in 0..5 {
        let response = server.decide(decide_request(customer, "home_banner")).await;
        assert!(!response.decision_id.is_empty());
        assert!(!response.dry_run);
        assert_eq!(
            response
                .served
                .first()
                .map(|action| action.channel.as_str()),
            Some("in_app"),
            "serve {serve}: {:?}",
            served_ids(&response)
        );
    }
    let profile = server
        .profile(customer)
        .await
        .expect("known after real serves");
    assert_eq!(contacts_on(&profile, "in_app"), 5);
    assert_eq!(profile.contacts.len(), 5);

    // And a dry run now sees the cap.
    let probe = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_ne!(probe.served[0].channel, "in_app");
    assert!(reason_count(&probe, FilterReason::CapChannel) > 0);
    // Still nothing recorded by it.
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(profile.contacts.len(), 5);
    server.stop().await;
}
