//! TLS on the gRPC listener (rustls on ring, through tonic): the server's
//! certificate and key from `tls.cert` / `tls.key`, and with `tls.client_ca`
//! a required, verified client certificate on every connection (mTLS).

use crate::config::{ConfigError, TlsFiles};
use std::time::Duration;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The tonic TLS configuration of `files`, checked now: a file that holds no
/// usable PEM is an error naming its setting.
pub fn server_config(files: &TlsFiles) -> Result<ServerTlsConfig, ConfigError> {
    let identity = ServerTlsConfig::new()
        .identity(Identity::from_pem(&files.cert, &files.key))
        .timeout(HANDSHAKE_TIMEOUT);
    check(
        &identity,
        "tls.cert",
        "tls.cert and tls.key are not a usable certificate and key",
    )?;
    match &files.client_ca {
        None => Ok(identity),
        Some(client_ca) => {
            let mutual = identity
                .client_ca_root(Certificate::from_pem(client_ca))
                .client_auth_optional(false);
            check(&mutual, "tls.client_ca", "no usable CA certificate")?;
            Ok(mutual)
        }
    }
}

/// Builds the acceptor once to find problems before serving.
fn check(config: &ServerTlsConfig, field: &'static str, what: &str) -> Result<(), ConfigError> {
    Server::builder()
        .tls_config(config.clone())
        .map(|_| ())
        .map_err(|error| ConfigError::Invalid {
            field,
            reason: format!("{what}: {}", error_chain(&error)),
        })
}

/// An error and its sources, joined with `: `.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> (Vec<u8>, Vec<u8>) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                .expect("a self-signed certificate");
        (
            cert.pem().into_bytes(),
            signing_key.serialize_pem().into_bytes(),
        )
    }

    fn field(result: Result<ServerTlsConfig, ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { field, .. }) => field,
            Err(other) => panic!("expected an invalid setting, got {other}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn unusable_pem_names_its_setting() {
        let (cert, key) = self_signed();
        let garbage = b"not a PEM file\n".to_vec();
        let files = |cert: &[u8], key: &[u8], client_ca: Option<&[u8]>| TlsFiles {
            cert: cert.to_vec(),
            key: key.to_vec(),
            client_ca: client_ca.map(<[u8]>::to_vec),
        };
        assert_eq!(
            field(server_config(&files(&garbage, &key, None))),
            "tls.cert"
        );
        assert_eq!(
            field(server_config(&files(&cert, &garbage, None))),
            "tls.cert"
        );
        assert_eq!(
            field(server_config(&files(&cert, &key, Some(&garbage)))),
            "tls.client_ca"
        );
        server_config(&files(&cert, &key, None)).expect("TLS");
        server_config(&files(&cert, &key, Some(&cert))).expect("mTLS");
    }
}
