//! The registry's files under `<data_dir>/models/`: each loaded artifact as
//! `<version>-<hash>.json` and the state as `registry.json`, each written
//! to a temporary file, flushed and renamed, so a crash leaves the old file
//! or the new one, never a torn one.

use super::{FORMAT, GuardrailRollback, REGISTRY_FILE, RegistryError, State};
use nudge_models::experiment::Experiment;
use nudge_models::model::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The registry file.
#[derive(Debug, Serialize, Deserialize)]
struct RegistryFile {
    format: String,
    /// Loaded models: version → artifact file name in the directory.
    models: BTreeMap<String, String>,
    experiment: Experiment,
    previous: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shadow: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    aucs: BTreeMap<String, f64>,
    /// The live guardrail's last rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_guardrail_rollback: Option<GuardrailRollback>,
    /// The model computing each profile score: score id → version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scores: BTreeMap<String, String>,
}

/// A file name for `version`: its safe characters and a hash of the whole.
fn file_name(version: &str) -> String {
    let safe: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = nudge_models::hash::fnv1a(version.bytes());
    format!("{safe}-{:08x}.json", hash >> 32)
}

/// Writes `bytes` to `path` through a flushed temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    crate::files::write_atomically(path, bytes).map_err(|source| RegistryError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn save_artifact(dir: &Path, model: &Model) -> Result<String, RegistryError> {
    std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let name = file_name(model.version());
    let bytes =
        serde_json::to_vec_pretty(model.artifact()).map_err(|error| RegistryError::Unreadable {
            path: dir.join(&name),
            reason: error.to_string(),
        })?;
    write_atomically(&dir.join(&name), &bytes)?;
    Ok(name)
}

pub(super) fn write_state(dir: &Path, state: &State) -> Result<(), RegistryError> {
    std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut models = BTreeMap::new();
    for (version, (model, file)) in &state.models {
        let file = if file.is_empty() {
            // The model it started with: saved the first time the
            // registry is written.
            save_artifact(dir, model)?
        } else {
            file.clone()
        };
        models.insert(version.clone(), file);
    }
    let file = RegistryFile {
        format: FORMAT.to_owned(),
        models,
        experiment: state.experiment.clone(),
        previous: state.previous.clone(),
        shadow: state.shadow.clone(),
        aucs: state.aucs.clone(),
        last_guardrail_rollback: state.last_guardrail_rollback.clone(),
        scores: state.scores.clone(),
    };
    let path = dir.join(REGISTRY_FILE);
    let bytes = serde_json::to_vec_pretty(&file).map_err(|error| RegistryError::Unreadable {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    write_atomically(&path, &bytes)
}

pub(super) fn read_state(path: &Path) -> Result<State, RegistryError> {
    let unreadable = |reason: String| RegistryError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| RegistryError::Io {
        path: path.to_owned(),
        source,
    })?;
    let file: RegistryFile =
        serde_json::from_slice(&bytes).map_err(|error| unreadable(error.to_string()))?;
    if file.format != FORMAT {
        return Err(unreadable(format!(
            "format {} is not {FORMAT}",
            file.format
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut models = BTreeMap::new();
    for (version, name) in file.models {
        let artifact = dir.join(&name);
        let bytes = std::fs::read(&artifact).map_err(|source| RegistryError::Io {
            path: artifact.clone(),
            source,
        })?;
        let model = Model::from_json(&bytes).map_err(|error| RegistryError::Unreadable {
            path: artifact.clone(),
            reason: error.to_string(),
        })?;
        models.insert(version, (Arc::new(model), name));
    }
    for variant in &file.experiment.variants {
        if !models.contains_key(&variant.model_version) && !variant.model_version.is_empty() {
            return Err(unreadable(format!(
                "variant {} names model {}, which is not loaded",
                variant.name, variant.model_version
            )));
        }
    }
    for (score, version) in &file.scores {
        if !models.contains_key(version) {
            return Err(unreadable(format!(
                "score {score} names model {version}, which is not loaded"
            )));
        }
    }
    Ok(State {
        scores: file.scores,
        models,
        experiment: file.experiment,
        previous: file.previous,
        shadow: file.shadow,
        aucs: file.aucs,
        trial: None,
        last_guardrail_rollback: file.last_guardrail_rollback,
    })
}
