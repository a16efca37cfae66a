//! Security: the bearer token on the protected calls (Admin, consent and
//! suppression changes), TLS and mTLS with certificates made here, and the
//! message size limit on every service.

use nudge_models::demo::CATALOG_TOML;
use nudge_proto::v1::admin_client::AdminClient;
use nudge_proto::v1::profiles_client::ProfilesClient;
use nudge_proto::v1::{
    ConsentState, GetProfileRequest, ReloadCatalogRequest, SetConsentRequest, StatsRequest,
    SuppressRequest, SuppressionReason, UnsuppressRequest,
};
use nudge_service::config::{Config, Secret};
use nudge_tests::{NOON, TempDir, TestServer, decide_request, event, text, with_token};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "t0ken-for-tests";
const DEMO_VERSION: &str = "demo-2026-11";

// ── Certificates ─────────────────────────────────────────────────────────────

/// A certificate authority made for one test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names is valid");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("valid names");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed by the CA");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.issue("nudge server", ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Leaf {
        self.issue("nudge client", ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client TLS configuration that trusts this CA.
    fn trusted_by_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.pem))
    }
}

impl Leaf {
    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }
}

/// Writes `content` to `name` in `dir`.
fn write_file(dir: &TempDir, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write a temp file");
    path
}

fn configure_tls(config: &mut Config, dir: &TempDir, server: &Leaf, client_ca: Option<&Ca>) {
    config.tls.cert = Some(write_file(dir, "server.pem", &server.cert));
    config.tls.key = Some(write_file(dir, "server.key", &server.key));
    config.tls.client_ca = client_ca.map(|ca| write_file(dir, "client-ca.pem", &ca.pem));
}

/// Connects with `tls` and makes one open call (a health check): an error
/// if the connection, the handshake or the call fails.
async fn health_over(server: &TestServer, tls: ClientTlsConfig) -> Result<(), String> {
    let channel = server
        .tls_channel(tls)
        .await
        .map_err(|error| format!("connect: {error:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|status| format!("call: {status:?}"))
}

// ── Requests ─────────────────────────────────────────────────────────────────

fn consent(customer: &str) -> SetConsentRequest {
    SetConsentRequest {
        customer_id: customer.into(),
        channel: "email".into(),
        state: ConsentState::OptedOut.into(),
    }
}

fn reload() -> ReloadCatalogRequest {
    assert!(
        CATALOG_TOML.contains(DEMO_VERSION),
        "the demo's version moved"
    );
    ReloadCatalogRequest {
        toml: CATALOG_TOML.replacen(DEMO_VERSION, "demo-reloaded", 1),
    }
}

async fn token_server() -> TestServer {
    TestServer::start_with(|config| config.auth.token = Some(Secret::new(TOKEN))).await
}

fn email_consent(profile: &nudge_proto::v1::Profile) -> Option<ConsentState> {
    profile
        .consent
        .iter()
        .find(|consent| consent.channel == "email")
        .map(|consent| consent.state())
}

// ── Bearer token ─────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_the_token_and_a_refusal_changes_nothing() {
    let server = token_server().await;
    let mut admin = server.admin().await;

    let missing = admin.reload_catalog(reload()).await.expect_err("no token");
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert_eq!(missing.message(), "missing bearer token");
    let wrong = admin
        .reload_catalog(with_token(reload(), "not-the-token"))
        .await
        .expect_err("wrong token");
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    assert!(!wrong.message().contains(TOKEN), "{wrong:?}");
    let stats = admin
        .stats(StatsRequest::default())
        .await
        .expect_err("Stats is an Admin call too");
    assert_eq!(stats.code(), Code::Unauthenticated);
    assert_eq!(
        server.engine.catalog().version,
        DEMO_VERSION,
        "a refused reload changes nothing"
    );

    let reloaded = admin
        .reload_catalog(with_token(reload(), TOKEN))
        .await
        .expect("the right token")
        .into_inner();
    assert_eq!(reloaded.previous_version, DEMO_VERSION);
    assert_eq!(server.engine.catalog().version, "demo-reloaded");
    admin
        .stats(with_token(StatsRequest::default(), TOKEN))
        .await
        .expect("Stats with the token");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_changes_need_the_token_and_a_refusal_changes_nothing() {
    let server = token_server().await;
    let mut profiles = server.profiles().await;

    // An unknown customer stays unknown.
    let unknown = "c-sec-unknown";
    let missing = profiles
        .set_consent(consent(unknown))
        .await
        .expect_err("no token");
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    let wrong = profiles
        .set_consent(with_token(consent(unknown), "Bearer"))
        .await
        .expect_err("wrong token");
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    let profile = server.profile(unknown).await.expect_err("still unknown");
    assert_eq!(profile.code(), Code::NotFound);

    // A known customer keeps its consent.
    let known = "c-sec-known";
    assert!(!server.track(event(known, "e-1", "login", NOON)).await);
    for request in [
        tonic::Request::new(consent(known)),
        with_token(consent(known), "t0ken-for-test"),
    ] {
        profiles
            .set_consent(request)
            .await
            .expect_err("refused without the right token");
    }
    let profile = server.profile(known).await.expect("known");
    assert_eq!(email_consent(&profile), None, "{profile:?}");

    let previous = profiles
        .set_consent(with_token(consent(known), TOKEN))
        .await
        .expect("the right token")
        .into_inner()
        .previous();
    assert_eq!(previous, ConsentState::Unspecified);
    let profile = server.profile(known).await.expect("known");
    assert_eq!(email_consent(&profile), Some(ConsentState::OptedOut));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_changes_need_the_token() {
    let server = token_server().await;
    let mut profiles = server.profiles().await;
    let customer = "c-sec-suppress";
    assert!(!server.track(event(customer, "e-1", "login", NOON)).await);
    let suppress = || SuppressRequest {
        customer_id: customer.into(),
        channel: String::new(),
        reason: SuppressionReason::Legal.into(),
        note: "T-1".into(),
    };
    let refused = profiles.suppress(suppress()).await.expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let profile = server.profile(customer).await.expect("known");
    assert!(profile.suppressions.is_empty(), "{profile:?}");

    assert!(
        profiles
            .suppress(with_token(suppress(), TOKEN))
            .await
            .expect("with the token")
            .into_inner()
            .changed
    );
    let unsuppress = UnsuppressRequest {
        customer_id: customer.into(),
        ..Default::default()
    };
    let refused = profiles
        .unsuppress(with_token(unsuppress.clone(), "wrong"))
        .await
        .expect_err("wrong token");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let profile = server.profile(customer).await.expect("known");
    assert_eq!(profile.suppressions.len(), 1, "{profile:?}");
    assert!(
        profiles
            .unsuppress(with_token(unsuppress, TOKEN))
            .await
            .expect("with the token")
            .into_inner()
            .changed
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_events_outcomes_and_profile_reads_stay_open() {
    let server = token_server().await;
    let customer = "c-sec-open";
    assert!(!server.track(event(customer, "e-1", "login", NOON)).await);
    let decision = server.decide(decide_request(customer, "home_banner")).await;
    let served = decision.served.first().expect("something is served");
    server
        .decisions()
        .await
        .report_outcome(nudge_proto::v1::ReportOutcomeRequest {
            customer_id: customer.into(),
            decision_id: decision.decision_id.clone(),
            action_id: served.action_id.clone(),
            outcome: nudge_proto::v1::Outcome::Impression.into(),
            ..Default::default()
        })
        .await
        .expect("ReportOutcome is open");
    server
        .profiles()
        .await
        .get_profile(GetProfileRequest {
            customer_id: customer.into(),
        })
        .await
        .expect("GetProfile is open");
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .expect("health is open");
    server.stop().await;
}

// ── TLS and mTLS ─────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_needs_the_servers_ca() {
    let dir = TempDir::new("security");
    let ca = Ca::new("server CA");
    let other = Ca::new("another CA");
    let leaf = ca.server();
    let server = TestServer::start_with(|config| configure_tls(config, &dir, &leaf, None)).await;

    health_over(&server, ca.trusted_by_client())
        .await
        .expect("the right CA");
    let error = health_over(&server, other.trusted_by_client())
        .await
        .expect_err("a CA that did not sign the server's certificate");
    assert!(error.contains("connect"), "{error}");
    let plain = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        HealthClient::new(server.channel().await)
            .check(HealthCheckRequest::default())
            .await
    })
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "plaintext must not be served on a TLS listener"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_accepts_only_certificates_of_the_client_ca() {
    let dir = TempDir::new("security");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let stranger_ca = Ca::new("stranger CA");
    let leaf = server_ca.server();
    let server = TestServer::start_with(|config| {
        configure_tls(config, &dir, &leaf, Some(&client_ca));
        config.auth.token = Some(Secret::new(TOKEN));
    })
    .await;

    let client = client_ca.client();
    let trusted = || server_ca.trusted_by_client();
    health_over(&server, trusted().identity(client.identity()))
        .await
        .expect("a client certificate signed by the client CA");
    health_over(&server, trusted())
        .await
        .expect_err("no client certificate");
    health_over(&server, trusted().identity(stranger_ca.client().identity()))
        .await
        .expect_err("a client certificate from another CA");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_client_certificate_stands_in_for_the_token() {
    let dir = TempDir::new("security");
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let leaf = server_ca.server();
    let server = TestServer::start_with(|config| {
        configure_tls(config, &dir, &leaf, Some(&client_ca));
        config.auth.token = Some(Secret::new(TOKEN));
    })
    .await;
    let channel = server
        .tls_channel(
            server_ca
                .trusted_by_client()
                .identity(client_ca.client().identity()),
        )
        .await
        .expect("mTLS connects");

    let mut admin = AdminClient::new(channel.clone());
    admin
        .stats(StatsRequest::default())
        .await
        .expect("the certificate, no token");
    let mut profiles = ProfilesClient::new(channel);
    let customer = "c-sec-mtls";
    profiles
        .set_consent(consent(customer))
        .await
        .expect("the certificate, no token");
    let profile = profiles
        .get_profile(GetProfileRequest {
            customer_id: customer.into(),
        })
        .await
        .expect("the consent made the customer known")
        .into_inner();
    assert_eq!(email_consent(&profile), Some(ConsentState::OptedOut));
    // A token that is sent is still checked.
    let wrong = admin
        .stats(with_token(StatsRequest::default(), "wrong"))
        .await
        .expect_err("a wrong token is refused even with a certificate");
    assert_eq!(wrong.code(), Code::PermissionDenied);
    server.stop().await;
}

// ── Message size ─────────────────────────────────────────────────────────────

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_gets_a_clean_status_on_every_service() {
    const LIMIT: usize = 16 * 1024;
    let server = TestServer::start_with(|config| config.limits.max_message_bytes = LIMIT).await;
    let big = "x".repeat(LIMIT + 1);
    let allowed = [Code::OutOfRange, Code::ResourceExhausted];
    let within = std::time::Duration::from_secs(10);

    let mut oversized = event("c-sec-big", "e-big", "login", NOON);
    oversized.properties.insert("blob".into(), text(&big));
    let track = tokio::time::timeout(within, async {
        server.events().await.track(oversized).await
    })
    .await
    .expect("an answer, not a hang")
    .expect_err("over the limit");
    assert!(allowed.contains(&track.code()), "{track:?}");
    assert_eq!(
        server
            .profile("c-sec-big")
            .await
            .expect_err("nothing applied")
            .code(),
        Code::NotFound
    );

    let health = tokio::time::timeout(within, async {
        HealthClient::new(server.channel().await)
            .check(HealthCheckRequest {
                service: big.clone(),
            })
            .await
    })
    .await
    .expect("an answer, not a hang")
    .expect_err("over the limit");
    assert!(allowed.contains(&health.code()), "{health:?}");

    let reload = tokio::time::timeout(within, async {
        server
            .admin()
            .await
            .validate_catalog(nudge_proto::v1::ValidateCatalogRequest { toml: big.clone() })
            .await
    })
    .await
    .expect("an answer, not a hang")
    .expect_err("over the limit");
    assert!(allowed.contains(&reload.code()), "{reload:?}");

    // A message within the limit still passes.
    server
        .decide(decide_request("c-sec-small", "home_banner"))
        .await;
    server.stop().await;
}
