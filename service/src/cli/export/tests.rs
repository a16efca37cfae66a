//! Writing synthetic decisions to Parquet and JSON lines and reading them
//! back, column by column; the temporary file on success and on failure.

use std::fs::File;

use arrow_array::Array;
use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_schema::{DataType, TimeUnit};
use nudge_proto::v1::{LoggedDecision, LoggedOutcome, LoggedServe};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use prost_types::Timestamp;
use serde_json::{Value as Json, json};

use super::*;

/// A scratch directory for one test, emptied first.
fn scratch(test: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("nudge-export-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("a scratch directory");
    directory
}

/// The names of the files in `directory`, sorted.
fn listing(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .expect("readable")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// 2026-11-23T12:00:00Z in milliseconds.
const NOON: i64 = 1_795_435_200_000;

/// The wire timestamp `millis` ms after the epoch.
pub(super) fn at(millis: i64) -> Option<Timestamp> {
    Some(crate::convert::to_proto_timestamp(
        nudge_models::time::Timestamp::from_millis(millis),
    ))
}

/// A logged outcome of `action_id`.
pub(super) fn outcome(
    action_id: &str,
    kind: &str,
    millis: i64,
    reward: Option<f64>,
) -> LoggedOutcome {
    LoggedOutcome {
        action_id: action_id.into(),
        outcome: kind.into(),
        at: at(millis),
        reward: reward.unwrap_or(0.0),
        has_reward: reward.is_some(),
    }
}

/// Four decisions: scored with two served actions and several outcomes, a
/// fallback with empty features and no outcome, one that served nothing, and
/// one with delivery outcomes only.
fn decisions() -> Vec<LoggedDecision> {
    let names = vec!["bias".to_owned(), "count(login,7d)".to_owned()];
    vec![
        LoggedDecision {
            context: Default::default(),
            eligible: Vec::new(),
            events_applied: None,
            engagement: Vec::new(),
            shadow: None,
            scores: Default::default(),
            tiers: Default::default(),
            decision_id: "d-1".into(),
            customer_id: "c-1".into(),
            decided_at: at(NOON),
            placement: "home_banner".into(),
            catalog_version: "cat-7".into(),
            model_version: "m-3".into(),
            variant: "default".into(),
            fallback: String::new(),
            feature_names: names.clone(),
            served: vec![
                LoggedServe {
                    action_id: "upgrade".into(),
                    channel: "in_app".into(),
                    category: "upsell".into(),
                    rank: 1,
                    score: 4.5,
                    propensity: 0.25,
                    selection_probability: 0.95,
                    features: vec![1.0, 3.0],
                },
                LoggedServe {
                    action_id: "tour".into(),
                    channel: "email".into(),
                    category: "onboarding".into(),
                    rank: 2,
                    score: 0.5,
                    propensity: 0.125,
                    selection_probability: 0.05,
                    features: vec![1.0, 0.0],
                },
            ],
            outcomes: vec![
                outcome("upgrade", "impression", NOON + 1_000, None),
                outcome("upgrade", "click", NOON + 2_500, None),
                outcome("upgrade", "click", NOON + 9_000, None),
                outcome("upgrade", "conversion", NOON + 60_000, Some(49.5)),
                outcome("tour", "dismiss", NOON + 3_000, Some(-1.0)),
            ],
        },
        LoggedDecision {
            context: Default::default(),
            eligible: Vec::new(),
            events_applied: None,
            engagement: Vec::new(),
            shadow: None,
            scores: Default::default(),
            tiers: Default::default(),
            decision_id: "d-2".into(),
            customer_id: "c-2".into(),
            decided_at: at(NOON + 1),
            placement: "home_banner".into(),
            catalog_version: "cat-7".into(),
            model_version: String::new(),
            variant: "default".into(),
            fallback: "deadline".into(),
            feature_names: Vec::new(),
            served: vec![LoggedServe {
                action_id: "tour".into(),
                channel: "in_app".into(),
                category: "onboarding".into(),
                rank: 1,
                score: 3.0,
                propensity: 0.0,
                selection_probability: 1.0,
                features: Vec::new(),
            }],
            outcomes: Vec::new(),
        },
        LoggedDecision {
            context: Default::default(),
            eligible: Vec::new(),
            events_applied: None,
            engagement: Vec::new(),
            shadow: None,
            scores: Default::default(),
            tiers: Default::default(),
            decision_id: "d-3".into(),
            customer_id: "c-1".into(),
            decided_at: at(NOON + 2),
            placement: "email_digest".into(),
            catalog_version: "cat-7".into(),
            model_version: "m-3".into(),
            variant: "default".into(),
            fallback: String::new(),
            feature_names: names.clone(),
            served: Vec::new(),
            outcomes: Vec::new(),
        },
        LoggedDecision {
            context: Default::default(),
            eligible: Vec::new(),
            events_applied: None,
            engagement: Vec::new(),
            shadow: None,
            scores: Default::default(),
            tiers: Default::default(),
            decision_id: "d-4".into(),
            customer_id: "c-3".into(),
            decided_at: at(NOON + 3),
            placement: "email_digest".into(),
            catalog_version: "cat-7".into(),
            model_version: "m-3".into(),
            variant: "default".into(),
            fallback: String::new(),
            feature_names: names,
            served: vec![LoggedServe {
                action_id: "digest".into(),
                channel: "email".into(),
                category: "education".into(),
                rank: 1,
                score: 0.75,
                propensity: 0.5,
                selection_probability: 1.0,
                features: vec![1.0, 0.5],
            }],
            outcomes: vec![
                outcome("digest", "failed", NOON + 5_000, None),
                outcome("digest", "delivered", NOON + 4_000, None),
            ],
        },
    ]
}

/// The stream the server would send: every decision, then `error` if given.
fn stream(
    decisions: Vec<LoggedDecision>,
    error: Option<Status>,
) -> impl Stream<Item = Result<LoggedDecision, Status>> {
    tokio_stream::iter(decisions.into_iter().map(Ok).chain(error.map(Err)))
}

/// One cell as JSON: text, number, bool, array (lists) or null; timestamps as
/// milliseconds.
fn cell(array: &dyn Array, index: usize) -> Json {
    if array.is_null(index) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(index).into(),
        DataType::Timestamp(TimeUnit::Millisecond, Some(zone)) if zone.as_ref() == "UTC" => array
            .as_primitive::<TimestampMillisecondType>()
            .value(index)
            .into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(index).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(index).into(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(index).into(),
        DataType::Boolean => array.as_boolean().value(index).into(),
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(index);
            (0..items.len()).map(|item| cell(&items, item)).collect()
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// Every row of a Parquet file as a JSON object keyed by column name, and the
/// number of row groups.
fn read_parquet(path: &Path) -> (Vec<Json>, usize) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("the file"))
        .expect("a Parquet file");
    assert_eq!(
        builder.schema(),
        &*to_parquet::SCHEMA,
        "the schema round-trips"
    );
    let metadata = builder.metadata().clone();
    for group in metadata.row_groups() {
        for column in group.columns() {
            assert_eq!(column.compression(), Compression::SNAPPY);
        }
    }
    let mut rows = Vec::new();
    for batch in builder.build().expect("a reader") {
        let batch = batch.expect("a readable batch");
        for index in 0..batch.num_rows() {
            let row: serde_json::Map<String, Json> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(field, column)| (field.name().clone(), cell(column.as_ref(), index)))
                .collect();
            rows.push(Json::Object(row));
        }
    }
    (rows, metadata.num_row_groups())
}

/// The expected row: the decision's columns, then `serve`'s (all null when
/// `None`).
fn row(decision: Json, serve: Option<Json>) -> Json {
    // These decisions predate the event log: no context, eligible actions,
    // event count or engagement.
    let mut row = with(
        json!({
            "context": "{}", "eligible": [], "events_applied": null, "engagement": "{}",
            "shadow_model_version": null, "shadow_propensity": null, "shadow_choice": null,
            "shadow_choice_propensity": null, "scores": "{}", "tiers": "{}",
        }),
        decision,
    );
    let action = serve.unwrap_or_else(|| {
        json!({
            "rank": null, "action_id": null, "channel": null, "category": null,
            "score": null, "propensity": null, "selection_probability": null,
            "features": null, "impression_at": null, "click_at": null,
            "conversion_at": null, "dismiss_at": null, "delivered_at": null,
            "failed_at": null, "reward": null, "converted": null,
        })
    });
    for (key, value) in action.as_object().expect("an object") {
        row[key] = value.clone();
    }
    row
}

fn no_outcomes() -> Json {
    json!({
        "impression_at": null, "click_at": null, "conversion_at": null,
        "dismiss_at": null, "delivered_at": null, "failed_at": null,
        "reward": 0.0, "converted": false,
    })
}

fn with(base: Json, extra: Json) -> Json {
    let mut merged = base;
    for (key, value) in extra.as_object().expect("an object") {
        merged[key] = value.clone();
    }
    merged
}

#[tokio::test]
async fn parquet_has_one_row_per_served_action_with_outcomes_joined() {
    let directory = scratch("parquet");
    let path = directory.join("decisions.parquet");
    let writer = ExportWriter::with_rows_per_group(&path, ExportFormat::Parquet, 2)
        .expect("a writable directory");
    let summary = write_stream(stream(decisions(), None), writer)
        .await
        .expect("the export succeeds");
    assert_eq!(
        summary,
        ExportSummary {
            path: path.clone(),
            format: ExportFormat::Parquet,
            decisions: 4,
            events: None,
            rows: 5,
        }
    );
    assert_eq!(
        listing(&directory),
        ["decisions.parquet"],
        "no temp file left"
    );

    let (rows, row_groups) = read_parquet(&path);
    assert_eq!(row_groups, 3, "5 rows in groups of 2");
    let names = json!(["bias", "count(login,7d)"]);
    let d1 = json!({
        "decision_id": "d-1", "customer_id": "c-1", "decided_at": NOON,
        "placement": "home_banner", "catalog_version": "cat-7", "model_version": "m-3",
        "variant": "default", "fallback": null, "feature_names": names,
    });
    let d2 = json!({
        "decision_id": "d-2", "customer_id": "c-2", "decided_at": NOON + 1,
        "placement": "home_banner", "catalog_version": "cat-7", "model_version": null,
        "variant": "default", "fallback": "deadline", "feature_names": [],
    });
    let d3 = json!({
        "decision_id": "d-3", "customer_id": "c-1", "decided_at": NOON + 2,
        "placement": "email_digest", "catalog_version": "cat-7", "model_version": "m-3",
        "variant": "default", "fallback": null, "feature_names": names,
    });
    let d4 = json!({
        "decision_id": "d-4", "customer_id": "c-3", "decided_at": NOON + 3,
        "placement": "email_digest", "catalog_version": "cat-7", "model_version": "m-3",
        "variant": "default", "fallback": null, "feature_names": names,
    });
    let expected = vec![
        row(
            d1.clone(),
            Some(with(
                no_outcomes(),
                json!({
                    "rank": 1, "action_id": "upgrade", "channel": "in_app",
                    "category": "upsell", "score": 4.5, "propensity": 0.25,
                    "selection_probability": 0.95, "features": [1.0, 3.0],
                    "impression_at": NOON + 1_000, "click_at": NOON + 2_500,
                    "conversion_at": NOON + 60_000, "reward": 49.5, "converted": true,
                }),
            )),
        ),
        row(
            d1,
            Some(with(
                no_outcomes(),
                json!({
                    "rank": 2, "action_id": "tour", "channel": "email",
                    "category": "onboarding", "score": 0.5, "propensity": 0.125,
                    "selection_probability": 0.05, "features": [1.0, 0.0],
                    "dismiss_at": NOON + 3_000, "reward": -1.0,
                }),
            )),
        ),
        row(
            d2,
            Some(with(
                no_outcomes(),
                json!({
                    "rank": 1, "action_id": "tour", "channel": "in_app",
                    "category": "onboarding", "score": 3.0, "propensity": 0.0,
                    "selection_probability": 1.0, "features": [],
                }),
            )),
        ),
        row(d3, None),
        row(
            d4,
            Some(with(
                no_outcomes(),
                json!({
                    "rank": 1, "action_id": "digest", "channel": "email",
                    "category": "education", "score": 0.75, "propensity": 0.5,
                    "selection_probability": 1.0, "features": [1.0, 0.5],
                    "delivered_at": NOON + 4_000, "failed_at": NOON + 5_000,
                }),
            )),
        ),
    ];
    assert_eq!(rows.len(), expected.len());
    for (index, (actual, expected)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(actual, expected, "row {index}");
    }
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[tokio::test]
async fn jsonl_has_one_object_per_decision() {
    let directory = scratch("jsonl");
    let path = directory.join("decisions.jsonl");
    let format = ExportFormat::from_path(&path);
    assert_eq!(format, ExportFormat::Jsonl);
    let writer = ExportWriter::create(&path, format).expect("a writable directory");
    let summary = write_stream(stream(decisions(), None), writer)
        .await
        .expect("the export succeeds");
    assert_eq!((summary.decisions, summary.rows), (4, 4));
    let text = std::fs::read_to_string(&path).expect("the file");
    let lines: Vec<Json> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        json!({
            "decision_id": "d-1", "customer_id": "c-1",
            "decided_at": "2026-11-23T12:00:00Z", "placement": "home_banner",
            "catalog_version": "cat-7", "model_version": "m-3", "variant": "default",
            "fallback": null, "feature_names": ["bias", "count(login,7d)"],
            "context": {}, "eligible": [], "events_applied": null, "engagement": {},
            "shadow": null, "scores": {}, "tiers": {},
            "served": [
                {"rank": 1, "action_id": "upgrade", "channel": "in_app", "category": "upsell",
                 "score": 4.5, "propensity": 0.25, "selection_probability": 0.95,
                 "features": [1.0, 3.0]},
                {"rank": 2, "action_id": "tour", "channel": "email", "category": "onboarding",
                 "score": 0.5, "propensity": 0.125, "selection_probability": 0.05,
                 "features": [1.0, 0.0]},
            ],
            "outcomes": [
                {"action_id": "upgrade", "outcome": "impression", "at": "2026-11-23T12:00:01Z", "reward": null},
                {"action_id": "upgrade", "outcome": "click", "at": "2026-11-23T12:00:02.500Z", "reward": null},
                {"action_id": "upgrade", "outcome": "click", "at": "2026-11-23T12:00:09Z", "reward": null},
                {"action_id": "upgrade", "outcome": "conversion", "at": "2026-11-23T12:01:00Z", "reward": 49.5},
                {"action_id": "tour", "outcome": "dismiss", "at": "2026-11-23T12:00:03Z", "reward": -1.0},
            ],
        })
    );
    assert_eq!(lines[1]["model_version"], Json::Null);
    assert_eq!(lines[1]["fallback"], "deadline");
    assert_eq!(lines[1]["served"][0]["features"], json!([]));
    assert_eq!(lines[1]["outcomes"], json!([]));
    assert_eq!(lines[2]["decided_at"], "2026-11-23T12:00:00.002Z");
    assert_eq!(lines[2]["served"], json!([]));
    assert_eq!(lines[3]["outcomes"][0]["outcome"], "failed");
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[tokio::test]
async fn a_broken_stream_leaves_no_file_and_keeps_the_old_one() {
    for format in [ExportFormat::Parquet, ExportFormat::Jsonl] {
        let directory = scratch(&format!("broken-{}", format.name()));
        let fresh = directory.join("fresh.out");
        let writer = ExportWriter::with_rows_per_group(&fresh, format, 1).expect("writable");
        let err = write_stream(
            stream(
                decisions(),
                Some(Status::unavailable("the server went away")),
            ),
            writer,
        )
        .await
        .expect_err("the stream broke");
        let text = format!("{err:#}");
        assert!(
            text.contains("export stopped after 4 decisions")
                && text.contains("fresh.out was not written")
                && text.contains("server said UNAVAILABLE: the server went away"),
            "{text}"
        );
        assert!(listing(&directory).is_empty(), "{:?}", listing(&directory));

        let existing = directory.join("existing.out");
        std::fs::write(&existing, "yesterday's export").expect("writable");
        let writer = ExportWriter::with_rows_per_group(&existing, format, 1).expect("writable");
        write_stream(stream(Vec::new(), Some(Status::internal("boom"))), writer)
            .await
            .expect_err("the stream broke");
        assert_eq!(
            std::fs::read_to_string(&existing).expect("still there"),
            "yesterday's export"
        );
        assert_eq!(listing(&directory), ["existing.out"]);
        std::fs::remove_dir_all(&directory).expect("cleanup");
    }
}

#[tokio::test]
async fn a_decision_without_time_fails_the_parquet_export() {
    let directory = scratch("no-time");
    let path = directory.join("decisions.parquet");
    let writer = ExportWriter::create(&path, ExportFormat::Parquet).expect("writable");
    let mut broken = decisions();
    broken[1].decided_at = None;
    let err = write_stream(stream(broken, None), writer)
        .await
        .expect_err("no decided_at");
    let text = format!("{err:#}");
    assert!(
        text.contains("after 1 decisions") && text.contains("decision 'd-2' has no decided_at"),
        "{text}"
    );
    assert!(listing(&directory).is_empty());
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[tokio::test]
async fn an_empty_export_is_a_valid_file() {
    let directory = scratch("empty");
    let path = directory.join("decisions.parquet");
    let writer = ExportWriter::create(&path, ExportFormat::Parquet).expect("writable");
    let summary = write_stream(stream(Vec::new(), None), writer)
        .await
        .expect("nothing to export is fine");
    assert_eq!((summary.decisions, summary.rows), (0, 0));
    let (rows, row_groups) = read_parquet(&path);
    assert!(rows.is_empty());
    assert_eq!(row_groups, 0);
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[test]
fn bad_destinations_are_refused_before_any_work() {
    let directory = scratch("destinations");
    let err = ExportWriter::create(&directory, ExportFormat::Parquet).expect_err("a directory");
    assert!(err.to_string().contains("is a directory"), "{err}");
    let missing = directory.join("no/such/dir/decisions.parquet");
    let err = ExportWriter::create(&missing, ExportFormat::Parquet).expect_err("no directory");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[test]
fn the_format_follows_the_extension() {
    for (name, format) in [
        ("a.parquet", ExportFormat::Parquet),
        ("a.jsonl", ExportFormat::Jsonl),
        ("a.NDJSON", ExportFormat::Jsonl),
        ("a.json", ExportFormat::Parquet),
        ("decisions", ExportFormat::Parquet),
    ] {
        assert_eq!(ExportFormat::from_path(Path::new(name)), format, "{name}");
    }
}

/// A decision the way the service logs it now: context, eligible actions,
/// event count and engagement set.
fn current_decision() -> LoggedDecision {
    let mut decision = decisions().remove(0);
    decision.context = [(
        "device".to_owned(),
        nudge_proto::v1::Value {
            kind: Some(nudge_proto::v1::value::Kind::StringValue("mobile".into())),
        },
    )]
    .into_iter()
    .collect();
    decision.eligible = vec!["upgrade".into(), "tour".into(), "digest".into()];
    decision.events_applied = Some(12);
    decision.engagement = vec![nudge_proto::v1::LoggedEngagement {
        channel: "in_app".into(),
        sends: 4,
        impressions: 3,
        clicks: 1,
        ..Default::default()
    }];
    decision.shadow = Some(nudge_proto::v1::LoggedShadow {
        model_version: "m-4".into(),
        propensities: vec![0.5, 0.25],
        choice: "tour".into(),
        choice_propensity: 0.75,
    });
    decision.scores = [
        ("adoption".to_owned(), 42.5),
        ("churn_risk".to_owned(), 0.25),
    ]
    .into_iter()
    .collect();
    decision.tiers = [("churn".to_owned(), "medium".to_owned())]
        .into_iter()
        .collect();
    decision
}

#[tokio::test]
async fn a_decision_export_reads_back_as_it_was_logged() {
    let directory = scratch("read-back");
    let path = directory.join("decisions.parquet");
    let writer = ExportWriter::create(&path, ExportFormat::Parquet).expect("writable");
    let wire = vec![current_decision(), decisions().remove(2)];
    let expected: Vec<_> = wire
        .iter()
        .map(|decision| {
            let logged =
                crate::convert::logged_decision_from_proto(decision.clone()).expect("valid");
            let outcomes = logged
                .training_rows()
                .map(|row| row.outcomes)
                .collect::<Vec<_>>();
            nudge_models::log::JoinedDecision {
                record: logged.record,
                feature_names: logged.feature_names,
                outcomes,
            }
        })
        .collect();
    write_stream(stream(wire, None), writer)
        .await
        .expect("the export succeeds");
    let read = read::decisions(&path).expect("it reads back");
    assert_eq!(read, expected);
    assert_eq!(read[0].record.events_applied, Some(12));
    assert_eq!(read[0].record.engagement["in_app"], [4, 3, 1, 0, 0, 0]);
    assert_eq!(read[0].record.scores.values["churn_risk"], 0.25);
    assert_eq!(read[0].record.scores.tiers["churn"], "medium");
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[tokio::test]
async fn a_version_2_export_from_before_scores_reads_as_having_none() {
    let directory = scratch("before-scores");
    let path = directory.join("decisions.parquet");
    let writer = ExportWriter::create(&path, ExportFormat::Parquet).expect("writable");
    write_stream(stream(vec![current_decision()], None), writer)
        .await
        .expect("the export succeeds");
    // The same file without the two columns added within version 2.
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
        .expect("parquet");
    let metadata = builder.schema().metadata().clone();
    let reader = builder.build().expect("a reader");
    let batches: Vec<arrow_array::RecordBatch> =
        reader.map(|batch| batch.expect("a batch")).collect();
    let schema = batches[0].schema();
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|&index| !matches!(schema.field(index).name().as_str(), "scores" | "tiers"))
        .collect();
    let older = directory.join("older.parquet");
    let projected = std::sync::Arc::new(
        schema
            .project(&kept)
            .expect("a projection")
            .with_metadata(metadata),
    );
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        File::create(&older).expect("a file"),
        projected.clone(),
        None,
    )
    .expect("a writer");
    for batch in &batches {
        let columns = batch.project(&kept).expect("projected").columns().to_vec();
        let batch = arrow_array::RecordBatch::try_new(projected.clone(), columns).expect("a batch");
        writer.write(&batch).expect("written");
    }
    writer.close().expect("closed");
    let read = read::decisions(&older).expect("it reads");
    assert_eq!(read.len(), 1);
    assert!(read[0].record.scores.is_empty());
    assert_eq!(read[0].record.events_applied, Some(12));
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[test]
fn an_export_of_another_schema_or_version_is_refused_by_name() {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;
    let directory = scratch("versions");
    let write = |name: &str, metadata: Option<&str>| {
        let path = directory.join(name);
        let mut schema = Schema::new(vec![Field::new("decision_id", DataType::Utf8, false)]);
        if let Some(version) = metadata {
            schema = schema.with_metadata(
                [("nudge.schema".to_owned(), version.to_owned())]
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        let schema = Arc::new(schema);
        let column: ArrayRef = Arc::new(StringArray::from(vec!["d-1"]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("a batch");
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            File::create(&path).expect("a file"),
            schema,
            None,
        )
        .expect("a writer");
        writer.write(&batch).expect("written");
        writer.close().expect("closed");
        path
    };
    let error = |path: &Path| read::decisions(path).expect_err("refused").to_string();
    let old = write("old.parquet", None);
    let message = error(&old);
    assert!(
        message.contains("old.parquet has no nudge.schema") && message.contains("export again"),
        "{message}"
    );
    let newer = write("newer.parquet", Some("nudge.decisions/3"));
    let message = error(&newer);
    assert!(
        message.contains("schema nudge.decisions/3; this nudge reads nudge.decisions/2"),
        "{message}"
    );
    let events = write("events.parquet", Some("nudge.events/1"));
    let message = error(&events);
    assert!(
        message.contains("is a nudge.events/1 export, not a decision log export"),
        "{message}"
    );
    let text = directory.join("notes.parquet");
    std::fs::write(&text, "not parquet").expect("written");
    assert!(error(&text).contains("is not a Parquet file"));
    let missing = directory.join("missing.parquet");
    assert!(error(&missing).contains("cannot open decision log export"));
    std::fs::remove_dir_all(&directory).expect("cleanup");
}

#[tokio::test]
async fn an_event_export_reads_back_as_it_was_logged() {
    use nudge_models::log::EventRecord;
    use nudge_models::value::AttrValue;
    let directory = scratch("events");
    let events: Vec<EventRecord> = (1..=3)
        .map(|ordinal| EventRecord {
            customer_id: "c-1".into(),
            ordinal,
            received_at: nudge_models::time::Timestamp::from_millis(NOON + ordinal as i64),
            event: nudge_models::profile::Event {
                event_id: format!("e-{ordinal}"),
                name: "identify".into(),
                timestamp: nudge_models::time::Timestamp::from_millis(NOON - 1_000),
                properties: [
                    ("plan".to_owned(), AttrValue::Str("pro".into())),
                    ("seats".to_owned(), AttrValue::Num(12.5)),
                    ("vip".to_owned(), AttrValue::Bool(true)),
                ]
                .into_iter()
                .collect(),
            },
        })
        .collect();
    for (name, format) in [
        ("events.parquet", ExportFormat::Parquet),
        ("events.jsonl", ExportFormat::Jsonl),
    ] {
        let path = directory.join(name);
        let writer = ExportWriter::create_events(&path, format).expect("writable");
        let summary = write_events(
            tokio_stream::iter(events.clone().into_iter().map(Ok)),
            writer,
        )
        .await
        .expect("the export succeeds");
        assert_eq!(summary.events, Some(3));
        if format == ExportFormat::Parquet {
            assert_eq!(read::events(&path).expect("it reads back"), events);
            let error = read::decisions(&path).expect_err("not a decision export");
            assert!(
                error.to_string().contains("is a nudge.events/1 export"),
                "{error}"
            );
        } else {
            let text = std::fs::read_to_string(&path).expect("the file");
            let first: Json =
                serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
            assert_eq!(
                first,
                json!({
                    "customer_id": "c-1", "ordinal": 1,
                    "received_at": "2026-11-23T12:00:00.001Z", "event_id": "e-1",
                    "name": "identify", "timestamp": "2026-11-23T11:59:59Z",
                    "properties": {"plan": "pro", "seats": 12.5, "vip": true},
                })
            );
        }
    }
    std::fs::remove_dir_all(&directory).expect("cleanup");
}
