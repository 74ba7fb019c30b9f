//! Sends one plain HTTP path to its own router, everything else on to gRPC.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

/// The layer; with no route it passes every request through.
#[derive(Clone)]
pub(crate) struct DivertLayer {
    route: Option<(&'static str, axum::Router)>,
}

impl DivertLayer {
    pub(crate) fn new(route: Option<(&'static str, axum::Router)>) -> Self {
        DivertLayer { route }
    }
}

impl<S> Layer<S> for DivertLayer {
    type Service = Divert<S>;

    fn layer(&self, inner: S) -> Divert<S> {
        Divert {
            route: self.route.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Divert<S> {
    route: Option<(&'static str, axum::Router)>,
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// gRPC calls keep their own future (no allocation on the hot path); only
/// the diverted route is boxed.
type DivertFuture<F, E> = Either<F, BoxFuture<Response<Body>, E>>;

impl<S> Service<Request<Body>> for Divert<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = DivertFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let router = match &self.route {
            Some((path, router)) if request.uri().path() == *path => router.clone(),
            _ => return Either::Left(self.inner.call(request)),
        };
        Either::Right(Box::pin(async move {
            let response = router
                .oneshot(request.map(axum::body::Body::new))
                .await
                .unwrap_or_else(|never: Infallible| match never {});
            Ok(response.map(Body::new))
        }))
    }
}
