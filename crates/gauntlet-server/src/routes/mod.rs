//! HTTP routes, one module per resource. Each module's `configure` registers its
//! resources; every resource answers other methods with `405 method_not_allowed` and an
//! `Allow` header listing the methods it has.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;

pub mod attacks;
pub mod audits;
pub mod health;
pub mod metrics;
pub mod models;
pub mod ui;

/// The default service of a resource whose methods are `allow` (e.g. `"GET, POST"`): 405
/// with `Allow`.
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed {
            message: format!(
                "{} is not allowed on {}; allowed: {allow}",
                req.method(),
                req.path()
            ),
            allow,
        })
    })
}

/// The answer to a path no route matches.
pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::RouteNotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}
