//! The build enforces fleet scope: only the health service's dependency
//! graph enables the db crate's `fleet` feature, so the fleet wrapper is not
//! compiled into analytics or integrations at all.

use std::process::Command;

/// The features each package is built with when built on its own (as its
/// release image is), from `cargo tree`.
fn feature_graph(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--manifest-path",
            manifest,
            "-p",
            package,
            "-e",
            "features,normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

const FLEET: &str = "adscope-db feature \"fleet\"";

#[test]
fn only_the_health_service_enables_fleet_scope() {
    let health = feature_graph("adscope-health");
    assert!(
        health.contains(FLEET),
        "health must build with fleet:\n{health}"
    );

    for package in ["adscope-analytics", "adscope-integrations"] {
        let graph = feature_graph(package);
        assert!(
            graph.contains("adscope-db"),
            "{package} should depend on adscope-db:\n{graph}"
        );
        assert!(
            !graph.contains(FLEET),
            "{package} must not enable adscope-db's fleet feature:\n{graph}"
        );
    }
}
