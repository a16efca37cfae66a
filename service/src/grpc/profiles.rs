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

/// An optional channel: empty means every channel.
fn channel(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
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
        let request = request.into_inner();
        let limits = &self.engine.shared().config.limits;
        convert::id("customer_id", &request.customer_id, limits)?;
        convert::id("channel", &request.channel, limits)?;
        let state = convert::consent(request.state)?;
        let previous = self
            .engine
            .set_consent(&request.customer_id, &request.channel, state)
            .await?;
        Ok(Response::new(convert::consent_response(previous)))
    }

    async fn suppress(
        &self,
        request: Request<proto::SuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let request = request.into_inner();
        let limits = &self.engine.shared().config.limits;
        convert::id("customer_id", &request.customer_id, limits)?;
        if request.note.len() > limits.max_string_bytes {
            return Err(crate::error::ServiceError::invalid(
                "note",
                format!("is longer than {} bytes", limits.max_string_bytes),
            )
            .into());
        }
        let reason = convert::suppression_reason(request.reason)?;
        let changed = self
            .engine
            .change_suppression(
                &request.customer_id,
                channel(&request.channel),
                reason,
                &request.note,
                false,
            )
            .await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }

    async fn unsuppress(
        &self,
        request: Request<proto::UnsuppressRequest>,
    ) -> Result<Response<proto::SuppressResponse>, Status> {
        let request = request.into_inner();
        convert::id(
            "customer_id",
            &request.customer_id,
            &self.engine.shared().config.limits,
        )?;
        let reason = convert::suppression_reason(request.reason)?;
        let changed = self
            .engine
            .change_suppression(
                &request.customer_id,
                channel(&request.channel),
                reason,
                "",
                true,
            )
            .await?;
        Ok(Response::new(proto::SuppressResponse { changed }))
    }
}
