//! Untrusted input through the same path a request takes in the server —
//! protobuf decoding, validation into domain inputs and, for a valid Decide, a
//! dry-run decision on the embedded demo — for the fuzz targets in
//! `service/fuzz/` and the property tests that run the same checks in CI.
//! Nothing reachable from here may panic, whatever the bytes.

use crate::config::Limits;
use crate::convert;
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::model::Model;
use nudge_models::pipeline::{self, DecisionRequest, Environment, Scoring};
use nudge_models::time::Timestamp;
use nudge_proto::v1 as proto;
use prost::Message;
use std::sync::OnceLock;

/// 2026-11-23 12:00 UTC: the "now" requests are validated against.
const NOW: Timestamp = Timestamp::from_millis(1_795_435_200_000);

/// The request types a fuzz input can be decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `Decisions.Decide`.
    Decide,
    /// `Decisions.ReportOutcome`.
    ReportOutcome,
    /// `Events.Track` (and each message of `TrackStream`).
    Track,
    /// `Profiles.GetProfile`.
    GetProfile,
    /// `Profiles.SetConsent`.
    SetConsent,
    /// `Profiles.Suppress`.
    Suppress,
    /// `Profiles.Unsuppress`.
    Unsuppress,
    /// `Admin.ValidateCatalog` / `Admin.ReloadCatalog`.
    Catalog,
    /// `Profiles.Forget`.
    Forget,
    /// `Admin.ExportDecisions`.
    ExportDecisions,
}

impl RequestKind {
    /// Every kind.
    pub const ALL: [RequestKind; 10] = [
        RequestKind::Decide,
        RequestKind::ReportOutcome,
        RequestKind::Track,
        RequestKind::GetProfile,
        RequestKind::SetConsent,
        RequestKind::Suppress,
        RequestKind::Unsuppress,
        RequestKind::Catalog,
        RequestKind::Forget,
        RequestKind::ExportDecisions,
    ];

    /// The kind a fuzz input's first byte selects.
    pub fn from_selector(selector: u8) -> Self {
        Self::ALL[usize::from(selector) % Self::ALL.len()]
    }
}

/// What happened to an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a valid protobuf message of that type (the server answers INTERNAL
    /// or INVALID_ARGUMENT from the codec).
    Undecodable,
    /// Decoded and refused by validation, with the message the client gets.
    Refused(String),
    /// Decoded, validated and (for Decide) decided.
    Accepted,
}

fn demo() -> &'static (Catalog, Model) {
    static DEMO: OnceLock<(Catalog, Model)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML);
        let model = Model::from_json(nudge_models::demo::MODEL_JSON.as_bytes());
        match (catalog, model) {
            (Ok(catalog), Ok(model)) => (catalog, model),
            (catalog, model) => panic!(
                "the embedded demo must load: {:?} {:?}",
                catalog.err(),
                model.err()
            ),
        }
    })
}

fn verdict<T, E: std::fmt::Display>(result: Result<T, E>) -> Verdict {
    match result {
        Ok(_) => Verdict::Accepted,
        Err(error) => Verdict::Refused(error.to_string()),
    }
}

/// Decodes `bytes` as a `kind` request and validates it with the default
/// limits; a valid Decide is then decided (dry run) for an empty customer on
/// the demo catalog and model.
pub fn exercise_request(kind: RequestKind, bytes: &[u8]) -> Verdict {
    let limits = Limits::default();
    macro_rules! decode {
        ($message:ty) => {
            match <$message>::decode(bytes) {
                Ok(message) => message,
                Err(_) => return Verdict::Undecodable,
            }
        };
    }
    match kind {
        RequestKind::Decide => {
            let input = match convert::decide_input(decode!(proto::DecideRequest), &limits) {
                Ok(input) => input,
                Err(error) => return Verdict::Refused(error.to_string()),
            };
            let (catalog, model) = demo();
            let budgets = BudgetCounters::default();
            let environment = Environment {
                catalog,
                model: Some(model),
                budgets: &budgets,
            };
            let request = DecisionRequest {
                placement: &input.placement,
                context: &input.context,
                candidates: &input.candidates,
                limit: input.limit,
                dry_run: true,
                scoring: Scoring::Model,
                seed: 7,
                now: NOW,
            };
            verdict(pipeline::decide(
                &environment,
                &CustomerState::default(),
                &request,
            ))
        }
        RequestKind::ReportOutcome => verdict(convert::report_outcome(
            decode!(proto::ReportOutcomeRequest),
            NOW,
            &limits,
        )),
        RequestKind::Track => verdict(convert::event(decode!(proto::Event), NOW, &limits)),
        RequestKind::GetProfile => verdict(convert::id(
            "customer_id",
            &decode!(proto::GetProfileRequest).customer_id,
            &limits,
        )),
        RequestKind::SetConsent => verdict(convert::set_consent(
            decode!(proto::SetConsentRequest),
            &limits,
        )),
        RequestKind::Suppress => {
            verdict(convert::suppress(decode!(proto::SuppressRequest), &limits))
        }
        RequestKind::Unsuppress => verdict(convert::unsuppress(
            decode!(proto::UnsuppressRequest),
            &limits,
        )),
        RequestKind::Catalog => exercise_catalog(&decode!(proto::ValidateCatalogRequest).toml),
        RequestKind::Forget => verdict(convert::id(
            "customer_id",
            &decode!(proto::ForgetRequest).customer_id,
            &limits,
        )),
        RequestKind::ExportDecisions => verdict(convert::export_range(decode!(
            proto::ExportDecisionsRequest
        ))),
    }
}

/// Parses `text` as a catalog; if it is valid, decides once (dry run, empty
/// customer, no model, so the fallback ladder and every rule path run) in each
/// of its placements.
pub fn exercise_catalog(text: &str) -> Verdict {
    let catalog = match Catalog::from_toml(text) {
        Ok(catalog) => catalog,
        Err(problems) => return Verdict::Refused(problems.to_string()),
    };
    let budgets = BudgetCounters::default();
    let environment = Environment {
        catalog: &catalog,
        model: None,
        budgets: &budgets,
    };
    let context = Default::default();
    for placement in catalog.placements.keys() {
        let request = DecisionRequest {
            placement,
            context: &context,
            candidates: &[],
            limit: 0,
            dry_run: true,
            scoring: Scoring::Model,
            seed: 7,
            now: NOW,
        };
        if let Err(error) = pipeline::decide(&environment, &CustomerState::default(), &request) {
            return Verdict::Refused(error.to_string());
        }
    }
    Verdict::Accepted
}

/// Parses `bytes` as a model artifact.
pub fn exercise_model(bytes: &[u8]) -> Verdict {
    verdict(Model::from_json(bytes))
}

/// Valid encoded requests of every kind: the fuzzers' seed corpus and the
/// property tests' starting points for mutation.
pub fn seed_requests() -> Vec<(RequestKind, Vec<u8>)> {
    let value = |text: &str| proto::Value {
        kind: Some(proto::value::Kind::StringValue(text.to_owned())),
    };
    let timestamp = Some(prost_types::Timestamp {
        seconds: NOW.millis() / 1_000,
        nanos: 0,
    });
    vec![
        (
            RequestKind::Decide,
            proto::DecideRequest {
                customer_id: "c1".into(),
                placement: "home_banner".into(),
                context: [("device".to_owned(), value("mobile"))]
                    .into_iter()
                    .collect(),
                explain: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Decide,
            proto::DecideRequest {
                customer_id: "c2".into(),
                placement: "onboarding_sidebar".into(),
                candidate_action_ids: vec!["welcome_tour".into(), "template_gallery".into()],
                limit: 2,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::ReportOutcome,
            proto::ReportOutcomeRequest {
                customer_id: "c1".into(),
                decision_id: "d1".into(),
                action_id: "welcome_tour".into(),
                outcome: proto::Outcome::Click.into(),
                reward: Some(1.5),
                timestamp,
                dispatch_id: "d1.2".into(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Track,
            proto::Event {
                customer_id: "c1".into(),
                event_id: "e1".into(),
                name: "identify".into(),
                timestamp,
                properties: [
                    ("plan".to_owned(), value("trial")),
                    ("timezone".to_owned(), value("Europe/Paris")),
                ]
                .into_iter()
                .collect(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::GetProfile,
            proto::GetProfileRequest {
                customer_id: "c1".into(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::SetConsent,
            proto::SetConsentRequest {
                customer_id: "c1".into(),
                channel: "sms".into(),
                state: proto::ConsentState::OptedIn.into(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Suppress,
            proto::SuppressRequest {
                customer_id: "c1".into(),
                channel: "email".into(),
                reason: proto::SuppressionReason::Bounce.into(),
                note: "ticket 42".into(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Unsuppress,
            proto::UnsuppressRequest {
                customer_id: "c1".into(),
                channel: "email".into(),
                reason: 0,
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Catalog,
            proto::ValidateCatalogRequest {
                toml: nudge_models::demo::CATALOG_TOML.to_owned(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::Forget,
            proto::ForgetRequest {
                customer_id: "c1".into(),
            }
            .encode_to_vec(),
        ),
        (
            RequestKind::ExportDecisions,
            proto::ExportDecisionsRequest {
                since: Some(prost_types::Timestamp {
                    seconds: 1_795_000_000,
                    nanos: 0,
                }),
                until: None,
            }
            .encode_to_vec(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_is_accepted() {
        for (kind, bytes) in seed_requests() {
            assert_eq!(
                exercise_request(kind, &bytes),
                Verdict::Accepted,
                "{kind:?}"
            );
        }
        assert_eq!(
            exercise_catalog(nudge_models::demo::CATALOG_TOML),
            Verdict::Accepted
        );
        assert_eq!(
            exercise_model(nudge_models::demo::MODEL_JSON.as_bytes()),
            Verdict::Accepted
        );
    }

    #[test]
    fn garbage_is_undecodable_or_refused() {
        assert_eq!(
            exercise_request(RequestKind::Decide, &[0xff, 0xff, 0xff]),
            Verdict::Undecodable
        );
        match exercise_request(RequestKind::Decide, &[]) {
            Verdict::Refused(message) => assert!(message.contains("customer_id"), "{message}"),
            other => panic!("an empty Decide must be refused, got {other:?}"),
        }
        assert!(matches!(
            exercise_catalog("not = [toml"),
            Verdict::Refused(_)
        ));
        assert!(matches!(exercise_model(b"{}"), Verdict::Refused(_)));
    }
}
