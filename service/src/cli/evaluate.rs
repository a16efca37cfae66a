//! `nudge evaluate --log FILE`: off-policy evaluation of a shadow model from
//! a decision log export — what the model that scored every decision
//! silently (`nudge model shadow VERSION`) would have earned had it served,
//! against what the serving policy earned, before it serves anyone.

use std::path::PathBuf;

use anyhow::bail;
use nudge_training::ope;
use serde_json::json;

/// Arguments of `nudge evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// A decision log export (`nudge export --out FILE.parquet`) of
    /// decisions a shadow model scored.
    #[arg(long, value_name = "FILE")]
    pub log: PathBuf,
    /// The shadow model to evaluate [default: the one that scored the
    /// newest decision].
    #[arg(long, value_name = "VERSION")]
    pub shadow: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `nudge evaluate`.
pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<String> {
    let decisions = super::export::read::decisions(&args.log)?;
    let version = match &args.shadow {
        Some(version) => version.clone(),
        None => match decisions
            .iter()
            .rev()
            .find_map(|decision| decision.record.shadow.as_ref())
        {
            Some(shadow) => shadow.model_version.clone(),
            None => bail!(
                "{}: no decision was scored by a shadow model (`nudge model shadow VERSION` sets one)",
                args.log.display()
            ),
        },
    };
    let ope::policy::ShadowSamples {
        samples,
        not_exploring,
    } = ope::policy::shadow_samples(&decisions, &version);
    let left_out = (!not_exploring.is_empty()).then(|| {
        let placements: Vec<String> = not_exploring
            .iter()
            .map(|(placement, count)| format!("{placement} ({count})"))
            .collect();
        format!(
            "left out: decisions of placements that do not explore, {}: every served action there was logged with probability 1, \
so what {version} would earn where it chooses otherwise is not in the log (give the placement exploration in the catalog to evaluate it)",
            placements.join(", ")
        )
    });
    if samples.is_empty() {
        if let Some(left_out) = &left_out {
            bail!(
                "{}: nothing to evaluate {version} on; {left_out}",
                args.log.display()
            );
        }
        let mut seen: Vec<&str> = decisions
            .iter()
            .filter_map(|decision| decision.record.shadow.as_ref())
            .map(|shadow| shadow.model_version.as_str())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        bail!(
            "{}: no decision that served an action was scored by shadow model {version} (shadow models in the file: {})",
            args.log.display(),
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            }
        );
    }
    let evaluation = ope::evaluate(&samples, &ope::Options::default()).map_err(|refusal| {
        anyhow::anyhow!(
            "no off-policy evaluation of {version} on {} decisions: {refusal}",
            samples.len()
        )
    })?;
    if args.json {
        return Ok(serde_json::to_string_pretty(
            &json!({"shadow": version, "evaluation": evaluation, "not_exploring": not_exploring}),
        )?);
    }
    let line = |name: &str, interval: &ope::Interval| {
        format!(
            "  {name:<14} {:.4}  [{:.4}, {:.4}]",
            interval.estimate, interval.low, interval.high
        )
    };
    let mut lines = vec![
        format!(
            "Shadow model {version} on {} logged decisions (conversions per decision, {} % intervals):",
            evaluation.decisions,
            (evaluation.options.confidence * 100.0).round()
        ),
        line("logging policy", &evaluation.logging),
        line("IPS", &evaluation.ips),
        line("SNIPS", &evaluation.snips),
        line("doubly robust", &evaluation.doubly_robust),
        format!(
            "  change (DR − logging) {:+.4} [{:+.4}, {:+.4}]; effective sample size {:.1}, match rate {:.3}",
            evaluation.doubly_robust_improvement.estimate,
            evaluation.doubly_robust_improvement.low,
            evaluation.doubly_robust_improvement.high,
            evaluation.effective_sample_size,
            evaluation.match_rate
        ),
    ];
    lines.extend(left_out.map(|left_out| format!("  {left_out}")));
    Ok(lines.join("\n"))
}
