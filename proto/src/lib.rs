//! The `nudge.v1` gRPC wire contract.
//!
//! Generated at build time from `proto/nudge/v1/*.proto` by protox and
//! tonic-prost-build (no `protoc` needed). This crate holds wire types only: the
//! service converts them to domain types in one place (`nudge_service::convert`).
//!
//! - [`v1`]: messages, enums, and the `*_client` / `*_server` modules of the
//!   `Decisions`, `Events`, `Profiles` and `Admin` services.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.

#![allow(missing_debug_implementations, clippy::unwrap_used)]

/// Package `nudge.v1`.
pub mod v1 {
    tonic::include_proto!("nudge.v1");
}

/// The encoded `FileDescriptorSet` of every nudge proto (imports included), for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/nudge_descriptor.bin"));
