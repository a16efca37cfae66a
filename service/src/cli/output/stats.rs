//! `nudge stats`: the server's counters as a compact dashboard.
//!
//! [`stats`] is a pure function of two consecutive snapshots and the time
//! between them: rates (decisions/s, events/s, serves per action, …) are the
//! differences of the totals divided by that time. With one snapshot (`--once`,
//! or stdout not a terminal) they are averages since the server started. The
//! live view (`cli::watch`) only fetches, times and redraws.

use std::collections::HashMap;
use std::time::Duration;

use nudge_proto::v1::{LatencySummary, ReasonCountTotal, StatsResponse};

use super::Align::{Left, Right};
use super::{or_dash, table};
use crate::cli::names::{count_text, duration_text};

/// Rows a ranked section shows before it sums the rest into one line.
pub const TOP: usize = 10;

/// What rates are computed from.
#[derive(Debug, Clone, Copy)]
enum Rates<'a> {
    /// Differences from the previous snapshot, `seconds` earlier.
    Recent {
        previous: &'a StatsResponse,
        seconds: f64,
    },
    /// Totals over the server's uptime (0: unknown).
    SinceStart { seconds: f64 },
}

impl<'a> Rates<'a> {
    fn new(
        previous: Option<&'a StatsResponse>,
        current: &StatsResponse,
        elapsed: Duration,
    ) -> Self {
        match previous {
            Some(previous) if !elapsed.is_zero() && !restarted(previous, current) => {
                Rates::Recent {
                    previous,
                    seconds: elapsed.as_secs_f64(),
                }
            }
            _ => Rates::SinceStart {
                seconds: current.uptime_seconds as f64,
            },
        }
    }

    /// Per second: of the total `now`, whose value in the previous snapshot
    /// `before` reads.
    fn of(&self, now: u64, before: impl FnOnce(&StatsResponse) -> u64) -> Option<f64> {
        match *self {
            Rates::Recent { previous, seconds } => {
                Some(now.saturating_sub(before(previous)) as f64 / seconds)
            }
            Rates::SinceStart { seconds } if seconds > 0.0 => Some(now as f64 / seconds),
            Rates::SinceStart { .. } => None,
        }
    }

    /// The sentence that says what the rates mean.
    fn describe(&self) -> String {
        match self {
            Rates::Recent { seconds, .. } => {
                format!("Rates per second over the last {seconds:.1} s.")
            }
            Rates::SinceStart { .. } => {
                "Rates per second averaged since the server started.".to_owned()
            }
        }
    }
}

/// Whether the server restarted between the two snapshots (its uptime or a
/// total went down): rates across a restart mean nothing.
fn restarted(previous: &StatsResponse, current: &StatsResponse) -> bool {
    current.uptime_seconds < previous.uptime_seconds
        || current.decisions < previous.decisions
        || current.events < previous.events
        || current.outcomes < previous.outcomes
        || current.rejected_requests < previous.rejected_requests
}

/// A rate with one decimal and thousands separators: `1,234.5`; `-` if unknown.
fn rate_text(rate: Option<f64>) -> String {
    match rate {
        Some(rate) if rate.is_finite() && rate >= 0.0 => {
            let tenths = (rate * 10.0).round() as u64;
            format!("{}.{}", count_text(tenths / 10), tenths % 10)
        }
        _ => "-".to_owned(),
    }
}

/// `part` as a percentage of `whole` with one decimal: `40.5%`; `<0.1%` for a
/// non-zero part too small to show; `-` when `whole` is 0.
fn share_text(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    let percent = part as f64 * 100.0 / whole as f64;
    if part > 0 && percent < 0.05 {
        "<0.1%".to_owned()
    } else {
        format!("{percent:.1}%")
    }
}

/// A latency for a person: `181 µs`, `1.20 ms`, `2.50 s`.
fn micros_text(micros: u64) -> String {
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.2} ms", micros as f64 / 1e3)
    } else {
        format!("{:.2} s", micros as f64 / 1e6)
    }
}

/// One line of a ranked section.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    count: u64,
    rate: Option<f64>,
}

/// The rows most first (ties by name), the first `limit` of them, then the
/// rest summed into one row named `(N more)`.
fn top(mut rows: Vec<Row>, limit: usize) -> Vec<Row> {
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    if rows.len() <= limit {
        return rows;
    }
    let rest = rows.split_off(limit);
    rows.push(Row {
        name: format!("({} more)", rest.len()),
        count: rest.iter().map(|row| row.count).sum(),
        rate: rest.iter().map(|row| row.rate).sum(),
    });
    rows
}

/// Rows of named totals, with their rates against the same names in the
/// previous snapshot, which `named` lists (a name absent there counted 0).
fn rows<'r>(
    current: &'r StatsResponse,
    rates: &Rates<'r>,
    named: impl Fn(&'r StatsResponse) -> Vec<(&'r str, u64)>,
) -> Vec<Row> {
    let before: HashMap<&str, u64> = match rates {
        Rates::Recent { previous, .. } => named(previous).into_iter().collect(),
        Rates::SinceStart { .. } => HashMap::new(),
    };
    named(current)
        .into_iter()
        .map(|(name, count)| Row {
            name: name.to_owned(),
            count,
            rate: rates.of(count, |_| before.get(name).copied().unwrap_or(0)),
        })
        .collect()
}

fn reasons(counts: &[ReasonCountTotal]) -> Vec<(&str, u64)> {
    counts
        .iter()
        .map(|count| (count.reason.as_str(), count.count))
        .collect()
}

/// A ranked section: its title line, then a table of name, count, share of
/// `whole` and rate, or `empty` when there is nothing to rank.
fn ranked(out: &mut Vec<String>, title: &str, column: (&str, &str), rows: Vec<Row>, empty: &str) {
    out.push(String::new());
    if rows.is_empty() {
        out.push(empty.to_owned());
        return;
    }
    let whole: u64 = rows.iter().map(|row| row.count).sum();
    out.push(title.to_owned());
    let cells: Vec<Vec<String>> = top(rows, TOP)
        .into_iter()
        .map(|row| {
            vec![
                row.name,
                count_text(row.count),
                share_text(row.count, whole),
                rate_text(row.rate),
            ]
        })
        .collect();
    out.extend(table(
        &[
            (column.0, Left),
            (column.1, Right),
            ("SHARE", Right),
            ("PER SEC", Right),
        ],
        &cells,
        "  ",
    ));
}

/// The latency line(s).
fn latency(out: &mut Vec<String>, latency: Option<&LatencySummary>) {
    out.push(String::new());
    let Some(l) = latency else {
        out.push("Decide latency: not reported by this server".to_owned());
        return;
    };
    if l.count == 0 {
        out.push(format!(
            "Decide latency, last {} s: no decisions",
            l.window_seconds
        ));
        return;
    }
    out.push(format!(
        "Decide latency, last {} s ({} decisions)",
        l.window_seconds,
        count_text(l.count)
    ));
    out.push(format!(
        "  p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
        micros_text(l.p50_micros),
        micros_text(l.p90_micros),
        micros_text(l.p99_micros),
        micros_text(l.p999_micros),
        micros_text(l.max_micros)
    ));
}

/// The dashboard of `current`, with rates over the `elapsed` time since
/// `previous` (averages since the server started without a usable previous
/// snapshot: none, no time between them, or the server restarted).
pub fn stats(
    previous: Option<&StatsResponse>,
    current: &StatsResponse,
    elapsed: Duration,
) -> String {
    let r = current;
    let rates = Rates::new(previous, current, elapsed);
    let mut out = vec![
        format!(
            "nudge server up {} · catalog {} · model {}",
            duration_text(r.uptime_seconds, 2),
            or_dash(&r.catalog_version),
            or_dash(&r.model_version)
        ),
        rates.describe(),
        String::new(),
    ];

    let traffic = vec![
        vec![
            "decisions".to_owned(),
            rate_text(rates.of(r.decisions, |p| p.decisions)),
            count_text(r.decisions),
            format!(
                "fallbacks {} ({})",
                count_text(r.fallbacks),
                share_text(r.fallbacks, r.decisions)
            ),
        ],
        vec![
            "events".to_owned(),
            rate_text(rates.of(r.events, |p| p.events)),
            count_text(r.events),
            format!("duplicates {}", count_text(r.duplicate_events)),
        ],
        vec![
            "outcomes".to_owned(),
            rate_text(rates.of(r.outcomes, |p| p.outcomes)),
            count_text(r.outcomes),
            String::new(),
        ],
        vec![
            "rejected".to_owned(),
            rate_text(rates.of(r.rejected_requests, |p| p.rejected_requests)),
            count_text(r.rejected_requests),
            String::new(),
        ],
    ];
    out.extend(table(
        &[("", Left), ("PER SEC", Right), ("TOTAL", Right), ("", Left)],
        &traffic,
        "  ",
    ));
    out.push(format!(
        "  live customers {} (activations {}, passivations {})",
        count_text(r.live_customers),
        count_text(r.activations),
        count_text(r.passivations)
    ));

    latency(&mut out, r.latency.as_ref());

    let served = rows(r, &rates, |s| {
        s.served
            .iter()
            .map(|a| (a.action_id.as_str(), a.count))
            .collect()
    });
    let title = format!(
        "Top actions served ({} actions, {} serves)",
        count_text(served.len() as u64),
        count_text(served.iter().map(|row| row.count).sum())
    );
    ranked(
        &mut out,
        &title,
        ("ACTION", "SERVED"),
        served,
        "Served: none",
    );

    let filtered = rows(r, &rates, |s| reasons(&s.filtered));
    let title = format!(
        "Filtered by reason ({} candidates)",
        count_text(filtered.iter().map(|row| row.count).sum())
    );
    ranked(
        &mut out,
        &title,
        ("REASON", "COUNT"),
        filtered,
        "Filtered: none",
    );

    let fallbacks = rows(r, &rates, |s| reasons(&s.fallbacks_by_reason));
    let title = format!(
        "Fallbacks by reason ({} of {} decisions)",
        count_text(r.fallbacks),
        count_text(r.decisions)
    );
    ranked(
        &mut out,
        &title,
        ("REASON", "COUNT"),
        fallbacks,
        "Fallbacks: none",
    );

    let variants = rows(r, &rates, |s| {
        s.variants
            .iter()
            .map(|v| (v.variant.as_str(), v.decisions))
            .collect()
    });
    let title = format!(
        "Variants (serving everyone outside an experiment: model {})",
        or_dash(&r.model_version)
    );
    ranked(
        &mut out,
        &title,
        ("VARIANT", "DECISIONS"),
        variants,
        "Variants: none",
    );
    // Since start: what an experiment is judged by.
    for variant in &r.variants {
        if variant.impressions + variant.clicks + variant.conversions == 0 {
            continue;
        }
        let rate = if variant.decisions == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.2} %",
                100.0 * variant.conversions as f64 / variant.decisions as f64
            )
        };
        out.push(format!(
            "  {}: {} impressions, {} clicks, {} conversions ({rate} of its decisions) since start",
            variant.variant,
            count_text(variant.impressions),
            count_text(variant.clicks),
            count_text(variant.conversions),
        ));
    }

    out.join("\n")
}

/// The live view's last line: how often it refreshes, how to leave, and why
/// the last refresh failed if it did (the frame above is then the last good one).
pub fn live_footer(interval: Duration, error: Option<&str>) -> String {
    let every = format!(
        "Refreshing every {:.1} s · Ctrl-C to quit",
        interval.as_secs_f64()
    );
    match error {
        None => every,
        Some(error) => format!("{every}\nLast refresh failed, retrying: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nudge_proto::v1::{ActionCount, VariantCount};

    fn reason(reason: &str, count: u64) -> ReasonCountTotal {
        ReasonCountTotal {
            reason: reason.to_owned(),
            count,
        }
    }

    fn action(action_id: &str, count: u64) -> ActionCount {
        ActionCount {
            action_id: action_id.to_owned(),
            count,
        }
    }

    fn snapshot(uptime_seconds: u64, decisions: u64, events: u64) -> StatsResponse {
        StatsResponse {
            uptime_seconds,
            decisions,
            events,
            catalog_version: "demo-2026-11".into(),
            model_version: nudge_models::demo::MODEL_VERSION.into(),
            variants: vec![VariantCount {
                variant: "default".into(),
                decisions,
                ..VariantCount::default()
            }],
            ..StatsResponse::default()
        }
    }

    /// The line of `text` that starts (after indentation) with `start`.
    fn line<'t>(text: &'t str, start: &str) -> &'t str {
        text.lines()
            .find(|line| line.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line starting with {start:?} in\n{text}"))
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn rates_come_from_the_difference_of_two_snapshots() {
        let before = snapshot(100, 1_000, 200);
        let after = snapshot(102, 3_469, 260);
        let text = stats(Some(&before), &after, Duration::from_millis(2_000));
        assert!(text.contains("over the last 2.0 s"), "{text}");
        assert_eq!(
            words(line(&text, "decisions")),
            ["decisions", "1,234.5", "3,469", "fallbacks", "0", "(0.0%)"]
        );
        assert_eq!(
            words(line(&text, "events")),
            ["events", "30.0", "260", "duplicates", "0"]
        );
        assert_eq!(words(line(&text, "outcomes")), ["outcomes", "0.0", "0"]);
    }

    #[test]
    fn one_snapshot_gives_averages_since_start() {
        let text = stats(None, &snapshot(100, 1_000, 50), Duration::ZERO);
        assert!(text.contains("averaged since the server started"), "{text}");
        assert_eq!(words(line(&text, "decisions"))[1], "10.0");
        assert_eq!(words(line(&text, "events"))[1], "0.5");
        // No uptime yet: no rate rather than a division by zero.
        let text = stats(None, &snapshot(0, 3, 0), Duration::ZERO);
        assert_eq!(words(line(&text, "decisions"))[1], "-");
    }

    #[test]
    fn a_restart_between_snapshots_is_not_a_negative_rate() {
        let before = snapshot(500, 10_000, 100);
        let after = snapshot(2, 40, 4);
        let text = stats(Some(&before), &after, Duration::from_secs(1));
        assert!(text.contains("averaged since the server started"), "{text}");
        assert_eq!(words(line(&text, "decisions"))[1], "20.0");
    }

    #[test]
    fn top_keeps_ten_most_first_and_sums_the_rest() {
        let rows: Vec<Row> = (1..=13_u64)
            .map(|n| Row {
                name: format!("a{n:02}"),
                count: n * 10,
                rate: Some(n as f64),
            })
            .collect();
        let shown = top(rows, TOP);
        assert_eq!(shown.len(), TOP + 1);
        assert_eq!(shown[0].name, "a13");
        assert_eq!(shown[9].name, "a04");
        assert_eq!(
            shown[10],
            Row {
                name: "(3 more)".into(),
                count: 60,
                rate: Some(6.0),
            }
        );
        // Ties by name; nothing summed when it all fits.
        let tied = top(
            vec![
                Row {
                    name: "b".into(),
                    count: 1,
                    rate: None,
                },
                Row {
                    name: "a".into(),
                    count: 1,
                    rate: None,
                },
            ],
            TOP,
        );
        let names: Vec<&str> = tied.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn sections_show_shares_and_per_key_rates() {
        let mut before = snapshot(10, 90, 0);
        before.served = vec![action("upgrade_banner", 60), action("welcome_tour", 30)];
        before.filtered = vec![reason("not_eligible", 100)];
        let mut after = snapshot(11, 100, 0);
        after.fallbacks = 1;
        after.fallbacks_by_reason = vec![reason("deadline", 1)];
        after.served = vec![
            action("upgrade_banner", 64),
            action("welcome_tour", 33),
            action("new_offer", 3),
        ];
        after.filtered = vec![
            reason("not_eligible", 110),
            reason("cap_channel", 30),
            reason("opted_out", 60),
        ];
        after.latency = Some(LatencySummary {
            window_seconds: 60,
            count: 5_432,
            p50_micros: 181,
            p90_micros: 240,
            p99_micros: 1_204,
            p999_micros: 3_400,
            max_micros: 2_500_000,
        });
        let text = stats(Some(&before), &after, Duration::from_millis(500));
        assert!(
            text.starts_with("nudge server up 11s · catalog demo-2026-11"),
            "{text}"
        );
        assert!(
            text.contains("Top actions served (3 actions, 100 serves)"),
            "{text}"
        );
        assert_eq!(
            words(line(&text, "upgrade_banner")),
            ["upgrade_banner", "64", "64.0%", "8.0"]
        );
        assert_eq!(
            words(line(&text, "new_offer")),
            ["new_offer", "3", "3.0%", "6.0"]
        );
        assert!(
            text.contains("Filtered by reason (200 candidates)"),
            "{text}"
        );
        // Most first, whatever the server's order.
        let order: Vec<&str> = ["not_eligible", "opted_out", "cap_channel"]
            .iter()
            .map(|reason| line(&text, reason))
            .collect();
        let positions: Vec<usize> = order
            .iter()
            .map(|l| text.find(l).expect("the line is in the text"))
            .collect();
        assert!(positions.is_sorted(), "{text}");
        assert_eq!(
            words(line(&text, "not_eligible")),
            ["not_eligible", "110", "55.0%", "20.0"]
        );
        assert_eq!(
            words(line(&text, "cap_channel")),
            ["cap_channel", "30", "15.0%", "60.0"]
        );
        assert!(
            text.contains("Fallbacks by reason (1 of 100 decisions)"),
            "{text}"
        );
        assert_eq!(
            words(line(&text, "deadline")),
            ["deadline", "1", "100.0%", "2.0"]
        );
        assert!(text.contains("fallbacks 1 (1.0%)"), "{text}");
        assert!(
            text.contains("Decide latency, last 60 s (5,432 decisions)"),
            "{text}"
        );
        assert!(
            text.contains("p50 181 µs · p90 240 µs · p99 1.20 ms · p99.9 3.40 ms · max 2.50 s"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "Variants (serving everyone outside an experiment: model {})",
                nudge_models::demo::MODEL_VERSION
            )),
            "{text}"
        );
        assert_eq!(
            words(line(&text, "default")),
            ["default", "100", "100.0%", "20.0"]
        );
    }

    #[test]
    fn empty_sections_say_so() {
        let mut empty = snapshot(0, 0, 0);
        empty.variants.clear();
        empty.latency = Some(LatencySummary {
            window_seconds: 60,
            ..LatencySummary::default()
        });
        let text = stats(None, &empty, Duration::ZERO);
        for needle in [
            "nudge server up 0s",
            "Decide latency, last 60 s: no decisions",
            "Served: none",
            "Filtered: none",
            "Fallbacks: none",
            "Variants: none",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        empty.latency = None;
        let text = stats(None, &empty, Duration::ZERO);
        assert!(text.contains("not reported by this server"), "{text}");
    }

    #[test]
    fn formats() {
        assert_eq!(rate_text(Some(1_234.46)), "1,234.5");
        assert_eq!(rate_text(Some(0.04)), "0.0");
        assert_eq!(rate_text(None), "-");
        assert_eq!(share_text(1, 3), "33.3%");
        assert_eq!(share_text(1, 10_000), "<0.1%");
        assert_eq!(share_text(0, 10), "0.0%");
        assert_eq!(share_text(0, 0), "-");
        assert_eq!(micros_text(999), "999 µs");
        assert_eq!(micros_text(1_000), "1.00 ms");
        assert_eq!(micros_text(12_345_678), "12.35 s");
        assert_eq!(
            live_footer(Duration::from_secs(1), None),
            "Refreshing every 1.0 s · Ctrl-C to quit"
        );
        assert!(
            live_footer(Duration::from_millis(500), Some("connection refused"))
                .ends_with("Last refresh failed, retrying: connection refused")
        );
    }
}
