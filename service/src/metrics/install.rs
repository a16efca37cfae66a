//! The exporter: the process-global Prometheus recorder and its `/metrics`
//! HTTP listener.

use super::{
    DECIDE_DURATION_BUCKETS, DECIDE_DURATION_SECONDS, JOURNEY_LATENESS_BUCKETS,
    JOURNEY_STEP_BUCKETS, JOURNEY_STEP_SECONDS, JOURNEY_TIMER_LATENESS_SECONDS,
    REDIS_ROUND_TRIP_SECONDS, STORAGE_CHECKPOINT_BUCKETS, STORAGE_CHECKPOINT_SECONDS,
    STORAGE_COMMIT_BUCKETS, STORAGE_COMMIT_SECONDS, describe,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why the exporter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A recorder is already installed in this process.
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    /// Not called from within a Tokio runtime.
    #[error("the metrics exporter must be installed from within a Tokio runtime")]
    NoRuntime,
    /// The listener could not bind its address.
    #[error("cannot listen on {address}: {message}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        message: String,
    },
    /// Another exporter problem.
    #[error("metrics exporter: {0}")]
    Exporter(#[from] BuildError),
}

/// Whether [`install`] succeeded once in this process.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the Prometheus recorder as the process-global recorder and serves
/// it over HTTP on `address` (any path; `/metrics` by convention), on the
/// current Tokio runtime. Call it before starting the engine. Returns an error,
/// never panics, when a recorder is already installed or `address` cannot be
/// bound.
pub fn install(address: SocketAddr) -> Result<(), InstallError> {
    if INSTALLED.load(Ordering::Acquire) {
        return Err(InstallError::AlreadyInstalled);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| InstallError::NoRuntime)?;
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets_for_metric(
            Matcher::Full(DECIDE_DURATION_SECONDS.to_owned()),
            &DECIDE_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(STORAGE_COMMIT_SECONDS.to_owned()),
            &STORAGE_COMMIT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(REDIS_ROUND_TRIP_SECONDS.to_owned()),
            &STORAGE_COMMIT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(STORAGE_CHECKPOINT_SECONDS.to_owned()),
            &STORAGE_CHECKPOINT_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(JOURNEY_STEP_SECONDS.to_owned()),
            &JOURNEY_STEP_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(JOURNEY_TIMER_LATENESS_SECONDS.to_owned()),
            &JOURNEY_LATENESS_BUCKETS,
        )?
        .build()
        .map_err(|error| match error {
            BuildError::FailedToCreateHTTPListener(message) => {
                InstallError::Listen { address, message }
            }
            other => InstallError::Exporter(other),
        })?;
    // On failure the exporter future is dropped unpolled, closing its listener.
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::AlreadyInstalled)?;
    INSTALLED.store(true, Ordering::Release);
    runtime.spawn(async move {
        if let Err(error) = exporter.await {
            tracing::error!(?error, "the metrics listener stopped");
        }
    });
    describe();
    Ok(())
}
