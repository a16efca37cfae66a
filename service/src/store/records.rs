//! How the embedded store encodes what it keeps: MessagePack with field
//! names, so fields can be added later without rewriting old entries, and
//! LZ4 over the larger values. The
//! records themselves are the domain's ([`nudge_models::log`], customer
//! state). The journal's records and the write-ahead log's frames wrap
//! such values in length-prefixed fields ([`put_bytes`], [`Reader`]), so a
//! value is stored as it was encoded, without a second encoding around it.

use super::StoreError;
use serde::{Deserialize, Serialize};

/// MessagePack with field names; a value over [`PACK_FROM`] bytes is
/// LZ4-compressed behind the [`PACKED`] byte when that makes it smaller
/// (decision records repeat action ids and field names: about half).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let unencodable = |source: std::sync::Arc<dyn std::error::Error + Send + Sync>| {
        StoreError::Unencodable { source }
    };
    // Sized for a customer's state, the largest value written on every
    // call: growing from empty reallocated it eight times.
    let mut plain = Vec::with_capacity(ENCODE_CAPACITY);
    rmp_serde::encode::write_named(&mut plain, value)
        .map_err(|error| unencodable(std::sync::Arc::new(error)))?;
    if plain.len() < PACK_FROM {
        return Ok(plain);
    }
    // The marker, the plain size (as `decompress_size_prepended` reads it)
    // and the block, written in place.
    let Ok(size) = u32::try_from(plain.len()) else {
        return Ok(plain);
    };
    let header = 1 + 4;
    let mut packed = vec![0; header + lz4_flex::block::get_maximum_output_size(plain.len())];
    packed[0] = PACKED;
    packed[1..header].copy_from_slice(&size.to_le_bytes());
    let written = lz4_flex::block::compress_into(&plain, &mut packed[header..])
        .map_err(|error| unencodable(std::sync::Arc::new(error)))?;
    if header + written >= plain.len() {
        return Ok(plain);
    }
    packed.truncate(header + written);
    Ok(packed)
}

/// The buffer a value is encoded into starts this big.
const ENCODE_CAPACITY: usize = 2_048;

/// Values from this many bytes on are worth compressing.
const PACK_FROM: usize = 256;

/// The first byte of a compressed value: a byte MessagePack never uses
/// (0xc1 is reserved), so a plain value — every value written before
/// compression — never starts with it.
const PACKED: u8 = 0xc1;

/// The largest value a compressed one may claim to expand to.
const MAX_UNPACKED: usize = 64 * 1024 * 1024;

/// The inverse of [`encode`]; `what` names the record in the error.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let undecodable = |source: std::sync::Arc<dyn std::error::Error + Send + Sync>| {
        StoreError::Undecodable { what, source }
    };
    match bytes.split_first() {
        Some((&PACKED, compressed)) => {
            // A damaged size must not become a huge allocation.
            let size = compressed
                .get(..4)
                .and_then(|size| <[u8; 4]>::try_from(size).ok())
                .map_or(usize::MAX, |size| u32::from_le_bytes(size) as usize);
            if size > MAX_UNPACKED {
                return Err(self::undecodable(
                    what,
                    "a compressed value's size is out of range",
                ));
            }
            let plain = lz4_flex::block::decompress_size_prepended(compressed)
                .map_err(|error| undecodable(std::sync::Arc::new(error)))?;
            rmp_serde::from_slice(&plain).map_err(|error| undecodable(std::sync::Arc::new(error)))
        }
        _ => rmp_serde::from_slice(bytes).map_err(|error| undecodable(std::sync::Arc::new(error))),
    }
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

    fn eight(&mut self) -> Result<[u8; 8], StoreError> {
        self.take(8)?
            .try_into()
            .map_err(|_| undecodable(self.what, "an integer"))
    }

    pub(super) fn integer(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.eight()?))
    }

    pub(super) fn unsigned(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.eight()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn large_values_are_compressed_small_ones_not_and_both_read_back() {
        let small: Vec<String> = vec!["a".to_owned(); 3];
        let bytes = encode(&small).unwrap();
        assert_ne!(bytes[0], PACKED);
        assert_eq!(decode::<Vec<String>>("test", &bytes).unwrap(), small);

        let large: Vec<String> = (0..100)
            .map(|index| format!("action-{}", index % 10))
            .collect();
        let bytes = encode(&large).unwrap();
        assert_eq!(bytes[0], PACKED);
        assert!(bytes.len() * 3 < rmp_serde::to_vec_named(&large).unwrap().len());
        assert_eq!(decode::<Vec<String>>("test", &bytes).unwrap(), large);
        // A value written before compression existed reads as it was.
        let plain = rmp_serde::to_vec_named(&large).unwrap();
        assert_eq!(decode::<Vec<String>>("test", &plain).unwrap(), large);
    }

    #[test]
    fn a_damaged_compressed_value_is_refused_with_a_clear_error() {
        let large: Vec<String> = (0..100)
            .map(|index| format!("action-{}", index % 10))
            .collect();
        let bytes = encode(&large).unwrap();
        let mut huge = bytes.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        for broken in [huge, cut, vec![PACKED]] {
            let error = decode::<Vec<String>>("decision", &broken).unwrap_err();
            assert!(error.to_string().contains("decision"), "{error}");
        }
    }
}
