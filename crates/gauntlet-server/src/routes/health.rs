//! `GET /healthz` (the process is alive) and `GET /readyz` (models loaded, workers up).
//! Both stay open when an API key is configured.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::method_not_allowed;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .default_service(method_not_allowed("GET")),
    );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.readiness()?))
}
