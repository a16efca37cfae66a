//! The model registry: the models the service holds, the experiment that
//! says which serves whom ([`nudge_models::experiment`]), and the models
//! that served everyone before (for rollback).
//!
//! Actors read a [`Serving`] snapshot (one `ArcSwap` load per decision):
//! every decision is scored by exactly one model version, and a change
//! swaps the whole snapshot at once, so a hot swap under load fails no
//! request. Changes (load, promote, rollback, a reload of the configured
//! model file) are serialized by a mutex and written to disk before they
//! take effect: under `<data_dir>/models/`, each loaded artifact as
//! `<version>.json` and the state as `registry.json` (each written to a
//! temporary file, flushed and renamed), so a restart serves the same
//! models to the same customers. With `storage.in_memory` nothing is
//! written and a restart starts from the configured model.

use crate::error::ServiceError;
use arc_swap::ArcSwap;
use nudge_models::catalog::Catalog;
use nudge_models::experiment::{Experiment, ExperimentError};
use nudge_models::model::Model;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The registry file's name in the models directory.
pub const REGISTRY_FILE: &str = "registry.json";
/// The registry file's format tag.
const FORMAT: &str = "nudge.registry/v1";

/// What decisions read: the experiment and the models it names.
#[derive(Debug)]
pub struct Serving {
    /// Which model serves which customer.
    pub experiment: Experiment,
    models: HashMap<String, Arc<Model>>,
    /// The model scoring every decision silently, if any.
    shadow: Option<Arc<Model>>,
}

impl Serving {
    /// The variant name and model of `customer_id` (`None`: the variant's
    /// model is not loaded, and the fallback ladder answers).
    pub fn for_customer(&self, customer_id: &str) -> (&str, Option<&Arc<Model>>) {
        match self.experiment.assign(customer_id) {
            Some(variant) => (&variant.name, self.models.get(&variant.model_version)),
            None => (nudge_models::experiment::DEFAULT_VARIANT, None),
        }
    }

    /// The shadow model: it scores every model-ranked decision silently.
    pub fn shadow(&self) -> Option<&Arc<Model>> {
        self.shadow.as_ref()
    }

    /// The control's model: what serves everyone outside an experiment.
    pub fn champion(&self) -> Option<&Arc<Model>> {
        self.experiment
            .control()
            .and_then(|control| self.models.get(&control.model_version))
    }
}

/// Why the registry refused a change.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The experiment cannot change so.
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    /// No loaded model has this version.
    #[error("no model {0} is loaded (nudge model list shows the loaded ones)")]
    UnknownModel(String),
    /// The artifact names what the catalog does not have.
    #[error("model {version} does not fit the running catalog: {}", unknown.join(", "))]
    DoesNotFit {
        /// The model's version.
        version: String,
        /// The terms the catalog lacks.
        unknown: Vec<String>,
    },
    /// The model's holdout AUC is too far below the control's.
    #[error(
        "model {version}'s holdout AUC {auc:.4} is below the serving model {control}'s {control_auc:.4} by more than the allowed {margin} (models.max_auc_drop); promote with force to override"
    )]
    WorseAuc {
        /// The model.
        version: String,
        /// Its holdout AUC.
        auc: f64,
        /// The control's model.
        control: String,
        /// Its holdout AUC.
        control_auc: f64,
        /// The allowed drop.
        margin: f64,
    },
    /// A holdout AUC outside 0–1.
    #[error("holdout AUC {0} is not between 0 and 1")]
    BadAuc(f64),
    /// Another model with the same version is loaded.
    #[error("another model with version {0} is already loaded: give the new one its own version")]
    VersionTaken(String),
    /// Nothing served before the current model.
    #[error("no experiment is running and no earlier model served everyone: nothing to roll back")]
    NothingToRollBack,
    /// The registry's files could not be written or read.
    #[error("model registry {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The registry file is not what this version writes.
    #[error("model registry {}: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One loaded model, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// Its version.
    pub version: String,
    /// Its description.
    pub description: String,
    /// When it was trained.
    pub trained_at: String,
    /// Number of features.
    pub features: usize,
    /// Its holdout AUC, from the training report loaded with it.
    pub holdout_auc: Option<f64>,
}

/// The registry as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Every loaded model, by version.
    pub models: Vec<ModelEntry>,
    /// The experiment.
    pub experiment: Experiment,
    /// Models that served everyone before, most recent last.
    pub previous: Vec<String>,
    /// The shadow model's version, if one is set.
    pub shadow: Option<String>,
}

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
}

#[derive(Debug, Clone)]
struct State {
    models: BTreeMap<String, (Arc<Model>, String)>,
    experiment: Experiment,
    previous: Vec<String>,
    shadow: Option<String>,
    /// Each model's holdout AUC, from the report loaded with it.
    aucs: BTreeMap<String, f64>,
}

/// The model registry.
#[derive(Debug)]
pub struct ModelRegistry {
    /// Where it is kept; `None` in memory.
    dir: Option<PathBuf>,
    state: Mutex<State>,
    serving: ArcSwap<Serving>,
}

impl ModelRegistry {
    /// The registry in `dir` (`None`: in memory). A directory with a
    /// registry file is read back; otherwise `initial` serves everyone.
    pub fn open(dir: Option<PathBuf>, initial: Option<Model>) -> Result<Self, RegistryError> {
        let state = match dir.as_deref().map(|dir| dir.join(REGISTRY_FILE)) {
            Some(file) if file.exists() => read_state(&file)?,
            _ => {
                let mut models = BTreeMap::new();
                let experiment = match initial {
                    Some(model) => {
                        let version = model.version().to_owned();
                        models.insert(version.clone(), (Arc::new(model), String::new()));
                        Experiment::single(&version)
                    }
                    None => Experiment::single(""),
                };
                State {
                    models,
                    experiment,
                    previous: Vec::new(),
                    shadow: None,
                    aucs: BTreeMap::new(),
                }
            }
        };
        let registry = Self {
            dir,
            serving: ArcSwap::from_pointee(serving_of(&state)),
            state: Mutex::new(state),
        };
        Ok(registry)
    }

    /// What decisions read now.
    pub fn serving(&self) -> Arc<Serving> {
        self.serving.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Commits `state` (to disk first, then to the decisions) and returns it.
    fn commit(&self, guard: &mut State, next: State) -> Result<(), RegistryError> {
        if let Some(dir) = &self.dir {
            write_state(dir, &next)?;
        }
        *guard = next;
        self.serving.store(Arc::new(serving_of(guard)));
        Ok(())
    }

    /// Validates `model` against `catalog` and adds it, not serving anyone
    /// yet, with the holdout AUC of its training report if known. Loading
    /// the same artifact again changes nothing but a newly given AUC.
    pub fn load(
        &self,
        model: Model,
        catalog: &Catalog,
        holdout_auc: Option<f64>,
    ) -> Result<ModelEntry, RegistryError> {
        if let Some(auc) = holdout_auc
            && !(0.0..=1.0).contains(&auc)
        {
            return Err(RegistryError::BadAuc(auc));
        }
        let version = model.version().to_owned();
        let unknown = model.features().unknown_in(catalog);
        if !unknown.is_empty() {
            return Err(RegistryError::DoesNotFit { version, unknown });
        }
        let mut guard = self.lock();
        if let Some((existing, _)) = guard.models.get(&version) {
            if existing.artifact() != model.artifact() {
                return Err(RegistryError::VersionTaken(version));
            }
            let listed = ModelEntry {
                holdout_auc: holdout_auc.or_else(|| guard.aucs.get(&version).copied()),
                ..entry(existing)
            };
            if let Some(auc) = holdout_auc {
                let mut next = guard.clone();
                next.aucs.insert(version, auc);
                self.commit(&mut guard, next)?;
            }
            return Ok(listed);
        }
        let file = match &self.dir {
            Some(dir) => save_artifact(dir, &model)?,
            None => String::new(),
        };
        let model = Arc::new(model);
        let listed = ModelEntry {
            holdout_auc,
            ..entry(&model)
        };
        let mut models = guard.models.clone();
        let mut aucs = guard.aucs.clone();
        if let Some(auc) = holdout_auc {
            aucs.insert(version.clone(), auc);
        }
        models.insert(version, (model, file));
        let next = State {
            models,
            experiment: guard.experiment.clone(),
            previous: guard.previous.clone(),
            shadow: guard.shadow.clone(),
            aucs,
        };
        self.commit(&mut guard, next)?;
        Ok(listed)
    }

    /// Tries loaded model `version` on `share` % of customers (variant
    /// `name`), ramps the running challenger, or at 100 % makes it the model
    /// that serves everyone. Unless `guard` is `None` (forced), refused when
    /// both holdout AUCs are known and the model's is below the control's
    /// by more than `guard`.
    pub fn promote(
        &self,
        version: &str,
        share: u32,
        name: Option<&str>,
        guard_margin: Option<f64>,
    ) -> Result<Experiment, RegistryError> {
        let mut guard = self.lock();
        if !guard.models.contains_key(version) {
            return Err(RegistryError::UnknownModel(version.to_owned()));
        }
        if let (Some(margin), Some(control)) = (guard_margin, guard.experiment.control())
            && let (Some(&auc), Some(&control_auc)) = (
                guard.aucs.get(version),
                guard.aucs.get(&control.model_version),
            )
            && auc < control_auc - margin
        {
            return Err(RegistryError::WorseAuc {
                version: version.to_owned(),
                auc,
                control: control.model_version.clone(),
                control_auc,
                margin,
            });
        }
        let experiment = guard.experiment.promote(version, share, name)?;
        let mut previous = guard.previous.clone();
        if share == 100
            && let Some(control) = guard.experiment.control()
            && !control.model_version.is_empty()
        {
            previous.push(control.model_version.clone());
        }
        let next = State {
            models: guard.models.clone(),
            experiment: experiment.clone(),
            previous,
            shadow: guard.shadow.clone(),
            aucs: guard.aucs.clone(),
        };
        self.commit(&mut guard, next)?;
        Ok(experiment)
    }

    /// Ends the running experiment (everyone back on the control) or, when
    /// none runs, returns everyone to the model that served before.
    pub fn rollback(&self) -> Result<Experiment, RegistryError> {
        let mut guard = self.lock();
        let mut previous = guard.previous.clone();
        let experiment = match guard.experiment.rollback() {
            Ok(experiment) => experiment,
            Err(ExperimentError::NothingRunning) => match previous.pop() {
                Some(version) => Experiment::single(&version),
                None => return Err(RegistryError::NothingToRollBack),
            },
            Err(error) => return Err(error.into()),
        };
        let next = State {
            models: guard.models.clone(),
            experiment: experiment.clone(),
            previous,
            shadow: guard.shadow.clone(),
            aucs: guard.aucs.clone(),
        };
        self.commit(&mut guard, next)?;
        Ok(experiment)
    }

    /// Puts `model` in the control's place (a reload of the configured
    /// model file): it serves everyone outside an experiment, and the
    /// control's share of a running one. A new artifact under a version
    /// already loaded replaces it (the file was retrained in place).
    /// Returns the version replaced.
    pub fn replace_champion(
        &self,
        model: Model,
        catalog: &Catalog,
    ) -> Result<String, RegistryError> {
        let version = model.version().to_owned();
        let unknown = model.features().unknown_in(catalog);
        if !unknown.is_empty() {
            return Err(RegistryError::DoesNotFit { version, unknown });
        }
        let mut guard = self.lock();
        let replaced = guard
            .experiment
            .control()
            .map(|control| control.model_version.clone())
            .unwrap_or_default();
        let mut models = guard.models.clone();
        let changed = models
            .get(&version)
            .is_none_or(|(existing, _)| existing.artifact() != model.artifact());
        if changed {
            let file = match &self.dir {
                Some(dir) => save_artifact(dir, &model)?,
                None => String::new(),
            };
            models.insert(version.clone(), (Arc::new(model), file));
        }
        let mut previous = guard.previous.clone();
        if !replaced.is_empty() && replaced != version {
            previous.push(replaced.clone());
        }
        let mut experiment = guard.experiment.clone();
        let challenger = experiment.challenger().map(|v| v.model_version.clone());
        match experiment.variants.first_mut() {
            Some(control) if challenger.as_deref() != Some(version.as_str()) => {
                control.model_version = version;
            }
            // No experiment, or the challenger itself is the new file.
            _ => experiment = Experiment::single(&version),
        }
        let next = State {
            models,
            experiment,
            previous,
            shadow: guard.shadow.clone(),
            aucs: guard.aucs.clone(),
        };
        self.commit(&mut guard, next)?;
        Ok(replaced)
    }

    /// Makes loaded model `version` score every decision silently (`None`:
    /// no shadow).
    pub fn set_shadow(&self, version: Option<&str>) -> Result<(), RegistryError> {
        let mut guard = self.lock();
        if let Some(version) = version
            && !guard.models.contains_key(version)
        {
            return Err(RegistryError::UnknownModel(version.to_owned()));
        }
        let next = State {
            shadow: version.map(str::to_owned),
            ..guard.clone()
        };
        self.commit(&mut guard, next)
    }

    /// The loaded models, the experiment and the history.
    pub fn list(&self) -> Listing {
        let guard = self.lock();
        Listing {
            models: guard
                .models
                .values()
                .map(|(model, _)| ModelEntry {
                    holdout_auc: guard.aucs.get(model.version()).copied(),
                    ..entry(model)
                })
                .collect(),
            experiment: guard.experiment.clone(),
            previous: guard.previous.clone(),
            shadow: guard.shadow.clone(),
        }
    }
}

fn entry(model: &Model) -> ModelEntry {
    let artifact = model.artifact();
    ModelEntry {
        version: artifact.version.clone(),
        description: artifact.description.clone(),
        trained_at: artifact.trained_at.clone().unwrap_or_default(),
        features: artifact.features.len(),
        holdout_auc: None,
    }
}

fn serving_of(state: &State) -> Serving {
    Serving {
        shadow: state
            .shadow
            .as_ref()
            .and_then(|version| state.models.get(version))
            .map(|(model, _)| model.clone()),
        experiment: state.experiment.clone(),
        models: state
            .models
            .iter()
            .map(|(version, (model, _))| (version.clone(), model.clone()))
            .collect(),
    }
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
    let hash = version
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{safe}-{:08x}.json", hash >> 32)
}

/// Writes `bytes` to `path` through a flushed temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    };
    let temp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io)?;
    if let Some(parent) = path.parent()
        && let Ok(directory) = std::fs::File::open(parent)
    {
        // Best effort: the rename is durable once the directory is.
        let _ = directory.sync_all();
    }
    Ok(())
}

fn save_artifact(dir: &Path, model: &Model) -> Result<String, RegistryError> {
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

fn write_state(dir: &Path, state: &State) -> Result<(), RegistryError> {
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
    };
    let path = dir.join(REGISTRY_FILE);
    let bytes = serde_json::to_vec_pretty(&file).map_err(|error| RegistryError::Unreadable {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    write_atomically(&path, &bytes)
}

fn read_state(path: &Path) -> Result<State, RegistryError> {
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
    Ok(State {
        models,
        experiment: file.experiment,
        previous: file.previous,
        shadow: file.shadow,
        aucs: file.aucs,
    })
}

impl From<RegistryError> for ServiceError {
    fn from(error: RegistryError) -> Self {
        ServiceError::Registry(Arc::new(error))
    }
}
