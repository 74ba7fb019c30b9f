//! Channels from one adscope service to another.
//!
//! Every request sent through them carries the current tenant context (the
//! tenant id and the caller's own credentials, never a token that grants
//! more) and the trace context, so the callee's spans join the caller's
//! trace and its row-level security sees the same tenant.

use adscope_tenancy::{PropagationLayer, PropagationService};
use tonic::transport::{Channel, Endpoint};

/// A channel whose requests carry tenant and trace metadata.
pub type PropagatingChannel = PropagationService<Channel>;

/// A lazily connecting channel to `url` (e.g. `ADSCOPE_ANALYTICS_URL`).
pub fn channel(url: &str) -> Result<PropagatingChannel, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy();
    Ok(tower::ServiceBuilder::new()
        .layer(PropagationLayer::new())
        .service(channel))
}
