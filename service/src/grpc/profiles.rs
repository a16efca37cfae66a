//! `nudge.v1.Profiles`: read a profile, change consent and suppression,
//! forget a customer; routed to the owner node in a cluster.

use super::forward;
use crate::convert;
use crate::engine::Engine;
use nudge_proto::v1 as proto;
use nudge_proto::v1::profiles_client::ProfilesClient;
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
        forward::route(
            &self.engine,
            "get_profile",
            request,
            |request| self.get_profile_here(request),
            |channel, request| async move { ProfilesClient::new(channel).get_profile(request).await },
        )
        .await
    }

    async fn set_consent(
        &self,
        request: Request<proto::SetConsentRequest>,
    ) -> Result<Response<proto::SetConsentResponse>, Status> {
        forward::route(
            &self.engine,
            "set_consent",
            request,
            |request| self.set_consent_here(request),
            |channel, request| async move { ProfilesClient::new(channel).set_consent(request).await },
        )
        .await
    }

    async fn suppress(
        &self,
        request: Request<proto::SuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        forward::route(
            &self.engine,
            "suppress",
            request,
            |request| self.suppress_here(request),
            |channel, request| async move { ProfilesClient::new(channel).suppress(request).await },
        )
        .await
    }

    async fn unsuppress(
        &self,
        request: Request<proto::UnsuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        forward::route(
            &self.engine,
            "unsuppress",
            request,
            |request| self.unsuppress_here(request),
            |channel, request| async move { ProfilesClient::new(channel).unsuppress(request).await },
        )
        .await
    }

    async fn forget(
        &self,
        request: Request<proto::ForgetRequest>,
    ) -> Result<Response<proto::ForgetResponse>, Status> {
        forward::route(
            &self.engine,
            "forget",
            request,
            |request| self.forget_here(request),
            |channel, request| async move { ProfilesClient::new(channel).forget(request).await },
        )
        .await
    }
}

impl ProfilesService {
    async fn get_profile_here(
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

    async fn set_consent_here(
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

    async fn suppress_here(
        &self,
        request: Request<proto::SuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let input = convert::suppress(request.into_inner(), &self.engine.shared().config.limits)?;
        let changed = self.engine.change_suppression(input).await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }

    async fn unsuppress_here(
        &self,
        request: Request<proto::UnsuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let input = convert::unsuppress(request.into_inner(), &self.engine.shared().config.limits)?;
        let changed = self.engine.change_suppression(input).await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }

    async fn forget_here(
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
