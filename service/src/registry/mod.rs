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
//!
//! While an experiment runs, a [`Trial`] counts each arm's served actions
//! and conversions, and [`ModelRegistry::check_guardrail`] (called after
//! every conversion) rolls the challenger back by itself once the
//! sequential test of [`nudge_models::guardrail`] finds it converting worse
//! than the control; the rollback and its reason are kept in the registry
//! file.
//!
//! - `files`: the registry file and the artifacts on disk;
//! - `trial`: the live figures of a running experiment and a guardrail
//!   rollback's record.

mod files;
#[cfg(test)]
mod tests;
mod trial;

pub use trial::{ArmName, GuardrailRollback, GuardrailStatus, Trial};

use arc_swap::ArcSwap;
use nudge_models::catalog::Catalog;
use nudge_models::experiment::{Experiment, ExperimentError};
use nudge_models::guardrail::{SequentialTest, Verdict};
use nudge_models::model::Model;
use nudge_models::scores::ScoreModels;
use nudge_models::time::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
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
    /// The running experiment's live figures, if one runs.
    trial: Option<Arc<Trial>>,
    /// The models computing profile scores, by score id.
    pub score_models: ScoreModels,
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

    /// The running experiment's live figures (the guardrail's), if one
    /// runs.
    pub fn trial(&self) -> Option<&Arc<Trial>> {
        self.trial.as_ref()
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
    /// The model cannot compute the profile score it was loaded for.
    #[error("model {version} cannot compute score {score}: {}", problems.join("; "))]
    NotAScoreModel {
        /// The model's version.
        version: String,
        /// The score.
        score: String,
        /// Why not: each feature it cannot compute, or the score's problem.
        problems: Vec<String>,
    },
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
    /// The live guardrail's reading of the running experiment: when its
    /// stage began and what the test says (`None`: no experiment runs, or
    /// the guardrail is off).
    pub guardrail: Option<GuardrailStatus>,
    /// The guardrail's last rollback, if it ever made one.
    pub last_guardrail_rollback: Option<GuardrailRollback>,
    /// The model computing each profile score: score id → version.
    pub score_models: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct State {
    models: BTreeMap<String, (Arc<Model>, String)>,
    experiment: Experiment,
    previous: Vec<String>,
    shadow: Option<String>,
    /// Each model's holdout AUC, from the report loaded with it.
    aucs: BTreeMap<String, f64>,
    /// The running experiment's live figures (not written: a restart
    /// begins a new stage).
    trial: Option<Arc<Trial>>,
    /// The guardrail's last rollback.
    last_guardrail_rollback: Option<GuardrailRollback>,
    /// The model computing each profile score: score id → version.
    scores: BTreeMap<String, String>,
}

/// The model registry.
#[derive(Debug)]
pub struct ModelRegistry {
    /// Where it is kept; `None` in memory.
    dir: Option<PathBuf>,
    state: Mutex<State>,
    serving: ArcSwap<Serving>,
    /// The live guardrail's test; `None`: off.
    guardrail: Option<SequentialTest>,
}

impl ModelRegistry {
    /// The registry in `dir` (`None`: in memory), at `now`, with the live
    /// guardrail's test (`None`: off). A directory with a registry file is
    /// read back (a running experiment begins a new stage of its test);
    /// otherwise `initial` serves everyone.
    pub fn open(
        dir: Option<PathBuf>,
        initial: Option<Model>,
        now: Timestamp,
        guardrail: Option<SequentialTest>,
    ) -> Result<Self, RegistryError> {
        let mut state = match dir.as_deref().map(|dir| dir.join(REGISTRY_FILE)) {
            Some(file) if file.exists() => files::read_state(&file)?,
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
                    trial: None,
                    last_guardrail_rollback: None,
                    scores: BTreeMap::new(),
                }
            }
        };
        state.trial = Trial::begin(&state.experiment, now).map(Arc::new);
        let registry = Self {
            dir,
            serving: ArcSwap::from_pointee(serving_of(&state)),
            state: Mutex::new(state),
            guardrail,
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
            files::write_state(dir, &next)?;
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
        let unknown = catalog.unknown_features(model.features());
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
            Some(dir) => files::save_artifact(dir, &model)?,
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
            aucs,
            ..guard.clone()
        };
        self.commit(&mut guard, next)?;
        Ok(listed)
    }

    /// Tries loaded model `version` on `share` % of customers (variant
    /// `name`), ramps the running challenger, or at 100 % makes it the model
    /// that serves everyone. Unless `guard` is `None` (forced), refused when
    /// both holdout AUCs are known and the model's is below the control's
    /// by more than `guard`. A new share begins a new stage of the live
    /// guardrail's test at `now`.
    pub fn promote(
        &self,
        version: &str,
        share: u32,
        name: Option<&str>,
        guard_margin: Option<f64>,
        now: Timestamp,
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
            trial: Trial::begin(&experiment, now).map(Arc::new),
            experiment: experiment.clone(),
            previous,
            ..guard.clone()
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
            experiment: experiment.clone(),
            previous,
            trial: None,
            ..guard.clone()
        };
        self.commit(&mut guard, next)?;
        Ok(experiment)
    }

    /// Reads the live guardrail on `trial`'s figures and, when the
    /// challenger converts worse than the control and `trial` is still the
    /// running stage, rolls it back: everyone on the control again, the
    /// rollback and its reason kept in the registry file. Returns the
    /// rollback made, if any (the caller logs it and counts it).
    pub fn check_guardrail(
        &self,
        trial: &Arc<Trial>,
        now: Timestamp,
    ) -> Result<Option<GuardrailRollback>, RegistryError> {
        let Some(test) = &self.guardrail else {
            return Ok(None);
        };
        let reading = trial.read(test);
        if reading.verdict != Verdict::Worse || !trial.trip() {
            return Ok(None);
        }
        let mut guard = self.lock();
        let running = guard
            .trial
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, trial));
        // Promoted, ramped or rolled back meanwhile: that stage is over.
        let (true, Some(status)) = (running, trial.status(test)) else {
            return Ok(None);
        };
        let control = status.control.model_version.clone();
        let rollback = GuardrailRollback { at: now, status };
        let next = State {
            experiment: Experiment::single(&control),
            trial: None,
            last_guardrail_rollback: Some(rollback.clone()),
            ..guard.clone()
        };
        self.commit(&mut guard, next)?;
        Ok(Some(rollback))
    }

    /// Puts `model` in the control's place (a reload of the configured
    /// model file): it serves everyone outside an experiment, and the
    /// control's share of a running one. A new artifact under a version
    /// already loaded replaces it (the file was retrained in place).
    /// Returns the version replaced. A running experiment begins a new
    /// stage of the live guardrail's test at `now` (its control changed).
    pub fn replace_champion(
        &self,
        model: Model,
        catalog: &Catalog,
        now: Timestamp,
    ) -> Result<String, RegistryError> {
        let version = model.version().to_owned();
        let unknown = catalog.unknown_features(model.features());
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
                Some(dir) => files::save_artifact(dir, &model)?,
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
            trial: Trial::begin(&experiment, now).map(Arc::new),
            experiment,
            previous,
            ..guard.clone()
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
            guardrail: guard
                .trial
                .as_ref()
                .zip(self.guardrail.as_ref())
                .and_then(|(trial, test)| trial.status(test)),
            last_guardrail_rollback: guard.last_guardrail_rollback.clone(),
            score_models: guard.scores.clone(),
        }
    }

    /// Validates `model` as the model of profile score `score` of
    /// `catalog` (a `model = true` score; features that read only the
    /// profile and earlier scores), loads it, and makes it compute the
    /// score for every customer at once, replacing the score's previous
    /// model (loading that one again rolls back). Each customer's score
    /// is recomputed at their next decision.
    pub fn load_score_model(
        &self,
        score: &str,
        model: Model,
        catalog: &Catalog,
        holdout_auc: Option<f64>,
    ) -> Result<ModelEntry, RegistryError> {
        if let Err(problems) = catalog.scores.check_model(score, &model) {
            return Err(RegistryError::NotAScoreModel {
                version: model.version().to_owned(),
                score: score.to_owned(),
                problems,
            });
        }
        let listed = self.load(model, catalog, holdout_auc)?;
        let mut guard = self.lock();
        if guard.scores.get(score) != Some(&listed.version) {
            let mut next = guard.clone();
            next.scores.insert(score.to_owned(), listed.version.clone());
            self.commit(&mut guard, next)?;
        }
        Ok(listed)
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
        score_models: ScoreModels::new(
            state
                .scores
                .iter()
                .filter_map(|(score, version)| {
                    let (model, _) = state.models.get(version)?;
                    Some((score.clone(), model.clone()))
                })
                .collect(),
        ),
        shadow: state
            .shadow
            .as_ref()
            .and_then(|version| state.models.get(version))
            .map(|(model, _)| model.clone()),
        trial: state.trial.clone(),
        experiment: state.experiment.clone(),
        models: state
            .models
            .iter()
            .map(|(version, (model, _))| (version.clone(), model.clone()))
            .collect(),
    }
}
