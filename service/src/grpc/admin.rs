//! `nudge.v1.Admin`: catalog validation and reload, runtime statistics.

use crate::convert;
use crate::engine::Engine;
use nudge_proto::v1 as proto;
use std::sync::Arc;
use tonic::{Request, Response, Status};

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
}
