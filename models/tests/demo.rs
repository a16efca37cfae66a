#![allow(clippy::unwrap_used, clippy::print_stdout)]
use nudge_models::budget::BudgetCounters;
use nudge_models::catalog::Catalog;
use nudge_models::customer::CustomerState;
use nudge_models::demo::{CATALOG_TOML, MODEL_JSON};
use nudge_models::model::Model;
use nudge_models::pipeline::{DecisionRequest, Environment, Scoring, decide};
use nudge_models::profile::Event;
use nudge_models::time::Timestamp;
use std::collections::BTreeMap;

#[test]
fn scratch() {
    let catalog = Catalog::from_toml(CATALOG_TOML).unwrap_or_else(|e| panic!("{e}"));
    let model = Model::from_json(MODEL_JSON.as_bytes()).unwrap();
    let budgets = BudgetCounters::default();
    let env = Environment {
        catalog: &catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let now = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
    let mut state = CustomerState::default();
    let ctx = BTreeMap::new();
    for round in 0..2 {
        for placement in [
            "home_banner",
            "onboarding_sidebar",
            "daily_email",
            "push_moment",
            "csm_queue",
        ] {
            let request = DecisionRequest {
                placement,
                context: &ctx,
                candidates: &[],
                limit: 0,
                dry_run: true,
                scoring: Scoring::Model,
                seed: 1,
                now,
            };
            let d = decide(&env, &state, &request).unwrap();
            println!("== {placement}");
            for s in &d.served {
                println!(
                    "  SERVED {} p={:.3} score={:.3} {:?}",
                    s.action_id,
                    s.propensity,
                    s.score,
                    s.rationale
                        .iter()
                        .map(|r| (&r.text, r.contribution))
                        .collect::<Vec<_>>()
                );
            }
            for f in &d.filtered {
                println!(
                    "  {} {:?} {} p={:?} s={:?}",
                    f.action_id, f.reason, f.message, f.propensity, f.score
                );
            }
        }
        if round == 0 {
            for i in 0..3 {
                state.track(
                    &Event {
                        event_id: format!("p{i}"),
                        name: "pricing_page_view".into(),
                        timestamp: Timestamp(now.0 - 3_600_000 * (i + 1)),
                        properties: BTreeMap::new(),
                    },
                    now,
                );
            }
            println!("\n######## after 3 pricing views");
        }
    }
}

fn ev(name: &str, at: Timestamp, props: &[(&str, nudge_models::value::AttrValue)]) -> Event {
    Event {
        event_id: format!("{name}-{}-{}", at.0, props.len()),
        name: name.into(),
        timestamp: at,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

#[test]
fn scratch2() {
    use nudge_models::value::AttrValue;
    const D: i64 = 86_400_000;
    let catalog = Catalog::from_toml(CATALOG_TOML).unwrap_or_else(|e| panic!("{e}"));
    let model = Model::from_json(MODEL_JSON.as_bytes()).unwrap();
    let budgets = BudgetCounters::default();
    let env = Environment {
        catalog: &catalog,
        model: Some(&model),
        budgets: &budgets,
    };
    let now = Timestamp::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
    let t = |days: f64| Timestamp(now.0 - (days * D as f64) as i64);
    let scenarios: Vec<(&str, Vec<Event>)> = vec![
        (
            "trial day 5, logged in, no feature",
            vec![
                ev(
                    "identify",
                    t(5.0),
                    &[
                        ("plan", AttrValue::from("trial")),
                        ("signup_at", AttrValue::from("2026-11-18T12:00:00Z")),
                    ],
                ),
                ev("login", t(4.0), &[]),
                ev("login", t(3.0), &[]),
                ev("page_view", t(3.0), &[]),
            ],
        ),
        (
            "trial day 12",
            vec![
                ev(
                    "identify",
                    t(12.0),
                    &[
                        ("plan", AttrValue::from("trial")),
                        ("signup_at", AttrValue::from("2026-11-11T12:00:00Z")),
                    ],
                ),
                ev("login", t(1.0), &[]),
                ev("feature_activated", t(2.0), &[]),
                ev("report_created", t(2.0), &[]),
                ev("pricing_page_view", t(0.5), &[]),
            ],
        ),
        (
            "pro payment failed",
            vec![
                ev("identify", t(100.0), &[("plan", AttrValue::from("pro"))]),
                ev("login", t(1.0), &[]),
                ev("payment_failed", t(1.0), &[]),
            ],
        ),
        (
            "enterprise at risk",
            vec![
                ev(
                    "identify",
                    t(300.0),
                    &[("plan", AttrValue::from("enterprise"))],
                ),
                ev("login", t(25.0), &[]),
                ev("support_ticket_opened", t(5.0), &[]),
                ev("support_ticket_opened", t(4.0), &[]),
            ],
        ),
        (
            "pro seat limit",
            vec![
                ev("identify", t(200.0), &[("plan", AttrValue::from("pro"))]),
                ev("login", t(0.2), &[]),
                ev("seat_limit_reached", t(0.5), &[]),
                ev("invite_sent", t(3.0), &[]),
                ev("report_created", t(3.0), &[]),
                ev("report_created", t(2.0), &[]),
                ev("report_created", t(1.0), &[]),
            ],
        ),
        (
            "starter lapsed",
            vec![
                ev(
                    "identify",
                    t(200.0),
                    &[("plan", AttrValue::from("starter"))],
                ),
                ev("login", t(40.0), &[]),
                ev("email_opened", t(3.0), &[]),
            ],
        ),
    ];
    for (name, events) in scenarios {
        let mut state = CustomerState::default();
        for e in &events {
            state.track(e, now);
        }
        println!("\n######## {name}");
        let ctx = BTreeMap::new();
        for placement in [
            "home_banner",
            "onboarding_sidebar",
            "daily_email",
            "push_moment",
            "csm_queue",
        ] {
            let request = DecisionRequest {
                placement,
                context: &ctx,
                candidates: &[],
                limit: 0,
                dry_run: true,
                scoring: Scoring::Model,
                seed: 1,
                now,
            };
            let d = decide(&env, &state, &request).unwrap();
            for s in &d.served {
                println!(
                    "  {placement}: SERVED {} p={:.3} score={:.3} {:?}",
                    s.action_id,
                    s.propensity,
                    s.score,
                    s.rationale
                        .iter()
                        .map(|r| format!("{} {:+.2}", r.text, r.contribution))
                        .collect::<Vec<_>>()
                );
            }
            for f in &d.filtered {
                if f.reason != nudge_models::pipeline::FilterReason::NotEligible {
                    println!(
                        "      {} {:?} p={:?}",
                        f.action_id,
                        f.reason,
                        f.propensity.map(|p| (p * 1000.0).round() / 1000.0)
                    );
                }
            }
            for f in &d.filtered {
                if f.reason == nudge_models::pipeline::FilterReason::RuleError {
                    println!("RULE ERROR {}", f.message);
                }
            }
            let fb = DecisionRequest {
                scoring: Scoring::Fallback(nudge_models::pipeline::FallbackReason::ModelMissing),
                ..request.clone()
            };
            let d = decide(&env, &state, &fb).unwrap();
            for s in &d.served {
                println!("      fallback -> {} {}", s.action_id, s.rationale[0].text);
            }
        }
    }
}
