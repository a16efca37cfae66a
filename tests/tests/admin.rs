//! Admin: catalog validation and reload, and statistics.

use nudge_models::demo::CATALOG_TOML;
use nudge_proto::v1::{ReloadCatalogRequest, StatsRequest, ValidateCatalogRequest};
use nudge_tests::{HOUR_MS, NOON, TestServer, decide_request, event};

const WELCOME_TOUR: &str = "id = \"welcome_tour\"\nname = \"Product tour\"\nchannel = \"in_app\"";

/// Where a mistake is: the 1-based lines of its action's `[[actions]]` header
/// and of the offending key.
#[derive(Debug, Clone, Copy)]
struct Mistake {
    header: u32,
    key: u32,
}

impl Mistake {
    /// Problems point into the action that has the mistake: at its header or
    /// at the key itself.
    fn covers(self, line: u32) -> bool {
        (self.header..=self.key).contains(&line)
    }
}

/// The demo catalog with two mistakes: welcome_tour on an undeclared channel,
/// and an unparseable cooldown on connect_first_integration.
fn bad_catalog() -> (String, Mistake, Mistake) {
    assert!(
        CATALOG_TOML.contains(WELCOME_TOUR),
        "the demo's first action moved"
    );
    let text = CATALOG_TOML.replacen(
        WELCOME_TOUR,
        "id = \"welcome_tour\"\nname = \"Product tour\"\nchannel = \"fax\"",
        1,
    );
    let integration = text
        .find("id = \"connect_first_integration\"")
        .expect("the demo has connect_first_integration");
    let cooldown = integration
        + text[integration..]
            .find("cooldown = \"1h\"")
            .expect("with a cooldown");
    let text = format!(
        "{}cooldown = \"a fortnight\"{}",
        &text[..cooldown],
        &text[cooldown + "cooldown = \"1h\"".len()..]
    );
    let line_at =
        |position: usize| u32::try_from(text[..position].matches('\n').count() + 1).expect("small");
    let mistake = |needle: &str| {
        let key = text.find(needle).expect("the mistake is in the text");
        let header = text[..key].rfind("[[actions]]").expect("inside an action");
        Mistake {
            header: line_at(header),
            key: line_at(key),
        }
    };
    let channel = mistake("channel = \"fax\"");
    let cooldown = mistake("cooldown = \"a fortnight\"");
    (text, channel, cooldown)
}

fn renamed_catalog(version: &str) -> String {
    let current = "version = \"demo-2026-11\"";
    assert_eq!(CATALOG_TOML.matches(current).count(), 1);
    CATALOG_TOML.replacen(current, &format!("version = \"{version}\""), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_catalog_lists_problems_with_field_and_line() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;

    let good = admin
        .validate_catalog(ValidateCatalogRequest {
            toml: CATALOG_TOML.into(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(good.valid, "{:?}", good.problems);
    assert!(good.problems.is_empty());
    let summary = good.summary.expect("a summary for a valid catalog");
    assert_eq!(summary.version, "demo-2026-11");
    assert_eq!(summary.placements, 5);
    assert_eq!(summary.channels, 6);
    assert_eq!(summary.caps, 6);
    assert!(summary.actions >= 20);

    let (text, channel_mistake, cooldown_mistake) = bad_catalog();
    let bad = admin
        .validate_catalog(ValidateCatalogRequest { toml: text })
        .await
        .expect("answered")
        .into_inner();
    assert!(!bad.valid);
    assert!(bad.summary.is_none());
    let channel = bad
        .problems
        .iter()
        .find(|problem| problem.field == "actions[0].channel")
        .unwrap_or_else(|| panic!("no channel problem in {:?}", bad.problems));
    assert!(
        channel_mistake.covers(channel.line),
        "{channel:?} vs {channel_mistake:?}"
    );
    assert!(channel.message.contains("fax"), "{}", channel.message);
    let cooldown = bad
        .problems
        .iter()
        .find(|problem| problem.field == "actions[1].cooldown")
        .unwrap_or_else(|| panic!("no cooldown problem in {:?}", bad.problems));
    assert!(
        cooldown_mistake.covers(cooldown.line),
        "{cooldown:?} vs {cooldown_mistake:?}"
    );
    assert!(
        bad.problems
            .iter()
            .all(|problem| problem.line > 0 && !problem.field.is_empty())
    );

    // Not TOML at all: still a problem with a line.
    let broken = admin
        .validate_catalog(ValidateCatalogRequest {
            toml: "[catalog]\nname = \"x\"\nversion = \n".into(),
        })
        .await
        .expect("answered")
        .into_inner();
    assert!(!broken.valid);
    assert!(!broken.problems.is_empty());
    assert!(
        broken.problems.iter().any(|problem| problem.line == 3),
        "{:?}",
        broken.problems
    );

    // Validating loads nothing.
    let response = server
        .decide(decide_request("c-validate", "home_banner"))
        .await;
    assert_eq!(response.catalog_version, "demo-2026-11");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_catalog_is_refused_and_the_running_one_stays() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let (text, _, _) = bad_catalog();
    let status = admin
        .reload_catalog(ReloadCatalogRequest { toml: text })
        .await
        .expect_err("an invalid catalog is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("actions[0].channel"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("actions[1].cooldown"),
        "{}",
        status.message()
    );

    let stats = admin
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.catalog_version, "demo-2026-11");
    let response = server
        .decide(decide_request("c-bad-reload", "home_banner"))
        .await;
    assert_eq!(response.catalog_version, "demo-2026-11");
    assert_eq!(response.served.len(), 1);
    assert_eq!(
        response.served[0].channel, "in_app",
        "welcome_tour & co. still on in_app"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_catalog_is_reloaded_and_used_by_the_next_decision() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let customer = "c-reload";
    let before = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(before.catalog_version, "demo-2026-11");

    let reloaded = admin
        .reload_catalog(ReloadCatalogRequest {
            toml: renamed_catalog("demo-2026-12"),
        })
        .await
        .expect("a valid catalog is loaded")
        .into_inner();
    assert_eq!(reloaded.previous_version, "demo-2026-11");
    assert_eq!(reloaded.summary.expect("summary").version, "demo-2026-12");

    let after = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(after.catalog_version, "demo-2026-12");
    // The customer's ledger survives the reload: the first action is in cooldown.
    assert_ne!(after.served[0].action_id, before.served[0].action_id);
    let stats = admin
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.catalog_version, "demo-2026-12");

    // An empty request re-reads the original source: here the embedded demo.
    let restored = admin
        .reload_catalog(ReloadCatalogRequest {
            toml: String::new(),
        })
        .await
        .expect("the demo reloads")
        .into_inner();
    assert_eq!(restored.previous_version, "demo-2026-12");
    assert_eq!(restored.summary.expect("summary").version, "demo-2026-11");
    let last = server.decide(decide_request(customer, "home_banner")).await;
    assert_eq!(last.catalog_version, "demo-2026-11");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_decisions_and_events() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let empty = admin
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((empty.decisions, empty.events, empty.outcomes), (0, 0, 0));
    assert_eq!(empty.model_version, nudge_models::demo::MODEL_VERSION);

    for customer in ["c-stats-1", "c-stats-2", "c-stats-1"] {
        server.decide(decide_request(customer, "home_banner")).await;
    }
    server
        .decide(nudge_proto::v1::DecideRequest {
            dry_run: true,
            ..decide_request("c-stats-3", "home_banner")
        })
        .await;
    for (id, minutes) in [("s-1", 30), ("s-2", 20)] {
        assert!(
            !server
                .track(event("c-stats-1", id, "login", NOON - minutes * 60_000))
                .await
        );
    }
    assert!(
        server
            .track(event("c-stats-1", "s-1", "login", NOON - HOUR_MS))
            .await
    );
    let refused = server
        .decisions()
        .await
        .decide(decide_request("c-stats-1", "front_page"))
        .await;
    assert!(refused.is_err());

    let stats = admin
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.decisions, 4, "dry runs count as decisions");
    assert_eq!(stats.fallbacks, 0);
    assert_eq!(stats.events, 2);
    assert_eq!(stats.duplicate_events, 1);
    assert_eq!(stats.live_customers, 3);
    assert!(stats.activations >= 3);
    assert!(stats.rejected_requests >= 1);
    let served: u64 = stats.served.iter().map(|action| action.count).sum();
    assert_eq!(served, 4, "one banner per decision: {:?}", stats.served);
    assert!(
        stats
            .served
            .windows(2)
            .all(|pair| pair[0].count >= pair[1].count),
        "most served first: {:?}",
        stats.served
    );
    assert!(
        stats
            .filtered
            .iter()
            .any(|reason| reason.reason == "not_eligible" && reason.count > 0)
    );
    assert!(
        stats
            .filtered
            .iter()
            .any(|reason| reason.reason == "cooldown" && reason.count > 0)
    );
    assert_eq!(stats.catalog_version, "demo-2026-11");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_model_is_refused_and_the_running_model_keeps_serving() {
    let server = TestServer::start().await;
    let before = server
        .decide(decide_request("c-model", "home_banner"))
        .await;
    assert_eq!(before.model_version, nudge_models::demo::MODEL_VERSION);

    for (artifact, expected) in [
        (b"{ not json".to_vec(), "not a model artifact"),
        (
            nudge_models::demo::MODEL_JSON
                .replace("\"nudge.logistic/v1\"", "\"nudge.logistic/v9\"")
                .into_bytes(),
            "format 'nudge.logistic/v9'",
        ),
    ] {
        let error = server
            .engine
            .reload_model(Some(&artifact))
            .expect_err("a bad artifact is refused");
        assert!(error.to_string().contains(expected), "{error}");
        let after = server
            .decide(decide_request("c-model", "home_banner"))
            .await;
        assert_eq!(
            after.model_version,
            nudge_models::demo::MODEL_VERSION,
            "the old model still serves"
        );
        assert!(!after.fallback);
    }

    let retrained = nudge_models::demo::MODEL_JSON.replace(
        &format!("\"{}\"", nudge_models::demo::MODEL_VERSION),
        "\"retrained-1\"",
    );
    let (version, previous) = server
        .engine
        .reload_model(Some(retrained.as_bytes()))
        .expect("a good artifact loads");
    assert_eq!(
        (version.as_str(), previous.as_str()),
        ("retrained-1", nudge_models::demo::MODEL_VERSION)
    );
    let after = server
        .decide(decide_request("c-model-2", "home_banner"))
        .await;
    assert_eq!(after.model_version, "retrained-1");
    server.stop().await;
}
