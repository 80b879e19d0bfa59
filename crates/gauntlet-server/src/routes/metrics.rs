//! `GET /metrics`: Prometheus text exposition (open even with an API key).

use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::routes::method_not_allowed;
use crate::state::AppState;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(method_not_allowed("GET")),
    );
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.scheduler.refresh_gauges();
    state.metrics.models_loaded.set(state.models.len() as i64);
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
