//! `nudge.v1.Decisions`: check a customer token's customer, route (to the
//! owner node in a cluster), validate, convert, call the engine, convert
//! back.

use super::{client_deadline, forward};
use crate::convert;
use crate::engine::Engine;
use crate::web;
use nudge_proto::v1 as proto;
use nudge_proto::v1::decisions_client::DecisionsClient;
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
        web::check_customer(request.extensions().get(), &request.get_ref().customer_id)?;
        forward::route(
            &self.engine,
            "decide",
            request,
            |request| self.decide_here(request),
            |channel, request| async move { DecisionsClient::new(channel).decide(request).await },
        )
        .await
    }

    async fn report_outcome(
        &self,
        request: Request<proto::ReportOutcomeRequest>,
    ) -> Result<Response<proto::ReportOutcomeResponse>, Status> {
        web::check_customer(request.extensions().get(), &request.get_ref().customer_id)?;
        forward::route(
            &self.engine,
            "report_outcome",
            request,
            |request| self.report_outcome_here(request),
            |channel, request| async move {
                DecisionsClient::new(channel).report_outcome(request).await
            },
        )
        .await
    }
}

impl DecisionsService {
    async fn decide_here(
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

    async fn report_outcome_here(
        &self,
        request: Request<proto::ReportOutcomeRequest>,
    ) -> Result<Response<proto::ReportOutcomeResponse>, Status> {
        let shared = self.engine.shared();
        let deadline = client_deadline(request.metadata());
        let input = convert::report_outcome(
            request.into_inner(),
            shared.clock.now(),
            &shared.config.limits,
        )?;
        let result = self.engine.report_outcome(input, deadline).await?;
        Ok(Response::new(proto::ReportOutcomeResponse {
            applied: result.applied,
            slot_released: result.slot_released,
        }))
    }
}
