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
