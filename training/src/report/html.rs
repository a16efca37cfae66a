//! `report.html`: one self-contained page (inline CSS, inline SVG drawn by
//! plotters, no script, no external URL) with the summary numbers, the ROC
//! curve, the reliability diagram, cumulative gain and lift, per-action
//! bars, the validation grid and the features.

use super::Report;
use crate::Error;
use plotters::prelude::*;
use std::fmt::Write as _;

/// Size of each plot, in pixels.
const PLOT: (u32, u32) = (460, 340);

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.plots{display:flex;flex-wrap:wrap;gap:1em}\
.note{color:#555;font-size:.9em}";

/// The report as one HTML page.
pub fn to_html(report: &Report) -> Result<String, Error> {
    let mut page = String::with_capacity(64 * 1024);
    let title = format!("nudge model {}", report.model_version);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p class=\"note\">Trained {} on {}. Every holdout number is the artifact's own score, computed by the service's model code.</p>\n",
        escape(&title),
        escape(&title),
        escape(&report.trained_at),
        escape(&report.source)
    );
    summary(&mut page, report);
    page.push_str("<h2>Holdout plots</h2>\n<div class=\"plots\">\n");
    page.push_str(&roc_plot(report)?);
    page.push_str(&reliability_plot(report)?);
    page.push_str(&gain_plot(report)?);
    page.push_str(&lift_plot(report)?);
    page.push_str("</div>\n<h2>Per action</h2>\n");
    if report.per_action.is_empty() {
        page.push_str(
            "<p class=\"note\">No action column: every action gets the customer-level score.</p>\n",
        );
    } else {
        page.push_str(&action_plot(report)?);
        action_table(&mut page, report);
    }
    grid_table(&mut page, report);
    feature_table(&mut page, report);
    let _ = write!(
        page,
        "<h2>Off-policy evaluation</h2>\n<p class=\"note\">{}</p>\n",
        escape(&report.ope_note)
    );
    if let Some(ope) = &report.ope {
        ope_table(&mut page, ope);
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

/// The OPE estimates with their intervals, and the weight diagnostics.
fn ope_table(page: &mut String, ope: &serde_json::Value) {
    let interval = |key: &str| {
        let value = &ope[key];
        match (
            value["estimate"].as_f64(),
            value["low"].as_f64(),
            value["high"].as_f64(),
        ) {
            (Some(estimate), Some(low), Some(high)) => {
                format!("{estimate:.4} [{low:.4}, {high:.4}]")
            }
            _ => "—".to_owned(),
        }
    };
    page.push_str(
        "<table><tr><th>estimator</th><th>conversion rate per decision [interval]</th><th>change against the logging policy [interval]</th></tr>\n",
    );
    let _ = writeln!(
        page,
        "<tr><td>logging policy (on-policy mean)</td><td>{}</td><td>—</td></tr>",
        interval("logging")
    );
    for (name, key, change) in [
        ("IPS", "ips", "ips_improvement"),
        ("SNIPS", "snips", "snips_improvement"),
        (
            "doubly robust",
            "doubly_robust",
            "doubly_robust_improvement",
        ),
    ] {
        let _ = writeln!(
            page,
            "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>",
            interval(key),
            interval(change)
        );
    }
    page.push_str("</table>\n");
    let number = |key: &str| {
        ope[key]
            .as_f64()
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
    };
    let _ = writeln!(
        page,
        "<p class=\"note\">{} decisions; effective sample size {}, largest weight {}, mean weight {} (near 1 when the new policy stays within the logged one's support), match rate {}.</p>",
        ope["decisions"].as_u64().unwrap_or(0),
        number("effective_sample_size"),
        number("max_weight"),
        number("mean_weight"),
        number("match_rate"),
    );
}

fn summary(page: &mut String, report: &Report) {
    let rows = &report.rows;
    let rates = &report.base_rates;
    let lines = [
        ("holdout AUC", format!("{:.4}", report.auc)),
        ("holdout log loss", format!("{:.4}", report.log_loss)),
        (
            "holdout calibration error (10 bins)",
            format!("{:.4}", report.calibration_error),
        ),
        (
            "holdout base rate / mean predicted",
            format!("{:.4} / {:.4}", report.base_rate, report.mean_predicted),
        ),
        (
            "rows: training / validation / holdout",
            format!("{} / {} / {}", rows.training, rows.validation, rows.holdout),
        ),
        (
            "base rates: training / validation / holdout",
            format!(
                "{:.4} / {:.4} / {:.4}",
                rates.training, rates.validation, rates.holdout
            ),
        ),
        ("L2 alpha (per row)", format!("{}", report.alpha)),
        (
            "class balance",
            format!(
                "{} (×{}, intercept −{:.4})",
                report.balance.mode,
                report.balance.oversampling,
                report.balance.intercept_correction
            ),
        ),
        ("features", report.features.len().to_string()),
    ];
    page.push_str("<table>\n");
    for (name, value) in lines {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td class=\"n\">{}</td></tr>",
            escape(name),
            escape(&value)
        );
    }
    page.push_str("</table>\n");
}

fn action_table(page: &mut String, report: &Report) {
    page.push_str("<table><tr><th>action</th><th>training rows</th><th>holdout rows</th><th>base rate</th><th>mean predicted</th><th>AUC</th><th>log loss</th></tr>\n");
    for action in &report.per_action {
        let auc = action.auc.map_or("–".to_owned(), |auc| format!("{auc:.4}"));
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td><td class=\"n\">{auc}</td><td class=\"n\">{:.4}</td></tr>",
            escape(&action.action),
            action.training_rows,
            action.rows,
            action.base_rate,
            action.mean_predicted,
            action.log_loss
        );
    }
    page.push_str("</table>\n");
}

fn grid_table(page: &mut String, report: &Report) {
    let _ = writeln!(
        page,
        "<h2>Validation grid</h2>\n<p class=\"note\">Chosen: {} — {}. Fitted on {}; the final fit {}.</p>\n<table><tr><th>alpha</th><th>validation AUC</th><th>validation log loss</th><th>fit ms</th><th>started from</th></tr>",
        report.alpha,
        escape(report.alpha_selection),
        escape(&report.grid_sample),
        report.final_start_alpha.map_or_else(
            || "started from zero".to_owned(),
            |alpha| format!("started from the solution for alpha {alpha}")
        ),
    );
    for point in &report.validation_grid {
        let start = point
            .start_alpha
            .map_or_else(|| "zero".to_owned(), |alpha| format!("alpha {alpha}"));
        let _ = writeln!(
            page,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.0}</td><td>{start}</td></tr>",
            point.alpha, point.auc, point.log_loss, point.fit_ms
        );
    }
    page.push_str("</table>\n");
}

fn feature_table(page: &mut String, report: &Report) {
    let _ = writeln!(
        page,
        "<h2>Features</h2>\n<p class=\"note\">Intercept {:.6}. Weights are for raw values, as in the artifact; the standardized weight is the change in log-odds per standard deviation.</p>\n<table><tr><th>feature</th><th>weight</th><th>standardized</th><th>mean</th><th>std</th></tr>",
        report.intercept
    );
    for feature in &report.features {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{:.6}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td></tr>",
            escape(&feature.feature),
            feature.weight,
            feature.standardized_weight,
            feature.mean,
            feature.scale
        );
    }
    page.push_str("</table>\n");
}

/// Text made safe inside HTML elements and attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn plot_error(plot: &'static str) -> impl Fn(&dyn std::fmt::Debug) -> Error {
    move |error| Error::Plot {
        plot,
        reason: format!("{error:?}"),
    }
}

/// A square unit chart (0..1 × 0..1) with a dashed-looking diagonal and
/// `series` as a line with points.
fn unit_plot(
    plot: &'static str,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(f64, f64)],
) -> Result<String, Error> {
    let error = plot_error(plot);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(46)
            .build_cartesian_2d(0.0..1.0_f64, 0.0..1.0_f64)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| error(&e))?;
        if series.len() <= 25 {
            chart
                .draw_series(
                    series
                        .iter()
                        .map(|point| Circle::new(*point, 3, BLUE.filled())),
                )
                .map_err(|e| error(&e))?;
        }
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}

fn roc_plot(report: &Report) -> Result<String, Error> {
    let points: Vec<(f64, f64)> = report.roc.iter().map(|p| (p.fpr, p.tpr)).collect();
    unit_plot(
        "roc",
        &format!("ROC (AUC {:.3})", report.auc),
        "false positive rate",
        "true positive rate",
        &points,
    )
}

fn reliability_plot(report: &Report) -> Result<String, Error> {
    let points: Vec<(f64, f64)> = report
        .reliability
        .iter()
        .filter(|bin| bin.rows > 0)
        .map(|bin| (bin.mean_predicted, bin.observed_rate))
        .collect();
    unit_plot(
        "reliability",
        &format!("Reliability (ECE {:.3})", report.calibration_error),
        "mean predicted probability",
        "observed rate",
        &points,
    )
}

fn gain_plot(report: &Report) -> Result<String, Error> {
    let points: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(report.gain.iter().map(|p| (p.fraction, p.gain)))
        .collect();
    unit_plot(
        "gain",
        "Cumulative gain",
        "fraction of rows, highest scores first",
        "fraction of positives",
        &points,
    )
}

fn lift_plot(report: &Report) -> Result<String, Error> {
    let error = plot_error("lift");
    let points: Vec<(f64, f64)> = report.gain.iter().map(|p| (p.fraction, p.lift)).collect();
    let top = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Lift", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(46)
            .build_cartesian_2d(0.0..1.0_f64, 0.0..top)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("fraction of rows, highest scores first")
            .y_desc("lift over random")
            .draw()
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new([(0.0, 1.0), (1.0, 1.0)], BLACK.mix(0.3)))
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| error(&e))?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|point| Circle::new(*point, 3, BLUE.filled())),
            )
            .map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}

/// Observed base rate (grey) and mean predicted probability (blue) of each
/// action's holdout rows, side by side.
fn action_plot(report: &Report) -> Result<String, Error> {
    let error = plot_error("per-action");
    let actions = &report.per_action;
    let top = actions
        .iter()
        .flat_map(|a| [a.base_rate, a.mean_predicted])
        .fold(0.01_f64, f64::max)
        * 1.15;
    let width = (120 + 70 * actions.len() as u32).clamp(PLOT.0, 1400);
    let names: Vec<String> = actions.iter().map(|a| a.action.clone()).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Holdout base rate (grey) and mean predicted (blue) per action",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..actions.len() as f64, 0.0..top)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(actions.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let position = x.floor();
                let centred = (x - position - 0.5).abs() < 0.01;
                match names.get(position as usize) {
                    Some(name) if centred => name.clone(),
                    _ => String::new(),
                }
            })
            .y_desc("rate")
            .draw()
            .map_err(|e| error(&e))?;
        let bars = actions.iter().enumerate().flat_map(|(position, action)| {
            let left = position as f64;
            [
                Rectangle::new(
                    [(left + 0.1, 0.0), (left + 0.48, action.base_rate)],
                    BLACK.mix(0.35).filled(),
                ),
                Rectangle::new(
                    [(left + 0.52, 0.0), (left + 0.9, action.mean_predicted)],
                    BLUE.mix(0.8).filled(),
                ),
            ]
        });
        chart.draw_series(bars).map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}
