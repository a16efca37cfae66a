//! `nudge.v1.Decisions`: validate, convert, call the engine, convert back.

use super::client_deadline;
use crate::convert;
use crate::engine::Engine;
use crate::error::ServiceError;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// The Decisions service over an [`Engine`].
#[derive(Debug, Clone)]
pub struct DecisionsService {
    engine: Arc<Engine>,
}

impl DecisionsService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::decisions_server::Decisions for DecisionsService {
    async fn decide(
        &self,
        request: Request<proto::DecideRequest>,
    ) -> Result<Response<proto::DecideResponse>, Status> {
        let started = Instant::now();
        let deadline = client_deadline(request.metadata());
        let input =
            convert::decide_input(request.into_inner(), &self.engine.shared().config.limits)?;
        let (explain, request_id) = (input.explain, input.request_id.clone());
        let reply = self.engine.decide(input, deadline).await?;
        let server_time_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(Response::new(convert::decide_response(
            reply,
            explain,
            request_id,
            server_time_us,
        )))
    }

    async fn report_outcome(
        &self,
        request: Request<proto::ReportOutcomeRequest>,
    ) -> Result<Response<proto::ReportOutcomeResponse>, Status> {
        let request = request.into_inner();
        let shared = self.engine.shared();
        let limits = &shared.config.limits;
        convert::id("customer_id", &request.customer_id, limits)?;
        convert::id("decision_id", &request.decision_id, limits)?;
        convert::id("action_id", &request.action_id, limits)?;
        let outcome = convert::outcome(request.outcome)?;
        if let Some(reward) = request.reward.filter(|reward| !reward.is_finite()) {
            return Err(ServiceError::invalid(
                "reward",
                format!("{reward} is not a finite number"),
            )
            .into());
        }
        let at = convert::timestamp("timestamp", request.timestamp, shared.clock.now(), limits)?;
        let result = self
            .engine
            .report_outcome(
                &request.customer_id,
                &request.decision_id,
                &request.action_id,
                outcome,
                request.reward,
                at,
            )
            .await?;
        Ok(Response::new(proto::ReportOutcomeResponse {
            applied: result.applied,
            slot_released: result.slot_released,
        }))
    }
}
