//! The coordinator-agent protocol. Generated code enters the workspace through
//! this module only; everything else converts to and from domain types here.

#![allow(clippy::all, missing_docs, unreachable_pub)]

tonic::include_proto!("loadgen.v1");

/// Revision of the `loadgen.v1` protocol. The coordinator refuses an agent
/// that reports a different one; bump it with any change an old peer would misread.
pub const PROTOCOL_VERSION: u32 = 5;

/// gRPC metadata key of the shared agent token (`authorization: Bearer <token>`).
pub const AUTH_HEADER: &str = "authorization";
