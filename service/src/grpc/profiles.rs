//! `nudge.v1.Profiles`: read a profile, change consent and suppression.

use crate::convert;
use crate::engine::Engine;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Profiles service over an [`Engine`].
#[derive(Debug, Clone)]
pub struct ProfilesService {
    engine: Arc<Engine>,
}

impl ProfilesService {
    /// A service over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl proto::profiles_server::Profiles for ProfilesService {
    async fn get_profile(
        &self,
        request: Request<proto::GetProfileRequest>,
    ) -> Result<Response<proto::Profile>, Status> {
        let request = request.into_inner();
        let shared = self.engine.shared();
        convert::id("customer_id", &request.customer_id, &shared.config.limits)?;
        let state = self.engine.profile(&request.customer_id).await?;
        let catalog = self.engine.catalog();
        Ok(Response::new(convert::profile(
            &request.customer_id,
            &state,
            &catalog,
            shared.clock.now(),
        )))
    }

    async fn set_consent(
        &self,
        request: Request<proto::SetConsentRequest>,
    ) -> Result<Response<proto::SetConsentResponse>, Status> {
        let input =
            convert::set_consent(request.into_inner(), &self.engine.shared().config.limits)?;
        let previous = self
            .engine
            .set_consent(&input.customer_id, &input.channel, input.state)
            .await?;
        Ok(Response::new(convert::consent_response(previous)))
    }

    async fn suppress(
        &self,
        request: Request<proto::SuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let input = convert::suppress(request.into_inner(), &self.engine.shared().config.limits)?;
        let changed = self.engine.change_suppression(input).await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }

    async fn unsuppress(
        &self,
        request: Request<proto::UnsuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let input = convert::unsuppress(request.into_inner(), &self.engine.shared().config.limits)?;
        let changed = self.engine.change_suppression(input).await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }

    async fn forget(
        &self,
        request: Request<proto::ForgetRequest>,
    ) -> Result<Response<proto::ForgetResponse>, Status> {
        let request = request.into_inner();
        convert::id(
            "customer_id",
            &request.customer_id,
            &self.engine.shared().config.limits,
        )?;
        let erased = self.engine.forget(&request.customer_id).await?;
        Ok(Response::new(proto::ForgetResponse {
            state_erased: erased.state,
            decisions_erased: erased.decisions,
            outcomes_erased: erased.outcomes,
        }))
    }
}
