//! Text for `decide`: the served actions with their rationale, what was not
//! served, and a footer with the decision's metadata.

use nudge_proto::v1::{Contribution, DecideResponse, SendTime};

use super::Align::{Left, Right};
use super::{or_dash, table};
use crate::cli::names::{count_text, fallback_reason_name, filter_reason_name, number_text};

/// One rationale sentence with its signed effect on the log-odds.
fn rationale_line(c: &Contribution) -> String {
    let what = if c.text.trim().is_empty() {
        format!("{} = {}", c.feature, number_text(c.value))
    } else {
        c.text.trim().to_owned()
    };
    format!("{what} ({:+.2})", c.contribution)
}

/// When to send an outbound action, and why then.
fn send_at_line(send_at: &SendTime) -> String {
    let when = send_at
        .at
        .as_ref()
        .map_or_else(|| "-".to_owned(), crate::cli::names::rfc3339);
    let basis = if send_at.basis == "personal" {
        "their own engagement pattern"
    } else {
        "the population's pattern (thin history)"
    };
    let moved = match send_at.placement.as_str() {
        "moved" => "; a better hour was closed by policy",
        "after_window" => "; policy closed the whole window: its first open moment",
        _ => "",
    };
    format!(
        "send at {when} ({} local, {:.1}× an average hour, by {basis}{moved})",
        send_at.local_hour, send_at.lift
    )
}

/// The served actions with their rationale, what was not served (counts by
/// reason, or every candidate with `--explain`), and a footer with the
/// decision id, model, variant, fallback and server time.
pub fn decide(r: &DecideResponse) -> String {
    let mut out: Vec<String> = Vec::new();
    if r.dry_run {
        out.push("Dry run: nothing was recorded.".to_owned());
    }
    if r.served.is_empty() {
        out.push("No action served.".to_owned());
    } else {
        let rows: Vec<Vec<String>> = r
            .served
            .iter()
            .map(|a| {
                vec![
                    a.rank.to_string(),
                    a.action_id.clone(),
                    or_dash(&a.channel).to_owned(),
                    format!("{:.4}", a.score),
                    format!("{:.3}", a.propensity),
                    format!("{:.2}", a.confidence),
                ]
            })
            .collect();
        let mut lines = table(
            &[
                ("#", Right),
                ("ACTION", Left),
                ("CHANNEL", Left),
                ("SCORE", Right),
                ("PROPENSITY", Right),
                ("CONFIDENCE", Right),
            ],
            &rows,
            "  ",
        )
        .into_iter();
        let header = lines.next().unwrap_or_default();
        let indent = " ".repeat(header.find("ACTION").unwrap_or(4) + 2);
        out.push(header);
        for (line, action) in lines.zip(&r.served) {
            out.push(line);
            if let Some(send_at) = &action.send_at {
                out.push(format!("{indent}{}", send_at_line(send_at)));
            }
            for c in &action.rationale {
                out.push(format!("{indent}- {}", rationale_line(c)));
            }
        }
    }
    out.push(String::new());
    if !r.filtered.is_empty() {
        out.push(format!("Not served ({}):", r.filtered.len()));
        let rows: Vec<Vec<String>> = r
            .filtered
            .iter()
            .map(|f| {
                let mut detail = or_dash(f.message.trim()).to_owned();
                if f.score != 0.0 || f.propensity != 0.0 {
                    detail.push_str(&format!(
                        " (score {:.4}, propensity {:.3})",
                        f.score, f.propensity
                    ));
                }
                vec![f.action_id.clone(), filter_reason_name(f.reason), detail]
            })
            .collect();
        out.extend(table(
            &[("ACTION", Left), ("REASON", Left), ("DETAIL", Left)],
            &rows,
            "  ",
        ));
    } else if r.filtered_counts.is_empty() {
        out.push("Not served: none".to_owned());
    } else {
        let mut counts: Vec<(u32, String)> = r
            .filtered_counts
            .iter()
            .map(|c| (c.count, filter_reason_name(c.reason)))
            .collect();
        counts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let total: u64 = counts.iter().map(|(n, _)| u64::from(*n)).sum();
        let list: Vec<String> = counts
            .iter()
            .map(|(n, name)| format!("{n} {name}"))
            .collect();
        out.push(format!("Not served ({total}): {}", list.join(", ")));
    }
    out.push(decide_footer(r));
    out.join("\n")
}

/// `decision … · model … · variant … · fallback: … · … µs · catalog …`.
fn decide_footer(r: &DecideResponse) -> String {
    let decision = if !r.decision_id.is_empty() {
        format!("decision {}", r.decision_id)
    } else if r.dry_run {
        "decision (none: dry run)".to_owned()
    } else {
        "decision -".to_owned()
    };
    let fallback = if r.fallback {
        let reason = fallback_reason_name(r.fallback_reason);
        if reason == "unspecified" {
            "fallback: yes".to_owned()
        } else {
            format!("fallback: yes ({reason})")
        }
    } else {
        "fallback: no".to_owned()
    };
    let mut parts = vec![
        decision,
        format!("model {}", or_dash(&r.model_version)),
        format!("variant {}", or_dash(&r.variant)),
        fallback,
        format!("{} µs", count_text(r.server_time_us)),
    ];
    if !r.catalog_version.is_empty() {
        parts.push(format!("catalog {}", r.catalog_version));
    }
    if !r.request_id.is_empty() {
        parts.push(format!("request {}", r.request_id));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{
        FallbackReason, FilterReason, FilteredCandidate, ReasonCount, ServedAction,
    };

    fn served(rank: u32, id: &str, text: &str) -> ServedAction {
        ServedAction {
            action_id: id.into(),
            channel: "in_app".into(),
            category: "onboarding".into(),
            rank,
            score: 0.4123,
            propensity: 0.231,
            selection_probability: 1.0,
            confidence: 0.87,
            value: 1.0,
            rationale: vec![Contribution {
                feature: "count(pricing_page_view,7d)".into(),
                value: 3.0,
                contribution: 0.84,
                text: text.into(),
            }],
            payload: Default::default(),
            send_at: None,
        }
    }

    fn response() -> DecideResponse {
        DecideResponse {
            decision_id: "d-123".into(),
            served: vec![
                served(
                    1,
                    "upgrade_banner",
                    "viewed pricing_page_view 3× in the last 7 days",
                ),
                served(2, "tour", ""),
            ],
            filtered: vec![],
            filtered_counts: vec![
                ReasonCount {
                    reason: FilterReason::Cooldown as i32,
                    count: 1,
                },
                ReasonCount {
                    reason: FilterReason::CapChannel as i32,
                    count: 3,
                },
            ],
            model_version: "m-7".into(),
            variant: "default".into(),
            fallback: false,
            fallback_reason: 0,
            server_time_us: 1_412,
            catalog_version: "c-2".into(),
            request_id: String::new(),
            dry_run: false,
        }
    }

    #[test]
    fn decide_shows_actions_rationale_counts_and_footer() {
        let text = decide(&response());
        assert!(text.contains("upgrade_banner"), "{text}");
        assert!(
            text.contains("- viewed pricing_page_view 3× in the last 7 days (+0.84)"),
            "{text}"
        );
        // Without a sentence, the feature and its value are shown.
        assert!(
            text.contains("- count(pricing_page_view,7d) = 3 (+0.84)"),
            "{text}"
        );
        assert!(
            text.contains("Not served (4): 3 cap_channel, 1 cooldown"),
            "{text}"
        );
        assert!(text.contains("decision d-123"), "{text}");
        assert!(text.contains("model m-7"), "{text}");
        assert!(text.contains("variant default"), "{text}");
        assert!(text.contains("fallback: no"), "{text}");
        assert!(text.contains("1,412 µs"), "{text}");
        // The rationale is indented under its action's row.
        let lines: Vec<&str> = text.lines().collect();
        let row = lines
            .iter()
            .position(|l| l.contains("upgrade_banner"))
            .expect("row present");
        assert!(lines[row + 1].starts_with("       "), "{text}");
        assert!(lines[0].contains("PROPENSITY") && lines[0].contains("CONFIDENCE"));
    }

    #[test]
    fn decide_shows_an_outbound_action_s_send_time() {
        let mut r = response();
        r.served[0].send_at = Some(SendTime {
            at: Some(prost_types::Timestamp {
                seconds: 1_796_666_400,
                nanos: 0,
            }),
            local_hour: "Mon 18:00".into(),
            lift: 3.25,
            basis: "personal".into(),
            placement: "moved".into(),
        });
        let text = decide(&r);
        assert!(
            text.contains("send at 2026-12-07T18:00:00Z (Mon 18:00 local, 3.2× an average hour, by their own engagement pattern; a better hour was closed by policy)"),
            "{text}"
        );
    }

    #[test]
    fn decide_explain_lists_every_candidate() {
        let mut r = response();
        r.served.clear();
        r.fallback = true;
        r.fallback_reason = FallbackReason::Deadline as i32;
        r.filtered = vec![
            FilteredCandidate {
                action_id: "pro_trial".into(),
                reason: FilterReason::CapChannel as i32,
                message: "email cap 2 per 7d reached (2 contacts)".into(),
                score: 0.0,
                propensity: 0.0,
            },
            FilteredCandidate {
                action_id: "webinar".into(),
                reason: FilterReason::RankedBelowLimit as i32,
                message: String::new(),
                score: 0.12,
                propensity: 0.08,
            },
        ];
        let text = decide(&r);
        assert!(text.contains("No action served."), "{text}");
        assert!(text.contains("Not served (2):"), "{text}");
        assert!(text.contains("cap_channel"), "{text}");
        assert!(
            text.contains("email cap 2 per 7d reached (2 contacts)"),
            "{text}"
        );
        assert!(text.contains("ranked_below_limit"), "{text}");
        assert!(text.contains("(score 0.1200, propensity 0.080)"), "{text}");
        assert!(!text.contains("FILTER_REASON_"), "{text}");
        assert!(text.contains("fallback: yes (deadline)"), "{text}");
    }

    #[test]
    fn decide_dry_run_says_nothing_was_recorded() {
        let mut r = response();
        r.dry_run = true;
        r.decision_id.clear();
        r.filtered_counts.clear();
        let text = decide(&r);
        assert!(text.starts_with("Dry run"), "{text}");
        assert!(text.contains("decision (none: dry run)"), "{text}");
        assert!(text.contains("Not served: none"), "{text}");
    }
}
