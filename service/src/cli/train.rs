//! `nudge train`: fit a logistic model on a CSV of customer rows (`--csv`),
//! on the decision log (`--log`, a `nudge export` Parquet file, with
//! `--events` for point-in-time replay) or, for a model profile score
//! (`--score`), on customers at daily cut-offs replayed from the event log
//! (`--events`), and write the `nudge.logistic/v1` artifact and its
//! evaluation report, with progress on stderr. The work is
//! `nudge_training`'s; this is its command line.

use anyhow::Context as _;
use chrono::Utc;
use nudge_models::catalog::Catalog;
use nudge_models::features::FeatureSet;
use nudge_models::model::Model;
use nudge_models::scores::ScoreKind;
use nudge_models::time::Span;
use nudge_training::artifact::{self, MODEL_FILE, REPORT_HTML, REPORT_JSON};
use nudge_training::csv::CsvOptions;
use nudge_training::log::Features;
use nudge_training::score::{self, ScoreOptions, ScoreSummary};
use nudge_training::{Event, Progress, TrainOptions};
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

With --score ID (a `model = true` score of --catalog, e.g. churn_risk) the rows come from the \
event log alone (--events): each customer once a --cadence (00:00 UTC daily) from their first \
event, with the features their profile had then (exactly the events the service had applied \
by that cut-off, evaluated at it; only profile features: no ctx(...), action, score(...), \
tier(...) or click_rate(...)), labelled 1 when --label-event happened within --horizon after \
it. Cut-offs whose horizon runs past the end of the data are not labelled (censored), and a \
customer has no row from their first label event on. Without --feature the features are \
derived from the log: days since and 7- and 30-day log counts of its widespread events, \
tenure_days, and its identify attributes (attr, or is / is_none_of for text). More than \
--max-rows rows are thinned evenly.

DIR receives model.json (load it with `nudge serve --model DIR/model.json`, or reload it; a \
score's with `nudge model load DIR/model.json --score ID`), report.json (holdout auc, \
log_loss, calibration_error, ...) and report.html.")]
#[command(group(clap::ArgGroup::new("source").required(true).args(["csv", "log", "score"])))]
#[command(group(clap::ArgGroup::new("replayed").args(["log", "score"])))]
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
    /// An event log export (`nudge export --events`) to replay: with
    /// --log, each customer's profile is rebuilt as it was at each decision
    /// and the features (--feature, else the newest logged model's)
    /// computed from it, checked against the logged values where the specs
    /// match; with --score, the rows themselves.
    #[arg(long, value_name = "FILE", requires = "replayed")]
    pub events: Option<PathBuf>,
    /// A feature spec to train on, e.g. count(login,7d) or
    /// category(upsell)*is(plan,pro) (repeatable; needs --events). A
    /// score's may read only the profile.
    #[arg(long = "feature", value_name = "SPEC", requires = "events")]
    pub features: Vec<String>,
    /// The catalog whose actions replayed action terms read, and that
    /// declares the --score [default: the embedded demo catalog].
    #[arg(long, value_name = "FILE", requires = "events")]
    pub catalog: Option<PathBuf>,
    /// What a profile score's rows are (--score and its options).
    #[command(flatten)]
    pub score: ScoreArgs,
    /// The outcome column of a CSV: 0/1, true/false or yes/no.
    #[arg(long, value_name = "COL", required_unless_present_any = ["log", "score"])]
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
    /// trained-YYYYMMDDTHHMM, or ID-YYYYMMDDTHHMM for --score ID, the time
    /// of training in UTC].
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

/// The arguments of `nudge train --score`: which profile score, and how its
/// rows are made from the event log.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Train the model of this profile score of the catalog (one declared
    /// with `model = true`, e.g. churn_risk) on the event log (--events):
    /// one row per customer and cut-off, labelled by --label-event within
    /// --horizon after it.
    #[arg(
        long = "score",
        id = "score",
        value_name = "ID",
        requires_all = ["events", "label_event", "horizon"]
    )]
    pub id: Option<String>,
    /// The event a positive row has within the horizon after its cut-off,
    /// e.g. subscription_cancelled (needs --score).
    #[arg(long, value_name = "NAME", requires = "score")]
    pub label_event: Option<String>,
    /// How far after a cut-off the label event counts, e.g. 30d (needs
    /// --score).
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, requires = "score")]
    pub horizon: Option<Span>,
    /// The time between two cut-offs of a customer; cut-offs fall on its
    /// multiples since 1970 (1d: 00:00 UTC).
    #[arg(
        long,
        value_name = "SPAN",
        value_parser = Span::parse,
        default_value = "1d",
        requires = "score"
    )]
    pub cadence: Span,
    /// How long after their first event a customer gets their first
    /// cut-off [default: none: the first cut-off at or after it].
    #[arg(long, value_name = "SPAN", value_parser = Span::parse, requires = "score")]
    pub min_history: Option<Span>,
    /// Most rows of a score: with more, this many, evenly spaced over the
    /// customers and each one's cut-offs.
    #[arg(long, value_name = "N", default_value_t = score::DEFAULT_MAX_ROWS, requires = "score")]
    pub max_rows: usize,
}

impl Default for ScoreArgs {
    /// No score: the command line's defaults for the rest.
    fn default() -> Self {
        Self {
            id: None,
            label_event: None,
            horizon: None,
            cadence: Span::days(1),
            min_history: None,
            max_rows: score::DEFAULT_MAX_ROWS,
        }
    }
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
    /// The profile score the model is for (`--score`), if any.
    pub score: Option<String>,
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
        )?;
        if let Some(score) = &self.score {
            write!(
                formatter,
                "\nnext: nudge model load {} --score {score}",
                self.model.display()
            )?;
        }
        Ok(())
    }
}

/// The catalog of `--catalog`, else the embedded demo's, with its name for
/// messages.
fn read_catalog(args: &TrainArgs) -> anyhow::Result<(Catalog, String)> {
    match &args.catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let catalog = Catalog::from_toml(&text)
                .map_err(|problems| anyhow::anyhow!("{}: {problems}", path.display()))?;
            Ok((catalog, path.display().to_string()))
        }
        None => {
            let catalog = Catalog::from_toml(nudge_models::demo::CATALOG_TOML)
                .map_err(|problems| anyhow::anyhow!("the demo catalog: {problems}"))?;
            Ok((catalog, "the demo catalog".to_owned()))
        }
    }
}

/// A `--score` run: the rows' options and what became of the log, and the
/// catalog the trained model must serve.
struct Scoring {
    options: ScoreOptions,
    summary: ScoreSummary,
    catalog: Catalog,
    catalog_name: String,
}

/// Refuses a score `id` that `catalog` does not declare as a model score.
fn check_declared(catalog: &Catalog, catalog_name: &str, id: &str) -> anyhow::Result<()> {
    match catalog.scores.definition(id) {
        None => {
            let declared: Vec<&str> = catalog
                .scores
                .definitions
                .iter()
                .map(|definition| definition.id.as_str())
                .collect();
            anyhow::bail!(
                "{catalog_name} declares no score '{id}' (its scores: {})",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            )
        }
        Some(definition) if !matches!(definition.kind, ScoreKind::Model) => anyhow::bail!(
            "score '{id}' of {catalog_name} is not a model score: only a score declared with `model = true` is computed by a trained model"
        ),
        Some(_) => Ok(()),
    }
}

/// The rows of `--score ID` from the `--events` export: checked against the
/// catalog and the feature rules before the export is read.
fn read_score(
    id: &str,
    args: &TrainArgs,
    progress: &mut dyn Progress,
) -> anyhow::Result<(nudge_training::Dataset, Scoring)> {
    let (catalog, catalog_name) = read_catalog(args)?;
    check_declared(&catalog, &catalog_name, id)?;
    let (Some(events_path), Some(label_event), Some(horizon)) =
        (&args.events, &args.score.label_event, args.score.horizon)
    else {
        anyhow::bail!("--score needs --events FILE, --label-event NAME and --horizon SPAN");
    };
    let options = ScoreOptions {
        cadence: args.score.cadence,
        min_history: args.score.min_history.unwrap_or(Span(0)),
        max_rows: args.score.max_rows,
        ..ScoreOptions::new(id, label_event.as_str(), horizon)
    };
    let given = if args.features.is_empty() {
        None
    } else {
        let features = FeatureSet::parse(&args.features)?;
        score::check_features(id, &features)?;
        Some(features)
    };
    let events = super::export::read::events(events_path)?;
    let source = events_path.file_name().map_or_else(
        || events_path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let features = match given {
        Some(features) => features,
        None => FeatureSet::parse(&score::default_features(&events, &options))?,
    };
    let (dataset, summary) = score::dataset(&source, &events, &features, &options, progress)?;
    eprintln!(
        "nudge train: {} events of {} customers ({} left out as incomplete{}), {} of them with {}; {} cut-offs up to {} → {} rows ({} positive{}); left out: {} cut-offs whose {} horizon passes the end of the data ({}), {} at or after the customer's {}",
        summary.events,
        summary.customers,
        summary.skipped_incomplete,
        summary
            .incomplete_reason
            .as_ref()
            .map(|reason| format!(": {reason}"))
            .unwrap_or_default(),
        summary.labelled_customers,
        options.label_event,
        summary.cut_offs,
        summary.last_cut_off,
        summary.rows,
        summary.positives,
        if summary.rows < summary.cut_offs {
            format!(", thinned evenly to --max-rows {}", options.max_rows)
        } else {
            String::new()
        },
        summary.censored,
        options.horizon,
        summary.until,
        summary.excluded_after_label,
        options.label_event,
    );
    Ok((
        dataset,
        Scoring {
            options,
            summary,
            catalog,
            catalog_name,
        },
    ))
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
            let (catalog, _) = read_catalog(args)?;
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

/// Runs `nudge train`: reads the CSV, the log or, for a score, the event
/// log, trains, writes the outputs; progress lines go to stderr. A score's
/// model is checked against its catalog's score before it is written.
pub fn train(args: &TrainArgs) -> anyhow::Result<TrainSummary> {
    // Before the long part: a directory that cannot take the outputs fails now.
    artifact::prepare_dir(&args.out, args.force)?;
    let mut progress = |event: &Event| eprintln!("nudge train: {event}");
    let started = Instant::now();
    let now = Utc::now();
    let mut scoring = None;
    let dataset = match (&args.csv, &args.log, &args.score.id) {
        (Some(csv), _, _) => {
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
        (None, Some(log), _) => read_log(log, args)?,
        (None, None, Some(id)) => {
            let (dataset, read) = read_score(id, args, &mut progress)?;
            scoring = Some(read);
            dataset
        }
        (None, None, None) => anyhow::bail!("give --csv FILE, --log FILE or --score ID"),
    };
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let options = TrainOptions {
        holdout: args.holdout,
        validation: args.validation,
        balance: args.balance,
        grid_rows: args.grid_rows,
        warm_start: !args.cold_start,
        version: args.version.clone().or_else(|| {
            scoring
                .as_ref()
                .map(|scoring| score::default_version(&scoring.options.score, now))
        }),
        ..TrainOptions::new(now)
    };
    let options = TrainOptions {
        grid_threads: args.grid_threads.unwrap_or(options.grid_threads),
        ..options
    };
    let mut trained = nudge_training::train(&dataset, &options, &mut progress)?;
    trained.report.timings_ms.read = read_ms;
    if let Some(scoring) = &scoring {
        let id = &scoring.options.score;
        trained.artifact.description = score::describe(
            &scoring.options,
            &scoring.summary,
            &trained.artifact.description,
        );
        let model = Model::from_artifact(trained.artifact.clone())
            .context("the trained artifact does not load")?;
        if let Err(problems) = scoring.catalog.scores.check_model(id, &model) {
            anyhow::bail!(
                "the trained model cannot compute score '{id}' of {}: {}",
                scoring.catalog_name,
                problems.join("; ")
            );
        }
    }
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
        score: scoring.map(|scoring| scoring.options.score),
    };
    debug_assert!(args.out.join(REPORT_JSON).exists());
    Ok(summary)
}
