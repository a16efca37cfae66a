//! The engine's operations beside the customer calls: export and
//! retention of the decision log, profiles, catalog and model reloads,
//! passivation, stats and shutdown.

use super::{CatalogSource, Engine};
use crate::actors::customer::Snapshot;
use crate::error::ServiceError;
use crate::registry::{Listing, ModelEntry};
use crate::requests::StatsSnapshot;
use crate::stats::Stats;
use crate::store::{COMPACTION_CHUNK, Erased, EventRecord, LoggedDecision, TimeRange};
use nudge_models::catalog::{Catalog, CatalogProblems, CatalogSummary};
use nudge_models::customer::CustomerState;
use nudge_models::experiment::Experiment;
use nudge_models::model::Model;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Engine {
    /// Calls `visit` with every logged decision in `range` joined with its
    /// outcomes, oldest first, until it returns false. Blocking: run it off the
    /// async runtime's threads.
    pub fn export_blocking(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(LoggedDecision) -> bool,
    ) -> Result<u64, ServiceError> {
        Ok(self.shared.stores.log.export(range, visit)?)
    }

    /// Calls `visit` with every logged event applied in `range`, customer
    /// by customer and each customer's in order, until it returns false.
    /// Blocking: run it off the async runtime's threads.
    pub fn export_events_blocking(
        &self,
        range: TimeRange,
        visit: &mut dyn FnMut(EventRecord) -> bool,
    ) -> Result<u64, ServiceError> {
        Ok(self.shared.stores.log.export_events(range, visit)?)
    }

    /// Deletes decision, outcome and event log entries older than the
    /// retention (`storage.decision_retention_days`, 0 keeps everything);
    /// returns how many decisions and events were deleted.
    pub async fn apply_retention(&self) -> Result<Erased, ServiceError> {
        let days = self.shared.config.storage.decision_retention_days;
        if days == 0 {
            return Ok(Erased::default());
        }
        let span = nudge_models::time::Span(
            i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX),
        );
        let before = self.shared.clock.now().minus(span);
        let mut deleted = Erased::default();
        loop {
            let chunk = self
                .shared
                .stores
                .log
                .compact(before, COMPACTION_CHUNK)
                .wait()
                .await?;
            deleted.decisions += chunk.decisions;
            deleted.outcomes += chunk.outcomes;
            deleted.events += chunk.events;
            if chunk.decisions.max(chunk.events) < COMPACTION_CHUNK as u64 {
                return Ok(deleted);
            }
        }
    }

    /// The customer's state: from the live actor, else the store; NOT_FOUND if
    /// nudge has never heard of them. Reading does not activate an actor.
    pub async fn profile(&self, customer_id: &str) -> Result<CustomerState, ServiceError> {
        let unknown = || ServiceError::UnknownCustomer(customer_id.to_owned());
        if self.registry.get(customer_id).is_some() {
            let state = self.call(customer_id, |_| Snapshot).await??;
            // A live actor with nothing in it (e.g. only dry runs so far) is as
            // unknown as a customer that was never seen.
            if state.is_empty() {
                return Err(unknown());
            }
            return Ok(state);
        }
        self.shared
            .stores
            .state
            .load(customer_id)
            .await?
            .ok_or_else(unknown)
    }

    /// Validates catalog text without loading it.
    pub fn validate_catalog(&self, text: &str) -> Result<CatalogSummary, CatalogProblems> {
        Catalog::from_toml(text).map(|catalog| catalog.summary())
    }

    /// Replaces the running catalog with `text`, or re-reads the catalog's
    /// file when `text` is `None`. An invalid catalog changes nothing.
    /// Returns the new summary and the replaced version.
    pub fn reload_catalog(
        &self,
        text: Option<&str>,
    ) -> Result<(CatalogSummary, String), ServiceError> {
        let owned;
        let text = match (text, &self.catalog_source) {
            (Some(text), _) => text,
            (None, CatalogSource::File(path)) => {
                owned =
                    std::fs::read_to_string(path).map_err(|source| ServiceError::CannotRead {
                        what: "catalog file",
                        path: path.clone(),
                        source,
                    })?;
                &owned
            }
            (None, CatalogSource::Demo) => nudge_models::demo::CATALOG_TOML,
        };
        let catalog = Catalog::from_toml(text).map_err(nudge_models::Error::from)?;
        let summary = catalog.summary();
        self.shared.journeys.add_catalog(&catalog, text)?;
        let previous = self.shared.catalog.swap(Arc::new(catalog));
        self.shared.metrics.catalog_loaded(&summary.version);
        self.shared
            .metrics
            .journeys_declared(&self.shared.catalog.load());
        tracing::info!(version = %summary.version, previous = %previous.version, "catalog reloaded");
        Ok((summary, previous.version.clone()))
    }

    /// Replaces the serving model (the control of a running experiment)
    /// with the artifact `json`, or re-reads the configured model file when
    /// `json` is `None` (the embedded demo model when none is configured). A
    /// bad artifact, or one naming what the catalog lacks, is refused with
    /// the reason and the running model keeps serving. Returns the new and
    /// the replaced version.
    pub fn reload_model(&self, json: Option<&[u8]>) -> Result<(String, String), ServiceError> {
        let owned;
        let json = match (json, &self.shared.config.model) {
            (Some(json), _) => json,
            (None, Some(path)) => {
                owned = std::fs::read(path).map_err(|source| ServiceError::CannotRead {
                    what: "model file",
                    path: path.clone(),
                    source,
                })?;
                &owned
            }
            (None, None) => nudge_models::demo::MODEL_JSON.as_bytes(),
        };
        let model = Model::from_json(json)?;
        let version = model.version().to_owned();
        let previous =
            self.shared
                .models
                .replace_champion(model, &self.catalog(), self.shared.clock.now())?;
        self.shared.metrics.model_loaded(Some(&version));
        tracing::info!(%version, %previous, "model reloaded");
        Ok((version, previous))
    }

    /// The model registry: loaded models, the experiment, the history.
    pub fn list_models(&self) -> Listing {
        self.shared.models.list()
    }

    /// Loads an artifact into the registry, with the holdout AUC of its
    /// training report if known: an action model serves no one yet; the
    /// model of a profile score (`score`) computes that score at once.
    pub fn load_model(
        &self,
        json: &[u8],
        holdout_auc: Option<f64>,
        score: Option<&str>,
    ) -> Result<ModelEntry, ServiceError> {
        let model = Model::from_json(json)?;
        let catalog = self.catalog();
        let entry = match score {
            None => self.shared.models.load(model, &catalog, holdout_auc)?,
            Some(score) => {
                let entry =
                    self.shared
                        .models
                        .load_score_model(score, model, &catalog, holdout_auc)?;
                tracing::info!(version = %entry.version, %score, "score model loaded");
                return Ok(entry);
            }
        };
        tracing::info!(version = %entry.version, "model loaded into the registry");
        Ok(entry)
    }

    /// Tries a loaded model on `share` % of customers, ramps it, or at 100 %
    /// makes it serve everyone; unless `force`, not a model whose holdout
    /// AUC is below the control's by more than `models.max_auc_drop`.
    pub fn promote_model(
        &self,
        version: &str,
        share: u32,
        variant: Option<&str>,
        force: bool,
    ) -> Result<Experiment, ServiceError> {
        let margin = (!force).then_some(self.shared.config.models.max_auc_drop);
        let experiment =
            self.shared
                .models
                .promote(version, share, variant, margin, self.shared.clock.now())?;
        self.model_changed(&experiment, "model promoted");
        Ok(experiment)
    }

    /// Makes a loaded model score every decision silently (`None`: none).
    pub fn set_shadow(&self, version: Option<&str>) -> Result<(), ServiceError> {
        self.shared.models.set_shadow(version)?;
        tracing::info!(shadow = version.unwrap_or("(none)"), "shadow model set");
        Ok(())
    }

    /// Ends the experiment, or returns to the model that served before.
    pub fn rollback_model(&self) -> Result<Experiment, ServiceError> {
        let experiment = self.shared.models.rollback()?;
        self.model_changed(&experiment, "model rolled back");
        Ok(experiment)
    }

    fn model_changed(&self, experiment: &Experiment, what: &'static str) {
        let variants: Vec<String> = experiment
            .variants
            .iter()
            .map(|v| format!("{}={}@{}%", v.name, v.model_version, v.share))
            .collect();
        self.shared
            .metrics
            .model_loaded(experiment.control().map(|v| v.model_version.as_str()));
        tracing::info!(variants = %variants.join(" "), "{what}");
    }

    /// Shutdown: passivates every live actor, waits (up to `grace`) until each
    /// has stopped, and flushes the store. Call after the server stopped
    /// accepting calls.
    pub async fn shutdown(&self, grace: Duration) {
        self.registry.passivate_all();
        let until = Instant::now() + grace;
        while self.registry.live() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stores = self.shared.stores.clone();
        match tokio::task::spawn_blocking(move || stores.flush()).await {
            Ok(Ok(())) => tracing::info!("store flushed"),
            Ok(Err(error)) => tracing::error!(%error, "store not flushed"),
            Err(error) => tracing::error!(%error, "store flush did not finish"),
        }
    }

    /// Passivates actors idle at the service clock's now; returns how many.
    pub fn passivate_idle(&self) -> usize {
        self.registry.passivate_idle(self.shared.clock.now())
    }

    /// Counters and gauges.
    pub fn stats(&self) -> StatsSnapshot {
        let stats = &self.shared.stats;
        StatsSnapshot {
            uptime_seconds: stats.uptime_seconds(),
            live_customers: self.registry.live() as u64,
            decisions: Stats::get(&stats.decisions),
            fallbacks: Stats::get(&stats.fallbacks),
            fallbacks_by_reason: stats
                .fallbacks_by_reason()
                .into_iter()
                .map(|(reason, count)| (reason.code().to_owned(), count))
                .collect(),
            variants: stats.variants(),
            latency: stats.latency.summary(Instant::now()),
            events: Stats::get(&stats.events),
            duplicate_events: Stats::get(&stats.duplicate_events),
            outcomes: Stats::get(&stats.outcomes),
            filtered: stats
                .filtered()
                .into_iter()
                .map(|(reason, count)| (reason.code().to_owned(), count))
                .collect(),
            served: stats.served(),
            catalog_version: self.catalog().version.clone(),
            model_version: self
                .shared
                .models
                .serving()
                .champion()
                .map(|model| model.version().to_owned())
                .unwrap_or_default(),
            activations: Stats::get(&stats.activations),
            passivations: Stats::get(&stats.passivations),
            rejected: Stats::get(&stats.rejected),
        }
    }
}
