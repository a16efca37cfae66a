//! The metrics' tests: declarations, label sets, the README's list, and what
//! the handles record, on a recorder local to each test.

use super::*;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use nudge_models::catalog::Catalog;
use nudge_models::pipeline::Decision;
use std::time::Duration;

/// A recorder local to the test (the global one is left alone).
fn local() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DECIDE_DURATION_SECONDS.to_owned()),
            &DECIDE_DURATION_BUCKETS,
        )
        .expect("buckets are not empty")
        .build_recorder()
}

/// The value of the sample `series` (name and labels as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

#[test]
fn fixed_label_sets_are_listed_exhaustively() {
    for (index, reason) in FALLBACK_REASONS.iter().enumerate() {
        assert_eq!(fallback_index(*reason), index);
    }
    for (index, rejection) in Rejection::ALL.iter().enumerate() {
        assert_eq!(*rejection as usize, index);
    }
    let caps: Vec<&str> = FilterReason::ALL
        .iter()
        .filter_map(|reason| cap_scope_index(*reason).map(|index| CAP_SCOPES[index]))
        .collect();
    assert_eq!(caps, CAP_SCOPES);
    for reason in FilterReason::ALL {
        let scope = cap_scope_index(reason);
        assert_eq!(reason.is_cap(), scope.is_some(), "{reason:?}");
        if let Some(scope) = scope {
            assert_eq!(reason.code(), format!("cap_{}", CAP_SCOPES[scope]));
        }
    }
}

#[test]
fn names_follow_the_convention_and_are_unique() {
    let mut names: Vec<&str> = DECLARATIONS.iter().map(|d| d.name).collect();
    for declaration in DECLARATIONS {
        let name = declaration.name;
        assert!(name.starts_with("nudge_"), "{name}");
        assert!(
            name.bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'_'),
            "{name}"
        );
        assert_eq!(
            declaration.kind == Kind::Counter,
            name.ends_with("_total"),
            "{name}: counters and only counters end in _total"
        );
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DECLARATIONS.len());
    assert!(DECIDE_DURATION_BUCKETS.is_sorted());
}

#[test]
fn the_readme_lists_every_metric() {
    let readme = include_str!("../../../README.md");
    for declaration in DECLARATIONS {
        assert!(
            readme.contains(&format!("`{}`", declaration.name)),
            "README.md does not list {}",
            declaration.name
        );
    }
}

#[test]
fn events_outside_the_catalog_count_as_other() {
    let recorder = local();
    let handle = recorder.handle();
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("demo");
    metrics::with_local_recorder(&recorder, || {
        let metrics = Metrics::new();
        metrics.event_applied(&catalog, "login");
        metrics.event_applied(&catalog, "login");
        for made_up in ["x1", "x2", "x3"] {
            metrics.event_applied(&catalog, made_up);
        }
        metrics.duplicate_event();
    });
    let text = handle.render();
    assert_eq!(
        sample(&text, r#"nudge_events_ingested_total{event="login"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"nudge_events_ingested_total{event="other"}"#),
        Some(3.0),
        "{text}"
    );
    assert!(!text.contains("x1"), "{text}");
    assert_eq!(sample(&text, "nudge_events_duplicates_total"), Some(1.0));
}

#[test]
fn a_reload_zeroes_the_replaced_version() {
    let recorder = local();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let metrics = Metrics::new();
        metrics.catalog_loaded("v1");
        metrics.catalog_loaded("v2");
        metrics.catalog_loaded("v2");
        metrics.model_loaded(Some("m1"));
        metrics.model_loaded(None);
    });
    let text = handle.render();
    assert_eq!(
        sample(&text, r#"nudge_catalog_info{version="v1"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"nudge_catalog_info{version="v2"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"nudge_model_info{version="m1"}"#),
        Some(0.0)
    );
}

#[test]
fn cap_hits_are_labelled_by_scope_and_channel() {
    use nudge_models::pipeline::Filtered;
    let recorder = local();
    let handle = recorder.handle();
    let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML).expect("demo");
    let action_on = |channel: &str| {
        catalog
            .actions
            .iter()
            .find(|action| action.channel == channel)
            .unwrap_or_else(|| panic!("the demo has a {channel} action"))
            .id
            .clone()
    };
    let filtered = |action_id: std::sync::Arc<str>, reason| Filtered {
        action_id,
        reason,
        message: "".into(),
        score: None,
        propensity: None,
    };
    let decision = Decision {
        served: Vec::new(),
        filtered: vec![
            filtered(action_on("email"), FilterReason::CapChannel),
            filtered(action_on("email"), FilterReason::CapChannel),
            filtered(action_on("in_app"), FilterReason::CapTotal),
            filtered(action_on("in_app"), FilterReason::Cooldown),
        ],
        model_version: None,
        fallback: Some(FallbackReason::Overloaded),
    };
    metrics::with_local_recorder(&recorder, || {
        let metrics = Metrics::new();
        metrics.record_decision(&catalog, "home_banner", "default", &decision);
        metrics.decided("home_banner", true, Duration::from_micros(120));
        let grpc = GrpcMetrics::new();
        grpc.grpc_status(tonic::Code::InvalidArgument);
        grpc.grpc_status(tonic::Code::NotFound);
        grpc.grpc_status(tonic::Code::PermissionDenied);
        grpc.grpc_status(tonic::Code::ResourceExhausted);
        grpc.shed(crate::queueing::Shed::QueueDelay);
        grpc.concurrency_limit(12);
        metrics.budget_exhausted(
            crate::error::BudgetedCall::Track,
            crate::error::Stage::Storing,
        );
    });
    let text = handle.render();
    for (series, value) in [
        (
            r#"nudge_decide_cap_hits_total{scope="channel",channel="email"}"#,
            2.0,
        ),
        (
            r#"nudge_decide_cap_hits_total{scope="total",channel="in_app"}"#,
            1.0,
        ),
        (r#"nudge_decide_filtered_total{reason="cap_channel"}"#, 2.0),
        (r#"nudge_decide_filtered_total{reason="cooldown"}"#, 1.0),
        (r#"nudge_decide_filtered_total{reason="diversity"}"#, 0.0),
        (r#"nudge_decide_fallbacks_total{reason="overloaded"}"#, 1.0),
        ("nudge_actors_mailbox_saturated_total", 1.0),
        (r#"nudge_grpc_rejected_total{reason="invalid"}"#, 1.0),
        (r#"nudge_grpc_rejected_total{reason="deadline"}"#, 0.0),
        (r#"nudge_grpc_rejected_total{reason="unauthorized"}"#, 1.0),
        (r#"nudge_grpc_rejected_total{reason="overloaded"}"#, 1.0),
        (r#"nudge_grpc_shed_total{reason="queue_delay"}"#, 1.0),
        (r#"nudge_grpc_shed_total{reason="concurrency"}"#, 0.0),
        ("nudge_grpc_concurrency_limit", 12.0),
        (
            r#"nudge_budget_exhausted_total{call="track",stage="storing"}"#,
            1.0,
        ),
        (
            r#"nudge_budget_exhausted_total{call="decide",stage="queued"}"#,
            0.0,
        ),
        ("nudge_grpc_connections_refused_total", 0.0),
        (
            r#"nudge_decide_duration_seconds_bucket{placement="home_banner",fallback="yes",le="0.00015"}"#,
            1.0,
        ),
        (
            r#"nudge_decide_duration_seconds_bucket{placement="home_banner",fallback="yes",le="0.0001"}"#,
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
}
