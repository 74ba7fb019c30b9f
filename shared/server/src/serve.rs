//! The server every adscope service runs.

use std::sync::Arc;

use adscope_telemetry::{REQUEST_ID_HEADER, ServerTraceLayer};
use adscope_tenancy::{MethodPolicy, TENANT_HEADER, TenantLayer, Verifier};
use http::{HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Metadata a browser frontend sends over gRPC-Web.
const CORS_REQUEST_HEADERS: &[&str] = &[
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    TENANT_HEADER,
    REQUEST_ID_HEADER,
    "traceparent",
    "tracestate",
    "baggage",
];

/// Response metadata a browser frontend may read.
const CORS_EXPOSED_HEADERS: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    REQUEST_ID_HEADER,
    VERSION_HEADER,
];

/// Response header naming the build of the answering server, so that the
/// fleet view can report each service's version from its health check.
pub const VERSION_HEADER: &str = "x-adscope-version";

/// A service's gRPC server: its routes plus health, reflection and
/// gRPC-Web, behind the shared layers.
pub struct GrpcServer {
    routes: tonic::service::RoutesBuilder,
    verifier: Arc<Verifier>,
    policy: Arc<MethodPolicy>,
    cors_origins: Vec<HeaderValue>,
    descriptor_sets: Vec<&'static [u8]>,
    /// The gRPC services served, which reflection lists: the descriptor
    /// sets describe every adscope service, and a client listing this
    /// server must see only what it answers.
    service_names: Vec<&'static str>,
    health: HealthReporter,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("cors_origins", &self.cors_origins)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// A server that authorises calls with `verifier` and `policy`.
    pub fn new(verifier: Arc<Verifier>, policy: MethodPolicy) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = tonic::service::RoutesBuilder::default();
        routes.add_service(health_service);
        GrpcServer {
            routes,
            verifier,
            policy: Arc::new(policy),
            cors_origins: Vec::new(),
            descriptor_sets: vec![tonic_health::pb::FILE_DESCRIPTOR_SET],
            service_names: vec![tonic_health::pb::health_server::SERVICE_NAME],
            health,
        }
    }

    /// A server set up from the common configuration: its verifier, its
    /// browser origins, and reflection over the adscope contracts.
    pub fn from_config(config: &crate::CommonConfig, policy: MethodPolicy) -> Self {
        GrpcServer::new(config.verifier.clone(), policy)
            .cors_origins(config.cors_origins.clone())
            .reflect(adscope_proto::FILE_DESCRIPTOR_SET)
    }

    /// Reports `services` (and the whole server) through `grpc.health.v1`,
    /// driven by `checks` on a background task every
    /// `ADSCOPE_HEALTH_INTERVAL_SECS` (default 5 s); each check times out
    /// after [`crate::health::DEFAULT_CHECK_TIMEOUT`].
    pub fn monitor_health(
        self,
        services: &[&'static str],
        checks: Vec<(&'static str, crate::health::Check)>,
    ) -> Self {
        self.monitor_health_with(services, checks, Vec::new(), Vec::new())
    }

    /// As [`GrpcServer::monitor_health`], plus `scoped` checks, each
    /// `(service, check name, check)`, that decide only that service's
    /// status: an optional dependency marks its own RPC family
    /// `NOT_SERVING` while the whole server (the empty name) and the other
    /// services follow the global `checks` alone. `liveness` checks are of
    /// the process itself: global too, and the only ones that decide
    /// [`crate::health::LIVENESS`].
    pub fn monitor_health_with(
        self,
        services: &[&'static str],
        checks: Vec<(&'static str, crate::health::Check)>,
        scoped: Vec<(&'static str, &'static str, crate::health::Check)>,
        liveness: Vec<(&'static str, crate::health::Check)>,
    ) -> Self {
        let interval = crate::health::interval_from_env().unwrap_or_else(|error| {
            // Not validated at start: a bad value is logged here and the
            // default used, since a wrong health interval is no reason to
            // refuse to serve.
            tracing::error!(%error, "using the default health interval");
            crate::health::DEFAULT_INTERVAL
        });
        let mut monitor = crate::health::HealthMonitor::new(self.health.clone(), services)
            .checks(checks)
            .service_checks(scoped);
        for (name, check) in liveness {
            monitor = monitor.liveness_check(name, check);
        }
        monitor.interval(interval).spawn();
        self
    }

    /// The reporter behind this server's `grpc.health.v1`.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Adds a generated tonic service.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Registers an encoded file descriptor set for server reflection.
    pub fn reflect(mut self, descriptor_set: &'static [u8]) -> Self {
        self.descriptor_sets.push(descriptor_set);
        self
    }

    /// Browser origins allowed to call over gRPC-Web.
    pub fn cors_origins(mut self, origins: Vec<HeaderValue>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// The finished routes (gRPC services, health, reflection), for callers
    /// that add plain HTTP routes next to them.
    pub fn into_routes(self) -> Result<ServerParts, tonic_reflection::server::Error> {
        let mut reflection = tonic_reflection::server::Builder::configure();
        for set in &self.descriptor_sets {
            reflection = reflection.register_encoded_file_descriptor_set(set);
        }
        for name in &self.service_names {
            reflection = reflection.with_service_name(*name);
        }
        reflection = reflection
            .with_service_name(tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME);
        let mut routes = self.routes;
        routes.add_service(reflection.build_v1()?);
        // Every answer a route gives names its build, however the routes
        // are then served.
        let routes = Routes::from(
            routes
                .routes()
                .into_axum_router()
                .layer(tower::util::MapResponseLayer::new(stamp_version)),
        );
        Ok(ServerParts {
            routes,
            verifier: self.verifier,
            policy: self.policy,
            cors_origins: self.cors_origins,
            http_route: None,
        })
    }

    /// Serves until `shutdown` resolves, then drains the calls in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        self.into_routes()?.serve(listener, shutdown).await
    }
}

/// Routes and the settings of the layers that go over them.
pub struct ServerParts {
    /// Every gRPC route.
    pub routes: Routes,
    verifier: Arc<Verifier>,
    policy: Arc<MethodPolicy>,
    cors_origins: Vec<HeaderValue>,
    http_route: Option<(&'static str, axum::Router)>,
}

impl std::fmt::Debug for ServerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerParts").finish_non_exhaustive()
    }
}

impl ServerParts {
    /// Serves a plain HTTP endpoint at `path` next to gRPC (the Airbyte
    /// webhook). It is taken off before the gRPC-Web layer, which refuses
    /// any other HTTP/1.1 request, and before the tenant layer: such an
    /// endpoint authenticates itself. The trace layer still covers it.
    pub fn with_http_route(mut self, path: &'static str, router: axum::Router) -> Self {
        self.http_route = Some((path, router));
        self
    }

    /// Serves until `shutdown` resolves, then drains the calls in flight.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let cors = cors_layer(self.cors_origins);
        // Small gRPC frames must not wait for Nagle's algorithm: with delayed
        // ACKs on the peer that stalls each response by tens of milliseconds.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            // gRPC-Web arrives over HTTP/1.1 from browsers.
            .accept_http1(true)
            // Outermost: one span per call, parented on the caller's trace,
            // so everything below (including refusals) is traced.
            .layer(ServerTraceLayer::new())
            // Plain HTTP endpoints leave here; everything else is gRPC.
            .layer(crate::divert::DivertLayer::new(self.http_route))
            // CORS answers browser preflights before anything needs a token.
            .layer(cors)
            // Translate gRPC-Web to gRPC so the tenant layer and the services
            // see one protocol, and its refusals reach browsers too.
            .layer(tonic_web::GrpcWebLayer::new())
            // Innermost: metadata to TenantContext, or the call ends here.
            .layer(TenantLayer::new(self.verifier, self.policy))
            .add_routes(self.routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }
}

fn stamp_version<B>(mut response: http::Response<B>) -> http::Response<B> {
    response.headers_mut().insert(
        VERSION_HEADER,
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    response
}

fn cors_layer(origins: Vec<HeaderValue>) -> CorsLayer {
    let request_headers: Vec<HeaderName> = CORS_REQUEST_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    let exposed: Vec<HeaderName> = CORS_EXPOSED_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(request_headers)
        .expose_headers(exposed)
        .max_age(std::time::Duration::from_secs(600))
}
