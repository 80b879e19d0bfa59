//! Models: list, describe, load by name from the models directory, unload, and predict.
//!
//! Loading runs on the blocking pool (`web::block`), never on the HTTP workers. Predictions
//! go through the model's [`crate::batcher::Batcher`] (the handler awaits its answer), or,
//! with `batching.enabled = false`, run one model call per request on the blocking pool.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::batcher::BatchModel;
use crate::error::ApiError;
use crate::requests::check_texts;
use crate::routes::method_not_allowed;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/models")
            .route(web::get().to(list))
            .route(web::post().to(load))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/models/{name}")
            .route(web::get().to(describe))
            .route(web::delete().to(unload))
            .default_service(method_not_allowed("GET, DELETE")),
    )
    .service(
        web::resource("/models/{name}/predict")
            .route(web::post().to(predict))
            .default_service(method_not_allowed("POST")),
    );
}

/// `POST /v1/models`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// Bundle directory name inside the models directory.
    pub name: String,
}

/// `POST /v1/models/{name}/predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Texts to classify.
    pub texts: Vec<String>,
}

/// One text's prediction.
#[derive(Debug, Serialize)]
pub struct PredictionOut {
    /// Predicted class id.
    pub label: usize,
    /// Its name.
    pub label_name: String,
    /// Its probability.
    pub probability: f32,
    /// Probabilities of every class, by id.
    pub probabilities: Vec<f32>,
}

fn blocking_error(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::Internal(format!("the blocking pool failed: {e}"))
}

async fn list(state: web::Data<AppState>) -> HttpResponse {
    let models: Vec<_> = state.models.list().iter().map(|m| m.summary()).collect();
    HttpResponse::Ok().json(json!({ "models": models }))
}

async fn describe(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.models.get(&name)?.details(state.lexicon.is_some())))
}

async fn load(
    state: web::Data<AppState>,
    body: web::Json<LoadRequest>,
) -> Result<HttpResponse, ApiError> {
    let registry = state.models.clone();
    let name = body.into_inner().name;
    let loaded = web::block(move || registry.load(&name))
        .await
        .map_err(blocking_error)??;
    state.metrics.models_loaded.set(state.models.len() as i64);
    tracing::info!("loaded model {}", loaded.name);
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/models/{}", loaded.name)))
        .json(loaded.details(state.lexicon.is_some())))
}

async fn unload(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.models.unload(&name)?;
    state.metrics.models_loaded.set(state.models.len() as i64);
    tracing::info!("unloaded model {name}");
    Ok(HttpResponse::NoContent().finish())
}

async fn predict(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<PredictRequest>,
) -> Result<HttpResponse, ApiError> {
    let texts = body.into_inner().texts;
    check_texts(
        texts.iter().map(String::as_str),
        &state.config.limits,
        "texts",
    )?;
    let model = state.models.get(&name)?;
    let probs = match &model.batcher {
        Some(batcher) => batcher
            .submit(Arc::clone(&model), texts)?
            .await
            .map_err(|_| ApiError::Internal("the model's predict thread stopped".into()))??,
        None => {
            let model = Arc::clone(&model);
            let batch_texts = state.metrics.predict_batch_texts.clone();
            web::block(move || -> Result<_, ApiError> {
                let ids = model.encode(&texts)?;
                batch_texts.observe(ids.len() as f64);
                BatchModel::predict(&*model, &ids)
            })
            .await
            .map_err(blocking_error)??
        }
    };
    let labels = &model.model.manifest().labels;
    let predictions: Vec<PredictionOut> = (0..probs.len())
        .map(|i| {
            let (label, probability) = probs.argmax(i);
            PredictionOut {
                label,
                label_name: labels
                    .get(label)
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                probability,
                probabilities: probs.row(i).to_vec(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "model": model.name, "predictions": predictions })))
}
