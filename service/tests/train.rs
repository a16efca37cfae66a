//! `nudge train` as the binary runs it: progress on stderr, a summary on
//! stdout and the three outputs; bad input refused with a non-zero exit and
//! the line and column on stderr.

mod common;

use common::{TempDir, run};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

/// 200 rows: `plan` (categorical), `tenure` (numeric), `converted`.
fn rows() -> String {
    let mut text = String::from("customer,plan,tenure,converted\n");
    for row in 0..200 {
        let plan = ["trial", "starter", "pro"][row % 3];
        let converted = (row % 3 == 2 && row % 2 == 0) || row % 7 == 0;
        let _ = writeln!(text, "c{row},{plan},{},{}", row % 50, u8::from(converted));
    }
    text
}

#[test]
fn train_writes_the_model_and_reports_and_prints_progress() {
    let dir = TempDir::new("train");
    let csv = dir.join("rows.csv");
    fs::write(&csv, rows()).expect("write the csv");
    let out = dir.join("model");
    let args = [
        "train",
        "--csv",
        csv.to_str().expect("UTF-8 path"),
        "--label",
        "converted",
        "--id",
        "customer",
        "--out",
        out.to_str().expect("UTF-8 path"),
        "--version",
        "cli-1",
    ];
    let output = run(&args);
    assert!(output.status.success(), "{}", output.describe());
    assert!(
        output
            .stdout
            .contains("(version cli-1, 4 features): holdout auc"),
        "{}",
        output.describe()
    );
    for progress in [
        "read 200 rows",
        "fit 5/5: alpha ",
        "alpha 1 on 128 rows:",
        "final fit:",
        "holdout: auc",
    ] {
        assert!(output.stderr.contains(progress), "{}", output.describe());
    }
    for file in ["model.json", "report.json", "report.html"] {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let model = fs::read(out.join("model.json")).expect("read model.json");
    nudge_models::model::Model::from_json(&model).expect("the service loads it");

    // A second run into the same directory needs --force.
    let again = run(&args);
    assert!(!again.status.success(), "{}", again.describe());
    assert!(
        again
            .stderr
            .contains("already holds model.json; pass --force"),
        "{}",
        again.describe()
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(run(&forced).status.success());
}

#[test]
fn train_refuses_bad_input_naming_line_and_column() {
    let dir = TempDir::new("train-bad");
    let out = dir.join("model");
    let out = out.to_str().expect("UTF-8 path");
    let cases = [
        (
            rows().replacen("c2,pro,2,1", "c2,pro,NaN,1", 1),
            "line 4, column 'tenure': 'NaN' is not a finite number",
        ),
        (
            rows().replacen("c1,starter,1,0", "c1,starter,1,maybe", 1),
            "line 3, column 'converted': 'maybe' is not a binary label",
        ),
        (
            rows().replacen("c5,pro,5,0", "c5,pro,5", 1),
            "line 7: 3 fields, the header has 4",
        ),
        (
            rows().replacen("converted", "outcome", 1),
            "no column 'converted' (the label column)",
        ),
    ];
    for (number, (text, expected)) in cases.into_iter().enumerate() {
        let csv = dir.join(&format!("bad-{number}.csv"));
        fs::write(&csv, text).expect("write the csv");
        let output = run(&[
            "train",
            "--csv",
            csv.to_str().expect("UTF-8 path"),
            "--label",
            "converted",
            "--out",
            out,
        ]);
        assert!(!output.status.success(), "{}", output.describe());
        assert!(output.stderr.contains(expected), "{}", output.describe());
        assert!(
            output.stderr.starts_with("error: "),
            "{}",
            output.describe()
        );
        // Nothing changed: not even the output directory was created.
        assert!(!Path::new(out).exists(), "{}", output.describe());
    }
}

/// Draws in [0, 1) from a seed and a count (SplitMix64): the synthetic
/// world below needs no random crate.
fn draw(seed: u64, count: &mut u64) -> f64 {
    *count += 1;
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(count.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1_u64 << 53) as f64
}

/// A churn world's event export: 200 customers over 90 days with a plan
/// and seats; engaged ones log in on most days and activate features, and
/// about a third stop logging in 20 to 30 days before they cancel
/// (`subscription_cancelled`), opening a support ticket or two on the way.
fn churn_export(path: &Path) {
    use nudge_models::log::EventRecord;
    use nudge_models::profile::Event;
    use nudge_models::time::Timestamp;
    use nudge_models::value::AttrValue;
    use nudge_service::cli::export::{ExportFormat, ExportWriter};
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    const START: i64 = 20_800 * DAY;
    let mut writer = ExportWriter::create_events(path, ExportFormat::Parquet).expect("writable");
    for customer in 0..200_u64 {
        let id = format!("c{customer:03}");
        let mut count = 0;
        let mut next = || draw(customer, &mut count);
        let mut ordinal = 0;
        let mut push = |name: &str, at: i64, properties: Vec<(&str, AttrValue)>| {
            ordinal += 1;
            let event = EventRecord {
                customer_id: id.clone(),
                ordinal,
                received_at: Timestamp::from_millis(START + at),
                event: Event {
                    event_id: format!("{id}-{ordinal}"),
                    name: name.to_owned(),
                    timestamp: Timestamp::from_millis(START + at),
                    properties: properties
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                },
            };
            writer.push_event(&event).expect("written");
        };
        let joined = (next() * 20.0) as i64 * DAY + 9 * HOUR;
        let plan = ["trial", "starter", "pro", "enterprise"][(next() * 4.0) as usize];
        push(
            "identify",
            joined,
            vec![
                ("plan", AttrValue::Str(plan.to_owned())),
                ("seats", AttrValue::Num((1.0 + next() * 20.0).floor())),
            ],
        );
        let cancels = next() < 0.35;
        let cancel = joined + (15.0 + next() * 75.0) as i64 * DAY;
        let stop = cancel - (20.0 + next() * 10.0) as i64 * DAY;
        let mut day = joined + HOUR;
        while day < 90 * DAY {
            if cancels && day >= cancel {
                push("subscription_cancelled", cancel, Vec::new());
                break;
            }
            let engaged = !cancels || day < stop;
            if next() < if engaged { 0.85 } else { 0.05 } {
                push("login", day, Vec::new());
            }
            if engaged && next() < 0.2 {
                push("feature_activated", day + HOUR, Vec::new());
            }
            if !engaged && next() < 0.1 {
                push("support_ticket_opened", day + 2 * HOUR, Vec::new());
            }
            day += DAY;
        }
    }
    writer.finish().expect("the export is written");
}

#[test]
fn train_score_builds_a_churn_model_from_the_event_log() {
    let dir = TempDir::new("train-score");
    let events = dir.join("events.parquet");
    churn_export(&events);
    let out = dir.join("churn");
    let output = run(&[
        "train",
        "--score",
        "churn_risk",
        "--label-event",
        "subscription_cancelled",
        "--horizon",
        "30d",
        "--events",
        events.to_str().expect("UTF-8 path"),
        "--out",
        out.to_str().expect("UTF-8 path"),
    ]);
    assert!(output.status.success(), "{}", output.describe());
    for progress in [
        "replayed 200 of 200 customers to their cut-offs:",
        "of them with subscription_cancelled;",
        "fit 5/5: alpha ",
        "holdout: auc",
    ] {
        assert!(output.stderr.contains(progress), "{}", output.describe());
    }
    let next = format!(
        "next: nudge model load {} --score churn_risk",
        out.join("model.json").display()
    );
    assert!(output.stdout.contains(&next), "{}", output.describe());
    assert!(
        output.stdout.contains("(version churn_risk-"),
        "{}",
        output.describe()
    );
    assert!(out.join("report.html").is_file());

    let bytes = fs::read(out.join("model.json")).expect("read model.json");
    let model = nudge_models::model::Model::from_json(&bytes).expect("the service loads it");
    let catalog = nudge_models::catalog::Catalog::from_toml(nudge_models::demo::CATALOG_TOML)
        .expect("the demo catalog");
    assert_eq!(catalog.scores.check_model("churn_risk", &model), Ok(()));
    let artifact = model.artifact();
    assert!(
        artifact.description.starts_with(
            "the churn_risk profile score's model: the probability of subscription_cancelled within 30d after a cut-off"
        ),
        "{}",
        artifact.description
    );
    // The default features, derived from the log.
    for feature in [
        "days_since(login)",
        "log_count(feature_activated,30d)",
        "is(plan,trial)",
        "attr(seats)",
        "tenure_days",
    ] {
        assert!(
            artifact.features.iter().any(|known| known == feature),
            "{feature} in {:?}",
            artifact.features
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("report.json")).expect("read report.json"))
            .expect("JSON");
    let auc = report["auc"].as_f64().expect("an auc");
    assert!(auc > 0.8, "holdout auc {auc}");
    assert!(report["ope"].is_null(), "{}", report["ope_note"]);
}

#[test]
fn train_score_refuses_what_it_cannot_train_naming_it() {
    let dir = TempDir::new("train-score-bad");
    let events = dir.join("events.parquet");
    churn_export(&events);
    let events = events.to_str().expect("UTF-8 path");
    let out = dir.join("churn");
    let out = out.to_str().expect("UTF-8 path");
    let score = |score: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--score",
            score,
            "--label-event",
            "subscription_cancelled",
            "--horizon",
            "30d",
            "--events",
            events,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    for (output, expected) in [
        (
            score("churn_risk", &["--feature", "ctx(hour_of_day)"]),
            "'ctx(hour_of_day)' cannot be a feature of score churn_risk: it reads the request context",
        ),
        (
            score("churn_risk", &["--feature", "score(adoption)"]),
            "scores at past cut-offs are not in the event log",
        ),
        (
            score("churn_risk", &["--feature", "tier(churn,high)"]),
            "tiers at past cut-offs are not in the event log",
        ),
        (
            score(
                "churn_risk",
                &["--feature", "category(upsell) * days_since(login)"],
            ),
            "it reads the action",
        ),
        (
            score("adoption", &[]),
            "score 'adoption' of the demo catalog is not a model score",
        ),
        (
            score("upsell", &[]),
            "the demo catalog declares no score 'upsell' (its scores: adoption, churn_risk, monthly_value, clv)",
        ),
        (
            run(&[
                "train",
                "--score",
                "churn_risk",
                "--label-event",
                "subscription_cancelled",
                "--horizon",
                "0d",
                "--events",
                events,
                "--out",
                out,
            ]),
            "'0d' must be longer than zero",
        ),
        (
            run(&[
                "train",
                "--score",
                "churn_risk",
                "--events",
                events,
                "--out",
                out,
            ]),
            "--label-event <NAME>",
        ),
        (
            run(&[
                "train", "--csv", events, "--label", "x", "--events", events, "--out", out,
            ]),
            "--events <FILE>",
        ),
        (
            run(&[
                "train",
                "--csv",
                events,
                "--label",
                "x",
                "--cadence",
                "2d",
                "--out",
                out,
            ]),
            "--cadence <SPAN>",
        ),
    ] {
        assert!(!output.status.success(), "{}", output.describe());
        assert!(output.stderr.contains(expected), "{}", output.describe());
        assert!(!Path::new(out).exists(), "{}", output.describe());
    }
}
