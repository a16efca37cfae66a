//! The connection to a running nudge server, and the conversion of gRPC and
//! transport failures into errors a person can act on.

use std::error::Error as StdError;
use std::time::Duration;

use anyhow::anyhow;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// How long to wait for the TCP/HTTP2 connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for any one call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Adds `http://` to an address given without a scheme (`localhost:50051`).
pub fn normalize_address(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Connects to the server at `server`; the error names the address that could
/// not be reached and why.
pub async fn connect(server: &str) -> anyhow::Result<Channel> {
    let address = normalize_address(server);
    let endpoint = Endpoint::from_shared(address.clone())
        .map_err(|e| anyhow!("invalid server address '{server}': {}", error_chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    endpoint.connect().await.map_err(|e| {
        anyhow!(
            "could not reach the nudge server at {address}: {} (is it running? set --server or NUDGE_SERVER)",
            error_chain(&e)
        )
    })
}

/// A gRPC status as an error showing its code name and message, e.g.
/// `server said INVALID_ARGUMENT: candidate 'x' is not in the catalog`.
pub fn status_error(status: Status) -> anyhow::Error {
    let code = code_name(status.code());
    let message = status.message().trim();
    if message.is_empty() {
        anyhow!("server said {code}")
    } else {
        anyhow!("server said {code}: {message}")
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

    #[tokio::test]
    async fn unreachable_server_names_the_address() {
        // Port 1 on localhost is essentially never listening.
        let err = connect("127.0.0.1:1")
            .await
            .expect_err("nothing listens there");
        let text = err.to_string();
        assert!(
            text.contains("could not reach the nudge server at http://127.0.0.1:1"),
            "{text}"
        );
    }
}
