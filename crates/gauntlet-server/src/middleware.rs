//! The application's middlewares: API-key authentication of `/v1` ([`require_api_key`]),
//! request metrics for every route ([`observe_requests`]), and a deadline on request bodies
//! ([`body_deadline`]).

use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{HttpMessage, ResponseError};

use crate::error::ApiError;
use crate::metrics::Metrics;

type Answer<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    diff == 0
}

fn authorized(req: &ServiceRequest, key: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), key.as_bytes()))
}

/// Answers `401 unauthorized` unless the request carries `Authorization: Bearer <key>`;
/// lets everything through when no key is set.
pub fn require_api_key<S, B>(
    key: Option<Arc<str>>,
) -> impl Fn(ServiceRequest, &S) -> Answer<BoxBody> + Clone + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    move |req, srv| {
        if key.as_deref().is_none_or(|k| authorized(&req, k)) {
            let fut = srv.call(req);
            Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) })
        } else {
            let res = req.into_response(ApiError::Unauthorized.error_response());
            Box::pin(ready(Ok(res)))
        }
    }
}

/// Counts every request and its duration by route pattern, method and status.
pub fn observe_requests<S, B>(
    metrics: Arc<Metrics>,
) -> impl Fn(ServiceRequest, &S) -> Answer<B> + Clone + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |req, srv| {
        let started = Instant::now();
        let method = req.method().to_string();
        let metrics = Arc::clone(&metrics);
        let fut = srv.call(req);
        Box::pin(async move {
            let res = fut.await;
            match &res {
                Ok(r) => {
                    let route = r
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".into());
                    metrics.observe_request(
                        &route,
                        &method,
                        r.status().as_u16(),
                        started.elapsed(),
                    );
                }
                Err(e) => metrics.observe_request(
                    "unmatched",
                    &method,
                    e.as_response_error().status_code().as_u16(),
                    started.elapsed(),
                ),
            }
            res
        })
    }
}

/// A request body that must arrive whole within a time limit: past it, the stream ends with
/// a `TimedOut` error, which the extractors answer as `408 request_timeout` (and the
/// connection is closed). Only a body that is still being read is cut: a trickling client
/// cannot hold a worker's connection slot longer than the limit.
struct Deadline {
    inner: actix_web::dev::Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: std::time::Duration,
}

impl futures_core::Stream for Deadline {
    type Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(actix_web::error::PayloadError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body did not arrive within {} ms (server.request_body_timeout_ms)",
                        self.limit.as_millis()
                    ),
                ),
            )))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Puts a deadline of `limit` on every request body (see [`Deadline`]).
pub fn body_deadline<S, B>(
    limit: std::time::Duration,
) -> impl Fn(ServiceRequest, &S) -> Answer<B> + Clone + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    move |mut req: ServiceRequest, srv: &S| {
        let inner = req.take_payload();
        let body = Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        };
        req.set_payload(actix_web::dev::Payload::Stream {
            payload: Box::pin(body),
        });
        Box::pin(srv.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secretx", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
