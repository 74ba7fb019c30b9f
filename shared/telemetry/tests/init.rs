//! `init` in a process of its own: it installs the global subscriber once.

use adscope_telemetry::{TelemetryError, init};

#[tokio::test]
async fn init_installs_once_and_refuses_a_second_subscriber() {
    let guard = init("adscope-telemetry-test").expect("first init succeeds");
    tracing::info!("telemetry initialised");

    let second = init("adscope-telemetry-test");
    assert!(
        matches!(second, Err(TelemetryError::AlreadyInitialised { .. })),
        "{second:?}"
    );

    drop(guard);
}
