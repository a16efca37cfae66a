//! `nudge export`: decisions made and outcomes reported through the real
//! server come back from `Admin.ExportDecisions` through the CLI's own export
//! function as Parquet rows, one per served action, outcomes joined.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type};
use arrow_array::{Array, RecordBatch};
use nudge_models::time::Span;
use nudge_proto::v1::{DecideResponse, Outcome, ReportOutcomeRequest};
use nudge_service::cli::{ClientArgs, ExportArgs, TimeBound, export_decisions};
use nudge_service::clock::Clock as _;
use nudge_tests::{TempDir, TestServer, at, decide_request, probe_request};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// One exported Parquet row, the columns this test checks.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    decision_id: String,
    customer_id: String,
    decided_at: i64,
    placement: String,
    model_version: Option<String>,
    fallback: Option<String>,
    rank: Option<u32>,
    action_id: Option<String>,
    channel: Option<String>,
    score: Option<f64>,
    propensity: Option<f64>,
    selection_probability: Option<f64>,
    features: Option<Vec<f64>>,
    feature_names: Vec<String>,
    impression_at: Option<i64>,
    click_at: Option<i64>,
    conversion_at: Option<i64>,
    reward: Option<f64>,
    converted: Option<bool>,
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> &'b dyn Array {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("the export has a {name} column"))
        .as_ref()
}

fn text(batch: &RecordBatch, name: &str, index: usize) -> Option<String> {
    let array = column(batch, name).as_string::<i32>();
    array.is_valid(index).then(|| array.value(index).to_owned())
}

fn millis(batch: &RecordBatch, name: &str, index: usize) -> Option<i64> {
    let array = column(batch, name).as_primitive::<TimestampMillisecondType>();
    array.is_valid(index).then(|| array.value(index))
}

fn float(batch: &RecordBatch, name: &str, index: usize) -> Option<f64> {
    let array = column(batch, name).as_primitive::<Float64Type>();
    array.is_valid(index).then(|| array.value(index))
}

/// Every row of the Parquet file at `path`.
fn read_rows(path: &Path) -> Vec<Row> {
    let file = File::open(path).expect("the export file exists");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("a reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("a readable batch");
        for index in 0..batch.num_rows() {
            let rank = column(&batch, "rank").as_primitive::<UInt32Type>();
            let features = column(&batch, "features").as_list::<i32>();
            let names = column(&batch, "feature_names").as_list::<i32>();
            let converted = column(&batch, "converted").as_boolean();
            rows.push(Row {
                decision_id: text(&batch, "decision_id", index).expect("never null"),
                customer_id: text(&batch, "customer_id", index).expect("never null"),
                decided_at: millis(&batch, "decided_at", index).expect("never null"),
                placement: text(&batch, "placement", index).expect("never null"),
                model_version: text(&batch, "model_version", index),
                fallback: text(&batch, "fallback", index),
                rank: rank.is_valid(index).then(|| rank.value(index)),
                action_id: text(&batch, "action_id", index),
                channel: text(&batch, "channel", index),
                score: float(&batch, "score", index),
                propensity: float(&batch, "propensity", index),
                selection_probability: float(&batch, "selection_probability", index),
                features: features.is_valid(index).then(|| {
                    features
                        .value(index)
                        .as_primitive::<Float64Type>()
                        .values()
                        .to_vec()
                }),
                feature_names: names
                    .value(index)
                    .as_string::<i32>()
                    .iter()
                    .map(|name| name.expect("names are never null").to_owned())
                    .collect(),
                impression_at: millis(&batch, "impression_at", index),
                click_at: millis(&batch, "click_at", index),
                conversion_at: millis(&batch, "conversion_at", index),
                reward: float(&batch, "reward", index),
                converted: converted.is_valid(index).then(|| converted.value(index)),
            });
        }
    }
    rows
}

fn outcome(
    customer: &str,
    decision: &DecideResponse,
    kind: Outcome,
    reward: Option<f64>,
) -> ReportOutcomeRequest {
    ReportOutcomeRequest {
        customer_id: customer.into(),
        decision_id: decision.decision_id.clone(),
        action_id: decision.served[0].action_id.clone(),
        outcome: kind.into(),
        reward,
        timestamp: None,
        dispatch_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_logged_decisions_with_outcomes_as_parquet() {
    let server = TestServer::start().await;
    let second = Span(1_000);
    // Three decisions a second apart (so "oldest first" is one order), and a
    // dry run, which is not logged.
    let made = [
        ("export-a", "home_banner"),
        ("export-b", "onboarding_sidebar"),
        ("export-a", "onboarding_sidebar"),
    ];
    let mut decisions: Vec<(&str, i64, DecideResponse)> = Vec::new();
    for (customer, placement) in made {
        let decided_at = server.clock.now().millis();
        let response = server.decide(decide_request(customer, placement)).await;
        assert!(!response.served.is_empty(), "{customer} in {placement}");
        decisions.push((customer, decided_at, response));
        server.clock.advance(second);
    }
    server
        .decide(probe_request("export-c", "home_banner", &[]))
        .await;

    // The first decision's top action: shown, clicked, converted with a reward.
    let (customer, _, first) = &decisions[0];
    let mut client = server.decisions().await;
    let mut outcome_times = Vec::new();
    for (kind, reward) in [
        (Outcome::Impression, None),
        (Outcome::Click, None),
        (Outcome::Conversion, Some(42.5)),
    ] {
        server.clock.advance(second);
        outcome_times.push(server.clock.now().millis());
        let response = client
            .report_outcome(outcome(customer, first, kind, reward))
            .await
            .expect("the outcome is accepted")
            .into_inner();
        assert!(response.applied);
    }
    server.clock.advance(second);

    let scratch = TempDir::new("export");
    let directory = scratch.path().to_owned();
    let options = ClientArgs {
        server: format!("http://{}", server.addr),
        ..ClientArgs::default()
    };
    let args = ExportArgs {
        data_dir: None,
        out: directory.join("decisions.parquet"),
        since: None,
        until: None,
        format: None,
        events: false,
    };
    let summary = export_decisions(&args, &options)
        .await
        .expect("the export succeeds");
    let served: usize = decisions.iter().map(|(_, _, d)| d.served.len()).sum();
    assert_eq!(summary.decisions, 3, "the dry run is not logged");
    assert_eq!(summary.rows, served as u64);
    assert_eq!(summary.path, args.out);
    let leftovers: Vec<_> = std::fs::read_dir(&directory)
        .expect("readable")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["decisions.parquet"],
        "no temporary file is left"
    );

    let rows = read_rows(&args.out);
    assert_eq!(rows.len(), served);
    let serving = server.engine.shared().models.serving();
    let model = serving.champion().expect("the demo has a model");
    let feature_count = model.features().len();
    let expected_ids: Vec<&str> = decisions
        .iter()
        .flat_map(|(_, _, d)| d.served.iter().map(|_| d.decision_id.as_str()))
        .collect();
    let exported_ids: Vec<&str> = rows.iter().map(|row| row.decision_id.as_str()).collect();
    assert_eq!(exported_ids, expected_ids, "oldest first, best first");

    let mut rows_by_decision: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &rows {
        rows_by_decision
            .entry(row.decision_id.as_str())
            .or_default()
            .push(row);
    }
    for (index, (customer, decided_at, response)) in decisions.iter().enumerate() {
        let rows = &rows_by_decision[response.decision_id.as_str()];
        assert_eq!(rows.len(), response.served.len());
        for (row, action) in rows.iter().zip(&response.served) {
            assert_eq!(row.customer_id, *customer);
            assert_eq!(row.decided_at, *decided_at);
            assert_eq!(row.placement, made[index].1);
            assert_eq!(
                row.model_version.as_deref(),
                Some(response.model_version.as_str())
            );
            assert_eq!(row.fallback, None, "the model scored");
            assert_eq!(row.rank, Some(action.rank));
            assert_eq!(row.action_id.as_deref(), Some(action.action_id.as_str()));
            assert_eq!(row.channel.as_deref(), Some(action.channel.as_str()));
            assert_eq!(row.score, Some(action.score));
            assert_eq!(row.propensity, Some(action.propensity));
            assert_eq!(
                row.selection_probability,
                Some(action.selection_probability)
            );
            let features = row.features.as_ref().expect("a served action has features");
            assert_eq!(features.len(), feature_count, "one value per model feature");
            assert_eq!(row.feature_names.len(), feature_count);
            let joined = index == 0 && action.rank == 1;
            if joined {
                assert_eq!(row.impression_at, Some(outcome_times[0]));
                assert_eq!(row.click_at, Some(outcome_times[1]));
                assert_eq!(row.conversion_at, Some(outcome_times[2]));
                assert_eq!(row.reward, Some(42.5));
                assert_eq!(row.converted, Some(true));
            } else {
                assert_eq!(
                    (row.impression_at, row.click_at, row.conversion_at),
                    (None, None, None),
                    "no outcome for {:?}",
                    row.action_id
                );
                assert_eq!(row.reward, Some(0.0));
                assert_eq!(row.converted, Some(false));
            }
        }
    }

    // --since keeps the decisions made at or after it.
    let later = ExportArgs {
        data_dir: None,
        out: directory.join("later.jsonl"),
        since: Some(TimeBound::At(at(decisions[1].1))),
        until: Some(TimeBound::At(at(decisions[2].1))),
        format: None,
        events: false,
    };
    let summary = export_decisions(&later, &options)
        .await
        .expect("the export succeeds");
    assert_eq!(
        summary.decisions, 1,
        "[since, until) holds the second decision"
    );
    let text = std::fs::read_to_string(&later.out).expect("the JSON lines file");
    assert_eq!(text.lines().count(), 1);
    assert!(
        text.contains(&format!(
            "\"decision_id\":\"{}\"",
            decisions[1].2.decision_id
        )),
        "{text}"
    );

    std::fs::remove_dir_all(&directory).expect("cleanup");
    server.stop().await;
}
