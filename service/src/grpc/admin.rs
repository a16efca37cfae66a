//! `nudge.v1.Admin`: catalog validation and reload, runtime statistics,
//! models, journeys, the cluster's topology.

use crate::convert;
use crate::engine::Engine;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Decisions an export stream holds ahead of the client.
const EXPORT_BUFFER: usize = 256;

/// The Admin service over an [`Engine`].
#[derive(Debug, Clone)]
pub struct AdminService {
    engine: Arc<Engine>,
}

impl AdminService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn validate_catalog(
        &self,
        request: Request<proto::ValidateCatalogRequest>,
    ) -> Result<Response<proto::ValidateCatalogResponse>, Status> {
        let response = match self.engine.validate_catalog(&request.into_inner().toml) {
            Ok(summary) => proto::ValidateCatalogResponse {
                valid: true,
                problems: Vec::new(),
                summary: Some(convert::catalog_summary(summary)),
            },
            Err(problems) => proto::ValidateCatalogResponse {
                valid: false,
                problems: convert::catalog_problems(problems),
                summary: None,
            },
        };
        Ok(Response::new(response))
    }

    async fn reload_catalog(
        &self,
        request: Request<proto::ReloadCatalogRequest>,
    ) -> Result<Response<proto::ReloadCatalogResponse>, Status> {
        let text = request.into_inner().toml;
        let text = (!text.is_empty()).then_some(text.as_str());
        let (summary, previous_version) = self.engine.reload_catalog(text)?;
        Ok(Response::new(proto::ReloadCatalogResponse {
            summary: Some(convert::catalog_summary(summary)),
            previous_version,
        }))
    }

    async fn stats(
        &self,
        _request: Request<proto::StatsRequest>,
    ) -> Result<Response<proto::StatsResponse>, Status> {
        Ok(Response::new(convert::stats(self.engine.stats())))
    }

    type ExportDecisionsStream = ReceiverStream<Result<proto::LoggedDecision, Status>>;

    async fn export_decisions(
        &self,
        request: Request<proto::ExportDecisionsRequest>,
    ) -> Result<Response<Self::ExportDecisionsStream>, Status> {
        let range = convert::export_range(request.into_inner())?;
        let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        let engine = self.engine.clone();
        // The store reads one snapshot on a blocking thread; the bounded
        // channel holds it back while the client is slower than the disk.
        tokio::task::spawn_blocking(move || {
            let result = engine.export_blocking(range, &mut |decision| {
                sender
                    .blocking_send(Ok(convert::logged_decision(decision)))
                    .is_ok()
            });
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error.into()));
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn list_models(
        &self,
        _request: Request<proto::ListModelsRequest>,
    ) -> Result<Response<proto::ListModelsResponse>, Status> {
        Ok(Response::new(convert::models_listing(
            self.engine.list_models(),
        )))
    }

    async fn load_model(
        &self,
        request: Request<proto::LoadModelRequest>,
    ) -> Result<Response<proto::LoadModelResponse>, Status> {
        let request = request.into_inner();
        let score = (!request.score.is_empty()).then_some(request.score.as_str());
        if let Some(score) = score {
            convert::id("score", score, &self.engine.shared().config.limits)?;
        }
        let entry = self
            .engine
            .load_model(&request.artifact, request.holdout_auc, score)?;
        Ok(Response::new(proto::LoadModelResponse {
            model: Some(convert::loaded_model(entry)),
        }))
    }

    async fn promote_model(
        &self,
        request: Request<proto::PromoteModelRequest>,
    ) -> Result<Response<proto::ModelsChanged>, Status> {
        let request = request.into_inner();
        let variant = (!request.variant.is_empty()).then_some(request.variant.as_str());
        let experiment = self.engine.promote_model(
            &request.version,
            request.share_percent,
            variant,
            request.force,
        )?;
        Ok(Response::new(proto::ModelsChanged {
            variants: convert::serving_variants(&experiment.variants),
        }))
    }

    async fn rollback(
        &self,
        _request: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::ModelsChanged>, Status> {
        let experiment = self.engine.rollback_model()?;
        Ok(Response::new(proto::ModelsChanged {
            variants: convert::serving_variants(&experiment.variants),
        }))
    }

    async fn set_shadow(
        &self,
        request: Request<proto::SetShadowRequest>,
    ) -> Result<Response<proto::SetShadowResponse>, Status> {
        let version = request.into_inner().version;
        let version = (!version.is_empty()).then_some(version.as_str());
        self.engine.set_shadow(version)?;
        Ok(Response::new(proto::SetShadowResponse {
            version: version.unwrap_or_default().to_owned(),
        }))
    }

    type ExportEventsStream = ReceiverStream<Result<proto::LoggedEvent, Status>>;

    async fn export_events(
        &self,
        request: Request<proto::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let request = request.into_inner();
        let range = convert::export_range(proto::ExportDecisionsRequest {
            since: request.since,
            until: request.until,
        })?;
        let (sender, receiver) = tokio::sync::mpsc::channel(EXPORT_BUFFER);
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let result = engine.export_events_blocking(range, &mut |event| {
                sender
                    .blocking_send(Ok(convert::logged_event(event)))
                    .is_ok()
            });
            if let Err(error) = result {
                let _ = sender.blocking_send(Err(error.into()));
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn list_journeys(
        &self,
        _request: Request<proto::ListJourneysRequest>,
    ) -> Result<Response<proto::ListJourneysResponse>, Status> {
        let journeys = self.engine.journeys();
        Ok(Response::new(proto::ListJourneysResponse {
            journeys: journeys.iter().map(convert::journey_report).collect(),
        }))
    }

    async fn get_customer_journeys(
        &self,
        request: Request<proto::GetCustomerJourneysRequest>,
    ) -> Result<Response<proto::GetCustomerJourneysResponse>, Status> {
        let customer_id = request.into_inner().customer_id;
        let limits = &self.engine.shared().config.limits;
        convert::id("customer_id", &customer_id, limits)?;
        let (journeys, book) = self.engine.customer_journeys(&customer_id).await?;
        Ok(Response::new(convert::customer_journeys(&journeys, &book)))
    }

    async fn cancel_journey_run(
        &self,
        request: Request<proto::CancelJourneyRunRequest>,
    ) -> Result<Response<proto::CancelJourneyRunResponse>, Status> {
        let request = request.into_inner();
        let limits = &self.engine.shared().config.limits;
        convert::id("customer_id", &request.customer_id, limits)?;
        let cancelled = self
            .engine
            .cancel_journey_run(&request.customer_id, &request.journey_id)
            .await?;
        Ok(Response::new(proto::CancelJourneyRunResponse { cancelled }))
    }

    async fn pause_journey(
        &self,
        request: Request<proto::PauseJourneyRequest>,
    ) -> Result<Response<proto::PauseJourneyResponse>, Status> {
        let changed = self
            .engine
            .pause_journey(&request.into_inner().journey_id)?;
        Ok(Response::new(proto::PauseJourneyResponse { changed }))
    }

    async fn resume_journey(
        &self,
        request: Request<proto::ResumeJourneyRequest>,
    ) -> Result<Response<proto::ResumeJourneyResponse>, Status> {
        let (changed, woken) = self
            .engine
            .resume_journey(&request.into_inner().journey_id)?;
        Ok(Response::new(proto::ResumeJourneyResponse {
            changed,
            customers_woken: u64::try_from(woken).unwrap_or(u64::MAX),
        }))
    }

    async fn topology(
        &self,
        _request: Request<proto::TopologyRequest>,
    ) -> Result<Response<proto::TopologyResponse>, Status> {
        let Some(cluster) = self.engine.cluster().cloned() else {
            return Err(Status::failed_precondition(
                "this node is not in a cluster (cluster.enabled is off)",
            ));
        };
        let topology = tokio::task::spawn_blocking(move || cluster.topology())
            .await
            .map_err(|error| Status::internal(error.to_string()))?
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(convert::topology(topology)))
    }
}
