//! Human-readable text rendering of every client response, for a person at a
//! terminal. Each function returns the text (without a trailing newline) so it
//! can be tested; `run` prints it.

use std::path::Path;

use chrono::{DateTime, Utc};
use nudge_proto::v1::{
    Contribution, DecideResponse, Event, Profile, ReloadCatalogResponse, ReportOutcomeRequest,
    ReportOutcomeResponse, SetConsentRequest, SetConsentResponse, StatsResponse, SuppressRequest,
    SuppressResponse, TrackResponse, UnsuppressRequest,
};

use super::names::{
    consent_state_name, count_text, duration_text, fallback_reason_name, filter_reason_name,
    number_text, outcome_name, rfc3339, suppression_reason_name, timestamp_text, value_text,
};

/// Column alignment in a [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

use Align::{Left, Right};

/// Lays out a table: a header line, then one line per row, each starting with
/// `indent`, columns two spaces apart, trailing spaces trimmed.
fn table(headers: &[(&str, Align)], rows: &[Vec<String>], indent: &str) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::from(indent);
        for (i, ((cell, width), (_, align))) in cells.iter().zip(&widths).zip(headers).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            match align {
                Left => {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                }
                Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(headers.iter().map(|(h, _)| *h).collect())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines
}

/// `text`, or `-` if it is empty.
fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// A channel for sentences: `email`, or `every channel` when empty.
fn channel_phrase(channel: &str) -> String {
    if channel.is_empty() {
        "every channel".to_owned()
    } else {
        channel.to_owned()
    }
}

/// A consent state in words: `opted in`, `opted out`, `unset`.
fn consent_words(code: i32) -> String {
    consent_state_name(code).replace('_', " ")
}

/// One rationale sentence with its signed effect on the log-odds.
fn rationale_line(c: &Contribution) -> String {
    let what = if c.text.trim().is_empty() {
        format!("{} = {}", c.feature, number_text(c.value))
    } else {
        c.text.trim().to_owned()
    };
    format!("{what} ({:+.2})", c.contribution)
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

/// Whether the event was applied or was a duplicate.
pub fn track(event: &Event, r: &TrackResponse) -> String {
    if r.duplicate {
        format!(
            "Duplicate: event {} of {} was already applied; not applied again.",
            event.event_id, event.customer_id
        )
    } else {
        let at = event
            .timestamp
            .as_ref()
            .map_or_else(|| "now".to_owned(), rfc3339);
        format!(
            "Tracked {} for {} at {at} (event id {}).",
            event.name, event.customer_id, event.event_id
        )
    }
}

/// Whether the outcome was applied and whether a cap slot was given back.
pub fn outcome(request: &ReportOutcomeRequest, r: &ReportOutcomeResponse) -> String {
    let what = format!(
        "{} on {} (decision {})",
        outcome_name(request.outcome),
        request.action_id,
        request.decision_id
    );
    let mut text = if r.applied {
        let reward = request
            .reward
            .map(|x| format!(", reward {}", number_text(x)))
            .unwrap_or_default();
        format!("Recorded {what} for {}{reward}.", request.customer_id)
    } else {
        format!("Not applied: {what} was already reported.")
    };
    if r.slot_released {
        text.push_str(" The cap slot was given back.");
    }
    text
}

/// The new consent state and the one it replaced.
pub fn consent(request: &SetConsentRequest, r: &SetConsentResponse) -> String {
    let change = if r.previous == request.state {
        "unchanged".to_owned()
    } else {
        format!("was {}", consent_words(r.previous))
    };
    format!(
        "Consent of {} on {}: {} ({change}).",
        request.customer_id,
        request.channel,
        consent_words(request.state)
    )
}

/// Whether the suppression was added.
pub fn suppress(request: &SuppressRequest, r: &SuppressResponse) -> String {
    let reason = suppression_reason_name(request.reason);
    let channel = channel_phrase(&request.channel);
    if r.changed {
        let note = if request.note.is_empty() {
            String::new()
        } else {
            format!(" Note: {}", request.note)
        };
        format!(
            "Suppressed {} on {channel} ({reason}).{note}",
            request.customer_id
        )
    } else {
        format!(
            "{} was already suppressed on {channel} ({reason}); nothing changed.",
            request.customer_id
        )
    }
}

/// Whether a suppression was lifted.
pub fn unsuppress(request: &UnsuppressRequest, r: &SuppressResponse) -> String {
    let channel = channel_phrase(&request.channel);
    let reason = suppression_reason_name(request.reason);
    if r.changed {
        if reason == "unspecified" {
            format!(
                "Lifted every suppression of {} on {channel}.",
                request.customer_id
            )
        } else {
            format!(
                "Lifted the {reason} suppression of {} on {channel}.",
                request.customer_id
            )
        }
    } else {
        format!(
            "No matching suppression of {} on {channel}; nothing changed.",
            request.customer_id
        )
    }
}

/// A customer's profile: attributes, derived values, counters (1d/7d/30d),
/// engagement, consent, suppressions and recent contacts. Ages are relative to
/// `now`.
pub fn profile(p: &Profile, now: DateTime<Utc>) -> String {
    let mut out: Vec<String> = vec![
        format!("Customer {}", p.customer_id),
        format!(
            "  first seen  {}",
            timestamp_text(p.first_seen.as_ref(), now)
        ),
        format!(
            "  last seen   {}",
            timestamp_text(p.last_seen.as_ref(), now)
        ),
    ];

    let section = |out: &mut Vec<String>, title: &str, lines: Vec<String>| {
        out.push(String::new());
        if lines.is_empty() {
            out.push(format!("{title}: none"));
        } else {
            out.push(title.to_owned());
            out.extend(lines);
        }
    };

    let mut attributes: Vec<(&String, String)> = p
        .attributes
        .iter()
        .map(|(k, v)| (k, value_text(v)))
        .collect();
    attributes.sort();
    section(&mut out, "Attributes", key_values(&attributes));

    let mut derived: Vec<(&String, String)> = p
        .derived
        .iter()
        .map(|(k, v)| (k, number_text(*v)))
        .collect();
    derived.sort();
    section(&mut out, "Derived", key_values(&derived));

    let rows: Vec<Vec<String>> = p
        .counters
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                count_text(c.last_1d.into()),
                count_text(c.last_7d.into()),
                count_text(c.last_30d.into()),
                timestamp_text(c.last_seen.as_ref(), now),
            ]
        })
        .collect();
    section(
        &mut out,
        "Counters",
        non_empty_table(
            &[
                ("EVENT", Left),
                ("1D", Right),
                ("7D", Right),
                ("30D", Right),
                ("LAST SEEN", Left),
            ],
            &rows,
        ),
    );

    let rows: Vec<Vec<String>> = p
        .engagement
        .iter()
        .map(|e| {
            vec![
                e.channel.clone(),
                count_text(e.sends.into()),
                count_text(e.impressions.into()),
                count_text(e.clicks.into()),
                count_text(e.conversions.into()),
                count_text(e.dismisses.into()),
                count_text(e.failures.into()),
            ]
        })
        .collect();
    section(
        &mut out,
        "Engagement",
        non_empty_table(
            &[
                ("CHANNEL", Left),
                ("SENDS", Right),
                ("IMPRESSIONS", Right),
                ("CLICKS", Right),
                ("CONVERSIONS", Right),
                ("DISMISSES", Right),
                ("FAILURES", Right),
            ],
            &rows,
        ),
    );

    let rows: Vec<Vec<String>> = p
        .consent
        .iter()
        .map(|c| {
            vec![
                c.channel.clone(),
                consent_words(c.state),
                timestamp_text(c.updated_at.as_ref(), now),
            ]
        })
        .collect();
    section(
        &mut out,
        "Consent",
        non_empty_table(
            &[("CHANNEL", Left), ("STATE", Left), ("UPDATED", Left)],
            &rows,
        ),
    );

    let rows: Vec<Vec<String>> = p
        .suppressions
        .iter()
        .map(|s| {
            vec![
                if s.channel.is_empty() {
                    "(all channels)".to_owned()
                } else {
                    s.channel.clone()
                },
                suppression_reason_name(s.reason),
                timestamp_text(s.since.as_ref(), now),
                or_dash(&s.note).to_owned(),
            ]
        })
        .collect();
    section(
        &mut out,
        "Suppressions",
        non_empty_table(
            &[
                ("CHANNEL", Left),
                ("REASON", Left),
                ("SINCE", Left),
                ("NOTE", Left),
            ],
            &rows,
        ),
    );

    let rows: Vec<Vec<String>> = p
        .contacts
        .iter()
        .map(|c| {
            let mut flags = Vec::new();
            if c.released {
                flags.push("released");
            }
            if c.dismissed {
                flags.push("dismissed");
            }
            vec![
                timestamp_text(c.at.as_ref(), now),
                c.action_id.clone(),
                or_dash(&c.channel).to_owned(),
                or_dash(&c.category).to_owned(),
                or_dash(&c.decision_id).to_owned(),
                flags.join(", "),
            ]
        })
        .collect();
    section(
        &mut out,
        "Recent contacts",
        non_empty_table(
            &[
                ("AT", Left),
                ("ACTION", Left),
                ("CHANNEL", Left),
                ("CATEGORY", Left),
                ("DECISION", Left),
                ("", Left),
            ],
            &rows,
        ),
    );
    out.join("\n")
}

/// `  key  value` lines with aligned values; empty if there are none.
fn key_values(pairs: &[(&String, String)]) -> Vec<String> {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let pad = " ".repeat(width - k.chars().count());
            format!("  {k}{pad}  {v}")
        })
        .collect()
}

/// A table of `rows`, or nothing at all if there are no rows.
fn non_empty_table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> Vec<String> {
    if rows.is_empty() {
        Vec::new()
    } else {
        table(headers, rows, "  ")
    }
}

/// The catalog now running and the version it replaced. `source` is the file
/// sent, `None` if the server re-read its own file.
pub fn reload(source: Option<&Path>, r: &ReloadCatalogResponse) -> String {
    let from = source.map_or_else(
        || "re-read by the server from its own file".to_owned(),
        |path| format!("loaded from {}", path.display()),
    );
    match &r.summary {
        Some(s) => format!(
            "Catalog {from}: version {} (was {}).\n  {} actions, {} placements, {} channels, {} caps",
            or_dash(&s.version),
            or_dash(&r.previous_version),
            s.actions,
            s.placements,
            s.channels,
            s.caps
        ),
        None => format!(
            "Catalog {from} (was version {}).",
            or_dash(&r.previous_version)
        ),
    }
}

/// Counters and gauges of the running service, then candidates filtered by
/// reason and actions served.
pub fn stats(r: &StatsResponse) -> String {
    let mut out = vec![format!(
        "nudge server up {}",
        duration_text(r.uptime_seconds, 2)
    )];
    let rows = vec![
        vec!["catalog".to_owned(), or_dash(&r.catalog_version).to_owned()],
        vec!["model".to_owned(), or_dash(&r.model_version).to_owned()],
        vec![
            "live customers".to_owned(),
            format!(
                "{} (activations {}, passivations {})",
                count_text(r.live_customers),
                count_text(r.activations),
                count_text(r.passivations)
            ),
        ],
        vec![
            "decisions".to_owned(),
            format!(
                "{} (fallbacks {})",
                count_text(r.decisions),
                count_text(r.fallbacks)
            ),
        ],
        vec![
            "events".to_owned(),
            format!(
                "{} (duplicates {})",
                count_text(r.events),
                count_text(r.duplicate_events)
            ),
        ],
        vec!["outcomes".to_owned(), count_text(r.outcomes)],
        vec![
            "rejected requests".to_owned(),
            count_text(r.rejected_requests),
        ],
    ];
    // Skip the header line: these are labelled values, not a table.
    out.extend(
        table(&[("", Left), ("", Left)], &rows, "  ")
            .into_iter()
            .skip(1),
    );

    out.push(String::new());
    if r.filtered.is_empty() {
        out.push("Filtered: none".to_owned());
    } else {
        out.push("Filtered by reason".to_owned());
        let rows: Vec<Vec<String>> = r
            .filtered
            .iter()
            .map(|f| vec![f.reason.clone(), count_text(f.count)])
            .collect();
        out.extend(table(&[("REASON", Left), ("COUNT", Right)], &rows, "  "));
    }

    out.push(String::new());
    if r.served.is_empty() {
        out.push("Served: none".to_owned());
    } else {
        out.push("Served actions".to_owned());
        let rows: Vec<Vec<String>> = r
            .served
            .iter()
            .map(|a| vec![a.action_id.clone(), count_text(a.count)])
            .collect();
        out.extend(table(&[("ACTION", Left), ("COUNT", Right)], &rows, "  "));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{
        ActionCount, CatalogSummary, ChannelConsent, ChannelEngagement, ConsentState, Contact,
        EventCounter, FallbackReason, FilterReason, FilteredCandidate, ReasonCount,
        ReasonCountTotal, ServedAction, Suppression, SuppressionReason, Value, value::Kind,
    };
    use prost_types::Timestamp;

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

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn profile_shows_every_section() {
        let now = DateTime::<Utc>::from_timestamp(1_714_557_600, 0).expect("valid");
        let p = Profile {
            customer_id: "c-42".into(),
            attributes: [(
                "plan".to_owned(),
                Value {
                    kind: Some(Kind::StringValue("pro".into())),
                },
            )]
            .into(),
            counters: vec![EventCounter {
                name: "page_view".into(),
                last_1d: 3,
                last_7d: 10,
                last_30d: 1_042,
                last_seen: ts(1_714_557_600 - 7_200),
            }],
            engagement: vec![ChannelEngagement {
                channel: "email".into(),
                sends: 4,
                impressions: 3,
                clicks: 2,
                conversions: 1,
                dismisses: 0,
                failures: 0,
            }],
            consent: vec![ChannelConsent {
                channel: "sms".into(),
                state: ConsentState::OptedOut as i32,
                updated_at: ts(1_714_557_600 - 86_400 * 3),
            }],
            suppressions: vec![Suppression {
                channel: String::new(),
                reason: SuppressionReason::Legal as i32,
                since: ts(1_714_557_600 - 60),
                note: "ticket 9".into(),
            }],
            contacts: vec![Contact {
                decision_id: "d-1".into(),
                action_id: "upgrade_banner".into(),
                channel: "in_app".into(),
                category: "upsell".into(),
                at: ts(1_714_557_600 - 300),
                released: true,
                dismissed: false,
            }],
            first_seen: ts(1_714_557_600 - 86_400 * 12),
            last_seen: ts(1_714_557_600 - 120),
            derived: [("days_since_signup".to_owned(), 12.0)].into(),
        };
        let text = profile(&p, now);
        for needle in [
            "Customer c-42",
            "(12d ago)",
            "plan",
            "\"pro\"",
            "days_since_signup  12",
            "1D",
            "30D",
            "1,042",
            "(2h ago)",
            "IMPRESSIONS",
            "opted out",
            "(3d ago)",
            "(all channels)",
            "legal",
            "ticket 9",
            "upgrade_banner",
            "released",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn empty_profile_sections_say_none() {
        let now = DateTime::<Utc>::from_timestamp(0, 0).expect("valid");
        let text = profile(
            &Profile {
                customer_id: "c".into(),
                ..Default::default()
            },
            now,
        );
        assert!(text.contains("Attributes: none"), "{text}");
        assert!(text.contains("Suppressions: none"), "{text}");
        assert!(text.contains("Recent contacts: none"), "{text}");
    }

    #[test]
    fn small_responses_read_as_sentences() {
        let req = ReportOutcomeRequest {
            customer_id: "c".into(),
            decision_id: "d".into(),
            action_id: "a".into(),
            outcome: nudge_proto::v1::Outcome::Failed as i32,
            reward: None,
            timestamp: None,
        };
        let text = outcome(
            &req,
            &ReportOutcomeResponse {
                applied: true,
                slot_released: true,
            },
        );
        assert_eq!(
            text,
            "Recorded failed on a (decision d) for c. The cap slot was given back."
        );
        let text = consent(
            &SetConsentRequest {
                customer_id: "c".into(),
                channel: "sms".into(),
                state: ConsentState::OptedIn as i32,
            },
            &SetConsentResponse {
                previous: ConsentState::Unspecified as i32,
            },
        );
        assert_eq!(text, "Consent of c on sms: opted in (was unset).");
        let text = suppress(
            &SuppressRequest {
                customer_id: "c".into(),
                channel: String::new(),
                reason: SuppressionReason::Bounce as i32,
                note: String::new(),
            },
            &SuppressResponse { changed: false },
        );
        assert_eq!(
            text,
            "c was already suppressed on every channel (bounce); nothing changed."
        );
        let text = unsuppress(
            &UnsuppressRequest {
                customer_id: "c".into(),
                channel: "email".into(),
                reason: 0,
            },
            &SuppressResponse { changed: true },
        );
        assert_eq!(text, "Lifted every suppression of c on email.");
        let event = Event {
            customer_id: "c".into(),
            event_id: "e-1".into(),
            name: "login".into(),
            timestamp: ts(0),
            properties: Default::default(),
        };
        assert_eq!(
            track(&event, &TrackResponse { duplicate: false }),
            "Tracked login for c at 1970-01-01T00:00:00Z (event id e-1)."
        );
        assert!(track(&event, &TrackResponse { duplicate: true }).starts_with("Duplicate"));
    }

    #[test]
    fn reload_and_stats() {
        let text = reload(
            Some(Path::new("catalog.toml")),
            &ReloadCatalogResponse {
                summary: Some(CatalogSummary {
                    version: "v2".into(),
                    actions: 12,
                    placements: 3,
                    channels: 4,
                    caps: 6,
                }),
                previous_version: "v1".into(),
            },
        );
        assert!(
            text.contains("loaded from catalog.toml: version v2 (was v1)"),
            "{text}"
        );
        assert!(
            text.contains("12 actions, 3 placements, 4 channels, 6 caps"),
            "{text}"
        );

        let text = stats(&StatsResponse {
            uptime_seconds: 11_530,
            live_customers: 1_234,
            decisions: 10_000,
            fallbacks: 2,
            filtered: vec![ReasonCountTotal {
                reason: "cap_channel".into(),
                count: 5,
            }],
            served: vec![ActionCount {
                action_id: "upgrade_banner".into(),
                count: 3_000,
            }],
            catalog_version: "v2".into(),
            ..Default::default()
        });
        for needle in [
            "up 3h 12m",
            "1,234",
            "10,000 (fallbacks 2)",
            "cap_channel",
            "upgrade_banner",
            "3,000",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let lines = table(
            &[("A", Left), ("NUM", Right)],
            &[
                vec!["long_name".into(), "1".into()],
                vec!["x".into(), "100".into()],
            ],
            "",
        );
        assert_eq!(
            lines,
            vec!["A          NUM", "long_name    1", "x          100"]
        );
    }
}
