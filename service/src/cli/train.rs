//! `nudge train`: fit a logistic model on a CSV of customer rows (`--csv`)
//! or on the decision log (`--log`, a `nudge export` Parquet file, with
//! `--events` for point-in-time replay) and write the `nudge.logistic/v1`
//! artifact and its evaluation report, with progress on stderr. The work is
//! `nudge_training`'s; this is its command line.

use anyhow::Context as _;
use chrono::Utc;
use nudge_models::catalog::Catalog;
use nudge_models::features::FeatureSet;
use nudge_training::artifact::{self, MODEL_FILE, REPORT_HTML, REPORT_JSON};
use nudge_training::csv::CsvOptions;
use nudge_training::log::Features;
use nudge_training::{Event, TrainOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `nudge train`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Every column that is not the label, --id, --time, --action or --ignore is a customer \
attribute (the header names it, as `identify` events name attributes) and becomes features \
the service computes the same way when it decides: a numeric column `x` is attr(x) (an empty \
cell reads 0, as a missing attribute does), a true/false column is attr(x) (send it as a \
boolean), any other column is categorical: is(x,LEVEL) for its most frequent levels and \
is_none_of(x,LEVEL|...) for the rest (an empty cell sets none). Types and levels are learned \
from the rows before the holdout.

The rows are split in time order (--time, else the file's order): the newest --holdout \
fraction is evaluated once; the --validation fraction just before it chooses the L2 strength \
from a grid fitted on at most --grid-rows of the older training rows (evenly spaced when there \
are more), from the strongest L2 down, each fit starting from the previous one's solution; the \
model is then refit on all rows before the holdout, starting from the chosen grid point's \
solution. Probabilities are calibrated as the data is (no reweighting) unless --balance.

DIR receives model.json (load it with `nudge serve --model DIR/model.json`, or reload it), \
report.json (holdout auc, log_loss, calibration_error, ...) and report.html.")]
#[command(group(clap::ArgGroup::new("source").required(true).args(["csv", "log"])))]
pub struct TrainArgs {
    /// The CSV file: a header line, then one row per customer (or per
    /// customer and action). Bad rows are errors naming line and column,
    /// never skipped.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// A decision log export (`nudge export --out FILE.parquet`): one row
    /// per served action, labelled by whether it converted. Without
    /// --events the features are the values the serving model logged (the
    /// newest model's specs).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// An event log export (`nudge export --events`) to replay: each
    /// customer's profile is rebuilt as it was at each decision and the
    /// features (--feature, else the newest logged model's) computed from
    /// it, checked against the logged values where the specs match.
    #[arg(long, value_name = "FILE", requires = "log")]
    pub events: Option<PathBuf>,
    /// A feature spec to train on, e.g. count(login,7d) or
    /// category(upsell)*is(plan,pro) (repeatable; needs --events).
    #[arg(long = "feature", value_name = "SPEC", requires = "events")]
    pub features: Vec<String>,
    /// The catalog whose actions replayed action terms read [default: the
    /// embedded demo catalog].
    #[arg(long, value_name = "FILE", requires = "events")]
    pub catalog: Option<PathBuf>,
    /// The outcome column of a CSV: 0/1, true/false or yes/no.
    #[arg(long, value_name = "COL", required_unless_present = "log")]
    pub label: Option<String>,
    /// A row id column (not a feature).
    #[arg(long, value_name = "COL")]
    pub id: Option<String>,
    /// The time of each row, RFC 3339 (2026-11-23T12:00:00Z) or whole seconds
    /// since 1970; orders the rows for the split (equal times keep file
    /// order). Without it, the file's order is the time order.
    #[arg(long, value_name = "COL")]
    pub time: Option<String>,
    /// The action each row is about: adds a bias feature action(ID) per
    /// action and per-action metrics. Without it every action gets the same
    /// customer-level score.
    #[arg(long, value_name = "COL")]
    pub action: Option<String>,
    /// A column to leave out (repeatable).
    #[arg(long, value_name = "COL")]
    pub ignore: Vec<String>,
    /// Where to write model.json, report.json and report.html (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The newest fraction of rows held out for the final evaluation.
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    pub holdout: f64,
    /// The fraction of the rows before the holdout (the newest of them) that
    /// chooses the L2 strength.
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    pub validation: f64,
    /// Most training rows each L2 grid fit uses: with more, this many evenly
    /// spaced ones (in time order). The validation slice and the final fit
    /// always use all their rows.
    #[arg(long, value_name = "N", default_value_t = nudge_training::train::DEFAULT_GRID_ROWS)]
    pub grid_rows: usize,
    /// Start every fit from zero instead of from the previous solution (for
    /// comparison: the result is the same within the solver's tolerance).
    #[arg(long)]
    pub cold_start: bool,
    /// Threads fitting the L2 grid, each its own chain of alphas [default:
    /// the machine's cores, at most 2].
    #[arg(long, value_name = "N")]
    pub grid_threads: Option<usize>,
    /// Oversample positive rows to about as many as negatives, then correct
    /// the intercept (−ln of the ratio) so probabilities stay calibrated.
    #[arg(long)]
    pub balance: bool,
    /// The model version shown in every decision [default:
    /// trained-YYYYMMDDTHHMM, the time of training in UTC].
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// Most levels of a categorical column with their own feature; the rest
    /// share the "other" bucket.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_levels: usize,
    /// Fewest rows (before the holdout) a level needs for its own feature.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub min_level_count: usize,
    /// Replace model.json and the reports if DIR already has them.
    #[arg(long)]
    pub force: bool,
}

/// What a finished `nudge train` wrote.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The artifact's path.
    pub model: PathBuf,
    /// The HTML report's path.
    pub report: PathBuf,
    /// The artifact's version.
    pub version: String,
    /// Its number of features.
    pub features: usize,
    /// Holdout AUC.
    pub auc: f64,
    /// Holdout log loss.
    pub log_loss: f64,
    /// Holdout expected calibration error.
    pub calibration_error: f64,
}

impl std::fmt::Display for TrainSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "wrote {} (version {}, {} features): holdout auc {:.4}, log loss {:.4}, calibration error {:.4}; report in {}",
            self.model.display(),
            self.version,
            self.features,
            self.auc,
            self.log_loss,
            self.calibration_error,
            self.report.display()
        )
    }
}

/// The training rows of a decision log export, with features as logged or
/// replayed from `--events`.
fn read_log(log: &Path, args: &TrainArgs) -> anyhow::Result<nudge_training::Dataset> {
    let decisions = super::export::read::decisions(log)?;
    let source = log.file_name().map_or_else(
        || log.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let (dataset, summary) = match &args.events {
        None => nudge_training::log::dataset(&source, &decisions, Features::Logged)?,
        Some(events) => {
            let events = super::export::read::events(events)?;
            let catalog = match &args.catalog {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Catalog::from_toml(&text)
                        .map_err(|problems| anyhow::anyhow!("{}: {problems}", path.display()))?
                }
                None => Catalog::from_toml(nudge_models::demo::CATALOG_TOML)
                    .map_err(|problems| anyhow::anyhow!("the demo catalog: {problems}"))?,
            };
            let specs = if args.features.is_empty() {
                decisions
                    .iter()
                    .rev()
                    .find(|decision| !decision.feature_names.is_empty())
                    .map(|decision| decision.feature_names.clone())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{source}: no decision was scored by a model; name the features to compute with --feature"
                        )
                    })?
            } else {
                args.features.clone()
            };
            let features = FeatureSet::parse(&specs)?;
            nudge_training::log::dataset(
                &source,
                &decisions,
                Features::Replayed {
                    features: &features,
                    events: &events,
                    catalog: &catalog,
                },
            )?
        }
    };
    eprintln!(
        "nudge train: {} decisions → {} rows ({} fallback, {} other features, {} not replayable, {} unknown actions left out); replay check: {} of {} rows differ{}",
        summary.decisions,
        summary.rows,
        summary.skipped_fallback,
        summary.skipped_other_features,
        summary.skipped_unreplayable,
        summary.skipped_unknown_action,
        summary.replay_mismatches,
        summary.replay_checked,
        summary
            .unreplayable_reason
            .map(|reason| format!("; first not replayable: {reason}"))
            .unwrap_or_default()
    );
    Ok(dataset)
}

/// Runs `nudge train`: reads the CSV or the log, trains, writes the outputs; progress
/// lines go to stderr.
pub fn train(args: &TrainArgs) -> anyhow::Result<TrainSummary> {
    // Before the long part: a directory that cannot take the outputs fails now.
    artifact::prepare_dir(&args.out, args.force)?;
    let mut progress = |event: &Event| eprintln!("nudge train: {event}");
    let started = Instant::now();
    let dataset = match (&args.csv, &args.log) {
        (Some(csv), _) => {
            let options = CsvOptions {
                label: args.label.clone().unwrap_or_default(),
                id: args.id.clone(),
                time: args.time.clone(),
                action: args.action.clone(),
                ignore: args.ignore.clone(),
                max_levels: args.max_levels,
                min_level_count: args.min_level_count,
                holdout: args.holdout,
            };
            nudge_training::csv::read_path(csv, &options, &mut progress)?
        }
        (None, Some(log)) => read_log(log, args)?,
        (None, None) => anyhow::bail!("give --csv FILE or --log FILE"),
    };
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let options = TrainOptions {
        holdout: args.holdout,
        validation: args.validation,
        balance: args.balance,
        grid_rows: args.grid_rows,
        warm_start: !args.cold_start,
        version: args.version.clone(),
        ..TrainOptions::new(Utc::now())
    };
    let options = TrainOptions {
        grid_threads: args.grid_threads.unwrap_or(options.grid_threads),
        ..options
    };
    let mut trained = nudge_training::train(&dataset, &options, &mut progress)?;
    trained.report.timings_ms.read = read_ms;
    artifact::write_outputs(&args.out, &trained)
        .with_context(|| format!("cannot write the outputs into {}", args.out.display()))?;
    let report = &trained.report;
    let summary = TrainSummary {
        model: args.out.join(MODEL_FILE),
        report: args.out.join(REPORT_HTML),
        version: trained.artifact.version.clone(),
        features: trained.artifact.features.len(),
        auc: report.auc,
        log_loss: report.log_loss,
        calibration_error: report.calibration_error,
    };
    debug_assert!(args.out.join(REPORT_JSON).exists());
    Ok(summary)
}
