//! Throwaway local PostgreSQL clusters for tests and `adscope dev`.
//!
//! [`ensure_server_binaries`] finds (or, as root, installs) the server programs;
//! [`Cluster::ensure_running`] makes, starts or reuses a cluster in a directory of
//! its own on a free port of 127.0.0.1 with trust authentication. As root, the
//! cluster runs as the `postgres` OS user, since PostgreSQL refuses to run as root.
//!
//! Layout: `binaries` (finding and installing the programs), `cluster` (the cluster
//! life cycle), `port` (ports and reachability), `process` (running programs as the
//! right user), `error`.

mod binaries;
mod cluster;
mod error;
mod port;
mod process;

pub use binaries::{ensure_server_binaries, find_server_binaries};
pub use cluster::Cluster;
pub use error::ClusterError;
pub use port::server_reachable;
