//! `nudge model list|load|promote|rollback`: the server's model registry —
//! which models it holds, which serves which share of customers — and the
//! changes to it, over `Admin.ListModels`, `LoadModel`, `PromoteModel` and
//! `Rollback`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use nudge_proto::v1::{
    GuardrailReading, ListModelsRequest, ListModelsResponse, LoadModelRequest, PromoteModelRequest,
    RollbackRequest, ServingVariant, SetShadowRequest,
};
use serde_json::{Value as Json, json};

use super::{ClientArgs, client, render};

/// What `nudge model` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelAction {
    /// The loaded models, the variants serving and the earlier models.
    List,
    /// Load the artifact FILE, serving no one yet (with --score: computing
    /// that profile score for everyone at once).
    Load,
    /// Try model VERSION on --share % of customers (100: everyone).
    Promote,
    /// End the experiment, or return to the model that served before.
    Rollback,
    /// Make model VERSION score every decision silently (`off`: none).
    Shadow,
}

/// Arguments of `nudge model`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  nudge model load models/2026-11-30/model.json
  nudge model promote trained-20261130T0800 --share 10     # try it on 10 % of customers
  nudge model promote trained-20261130T0800 --share 50     # ramp up: no customer goes back
  nudge model promote trained-20261130T0800 --share 100    # everyone
  nudge model rollback                                     # undo the last step
  nudge model shadow trained-20261130T0800                 # score silently beside the serving model
  nudge model load churn/model.json --score churn_risk     # the model of a profile score: at once
Customers are assigned by a hash of their id: the same after a restart and on every node.")]
pub struct ModelArgs {
    /// list, load, promote or rollback.
    #[arg(value_enum)]
    pub action: ModelAction,
    /// The artifact file (load) or the model version (promote).
    #[arg(value_name = "FILE|VERSION")]
    pub target: Option<String>,
    /// The share of customers in percent (promote).
    #[arg(long, value_name = "PERCENT")]
    pub share: Option<u32>,
    /// The challenger's variant name while it is tried (promote) [default:
    /// treatment].
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// The training report whose holdout `auc` goes with the model (load)
    /// [default: report.json beside FILE, when there is one].
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Promote even a model whose holdout AUC is below the serving model's
    /// by more than the server's models.max_auc_drop (promote).
    #[arg(long)]
    pub force: bool,
    /// The profile score the model computes (load): a `model = true` score
    /// of the catalog, e.g. churn_risk; it replaces the score's model at
    /// once, and loading the previous artifact again rolls it back.
    #[arg(long, value_name = "SCORE")]
    pub score: Option<String>,
}

/// The holdout AUC of the training report `path` (`auc` at its top level).
fn report_auc(path: &std::path::Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the training report {}", path.display()))?;
    let report: Json =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    report["auc"].as_f64().with_context(|| {
        format!(
            "{} has no top-level auc: not a `nudge train` report",
            path.display()
        )
    })
}

/// Each variant with its model and share.
pub(super) fn variants_text(variants: &[ServingVariant]) -> String {
    variants
        .iter()
        .map(|v| format!("{} {} {} %", v.name, v.model_version, v.share_percent))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each variant as JSON.
pub(super) fn variants_json(variants: &[ServingVariant]) -> Json {
    variants
        .iter()
        .map(|v| json!({"name": v.name, "model_version": v.model_version, "share_percent": v.share_percent}))
        .collect()
}

/// Milliseconds since the epoch as RFC 3339, to the second.
fn millis_text(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis).map_or_else(
        || format!("{millis} ms"),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn verdict_text(verdict: &str) -> &str {
    match verdict {
        "too_few_data" => "too few data yet",
        "no_difference" => "no difference yet",
        "worse" => "worse",
        "better" => "better",
        other => other,
    }
}

/// The guardrail's reading in one line: each arm's rate, then the test.
fn reading_text(reading: &GuardrailReading) -> String {
    let arms: Vec<String> = reading
        .arms
        .iter()
        .map(|arm| {
            let rate = if arm.served == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} %",
                    arm.conversions as f64 * 100.0 / arm.served as f64
                )
            };
            format!(
                "{} {} converted {rate} of {} served",
                arm.variant, arm.model_version, arm.served
            )
        })
        .collect();
    format!(
        "{}; ln likelihood ratio {:.2} of {:.2}: {}",
        arms.join(", "),
        reading.log_likelihood_ratio,
        reading.threshold,
        verdict_text(&reading.verdict)
    )
}

fn reading_json(reading: &GuardrailReading) -> Json {
    json!({
        "since": millis_text(reading.since_ms),
        "arms": reading.arms.iter().map(|arm| json!({
            "variant": arm.variant, "model_version": arm.model_version,
            "served": arm.served, "conversions": arm.conversions,
        })).collect::<Json>(),
        "log_likelihood_ratio": reading.log_likelihood_ratio,
        "threshold": reading.threshold,
        "verdict": reading.verdict,
        "alpha": reading.alpha,
    })
}

/// The registry as text: the variants serving, the live guardrail, then
/// every loaded model.
pub fn listing_text(response: &ListModelsResponse) -> String {
    let mut text = format!("Serving: {}\n", variants_text(&response.variants));
    if let Some(reading) = &response.guardrail {
        let _ = writeln!(
            text,
            "Live guardrail (since {}, false alarms at most {} over the experiment): {}",
            millis_text(reading.since_ms),
            reading.alpha,
            reading_text(reading)
        );
    }
    if let Some(rollback) = &response.last_guardrail_rollback {
        let _ = writeln!(
            text,
            "Rolled back by the guardrail at {}: {}",
            millis_text(rollback.at_ms),
            rollback.reason
        );
    }
    let _ = writeln!(text, "Loaded models:");
    for model in &response.models {
        let _ = writeln!(
            text,
            "  {}  {} features  trained {}  holdout AUC {}",
            model.version,
            model.features,
            if model.trained_at.is_empty() {
                "-"
            } else {
                &model.trained_at
            },
            model
                .holdout_auc
                .map_or_else(|| "-".to_owned(), |auc| format!("{auc:.4}"))
        );
    }
    for (score, version) in &response.score_models {
        let _ = writeln!(text, "Score {score}: computed by model {version}");
    }
    if !response.shadow.is_empty() {
        let _ = writeln!(text, "Shadow (scores silently): {}", response.shadow);
    }
    if !response.previous.is_empty() {
        let _ = writeln!(
            text,
            "Served everyone before (a rollback returns to the last): {}",
            response.previous.join(", ")
        );
    }
    text.trim_end().to_owned()
}

/// Runs `nudge model`.
pub async fn run(args: &ModelArgs, options: &ClientArgs) -> anyhow::Result<String> {
    match args.action {
        ModelAction::List => {
            let response = client::ask(options, ListModelsRequest {}).await?;
            render(
                options,
                || {
                    json!({
                        "variants": variants_json(&response.variants),
                        "models": response.models.iter().map(|m| json!({
                            "version": m.version, "description": m.description,
                            "trained_at": m.trained_at, "features": m.features,
                            "holdout_auc": m.holdout_auc,
                        })).collect::<Json>(),
                        "previous": response.previous,
                        "shadow": (!response.shadow.is_empty()).then_some(&response.shadow),
                        "score_models": &response.score_models,
                        "guardrail": response.guardrail.as_ref().map(reading_json),
                        "last_guardrail_rollback": response.last_guardrail_rollback.as_ref().map(|r| json!({
                            "at": millis_text(r.at_ms),
                            "variant": r.variant,
                            "model_version": r.model_version,
                            "control_model_version": r.control_model_version,
                            "reason": r.reason,
                            "reading": r.reading.as_ref().map(reading_json),
                        })),
                    })
                },
                || listing_text(&response),
            )
        }
        ModelAction::Load => {
            let Some(file) = &args.target else {
                bail!("nudge model load needs the artifact FILE");
            };
            let path = PathBuf::from(file);
            let artifact = std::fs::read(&path)
                .with_context(|| format!("could not read model file {}", path.display()))?;
            let beside = path.with_file_name("report.json");
            let holdout_auc = match &args.report {
                Some(report) => Some(report_auc(report)?),
                None if beside.is_file() => Some(report_auc(&beside)?),
                None => None,
            };
            let response = client::ask(
                options,
                LoadModelRequest {
                    artifact,
                    holdout_auc,
                    score: args.score.clone().unwrap_or_default(),
                },
            )
            .await?;
            let model = response.model.unwrap_or_default();
            render(
                options,
                || {
                    json!({
                        "loaded": model.version, "features": model.features,
                        "holdout_auc": model.holdout_auc, "score": args.score,
                    })
                },
                || {
                    let auc = model.holdout_auc.map_or_else(
                        || "no holdout AUC".to_owned(),
                        |auc| format!("holdout AUC {auc:.4}"),
                    );
                    match &args.score {
                        Some(score) => format!(
                            "loaded model {} ({} features, {auc}); it computes score {score} for every customer from their next decision",
                            model.version, model.features
                        ),
                        None => format!(
                            "loaded model {} ({} features, {auc}); it serves no one until `nudge model promote {} --share N`",
                            model.version, model.features, model.version
                        ),
                    }
                },
            )
        }
        ModelAction::Promote => {
            let Some(version) = &args.target else {
                bail!("nudge model promote needs the model VERSION (nudge model list shows them)");
            };
            let Some(share) = args.share else {
                bail!("nudge model promote needs --share PERCENT (1 to 100)");
            };
            let request = PromoteModelRequest {
                version: version.clone(),
                share_percent: share,
                variant: args.variant.clone().unwrap_or_default(),
                force: args.force,
            };
            let response = client::ask(options, request).await?;
            render(
                options,
                || json!({"variants": variants_json(&response.variants)}),
                || format!("now serving: {}", variants_text(&response.variants)),
            )
        }
        ModelAction::Shadow => {
            let Some(version) = &args.target else {
                bail!("nudge model shadow needs the model VERSION, or off");
            };
            let version = if version == "off" {
                String::new()
            } else {
                version.clone()
            };
            let response = client::ask(options, SetShadowRequest { version }).await?;
            render(
                options,
                || json!({"shadow": response.version}),
                || {
                    if response.version.is_empty() {
                        "no shadow model".to_owned()
                    } else {
                        format!(
                            "model {} now scores every decision silently; its scores are in `nudge export` (shadow_* columns), `nudge evaluate --log FILE` evaluates it",
                            response.version
                        )
                    }
                },
            )
        }
        ModelAction::Rollback => {
            if args.target.is_some() {
                bail!("nudge model rollback takes no FILE or VERSION");
            }
            let response = client::ask(options, RollbackRequest {}).await?;
            render(
                options,
                || json!({"variants": variants_json(&response.variants)}),
                || {
                    format!(
                        "rolled back; now serving: {}",
                        variants_text(&response.variants)
                    )
                },
            )
        }
    }
}
