//! The trained model as a `nudge.logistic/v1` artifact, validated by the
//! same loader the service uses, and the outputs written into the output
//! directory, each file complete or not at all.

use crate::Error;
use crate::dataset::Dataset;
use crate::fit::Fit;
use nudge_models::model::{Evidence, MODEL_FORMAT, Model, ModelArtifact};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The artifact's file name in the output directory.
pub const MODEL_FILE: &str = "model.json";
/// The report's JSON file name.
pub const REPORT_JSON: &str = "report.json";
/// The report's HTML file name.
pub const REPORT_HTML: &str = "report.html";

/// The artifact of `fit`, fitted on `fitting` rows of `dataset`, loaded by
/// [`Model::from_artifact`] as a check.
pub fn build(
    dataset: &Dataset,
    fitting: Range<usize>,
    fit: &Fit,
    version: String,
    description: String,
    trained_at: String,
) -> Result<(ModelArtifact, Model), Error> {
    let per_action = match &dataset.action_ids {
        Some(ids) => {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for id in &ids[fitting.clone()] {
                *counts.entry(id.clone()).or_default() += 1;
            }
            counts
        }
        None => BTreeMap::new(),
    };
    let artifact = ModelArtifact {
        format: MODEL_FORMAT.to_owned(),
        version,
        description,
        trained_at: Some(trained_at),
        features: dataset.features.clone(),
        weights: fit.weights.to_vec(),
        intercept: fit.intercept,
        evidence: Evidence {
            total: fitting.len() as u64,
            per_action,
        },
    };
    let model = Model::from_artifact(artifact.clone())?;
    Ok((artifact, model))
}

/// The outputs' paths in `dir`.
fn outputs(dir: &Path) -> [(&'static str, PathBuf); 3] {
    [MODEL_FILE, REPORT_JSON, REPORT_HTML].map(|file| (file, dir.join(file)))
}

/// Refuses a `dir` that already holds a model or report unless `force`, or
/// that is not a directory. Call before training, so a long run does not end
/// in this error; it creates nothing, so a run that fails on bad input leaves
/// no trace ([`write_outputs`] creates the directory).
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(Error::Io {
            action: "cannot write the outputs into",
            path: dir.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        });
    }
    if !force && let Some((file, _)) = outputs(dir).into_iter().find(|(_, path)| path.exists()) {
        return Err(Error::WouldOverwrite {
            dir: dir.to_owned(),
            file,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed into
/// place: readers see the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    std::fs::write(&temporary, bytes).map_err(io("cannot write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        Error::Io {
            action: "cannot rename into place",
            path: path.to_owned(),
            source,
        }
    })
}

/// Writes the artifact and both reports into `dir`, created if needed (see
/// [`prepare_dir`]): everything is rendered first, then each file is written
/// atomically, the model last.
pub fn write_outputs(dir: &Path, trained: &crate::Trained) -> Result<(), Error> {
    let mut model = serde_json::to_string_pretty(&trained.artifact)?;
    model.push('\n');
    let json = crate::report::to_json(&trained.report)?;
    let html = crate::report::to_html(&trained.report)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "cannot create",
        path: dir.to_owned(),
        source,
    })?;
    write_atomically(&dir.join(REPORT_JSON), json.as_bytes())?;
    write_atomically(&dir.join(REPORT_HTML), html.as_bytes())?;
    write_atomically(&dir.join(MODEL_FILE), model.as_bytes())
}
