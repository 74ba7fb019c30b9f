//! Provisions a real throwaway cluster from scratch, reuses it, and stops it.

// Test code: a failed expectation should abort the test with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use adscope_pgcluster::{Cluster, ensure_server_binaries, server_reachable};

fn scratch_data_dir() -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "adscope-pgcluster-it-{}",
            uuid::Uuid::new_v4().simple()
        ))
        .join("data")
}

/// Runs one statement through `psql` over TCP, as the superuser.
fn psql(cluster: &Cluster, sql: &str) -> String {
    // PATH may hold only symlinks to the server programs; psql lives beside their targets.
    let real_bin = std::fs::canonicalize(cluster.bin_dir().join("postgres")).unwrap();
    let out = Command::new(real_bin.parent().unwrap().join("psql"))
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .arg("-p")
        .arg(cluster.port().to_string())
        .current_dir("/")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn postmaster_pid(data_dir: &Path) -> String {
    let content = std::fs::read_to_string(data_dir.join("postmaster.pid")).expect("read pid file");
    content.lines().next().unwrap().to_owned()
}

#[test]
fn provisions_from_scratch_then_reuses_then_restarts_on_the_same_port() {
    let bin_dir = ensure_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = scratch_data_dir();
    let root = data_dir.parent().unwrap().to_owned();

    // From nothing: initdb, start, port persisted next to the data.
    let first = Cluster::ensure_running_with(&bin_dir, &data_dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(first.data_dir().join("PG_VERSION").exists());
    assert!(server_reachable("127.0.0.1", first.port()));
    assert_eq!(
        std::fs::read_to_string(root.join("data.port"))
            .unwrap()
            .trim(),
        first.port().to_string()
    );
    assert_eq!(
        first.admin_url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", first.port())
    );
    assert_eq!(psql(&first, "SHOW fsync"), "off");
    assert_eq!(psql(&first, "SHOW max_connections"), "300");
    assert_eq!(psql(&first, "SHOW server_encoding"), "UTF8");
    let pid = postmaster_pid(&data_dir);

    // A second call finds the same server rather than starting another.
    let second = Cluster::ensure_running(&data_dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.port(), first.port());
    assert_eq!(postmaster_pid(&data_dir), pid);

    // Stopped, it comes back on the remembered port with its data intact.
    psql(&first, "CREATE DATABASE survives_restart");
    first.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(!server_reachable("127.0.0.1", first.port()));
    let third = Cluster::ensure_running_with(&bin_dir, &data_dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.port(), first.port());
    assert_ne!(postmaster_pid(&data_dir), pid);
    assert_eq!(
        psql(
            &third,
            "SELECT count(*) FROM pg_database WHERE datname = 'survives_restart'"
        ),
        "1"
    );

    third.stop().unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn concurrent_callers_share_one_cluster() {
    let bin_dir = ensure_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = scratch_data_dir();

    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (bin_dir, data_dir) = (bin_dir.clone(), data_dir.clone());
            std::thread::spawn(move || Cluster::ensure_running_with(&bin_dir, &data_dir))
        })
        .collect();
    let clusters: Vec<Cluster> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_or_else(|e| panic!("{e}")))
        .collect();

    assert!(clusters.iter().all(|c| c.port() == clusters[0].port()));
    assert!(server_reachable("127.0.0.1", clusters[0].port()));
    clusters[0].stop().unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(data_dir.parent().unwrap()).ok();
}

#[test]
fn a_non_empty_directory_that_is_no_cluster_is_refused() {
    let bin_dir = ensure_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = scratch_data_dir();
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("precious.txt"), "keep me").unwrap();

    let err = Cluster::ensure_running_with(&bin_dir, &data_dir).expect_err("must refuse");
    assert!(
        err.to_string()
            .contains("neither empty nor a PostgreSQL data directory"),
        "{err}"
    );
    assert!(data_dir.join("precious.txt").exists());
    std::fs::remove_dir_all(data_dir.parent().unwrap()).ok();
}

#[test]
fn as_root_an_unreachable_directory_is_named_in_the_error() {
    use std::os::unix::fs::PermissionsExt;

    // Only root hands the cluster to another user; for anyone else there is nothing to cross.
    if !std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    {
        eprintln!("not root: the postgres user's traversal check does not apply");
        return;
    }
    let bin_dir = ensure_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let data_dir = scratch_data_dir();
    let private = data_dir.parent().unwrap().join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();

    let err = Cluster::ensure_running_with(&bin_dir, &private.join("pg").join("data"))
        .expect_err("postgres cannot enter a root-only directory");
    let message = err.to_string();
    assert!(
        message.contains(&format!("cannot traverse {}", private.display())),
        "{message}"
    );
    assert!(message.contains("chmod o+x"), "{message}");
    std::fs::remove_dir_all(data_dir.parent().unwrap()).ok();
}
