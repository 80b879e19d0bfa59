//! HTTP routes, one module per resource. Each module's `configure` registers its
//! resources; every resource answers other methods with `405 method_not_allowed`.

use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;

pub mod attacks;
pub mod audits;
pub mod health;
pub mod metrics;
pub mod models;

/// The answer to a method a resource does not have.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

/// The answer to a path no route matches.
pub async fn route_not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::RouteNotFound(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}
