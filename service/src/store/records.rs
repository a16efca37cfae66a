//! How the embedded store encodes what it keeps: MessagePack with field
//! names, so fields can be added later without rewriting old entries. The
//! records themselves are the domain's ([`nudge_models::log`], customer
//! state). The journal's records and the write-ahead log's frames wrap
//! such values in length-prefixed fields ([`put_bytes`], [`Reader`]), so a
//! value is stored as it was encoded, without a second encoding around it.

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

/// Appends a length as a little-endian u32 (records are far below 4 GiB).
pub(super) fn put_length(bytes: &mut Vec<u8>, length: usize) {
    let length = u32::try_from(length).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&length.to_le_bytes());
}

/// Appends a length-prefixed field.
pub(super) fn put_bytes(bytes: &mut Vec<u8>, field: &[u8]) {
    put_length(bytes, field.len());
    bytes.extend_from_slice(field);
}

/// Appends a little-endian u64.
pub(super) fn put_u64(bytes: &mut Vec<u8>, value: u64) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

/// The error for bytes that do not decode as `what`.
pub(super) fn undecodable(what: &'static str, problem: &'static str) -> StoreError {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Problem(&'static str);
    StoreError::Undecodable {
        what,
        source: std::sync::Arc::new(Problem(problem)),
    }
}

/// Reads the fields written by [`put_bytes`] and its siblings in turn;
/// errors name the record as `what`.
pub(super) struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Self { what, bytes }
    }

    /// Whether every byte was read.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn take(&mut self, count: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < count {
            return Err(undecodable(self.what, "the record ends early"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    pub(super) fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn length(&mut self) -> Result<usize, StoreError> {
        let bytes: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| undecodable(self.what, "length"))?;
        Ok(u32::from_le_bytes(bytes) as usize)
    }

    pub(super) fn field(&mut self) -> Result<&'a [u8], StoreError> {
        let length = self.length()?;
        self.take(length)
    }

    pub(super) fn text(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.field()?)
            .map_err(|_| undecodable(self.what, "a field is not UTF-8"))
    }

    pub(super) fn integer(&mut self) -> Result<i64, StoreError> {
        let bytes: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| undecodable(self.what, "an integer"))?;
        Ok(i64::from_le_bytes(bytes))
    }

    pub(super) fn unsigned(&mut self) -> Result<u64, StoreError> {
        let bytes: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| undecodable(self.what, "an integer"))?;
        Ok(u64::from_le_bytes(bytes))
    }
}
