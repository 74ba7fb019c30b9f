//! The PostgreSQL server tests run against: given, or a throwaway cluster.

use std::path::{Path, PathBuf};

use adscope_pgcluster::{Cluster, ClusterError};
use tokio::sync::OnceCell;

/// Set this to a superuser URL to run the tests against an existing server.
pub const TEST_DATABASE_URL_ENV: &str = "ADSCOPE_TEST_DATABASE_URL";

/// The folder, inside the build's target dir, that holds the throwaway cluster.
const CLUSTER_DIR: &str = "adscope-test-pg";

static ADMIN_URL: OnceCell<String> = OnceCell::const_new();

/// A superuser URL for the test server, found or provisioned once per process.
///
/// # Panics
///
/// When no server can be had; the message says what to install or change.
pub async fn admin_url() -> String {
    ADMIN_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(TEST_DATABASE_URL_ENV)
                && !url.trim().is_empty()
            {
                return url;
            }
            // initdb and apt-get block for seconds; keep them off the async workers.
            tokio::task::spawn_blocking(provision)
                .await
                .unwrap_or_else(|e| {
                    panic!("provisioning the test PostgreSQL cluster panicked: {e}")
                })
        })
        .await
        .clone()
}

/// Installs the server if needed and starts (or reuses) the throwaway cluster.
fn provision() -> String {
    let bin_dir = adscope_pgcluster::ensure_server_binaries().unwrap_or_else(|e| fail(&e));

    let preferred = target_dir().map(|t| t.join(CLUSTER_DIR));
    let fallback = std::env::temp_dir().join(CLUSTER_DIR);
    let base = preferred.unwrap_or_else(|| fallback.clone());

    let cluster = match Cluster::ensure_running_with(&bin_dir, &base.join("data")) {
        // A checkout under a private home directory: the postgres user cannot reach
        // target/, so the cluster lives under the world-traversable temp dir instead.
        Err(ClusterError::NotTraversable { .. }) if base != fallback => {
            Cluster::ensure_running_with(&bin_dir, &fallback.join("data"))
        }
        other => other,
    }
    .unwrap_or_else(|e| fail(&e));
    cluster.admin_url()
}

fn fail(error: &ClusterError) -> ! {
    panic!(
        "no PostgreSQL for the tests: {error}\n\
         (or point {TEST_DATABASE_URL_ENV} at a superuser URL of a running server)"
    )
}

/// The `target` folder the running test binary was built into.
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    find_target_dir(&exe)
}

fn find_target_dir(exe: &Path) -> Option<PathBuf> {
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_is_the_nearest_folder_named_target() {
        let exe = Path::new("/src/adscope/target/debug/deps/adscope_testing-0123");
        assert_eq!(
            find_target_dir(exe),
            Some(PathBuf::from("/src/adscope/target"))
        );
        assert_eq!(find_target_dir(Path::new("/opt/bin/tests")), None);
    }
}
