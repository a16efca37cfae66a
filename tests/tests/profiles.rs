//! Profiles: consent and suppression change what can be chosen, and the
//! profile shows them.

use nudge_proto::v1::{
    ConsentState, FilterReason, SetConsentRequest, SuppressRequest, SuppressionReason,
    UnsuppressRequest,
};
use nudge_tests::{
    HOUR_MS, NOON, TestServer, decide_request, event, filter_reason, filtered, probe_request,
    served_ids,
};

const IN_APP_ACTIONS: [&str; 6] = [
    "welcome_tour",
    "connect_first_integration",
    "create_first_report",
    "invite_teammates",
    "upgrade_to_pro_banner",
    "template_gallery",
];

async fn set_consent(
    server: &TestServer,
    customer: &str,
    channel: &str,
    state: ConsentState,
) -> ConsentState {
    server
        .profiles()
        .await
        .set_consent(SetConsentRequest {
            customer_id: customer.into(),
            channel: channel.into(),
            state: state.into(),
        })
        .await
        .expect("consent is recorded")
        .into_inner()
        .previous()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opting_out_of_in_app_removes_its_actions() {
    let server = TestServer::start().await;
    let customer = "c-optout-in-app";
    let before = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(before.served[0].channel, "in_app");

    let previous = set_consent(&server, customer, "in_app", ConsentState::OptedOut).await;
    assert_eq!(previous, ConsentState::Unspecified);

    let after = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert!(
        after.served.iter().all(|action| action.channel != "in_app"),
        "{:?}",
        served_ids(&after)
    );
    assert_eq!(served_ids(&after), vec!["guide_getting_started"]);
    for action in IN_APP_ACTIONS {
        let candidate = filtered(&after, action).unwrap_or_else(|| panic!("{action} is explained"));
        assert_eq!(candidate.reason(), FilterReason::OptedOut, "{action}");
        assert!(
            candidate.message.contains("in_app"),
            "{}",
            candidate.message
        );
    }

    let profile = server.profile(customer).await.expect("known");
    let consent = profile
        .consent
        .iter()
        .find(|consent| consent.channel == "in_app")
        .expect("in-app consent recorded");
    assert_eq!(consent.state(), ConsentState::OptedOut);
    assert_eq!(consent.updated_at, Some(nudge_tests::at(NOON)));

    // Opting back in restores them.
    let previous = set_consent(&server, customer, "in_app", ConsentState::OptedIn).await;
    assert_eq!(previous, ConsentState::OptedOut);
    let again = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(again.served[0].channel, "in_app");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opting_out_of_email_removes_its_actions() {
    let server = TestServer::start().await;
    let customer = "c-optout-email";
    let before = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert_eq!(served_ids(&before), vec!["tips_newsletter_email"]);

    set_consent(&server, customer, "email", ConsentState::OptedOut).await;
    let after = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert!(after.served.is_empty(), "{:?}", served_ids(&after));
    assert_eq!(
        filter_reason(&after, "tips_newsletter_email"),
        Some(FilterReason::OptedOut)
    );
    assert!(
        after
            .filtered
            .iter()
            .all(|candidate| candidate.reason() == FilterReason::OptedOut),
        "every email action is opted out: {:?}",
        after.filtered
    );
    // A real decision serves nothing and records nothing.
    let real = server.decide(decide_request(customer, "daily_email")).await;
    assert!(real.served.is_empty());
    let profile = server.profile(customer).await.expect("known");
    assert!(profile.contacts.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_needs_an_opt_in() {
    let server = TestServer::start().await;
    let customer = "c-sms";
    let sms = "payment_failed_sms";
    assert!(
        !server
            .track(event(customer, "pf-1", "payment_failed", NOON - HOUR_MS))
            .await
    );

    let before = server
        .decide(probe_request(customer, "push_moment", &[]))
        .await;
    assert!(served_ids(&before).iter().all(|id| *id != sms));
    let candidate = filtered(&before, sms).expect("the SMS action is explained");
    assert_eq!(candidate.reason(), FilterReason::NoConsent);
    assert!(
        candidate.message.contains("opt-in"),
        "{}",
        candidate.message
    );

    // Opting out is not opting in.
    set_consent(&server, customer, "sms", ConsentState::OptedOut).await;
    let opted_out = server
        .decide(probe_request(customer, "push_moment", &[sms]))
        .await;
    assert_eq!(filter_reason(&opted_out, sms), Some(FilterReason::OptedOut));

    set_consent(&server, customer, "sms", ConsentState::OptedIn).await;
    let after = server
        .decide(probe_request(customer, "push_moment", &[]))
        .await;
    assert_eq!(served_ids(&after), vec![sms]);
    assert_eq!(after.served[0].channel, "sms");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_blocks_a_channel_until_lifted() {
    let server = TestServer::start().await;
    let customer = "c-bounce";
    let mut profiles = server.profiles().await;
    let suppressed = profiles
        .suppress(SuppressRequest {
            customer_id: customer.into(),
            channel: "email".into(),
            reason: SuppressionReason::Bounce.into(),
            note: "ticket 42".into(),
        })
        .await
        .expect("suppressed")
        .into_inner();
    assert!(suppressed.changed);
    // The same suppression again changes nothing.
    let again = profiles
        .suppress(SuppressRequest {
            customer_id: customer.into(),
            channel: "email".into(),
            reason: SuppressionReason::Bounce.into(),
            note: String::new(),
        })
        .await
        .expect("accepted")
        .into_inner();
    assert!(!again.changed);

    let blocked = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert!(blocked.served.is_empty(), "{:?}", served_ids(&blocked));
    let candidate = filtered(&blocked, "tips_newsletter_email").expect("explained");
    assert_eq!(candidate.reason(), FilterReason::Suppressed);
    assert!(
        candidate.message.contains("bounce"),
        "{}",
        candidate.message
    );
    assert!(
        blocked
            .filtered
            .iter()
            .all(|candidate| candidate.reason() == FilterReason::Suppressed)
    );
    // Other channels are untouched.
    let banner = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(banner.served[0].channel, "in_app");

    let profile = server.profile(customer).await.expect("known");
    assert_eq!(profile.suppressions.len(), 1);
    let suppression = &profile.suppressions[0];
    assert_eq!(suppression.channel, "email");
    assert_eq!(suppression.reason(), SuppressionReason::Bounce);
    assert_eq!(suppression.note, "ticket 42");

    // Lifting a different reason changes nothing.
    let other = profiles
        .unsuppress(UnsuppressRequest {
            customer_id: customer.into(),
            channel: "email".into(),
            reason: SuppressionReason::Complaint.into(),
        })
        .await
        .expect("accepted")
        .into_inner();
    assert!(!other.changed);
    let still = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert!(still.served.is_empty());

    let lifted = profiles
        .unsuppress(UnsuppressRequest {
            customer_id: customer.into(),
            channel: "email".into(),
            reason: SuppressionReason::Bounce.into(),
        })
        .await
        .expect("lifted")
        .into_inner();
    assert!(lifted.changed);
    let open = server
        .decide(probe_request(customer, "daily_email", &[]))
        .await;
    assert_eq!(served_ids(&open), vec!["tips_newsletter_email"]);
    // With the suppression lifted (and only dry runs) nudge holds nothing about
    // the customer any more, so the profile is as unknown as a new one.
    let status = server.profile(customer).await.expect_err("nothing held");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_channel_suppression_blocks_everything() {
    let server = TestServer::start().await;
    let customer = "c-legal";
    let mut profiles = server.profiles().await;
    profiles
        .suppress(SuppressRequest {
            customer_id: customer.into(),
            channel: String::new(),
            reason: SuppressionReason::Legal.into(),
            note: String::new(),
        })
        .await
        .expect("suppressed");
    for placement in ["home_banner", "daily_email", "onboarding_sidebar"] {
        let response = server.decide(probe_request(customer, placement, &[])).await;
        assert!(
            response.served.is_empty(),
            "{placement}: {:?}",
            served_ids(&response)
        );
        assert!(
            response
                .filtered
                .iter()
                .all(|candidate| candidate.reason() == FilterReason::Suppressed),
            "{placement}"
        );
    }
    let lifted = profiles
        .unsuppress(UnsuppressRequest {
            customer_id: customer.into(),
            channel: String::new(),
            reason: SuppressionReason::Unspecified.into(),
        })
        .await
        .expect("lifted")
        .into_inner();
    assert!(lifted.changed);
    let open = server
        .decide(probe_request(customer, "home_banner", &[]))
        .await;
    assert_eq!(open.served.len(), 1);
    server.stop().await;
}
