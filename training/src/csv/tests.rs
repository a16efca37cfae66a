//! Reading and encoding CSVs: column typing, one-hot with the "other"
//! bucket, missing cells, time order, and every bad input named by line and
//! column.

use super::*;
use crate::progress::Silent;

fn options(label: &str) -> CsvOptions {
    CsvOptions {
        min_level_count: 1,
        ..CsvOptions::new(label)
    }
}

fn read_text(text: &str, options: &CsvOptions) -> Result<Dataset, Error> {
    read(text.as_bytes(), "rows.csv", options, &mut Silent)
}

fn column(dataset: &Dataset, feature: &str) -> Vec<f64> {
    let position = dataset
        .features
        .iter()
        .position(|name| name == feature)
        .unwrap_or_else(|| panic!("no feature {feature} in {:?}", dataset.features));
    dataset.x.column(position).to_vec()
}

fn error_text(text: &str, options: &CsvOptions) -> String {
    read_text(text, options)
        .expect_err("the input is refused")
        .to_string()
}

#[test]
fn columns_are_typed_on_the_rows_before_the_holdout() {
    let text = "id,converted,tenure,vip,plan\n\
                a,1,3.5,true,pro\n\
                b,0,,FALSE,trial\n\
                c,yes,10,,pro\n\
                d,no,-2,true,\n\
                e,0,1e3,false,starter\n";
    let csv = CsvOptions {
        id: Some("id".to_owned()),
        ..options("converted")
    };
    let dataset = read_text(text, &csv).expect("reads");
    assert_eq!(dataset.y, vec![true, false, true, false, false]);
    let kinds: Vec<(&str, ColumnKind)> = dataset
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("id", ColumnKind::Id),
            ("converted", ColumnKind::Label),
            ("tenure", ColumnKind::Numeric),
            ("vip", ColumnKind::Boolean),
            ("plan", ColumnKind::Categorical),
        ]
    );
    // Missing numeric and boolean cells read 0, as `attr` reads a missing attribute.
    assert_eq!(
        column(&dataset, "attr(tenure)"),
        vec![3.5, 0.0, 10.0, -2.0, 1000.0]
    );
    assert_eq!(column(&dataset, "attr(vip)"), vec![1.0, 0.0, 0.0, 1.0, 0.0]);
    // Levels of the 4 rows before the holdout by frequency (pro 2), then
    // name; the missing plan sets none. `starter` is only in the holdout and
    // no fitting row has a rare level, so there is no "other" bucket.
    assert_eq!(
        dataset.features,
        vec![
            "attr(tenure)",
            "attr(vip)",
            "is(plan,pro)",
            "is(plan,trial)"
        ]
    );
    assert_eq!(
        column(&dataset, "is(plan,pro)"),
        vec![1.0, 0.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(
        column(&dataset, "is(plan,trial)"),
        vec![0.0, 1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(dataset.columns[2].missing, 1);
    assert_eq!(dataset.columns[4].missing, 1);
    assert!(dataset.times.is_none() && dataset.action_ids.is_none());
}

#[test]
fn rare_levels_share_the_other_bucket_and_a_missing_cell_is_in_neither() {
    // 10 rows, holdout 20 %: levels are counted on the first 8.
    let mut text = String::from("plan,y\n");
    for plan in [
        "pro",
        "pro",
        "pro",
        "trial",
        "trial",
        "starter",
        "",
        "pro",
        "enterprise",
        "gold",
    ] {
        text.push_str(&format!("{plan},{}\n", u8::from(plan == "pro")));
    }
    let csv = CsvOptions {
        min_level_count: 2,
        ..CsvOptions::new("y")
    };
    let dataset = read_text(&text, &csv).expect("reads");
    assert_eq!(
        dataset.features,
        vec![
            "is(plan,pro)",
            "is(plan,trial)",
            "is_none_of(plan,pro|trial)"
        ]
    );
    // starter (1 row) is rare; enterprise and gold are only in the holdout.
    let other = column(&dataset, "is_none_of(plan,pro|trial)");
    assert_eq!(
        other,
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    );
    let summary = &dataset.columns[0];
    assert_eq!(summary.levels, vec!["pro", "trial"]);
    assert_eq!(summary.other_levels, Some(1));
    // At most `max_levels` levels, the most frequent.
    let one = CsvOptions {
        max_levels: 1,
        ..csv
    };
    let dataset = read_text(&text, &one).expect("reads");
    assert_eq!(
        dataset.features,
        vec!["is(plan,pro)", "is_none_of(plan,pro)"]
    );
}

#[test]
fn levels_that_cannot_be_written_in_a_spec_go_to_the_other_bucket() {
    let text = "city,y\n\"Paris, FR\",1\n\"Paris, FR\",0\nOslo,1\nOslo,0\nRome,1\n";
    let dataset = read_text(text, &options("y")).expect("reads");
    assert_eq!(
        dataset.features,
        vec!["is(city,Oslo)", "is_none_of(city,Oslo)"]
    );
    assert_eq!(column(&dataset, "is_none_of(city,Oslo)")[0], 1.0);
}

#[test]
fn rows_are_ordered_by_time_and_ties_keep_file_order() {
    let text = "t,y,x\n\
                2026-11-23T12:00:00Z,1,1\n\
                1795435100,0,2\n\
                2026-11-23T12:00:00+00:00,0,3\n\
                1700000000,1,4\n";
    let csv = CsvOptions {
        time: Some("t".to_owned()),
        ..options("y")
    };
    let dataset = read_text(text, &csv).expect("reads");
    assert_eq!(column(&dataset, "attr(x)"), vec![4.0, 2.0, 1.0, 3.0]);
    assert_eq!(
        dataset.times,
        Some(vec![
            1_700_000_000_000,
            1_795_435_100_000,
            1_795_435_200_000,
            1_795_435_200_000
        ])
    );
}

#[test]
fn an_action_column_gives_per_action_bias_features() {
    let text = "action,y,x\nbanner,1,1\nemail,0,2\nbanner,0,3\nemail,1,4\npush,1,5\n";
    let csv = CsvOptions {
        action: Some("action".to_owned()),
        ..options("y")
    };
    let dataset = read_text(text, &csv).expect("reads");
    // push is only in the holdout: no bias feature, the row has none set.
    assert_eq!(
        dataset.features,
        vec!["attr(x)", "action(banner)", "action(email)"]
    );
    assert_eq!(
        column(&dataset, "action(banner)"),
        vec![1.0, 0.0, 1.0, 0.0, 0.0]
    );
    assert_eq!(
        dataset.action_ids,
        Some(
            ["banner", "email", "banner", "email", "push"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[test]
fn bad_cells_are_named_by_line_and_column() {
    let cases = [
        (
            "y,tenure\n1,3\n0,NaN\n",
            "rows.csv: line 3, column 'tenure': 'NaN' is not a finite number",
        ),
        (
            "y,tenure\n1,inf\n",
            "line 2, column 'tenure': 'inf' is not a finite number",
        ),
        (
            "y,tenure\n1,-Infinity\n",
            "'-Infinity' is not a finite number",
        ),
        (
            "y,tenure\n1,3\n2,4\n",
            "rows.csv: line 3, column 'y': '2' is not a binary label (use 0/1, true/false or yes/no)",
        ),
        (
            "y,tenure\n,3\n",
            "line 2, column 'y': '' is not a binary label",
        ),
        (
            "y,tenure\n1,3\n0,4,5\n",
            "rows.csv: line 3: 3 fields, the header has 2",
        ),
        ("y,tenure\n1\n", "line 2: 1 fields, the header has 2"),
    ];
    for (text, expected) in cases {
        let error = error_text(text, &options("y"));
        assert!(
            error.contains(expected),
            "'{error}' should contain '{expected}'"
        );
    }
    let timed = CsvOptions {
        time: Some("t".to_owned()),
        ..options("y")
    };
    let error = error_text("t,y,x\nyesterday,1,1\n", &timed);
    assert!(
        error.contains("line 2, column 't': 'yesterday' is not a time"),
        "{error}"
    );
}

#[test]
fn a_holdout_cell_that_does_not_fit_its_column_type_is_an_error() {
    // 5 rows: the first 4 fit, the fifth is the holdout.
    let text = "y,tenure,vip\n1,1,true\n0,2,false\n1,3,true\n0,4,false\n1,lots,true\n";
    let error = error_text(text, &options("y"));
    assert!(
        error.contains("line 6, column 'tenure': 'lots' is not a number (the column is numeric in the rows before the holdout)"),
        "{error}"
    );
    let text = "y,vip\n1,true\n0,false\n1,true\n0,false\n1,maybe\n";
    let error = error_text(text, &options("y"));
    assert!(
        error.contains("line 6, column 'vip': 'maybe' is not true or false"),
        "{error}"
    );
}

#[test]
fn header_problems_are_named() {
    let error = error_text("converted,x\n1,2\n", &options("y"));
    assert_eq!(
        error,
        "rows.csv: no column 'y' (the label column); the header has: converted, x"
    );
    let timed = CsvOptions {
        time: Some("when".to_owned()),
        ..options("y")
    };
    assert!(error_text("y,x\n1,2\n", &timed).contains("no column 'when' (the time column)"));
    assert!(error_text("y,x,x\n1,2,3\n", &options("y")).contains("column 'x': appears twice"));
    for bad in ["seats*2", "a|b", " padded"] {
        let error = error_text(&format!("y,\"{bad}\"\n1,2\n"), &options("y"));
        assert!(
            error.contains(&format!("column '{bad}': cannot be a customer attribute")),
            "{error}"
        );
        let ignored = CsvOptions {
            ignore: vec![bad.to_owned()],
            ..options("y")
        };
        let error = error_text(&format!("y,\"{bad}\"\n1,2\n"), &ignored);
        assert!(error.contains("no feature column"), "{error}");
    }
    let same = CsvOptions {
        id: Some("y".to_owned()),
        ..options("y")
    };
    assert!(error_text("y,x\n1,2\n", &same).contains("both the label and the id column"));
    assert_eq!(
        error_text("", &options("y")),
        "rows.csv: the file is empty: no header line"
    );
    assert_eq!(
        error_text("y,x\n", &options("y")),
        "rows.csv: the file has a header but no data row"
    );
}
