//! Generated gRPC types, clients and servers for the adscope contracts in `proto/`.
//!
//! Each protobuf package is a module: `adscope.analytics.v1` is [`analytics::v1`], and so on.
//! Every service `FooService` has a client in `foo_service_client::FooServiceClient` and a
//! server trait `foo_service_server::FooService` wrapped by `foo_service_server::FooServiceServer`.
//! Well-known types (`Timestamp`, `Struct`, `FieldMask`) are the [`prost_types`] ones.

/// The encoded `FileDescriptorSet` of every adscope `.proto`, for server reflection
/// (`tonic_reflection::server::Builder::register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/adscope_descriptor.bin"));

/// Package `adscope.analytics`.
pub mod analytics {
    /// Package `adscope.analytics.v1`: campaigns, ad sets, ads, performance data, snapshots.
    // Generated code cannot be edited to satisfy the workspace lints; it is clean today, and
    // these keep a generator upgrade from breaking `-D warnings` builds over code we do not own.
    #[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("adscope.analytics.v1");
    }
}

/// Package `adscope.integrations`.
pub mod integrations {
    /// Package `adscope.integrations.v1`: Airbyte connections, sync jobs, credentials.
    // Generated code; see `analytics::v1` for why these lints are relaxed.
    #[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("adscope.integrations.v1");
    }
}

/// Package `adscope.fleet`.
pub mod fleet {
    /// Package `adscope.fleet.v1`: the fleet-wide, cross-tenant health view.
    // Generated code; see `analytics::v1` for why these lints are relaxed.
    #[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
    pub mod v1 {
        tonic::include_proto!("adscope.fleet.v1");
    }
}
