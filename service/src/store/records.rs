//! How the embedded store encodes what it keeps: MessagePack with field
//! names, so fields can be added later without rewriting old entries. The
//! records themselves are the domain's ([`nudge_models::log`], customer
//! state).

use super::StoreError;
use serde::{Deserialize, Serialize};

/// MessagePack with field names.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(value).map_err(|error| StoreError::Unencodable {
        source: std::sync::Arc::new(error),
    })
}

/// The inverse of [`encode`]; `what` names the record in the error.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|error| StoreError::Undecodable {
        what,
        source: std::sync::Arc::new(error),
    })
}
