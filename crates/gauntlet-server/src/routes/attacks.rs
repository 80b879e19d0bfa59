//! `POST /v1/attacks`: a synchronous attack on a few labelled texts, answered with the
//! engine's report (per-example results and summary).
//!
//! The attack runs on the blocking pool under a per-request time limit
//! (`limits.attack_timeout_ms`): on timeout the run's cancel flag is set, so the engine
//! stops at its next beam step, and the client gets `504 attack_timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use gauntlet_attacks::audit::{model_identity, resolve_inline, InlineExample};
use gauntlet_attacks::{AttackConfig, AttackKind, RunControl};
use serde::Deserialize;

use crate::error::ApiError;
use crate::requests::{check_attack, check_texts};
use crate::routes::method_not_allowed;
use crate::state::{attacker, check_attack_fits, AppState};

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/attacks")
            .route(web::post().to(attack))
            .default_service(method_not_allowed("POST")),
    );
}

/// `POST /v1/attacks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackRequest {
    /// A loaded model; the default model when omitted.
    #[serde(default)]
    pub model: Option<String>,
    /// The attack and its parameters (an [`AttackConfig`]); without `kind`, the model's
    /// HotFlip ([`gauntlet_attacks::AttackKind::default_for`]).
    pub attack: serde_json::Map<String, serde_json::Value>,
    /// Labelled texts.
    pub examples: Vec<InlineExample>,
}

async fn attack(
    state: web::Data<AppState>,
    body: web::Json<AttackRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let limits = &state.config.limits;
    check_texts(
        req.examples.iter().map(|e| e.text.as_str()),
        limits,
        "examples",
    )?;
    let model = state.model(req.model.as_deref())?;
    let mut raw = req.attack;
    let default = AttackKind::default_for(model.model.classifier().input_kind());
    raw.entry("kind")
        .or_insert_with(|| serde_json::Value::String(default.name().into()));
    let config: AttackConfig = serde_json::from_value(serde_json::Value::Object(raw))
        .map_err(|e| ApiError::InvalidJson(format!("invalid JSON body: attack: {e}")))?;
    check_attack(&config, limits)?;
    let examples = resolve_inline(&req.examples, &model.model.manifest().labels, "examples")
        .map_err(ApiError::InvalidLabel)?;
    let kind = config.kind;
    // Validate before spending blocking time (config errors are not subject to the limit);
    // the attacker itself is built once, below.
    let mut config = config;
    check_attack_fits(&model.model, &mut config, state.lexicon.is_some())?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let lexicon = state.lexicon.clone();
    let task = web::block(move || {
        let m = &model.model;
        attacker(m, config, lexicon.as_deref())?
            .with_model_id(model_identity(&model.name, m.digest()))
            .run_examples(
                &examples,
                &RunControl {
                    cancel: Some(&flag),
                    progress: None,
                    ..RunControl::default()
                },
            )
            .map_err(ApiError::from)
    });
    let limit = limits.attack_timeout_ms.get();
    match tokio::time::timeout(Duration::from_millis(limit), task).await {
        Ok(Ok(Ok(report))) => {
            state.metrics.observe_report(&report, "completed");
            Ok(HttpResponse::Ok().json(report))
        }
        Ok(Ok(Err(e))) => {
            state
                .metrics
                .attacks
                .with_label_values(&[kind.name(), "failed"])
                .inc();
            Err(e)
        }
        Ok(Err(e)) => Err(ApiError::Internal(format!("the blocking pool failed: {e}"))),
        Err(_) => {
            cancel.store(true, Ordering::SeqCst);
            state
                .metrics
                .attacks
                .with_label_values(&[kind.name(), "timed_out"])
                .inc();
            Err(ApiError::Timeout(limit))
        }
    }
}
