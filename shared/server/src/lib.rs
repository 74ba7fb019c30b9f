//! What every adscope gRPC binary shares: configuration from the
//! environment, the layer stack, health and reflection, gRPC-Web, graceful
//! shutdown, and channels to the other services.
//!
//! # Layout
//!
//! - [`config`]: environment settings, each failure naming its variable.
//! - [`serve`]: [`GrpcServer`], which stacks tracing, CORS, gRPC-Web and the
//!   tenant layer over a service's routes and serves them until shutdown.
//! - [`health`]: the `grpc.health.v1` reporter driven by real checks.
//! - [`page`]: page sizes and tenant-bound keyset page tokens.
//! - [`client`]: channels to other adscope services that carry the tenant,
//!   the caller's credentials and the trace.
//! - [`shutdown`]: SIGTERM / Ctrl-C.

pub mod client;
pub mod config;
mod divert;
pub mod health;
pub mod page;
pub mod serve;
pub mod shutdown;

pub use config::{CommonArgs, CommonConfig, ConfigError};
pub use serve::GrpcServer;
