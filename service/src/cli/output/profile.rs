//! Text for `profile`: a customer's attributes, derived values, counters,
//! engagement, consent, suppressions and recent contacts.

use chrono::{DateTime, Utc};
use nudge_proto::v1::Profile;

use super::Align::{self, Left, Right};
use super::{consent_words, or_dash, table};
use crate::cli::names::{
    count_text, number_text, suppression_reason_name, timestamp_text, value_text,
};

/// The profile scores and tiers, then when they were computed.
fn score_lines(p: &Profile, now: DateTime<Utc>) -> Vec<String> {
    let Some(scores) = &p.scores else {
        return Vec::new();
    };
    let mut values: Vec<(String, String)> = scores
        .values
        .iter()
        .map(|(id, value)| (id.clone(), number_text(*value)))
        .collect();
    values.sort();
    let mut tiers: Vec<(String, String)> = scores
        .tiers
        .iter()
        .map(|(id, band)| (format!("tier {id}"), band.clone()))
        .collect();
    tiers.sort();
    values.extend(tiers);
    let rows: Vec<(&String, String)> = values.iter().map(|(id, text)| (id, text.clone())).collect();
    let mut lines = key_values(&rows);
    let freshness = if scores.stale {
        " (stale: an input changed; the next decision refreshes them)"
    } else {
        ""
    };
    lines.push(format!(
        "  computed {}{freshness}",
        timestamp_text(scores.computed_at.as_ref(), now)
    ));
    lines
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

    section(&mut out, "Scores", score_lines(p, now));

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

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{
        ChannelConsent, ChannelEngagement, ConsentState, Contact, EventCounter, ProfileScores,
        Suppression, SuppressionReason, Value, value::Kind,
    };
    use prost_types::Timestamp;

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
            scores: Some(ProfileScores {
                values: [
                    ("adoption".to_owned(), 42.5),
                    ("churn_risk".to_owned(), 0.25),
                ]
                .into(),
                tiers: [("churn".to_owned(), "medium".to_owned())].into(),
                computed_at: ts(1_714_557_600 - 60),
                stale: true,
            }),
        };
        let text = profile(&p, now);
        for needle in [
            "Customer c-42",
            "(12d ago)",
            "plan",
            "\"pro\"",
            "days_since_signup  12",
            "Scores",
            "adoption",
            "42.5",
            "churn_risk",
            "0.25",
            "tier churn",
            "medium",
            "(stale: an input changed",
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
        assert!(text.contains("Scores: none"), "{text}");
        assert!(text.contains("Suppressions: none"), "{text}");
        assert!(text.contains("Recent contacts: none"), "{text}");
    }
}
