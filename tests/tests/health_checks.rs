//! `grpc.health.v1` wired to real checks: a health server whose database is
//! down answers `NOT_SERVING` promptly, and a check that recovers flips the
//! status back, with `Watch` streaming each change.

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use adscope_e2e::{closed_port, start};
use adscope_server::CommonConfig;
use adscope_server::health::{Check, HealthMonitor};
use futures_util::FutureExt;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::Health;
use tonic_health::server::HealthService;

#[tokio::test]
async fn health_reports_not_serving_promptly_when_its_database_is_down_yet_stays_alive() {
    let config = CommonConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!(
            "postgres://adscope_health@127.0.0.1:{}/adscope",
            closed_port()
        ),
        pool_size: 2,
        verifier: Arc::new(adscope_testing::verifier()),
        cors_origins: Vec::new(),
    };
    let server = start(config, adscope_health::serve).await;

    let channel = server.channel().await;
    let mut health = HealthClient::new(channel);
    // As a Kubernetes gRPC probe asks: the whole server, no metadata. Asked
    // at once and again after the first checks have had time to time out.
    for wait in [Duration::ZERO, Duration::from_millis(2500)] {
        tokio::time::sleep(wait).await;
        for service in ["", "adscope.fleet.v1.FleetService"] {
            let reply = tokio::time::timeout(
                Duration::from_secs(1),
                health.check(HealthCheckRequest {
                    service: service.into(),
                }),
            )
            .await
            .expect("the probe is answered without waiting on the database")
            .expect("the probe gets a status, not an error");
            assert_eq!(reply.into_inner().status(), ServingStatus::NotServing);
        }
    }
    // The liveness probe's name: the process works, so no restart for an
    // outage of its database.
    let alive = health
        .check(HealthCheckRequest {
            service: adscope_server::health::LIVENESS.into(),
        })
        .await
        .unwrap();
    assert_eq!(alive.into_inner().status(), ServingStatus::Serving);
    server.stop().await.unwrap();
}

fn toggled(healthy: &Arc<AtomicBool>) -> Check {
    let healthy = healthy.clone();
    Box::new(move || {
        let ok = healthy.load(Ordering::SeqCst);
        async move {
            if ok {
                Ok(())
            } else {
                Err("dependency down".into())
            }
        }
        .boxed()
    })
}

async fn next_status(
    stream: &mut (
             impl tokio_stream::Stream<
        Item = Result<tonic_health::pb::HealthCheckResponse, tonic::Status>,
    > + Unpin
         ),
) -> ServingStatus {
    tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("a status change is streamed")
        .expect("the stream stays open")
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_check_that_recovers_flips_not_serving_to_serving_and_watch_streams_both() {
    let (reporter, _server) = tonic_health::server::health_reporter();
    let service = HealthService::from_health_reporter(reporter.clone());
    let healthy = Arc::new(AtomicBool::new(false));
    let monitor = HealthMonitor::new(reporter, &["adscope.test.v1.Thing"])
        .check("toggle", toggled(&healthy))
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(200));
    let task = monitor.spawn();

    // The names appear once the monitor has started; until the check passes
    // they read NOT_SERVING (the whole-server name too, which the reporter
    // itself would otherwise start as SERVING).
    let mut registered = false;
    for _ in 0..50 {
        if let Ok(reply) = service
            .check(tonic::Request::new(HealthCheckRequest {
                service: "adscope.test.v1.Thing".into(),
            }))
            .await
        {
            assert_eq!(reply.into_inner().status(), ServingStatus::NotServing);
            registered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(registered, "the monitor registers the service name");

    let mut whole = service
        .watch(tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut named = service
        .watch(tonic::Request::new(HealthCheckRequest {
            service: "adscope.test.v1.Thing".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_status(&mut whole).await, ServingStatus::NotServing);
    assert_eq!(next_status(&mut named).await, ServingStatus::NotServing);

    // Several ticks of the same outcome stream nothing new.
    tokio::time::sleep(Duration::from_millis(200)).await;
    healthy.store(true, Ordering::SeqCst);
    assert_eq!(next_status(&mut whole).await, ServingStatus::Serving);
    assert_eq!(next_status(&mut named).await, ServingStatus::Serving);

    healthy.store(false, Ordering::SeqCst);
    assert_eq!(next_status(&mut whole).await, ServingStatus::NotServing);
    assert_eq!(next_status(&mut named).await, ServingStatus::NotServing);

    let now = service
        .check(tonic::Request::new(HealthCheckRequest {
            service: "adscope.test.v1.Thing".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.status(), ServingStatus::NotServing);
    task.abort();
}

#[tokio::test]
async fn a_hung_check_reports_not_serving_instead_of_hanging() {
    let (reporter, _server) = tonic_health::server::health_reporter();
    let service = HealthService::from_health_reporter(reporter.clone());
    let monitor = HealthMonitor::new(reporter, &[])
        .check(
            "fine",
            Box::new(|| futures_util::future::ready(Ok(())).boxed()),
        )
        .check("hung", Box::new(|| futures_util::future::pending().boxed()))
        .timeout(Duration::from_millis(300));
    let started = Instant::now();
    assert!(!monitor.run_once().await);
    assert!(started.elapsed() < Duration::from_secs(2));
    let reply = service
        .check(tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::NotServing);
}
