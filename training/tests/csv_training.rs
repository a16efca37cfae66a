//! From a CSV file to the output directory, as `nudge train --csv` runs it:
//! a categorical column with a missing value and a bad row, bad inputs named
//! by line and column, and outputs the service's loader accepts.

use chrono::{TimeZone as _, Utc};
use nudge_models::model::Model;
use nudge_training::artifact::{self, MODEL_FILE, REPORT_HTML, REPORT_JSON};
use nudge_training::csv::{CsvOptions, read, read_path};
use nudge_training::{Error, Event, Silent, TrainOptions, train};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use std::fmt::Write as _;

/// A fresh directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("nudge-training-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 600 customers over 600 minutes: pro converts most, trial least, tenure
/// helps; one plan cell is empty and `enterprise` is rare (the "other"
/// bucket). Rows are written out of time order.
fn customers() -> String {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut text = String::from("customer,signed_up,plan,tenure,vip,converted\n");
    for row in 0..600_i64 {
        let plan = match row % 10 {
            0..=3 => "trial",
            4..=6 => "starter",
            7 | 8 => "pro",
            _ if row % 200 == 9 => "enterprise",
            _ => "pro",
        };
        let plan = if row == 42 { "" } else { plan };
        let tenure = rng.random_range(0..100);
        let vip = rng.random::<f64>() < 0.2;
        let logit = match plan {
            "pro" => 0.5,
            "starter" => -0.5,
            _ => -1.5,
        } + f64::from(tenure) / 40.0
            - 1.0;
        let converted = rng.random::<f64>() < nudge_models::model::sigmoid(logit);
        // Seconds since the epoch, rows swapped in pairs so the file is not in time order.
        let time = 1_795_400_000 + 60 * (row ^ 1);
        let _ = writeln!(
            text,
            "c{row},{time},{plan},{tenure},{vip},{}",
            u8::from(converted)
        );
    }
    text
}

fn csv_options() -> CsvOptions {
    CsvOptions {
        id: Some("customer".to_owned()),
        time: Some("signed_up".to_owned()),
        ..CsvOptions::new("converted")
    }
}

fn options() -> TrainOptions {
    TrainOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 30, 4, 12, 0)
            .single()
            .unwrap_or_default(),
    )
}

/// `text` with `line` (1-based) replaced.
fn with_line(text: &str, line: usize, replacement: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[line - 1] = replacement;
    lines.join("\n") + "\n"
}

fn read_error(text: &str, options: &CsvOptions) -> Error {
    read(text.as_bytes(), "customers.csv", options, &mut Silent).expect_err("refused")
}

#[test]
fn a_bad_row_is_refused_by_line_and_the_file_without_it_trains() {
    let good = customers();
    let bad = with_line(&good, 8, "c6,1795400420,trial,12");
    let error = read_error(&bad, &csv_options()).to_string();
    assert_eq!(error, "customers.csv: line 8: 4 fields, the header has 6");

    let dir = TempDir::new("good");
    let path = dir.0.join("customers.csv");
    std::fs::write(&path, &good).expect("write the csv");
    let mut events = Vec::new();
    let dataset = read_path(&path, &csv_options(), &mut |event: &Event| {
        events.push(event.clone())
    })
    .expect("reads");
    assert_eq!(events, vec![Event::RowsRead { rows: 600 }]);
    assert_eq!(
        dataset.features,
        vec![
            "is(plan,trial)",
            "is(plan,starter)",
            "is(plan,pro)",
            "is_none_of(plan,trial|starter|pro)",
            "attr(tenure)",
            "attr(vip)",
        ]
    );
    let trained = train(&dataset, &options(), &mut |event: &Event| {
        events.push(event.clone())
    })
    .expect("trains");
    // Progress: the split, each grid point, the final fit, the evaluation.
    assert!(matches!(
        events[1],
        Event::Split {
            train: 384,
            validation: 96,
            holdout: 120,
            features: 6
        }
    ));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::GridPoint { .. }))
            .count(),
        5
    );
    assert!(matches!(events.last(), Some(Event::Evaluated { .. })));

    let report = &trained.report;
    assert_eq!(report.model_version, "trained-20261130T0412");
    assert!(report.auc > 0.6, "holdout auc {}", report.auc);
    let weight = |feature: &str| {
        let position = trained.artifact.features.iter().position(|f| f == feature);
        trained.artifact.weights[position.unwrap_or_else(|| panic!("no {feature}"))]
    };
    assert!(weight("attr(tenure)") > 0.0, "tenure helps");
    assert!(
        weight("is(plan,pro)") > weight("is(plan,trial)"),
        "pro converts more than trial"
    );
    assert_eq!(trained.artifact.evidence.total, 480);
    let plan = report
        .columns
        .iter()
        .find(|c| c.name == "plan")
        .expect("plan");
    assert_eq!(plan.missing, 1);

    // The outputs: the model loads as the service loads it, the report parses.
    let out = dir.0.join("out");
    artifact::prepare_dir(&out, false).expect("a new directory");
    artifact::write_outputs(&out, &trained).expect("writes");
    let json = std::fs::read(out.join(MODEL_FILE)).expect("model.json");
    let model = Model::from_json(&json).expect("the service loads the artifact");
    assert_eq!(model.version(), "trained-20261130T0412");
    assert_eq!(
        model.artifact(),
        &trained.artifact,
        "written without rounding"
    );
    let report_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(REPORT_JSON)).expect("report.json"))
            .expect("json");
    assert_eq!(report_json["auc"].as_f64(), Some(report.auc));
    for key in ["log_loss", "calibration_error", "base_rate", "alpha"] {
        assert!(report_json[key].is_number(), "{key} is a number");
    }
    assert!(report_json["ope"].is_null());
    assert_eq!(report_json["rows"]["holdout"], 120);
    assert_eq!(
        report_json["validation_grid"].as_array().map(Vec::len),
        Some(5)
    );
    let html = std::fs::read_to_string(out.join(REPORT_HTML)).expect("report.html");
    assert_eq!(
        html.matches("<svg").count(),
        4,
        "ROC, reliability, gain, lift"
    );
    for external in ["<link", "<script", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(external), "self-contained: no {external}");
    }
    // A second run refuses to replace the outputs unless forced.
    let error = artifact::prepare_dir(&out, false)
        .expect_err("outputs exist")
        .to_string();
    assert!(
        error.contains("already holds model.json; pass --force"),
        "{error}"
    );
    artifact::prepare_dir(&out, true).expect("forced");
}

#[test]
fn bad_cells_and_columns_are_named() {
    let good = customers();
    let error = read_error(
        &with_line(&good, 5, "c3,1795400120,pro,NaN,false,1"),
        &csv_options(),
    );
    assert_eq!(
        error.to_string(),
        "customers.csv: line 5, column 'tenure': 'NaN' is not a finite number"
    );
    let error = read_error(
        &with_line(&good, 6, "c4,1795400300,pro,inf,false,1"),
        &csv_options(),
    );
    assert!(
        error
            .to_string()
            .contains("line 6, column 'tenure': 'inf' is not a finite number")
    );
    let error = read_error(
        &with_line(&good, 3, "c1,1795400000,pro,3,false,maybe"),
        &csv_options(),
    );
    assert_eq!(
        error.to_string(),
        "customers.csv: line 3, column 'converted': 'maybe' is not a binary label (use 0/1, true/false or yes/no)"
    );
    let missing = CsvOptions::new("churned");
    let error = read_error(&good, &missing);
    assert_eq!(
        error.to_string(),
        "customers.csv: no column 'churned' (the label column); the header has: customer, signed_up, plan, tenure, vip, converted"
    );
    let error = read_error("", &csv_options());
    assert!(matches!(error, Error::Empty { .. }), "{error}");
}

/// `rows` rows of `tenure,converted`, converted as `label(row)` says.
fn labelled(rows: usize, label: impl Fn(usize) -> bool) -> nudge_training::Dataset {
    let mut text = String::from("tenure,converted\n");
    for row in 0..rows {
        let _ = writeln!(text, "{row},{}", u8::from(label(row)));
    }
    read(
        text.as_bytes(),
        "c.csv",
        &CsvOptions::new("converted"),
        &mut Silent,
    )
    .expect("reads")
}

#[test]
fn a_holdout_with_one_class_or_none_is_refused() {
    // Every row in the newest 20 % is negative.
    let dataset = labelled(100, |row| row < 80 && row % 3 == 0);
    let error = train(&dataset, &options(), &mut Silent).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "the holdout slice (20 rows, 0 positive) has one class only; it needs both classes: more rows, or a different --holdout / --validation"
    );
    // Too small a holdout fraction for 100 rows: no holdout row at all.
    let dataset = labelled(100, |row| row % 3 == 0);
    let empty = TrainOptions {
        holdout: 0.001,
        ..options()
    };
    let error = train(&dataset, &empty, &mut Silent).expect_err("refused");
    assert!(
        error.to_string().starts_with("the holdout slice (0 rows"),
        "{error}"
    );
}
