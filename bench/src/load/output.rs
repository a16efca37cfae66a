//! What a load run leaves behind: the terminal table, `results.json`, one
//! `.hgrm` percentile distribution per step and kind (the format
//! HdrHistogram's plotter reads), and `latency.svg`, latency against
//! answered calls per second.

use super::generator::{Kind, Tally};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Percentiles and counts of one kind of call in one step.
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    /// Calls started (counted ones).
    pub sent: u64,
    /// Answered OK.
    pub ok: u64,
    /// Decide answers from the fallback ladder.
    pub fallbacks: u64,
    /// Outcomes not sent for want of a served action.
    pub skipped: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Answered calls per second of the measured window.
    pub goodput: f64,
    /// Latency of answered calls from their intended start, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Slowest answer, µs.
    pub max_us: u64,
    /// 99th percentile of the refused/failed calls, µs (how fast a refusal is).
    pub refused_p99_us: u64,
    /// In a cluster: the answered calls by the node that served them.
    pub by_owner: BTreeMap<String, OwnerSummary>,
}

/// The answered calls of one kind that one cluster node served.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerSummary {
    /// Answered calls.
    pub ok: u64,
    /// Latency from the intended start, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
}

/// The `q` quantile of `histogram`, 0 when it is empty.
fn quantile(histogram: &Histogram<u64>, q: f64) -> u64 {
    if histogram.is_empty() {
        0
    } else {
        histogram.value_at_quantile(q)
    }
}

impl KindSummary {
    /// The summary of `tally` over a measured window of `seconds`.
    pub fn of(tally: &Tally, seconds: f64) -> Self {
        let answered = &tally.answered;
        Self {
            sent: tally.sent,
            ok: tally.ok,
            fallbacks: tally.fallbacks,
            skipped: tally.skipped,
            errors: tally.errors.clone(),
            goodput: tally.ok as f64 / seconds.max(f64::EPSILON),
            p50_us: quantile(answered, 0.50),
            p90_us: quantile(answered, 0.90),
            p99_us: quantile(answered, 0.99),
            p999_us: quantile(answered, 0.999),
            max_us: answered.max(),
            refused_p99_us: quantile(&tally.refused, 0.99),
            by_owner: tally
                .by_owner
                .iter()
                .map(|(owner, histogram)| {
                    let summary = OwnerSummary {
                        ok: histogram.len(),
                        p50_us: quantile(histogram, 0.50),
                        p99_us: quantile(histogram, 0.99),
                        p999_us: quantile(histogram, 0.999),
                    };
                    (owner.clone(), summary)
                })
                .collect(),
        }
    }

    /// Failed calls, all codes.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What /proc said about the server over a step's measured window.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct ServerSummary {
    /// Server CPU time per call of any kind, µs.
    pub cpu_us_per_call: f64,
    /// Cores the server used on average.
    pub cores_used: f64,
    /// Resident memory at the end of the step, MiB.
    pub rss_mib: f64,
    /// Bytes written to storage per call that changes state (Decide, Track,
    /// ReportOutcome).
    pub written_bytes_per_change: f64,
    /// Bytes written to storage per Decide (all writes of the window over the
    /// Decide calls alone).
    pub written_bytes_per_decide: f64,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    /// `check` (the empty-call ceiling) or `decide` (Decide with its
    /// companions).
    pub phase: String,
    /// The target rate of the step's main stream, calls/s.
    pub rate: f64,
    /// Whether it is within the knee criteria (p99 ≤ 10 ms, failures ≤
    /// 0.1 %, answers ≥ 95 % of the target rate).
    pub within_knee: bool,
    /// By kind.
    pub kinds: BTreeMap<Kind, KindSummary>,
    /// The server, when its process could be read.
    pub server: Option<ServerSummary>,
    /// With `--repeat`: the main kind's p99 of every run of the step,
    /// lowest first (the step's figures are the median run's), µs.
    pub repeat_p99_us: Vec<u64>,
}

/// Writes `histogram` (µs) as an `.hgrm` percentile distribution in
/// milliseconds.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0;
    for value in histogram.iter_quantiles(1) {
        total += value.count_since_last_iteration();
        let quantile = value.quantile_iterated_to();
        let inverse = if quantile < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - quantile))
        } else {
            String::new()
        };
        let _ = writeln!(
            text,
            "{:>12.3} {:>14.12} {:>10} {inverse}",
            value.value_iterated_to() as f64 / 1_000.0,
            quantile,
            total,
        );
    }
    let _ = writeln!(
        text,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        histogram.mean() / 1_000.0,
        histogram.stdev() / 1_000.0
    );
    let _ = writeln!(
        text,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        histogram.max() as f64 / 1_000.0,
        histogram.len()
    );
    let _ = writeln!(
        text,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    text
}

/// The terminal/Markdown table of `steps`.
pub fn table(steps: &[StepSummary]) -> String {
    let mut text = String::from(
        "| phase | target/s | kind | answered/s | p50 ms | p99 ms | p99.9 ms | max ms | failed | fallbacks | server CPU µs/call | cores | RSS MiB | disk B/decide | knee? |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for step in steps {
        for (kind, summary) in &step.kinds {
            if summary.sent == 0 && summary.skipped == 0 {
                continue;
            }
            let main = matches!(kind, Kind::Check | Kind::Decide);
            let server = step.server.filter(|_| main);
            let failed = if summary.errors.is_empty() {
                "0".to_owned()
            } else {
                summary
                    .errors
                    .iter()
                    .map(|(code, count)| format!("{count} {code}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                text,
                "| {} | {:.0} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {failed} | {} | {} | {} | {} | {} | {} |",
                step.phase,
                step.rate,
                kind.name(),
                summary.goodput,
                summary.p50_us as f64 / 1_000.0,
                summary.p99_us as f64 / 1_000.0,
                summary.p999_us as f64 / 1_000.0,
                summary.max_us as f64 / 1_000.0,
                summary.fallbacks,
                server.map_or("".to_owned(), |server| format!(
                    "{:.0}",
                    server.cpu_us_per_call
                )),
                server.map_or("".to_owned(), |server| format!("{:.2}", server.cores_used)),
                server.map_or("".to_owned(), |server| format!("{:.0}", server.rss_mib)),
                server
                    .filter(|_| *kind == Kind::Decide)
                    .map_or("".to_owned(), |server| format!(
                        "{:.0}",
                        server.written_bytes_per_decide
                    )),
                if main {
                    if step.within_knee { "yes" } else { "no" }
                } else {
                    ""
                },
            );
        }
    }
    let by_owner = steps.iter().any(|step| {
        step.kinds
            .values()
            .any(|summary| !summary.by_owner.is_empty())
    });
    if by_owner {
        text.push_str(
            "\nBy the node that served them (`x-nudge-owner`):\n\n\
             | phase | target/s | kind | node | answered | p50 ms | p99 ms | p99.9 ms |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for step in steps {
            for (kind, summary) in &step.kinds {
                for (owner, served) in &summary.by_owner {
                    let _ = writeln!(
                        text,
                        "| {} | {:.0} | {} | {owner} | {} | {:.2} | {:.2} | {:.2} |",
                        step.phase,
                        step.rate,
                        kind.name(),
                        served.ok,
                        served.p50_us as f64 / 1_000.0,
                        served.p99_us as f64 / 1_000.0,
                        served.p999_us as f64 / 1_000.0,
                    );
                }
            }
        }
    }
    text
}

/// Writes `latency.svg` into `dir`: p50/p99/p99.9 of Decide and p99 of the
/// empty call against answered calls per second, log latency axis, with the
/// 10 ms knee line.
pub fn plot(dir: &Path, steps: &[StepSummary], title: &str) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let series = |phase: &str, kind: Kind, pick: fn(&KindSummary) -> u64| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter(|step| step.phase == phase)
            .filter_map(|step| step.kinds.get(&kind))
            .filter(|summary| summary.ok > 0)
            .map(|summary| (summary.goodput, (pick(summary) as f64 / 1_000.0).max(0.01)))
            .collect()
    };
    let lines = [
        (
            "Check p99 (empty call)",
            series("check", Kind::Check, |s| s.p99_us),
            BLACK,
        ),
        (
            "Decide p50",
            series("decide", Kind::Decide, |s| s.p50_us),
            GREEN,
        ),
        (
            "Decide p99",
            series("decide", Kind::Decide, |s| s.p99_us),
            BLUE,
        ),
        (
            "Decide p99.9",
            series("decide", Kind::Decide, |s| s.p999_us),
            RED,
        ),
    ];
    let x_max = lines
        .iter()
        .flat_map(|(_, points, _)| points.iter().map(|(x, _)| *x))
        .fold(1_000.0_f64, f64::max)
        * 1.05;
    let path = dir.join("latency.svg");
    let root = SVGBackend::new(&path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (0.05_f64..5_000.0).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("answered calls per second")
        .y_desc("latency from intended start, ms (log)")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 10.0), (x_max, 10.0)],
            ShapeStyle::from(&BLACK.mix(0.3)).stroke_width(1),
        ))
        .map_err(plot_error)?
        .label("10 ms (knee criterion)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    for (name, points, color) in lines {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|point| Circle::new(point, 3, color.filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {error:?}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_ends_at_the_whole_count_in_milliseconds() {
        let mut histogram = crate::report::new_histogram().unwrap();
        for micros in 1..=1_000 {
            histogram.record(micros).unwrap();
        }
        let text = hgrm(&histogram);
        assert!(text.starts_with(&format!("{:>12}", "Value")));
        assert!(text.contains("Total count    =         1000"), "{text}");
        let last_row = text
            .lines()
            .rfind(|line| !line.starts_with('#') && !line.trim().is_empty())
            .unwrap();
        let columns: Vec<&str> = last_row.split_whitespace().collect();
        assert_eq!(columns[0], "1.000");
        assert_eq!(columns[2], "1000");
    }

    fn step(tally: &Tally) -> StepSummary {
        StepSummary {
            phase: "decide".to_owned(),
            rate: 2_000.0,
            within_knee: true,
            kinds: BTreeMap::from([(Kind::Decide, KindSummary::of(tally, 1.0))]),
            server: None,
            repeat_p99_us: Vec::new(),
        }
    }

    #[test]
    fn answers_that_name_their_node_are_summed_up_per_node() {
        let mut tally = Tally::new().unwrap();
        for (owner, micros, calls) in [("node-0", 400, 30), ("node-1", 900, 60)] {
            let mut histogram = crate::report::new_histogram().unwrap();
            for _ in 0..calls {
                histogram.record(micros).unwrap();
                tally.answered.record(micros).unwrap();
            }
            tally.by_owner.insert(owner.to_owned(), histogram);
        }
        tally.sent = 90;
        tally.ok = 90;

        let summary = KindSummary::of(&tally, 1.0);
        assert_eq!(summary.by_owner["node-0"].ok, 30);
        assert_eq!(summary.by_owner["node-1"].ok, 60);
        assert!(summary.by_owner["node-0"].p99_us < summary.by_owner["node-1"].p99_us);
        assert_eq!(summary.p99_us, summary.by_owner["node-1"].p99_us);

        let text = table(&[step(&tally)]);
        assert!(text.contains("By the node that served them"), "{text}");
        let row = text
            .lines()
            .find(|line| line.contains("| node-0 |"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            row.starts_with("| decide | 2000 | decide | node-0 | 30 | 0.40 |"),
            "{row}"
        );
    }

    #[test]
    fn a_single_server_has_no_per_node_table() {
        let mut tally = Tally::new().unwrap();
        tally.answered.record(500).unwrap();
        tally.sent = 1;
        tally.ok = 1;
        let text = table(&[step(&tally)]);
        assert!(!text.contains("By the node"), "{text}");
    }
}
