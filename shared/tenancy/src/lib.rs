//! Tenant identity for adscope: who is calling, for which tenant, and how
//! that travels from one service to the next.
//!
//! # Layout
//!
//! - [`id`]: [`TenantId`], the unit of isolation.
//! - [`role`]: [`Role`], ordered viewer < analyst < admin.
//! - [`claims`]: the JWT claims set and [`FLEET_READ`].
//! - [`principal`]: [`Principal`], the verified caller.
//! - [`credential`]: [`Credential`], the bearer token, redacted when printed.
//! - [`context`]: [`TenantContext`] / [`FleetContext`], the task-local current
//!   context, and the accessors handlers use on a `tonic::Request`.
//! - [`verify`]: [`Verifier`], token checks (HS256, RS256, EdDSA).
//! - [`mint`]: [`Minter`], HS256 token issuance for the CLI and tests.
//! - [`policy`]: [`MethodPolicy`], the access each method requires; unlisted
//!   methods are refused.
//! - [`layer`]: [`TenantLayer`], the server side: metadata to context or a
//!   gRPC status.
//! - [`client`]: [`PropagationLayer`], the client side: context to metadata.

pub mod claims;
pub mod client;
pub mod context;
pub mod credential;
pub mod id;
pub mod layer;
pub mod mint;
pub mod policy;
pub mod principal;
pub mod role;
pub mod verify;

pub use claims::{Audience, Claims, FLEET_READ};
pub use client::{PropagationLayer, PropagationService};
pub use context::{FleetContext, TenantContext, fleet_context, tenant_context};
pub use credential::Credential;
pub use id::{InvalidTenantId, TenantId};
pub use layer::{TENANT_HEADER, TenantLayer, TenantService};
pub use mint::{MintError, Minter, TokenSpec};
pub use policy::{Access, MethodPolicy};
pub use principal::Principal;
pub use role::{InvalidRole, Role};
pub use verify::{AuthError, KeyError, Verifier};
