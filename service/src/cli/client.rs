//! The connection to a running nudge server (plain or TLS, with a client
//! certificate and a bearer token when given), the one way every subcommand
//! calls it ([`Rpc`], [`ask`]), and the conversion of gRPC and transport
//! failures into errors a person can act on.

use std::error::Error as StdError;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail};
use nudge_proto::v1::{
    AckRequest, AckResponse, CancelJourneyRunRequest, CancelJourneyRunResponse, DecideRequest,
    DecideResponse, Event, ExportDecisionsRequest, ExportEventsRequest, ForgetRequest,
    ForgetResponse, GetCustomerJourneysRequest, GetCustomerJourneysResponse, GetProfileRequest,
    ListJourneysRequest, ListJourneysResponse, ListModelsRequest, ListModelsResponse,
    LoadModelRequest, LoadModelResponse, LoggedDecision, LoggedEvent, ModelsChanged,
    PauseJourneyRequest, PauseJourneyResponse, Profile, PromoteModelRequest, ReloadCatalogRequest,
    ReloadCatalogResponse, ReportOutcomeRequest, ReportOutcomeResponse, ResumeJourneyRequest,
    ResumeJourneyResponse, RollbackRequest, SetConsentRequest, SetConsentResponse,
    SetShadowRequest, SetShadowResponse, StatsRequest, StatsResponse, SubscribeRequest,
    SuppressRequest, SuppressResponse, TopologyRequest, TopologyResponse, TrackResponse,
    UnsuppressRequest, admin_client::AdminClient, decisions_client::DecisionsClient,
    dispatches_client::DispatchesClient, events_client::EventsClient,
    profiles_client::ProfilesClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::{Interceptor, interceptor::InterceptedService};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::ClientArgs;

/// How long to wait for the TCP/HTTP2 connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for any one call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the server that sends the credentials with every call.
pub type Connection = InterceptedService<Channel, Credentials>;

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("token", &self.authorization.is_some())
            .finish()
    }
}

impl Credentials {
    /// Credentials carrying `token`, if any.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let authorization = token
            .map(|token| {
                let token = token.trim();
                if token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                    bail!("--token: the token must be printable ASCII without spaces");
                }
                let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow!("--token: not usable as gRPC metadata"))?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self { authorization })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// Adds `http://` to an address given without a scheme (`localhost:50051`).
pub fn normalize_address(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Reads the PEM file given with `flag`.
fn read_pem(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("{flag}: cannot read {}: {e}", path.display()))
}

/// The TLS settings for an `https://` address: the server's CA from
/// `--ca-cert`, and the client's certificate and key when given.
fn tls_config(address: &str, options: &ClientArgs) -> anyhow::Result<ClientTlsConfig> {
    let Some(ca_cert) = &options.ca_cert else {
        bail!(
            "{address} uses TLS: give --ca-cert FILE, the CA certificate (PEM) that signed the server's certificate"
        );
    };
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read_pem("--ca-cert", ca_cert)?));
    match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read_pem("--client-cert", cert)?,
                read_pem("--client-key", key)?,
            ));
        }
        (None, None) => {}
        (Some(_), None) => bail!("--client-cert needs --client-key"),
        (None, Some(_)) => bail!("--client-key needs --client-cert"),
    }
    Ok(tls)
}

/// Connects to the server in `options`; the error names the address that could
/// not be reached and why.
pub async fn connect(options: &ClientArgs) -> anyhow::Result<Connection> {
    let server = options.server.as_str();
    let credentials = Credentials::new(options.token.as_deref())?;
    let address = normalize_address(server);
    let mut endpoint = Endpoint::from_shared(address.clone())
        .map_err(|e| anyhow!("invalid server address '{server}': {}", error_chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if address.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls_config(&address, options)?)
            .map_err(|e| anyhow!("TLS settings for {address}: {}", error_chain(&e)))?;
    } else if options.ca_cert.is_some()
        || options.client_cert.is_some()
        || options.client_key.is_some()
    {
        bail!(
            "--ca-cert, --client-cert and --client-key need an https:// server address, not {address}"
        );
    }
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow!(
            "could not reach the nudge server at {address}: {} (is it running? set --server or NUDGE_SERVER)",
            error_chain(&e)
        )
    })?;
    Ok(InterceptedService::new(channel, credentials))
}

/// A request of one `nudge.v1` method: the client and method that send it.
pub trait Rpc {
    /// What the server answers.
    type Response;

    /// Sends the request over `connection`.
    fn send(
        self,
        connection: Connection,
    ) -> impl Future<Output = Result<tonic::Response<Self::Response>, Status>>;
}

/// One [`Rpc`] implementation per line: request => response: client::method.
macro_rules! rpc {
    ($($request:ty => $response:ty: $client:ident::$method:ident;)*) => {$(
        impl Rpc for $request {
            type Response = $response;

            async fn send(
                self,
                connection: Connection,
            ) -> Result<tonic::Response<$response>, Status> {
                $client::new(connection).$method(self).await
            }
        }
    )*};
}

rpc! {
    DecideRequest => DecideResponse: DecisionsClient::decide;
    ReportOutcomeRequest => ReportOutcomeResponse: DecisionsClient::report_outcome;
    Event => TrackResponse: EventsClient::track;
    GetProfileRequest => Profile: ProfilesClient::get_profile;
    SetConsentRequest => SetConsentResponse: ProfilesClient::set_consent;
    SuppressRequest => SuppressResponse: ProfilesClient::suppress;
    UnsuppressRequest => SuppressResponse: ProfilesClient::unsuppress;
    ForgetRequest => ForgetResponse: ProfilesClient::forget;
    ReloadCatalogRequest => ReloadCatalogResponse: AdminClient::reload_catalog;
    StatsRequest => StatsResponse: AdminClient::stats;
    ExportDecisionsRequest => tonic::Streaming<LoggedDecision>: AdminClient::export_decisions;
    ExportEventsRequest => tonic::Streaming<LoggedEvent>: AdminClient::export_events;
    ListModelsRequest => ListModelsResponse: AdminClient::list_models;
    LoadModelRequest => LoadModelResponse: AdminClient::load_model;
    PromoteModelRequest => ModelsChanged: AdminClient::promote_model;
    RollbackRequest => ModelsChanged: AdminClient::rollback;
    SetShadowRequest => SetShadowResponse: AdminClient::set_shadow;
    ListJourneysRequest => ListJourneysResponse: AdminClient::list_journeys;
    GetCustomerJourneysRequest => GetCustomerJourneysResponse: AdminClient::get_customer_journeys;
    CancelJourneyRunRequest => CancelJourneyRunResponse: AdminClient::cancel_journey_run;
    PauseJourneyRequest => PauseJourneyResponse: AdminClient::pause_journey;
    ResumeJourneyRequest => ResumeJourneyResponse: AdminClient::resume_journey;
    TopologyRequest => TopologyResponse: AdminClient::topology;
    SubscribeRequest => tonic::Streaming<nudge_proto::v1::Dispatch>: DispatchesClient::subscribe;
    AckRequest => AckResponse: DispatchesClient::ack;
}

/// Sends `request` over `connection`; a refusal reads `server said CODE:
/// message` (see [`status_error`]).
pub async fn answer<R: Rpc>(connection: Connection, request: R) -> anyhow::Result<R::Response> {
    Ok(request
        .send(connection)
        .await
        .map_err(status_error)?
        .into_inner())
}

/// Connects to the server in `options` and sends `request`: the one path of
/// every call the subcommands make.
pub async fn ask<R: Rpc>(options: &ClientArgs, request: R) -> anyhow::Result<R::Response> {
    answer(connect(options).await?, request).await
}

/// A gRPC status as an error showing its code name and message, e.g.
/// `server said INVALID_ARGUMENT: candidate 'x' is not in the catalog`.
pub fn status_error(status: Status) -> anyhow::Error {
    let code = code_name(status.code());
    let message = status.message().trim();
    // A transport failure (e.g. a TLS alert) carries its cause as the source.
    let cause = StdError::source(&status)
        .map(|source| {
            let chain = error_chain(source);
            let chain = chain
                .strip_prefix(message)
                .and_then(|rest| rest.strip_prefix(": "))
                .unwrap_or(&chain);
            format!(" ({chain})")
        })
        .unwrap_or_default();
    if message.is_empty() {
        anyhow!("server said {code}{cause}")
    } else {
        anyhow!("server said {code}: {message}{cause}")
    }
}

/// The canonical gRPC name of a status code, e.g. `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error and its sources joined with `: `, skipping repeats (transport
/// errors often wrap the same message twice).
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_show_code_name_and_message() {
        let err = status_error(Status::invalid_argument(
            "candidate 'x' is not in the catalog",
        ));
        assert_eq!(
            err.to_string(),
            "server said INVALID_ARGUMENT: candidate 'x' is not in the catalog"
        );
        assert_eq!(
            status_error(Status::not_found("")).to_string(),
            "server said NOT_FOUND"
        );
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(
            normalize_address("localhost:50051"),
            "http://localhost:50051"
        );
        assert_eq!(
            normalize_address("http://10.0.0.1:9000"),
            "http://10.0.0.1:9000"
        );
    }

    fn options(server: &str) -> ClientArgs {
        ClientArgs {
            server: server.to_owned(),
            ..ClientArgs::default()
        }
    }

    #[tokio::test]
    async fn unreachable_server_names_the_address() {
        // Port 1 on localhost is essentially never listening.
        let err = connect(&options("127.0.0.1:1"))
            .await
            .expect_err("nothing listens there");
        let text = err.to_string();
        assert!(
            text.contains("could not reach the nudge server at http://127.0.0.1:1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn tls_flags_are_checked_before_connecting() {
        let err = connect(&options("https://127.0.0.1:1"))
            .await
            .expect_err("https without a CA");
        assert!(err.to_string().contains("--ca-cert"), "{err}");
        let plain_with_ca = ClientArgs {
            ca_cert: Some("ca.pem".into()),
            ..options("http://127.0.0.1:1")
        };
        let err = connect(&plain_with_ca)
            .await
            .expect_err("a CA for a plain address");
        assert!(err.to_string().contains("https://"), "{err}");
        let err = connect(&ClientArgs {
            token: Some("two words".into()),
            ..options("http://127.0.0.1:1")
        })
        .await
        .expect_err("a token with a space");
        assert!(err.to_string().contains("--token"), "{err}");
    }

    #[test]
    fn credentials_add_a_sensitive_bearer_header() {
        let mut credentials = Credentials::new(Some("s3cret")).expect("a usable token");
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let request = credentials
            .call(Request::new(()))
            .expect("the interceptor never refuses");
        let value = request
            .metadata()
            .get("authorization")
            .expect("the header is set");
        assert_eq!(value.to_str().expect("ascii"), "Bearer s3cret");
        assert!(value.is_sensitive());
        let mut anonymous = Credentials::new(None).expect("no token");
        let request = anonymous
            .call(Request::new(()))
            .expect("the interceptor never refuses");
        assert!(request.metadata().get("authorization").is_none());
    }
}
