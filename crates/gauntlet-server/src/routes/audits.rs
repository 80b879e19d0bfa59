//! Audit jobs: submit (202 with the job), list (filter by state), show, page through the
//! per-example results, cancel, delete.

use actix_web::{web, HttpResponse};
use gauntlet_attacks::{ExampleReport, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{AuditRequest, JobProgress, JobRecord, JobState};
use crate::registry::now_ms;
use crate::requests::{check_attack, check_each_text, read_dataset, resolve_inline};
use crate::routes::method_not_allowed;
use crate::scheduler::{Cancelled, JobWork};
use crate::state::{attacker, AppState};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/audits")
            .route(web::get().to(list))
            .route(web::post().to(submit))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/audits/{id}")
            .route(web::get().to(show))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/audits/{id}/examples")
            .route(web::get().to(examples))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/audits/{id}/cancel")
            .route(web::post().to(cancel))
            .default_service(web::to(method_not_allowed)),
    );
}

/// `GET /v1/audits` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
}

/// `GET /v1/audits/{id}/examples` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesQuery {
    /// Items to skip.
    #[serde(default)]
    pub offset: usize,
    /// Page size (default 100).
    pub limit: Option<usize>,
    /// Only examples with this outcome.
    pub outcome: Option<Outcome>,
    /// Only this attack (index in the job's attacks).
    pub attack: Option<usize>,
}

/// One item of the examples page.
#[derive(Debug, Serialize)]
pub struct ExampleItem<'a> {
    /// The attack's name.
    pub attack: &'static str,
    /// The attack's index in the job.
    pub attack_index: usize,
    /// The example's report.
    #[serde(flatten)]
    pub example: &'a ExampleReport,
}

fn blocking_error(e: actix_web::error::BlockingError) -> ApiError {
    ApiError::Internal(format!("the blocking pool failed: {e}"))
}

fn prepare(state: &AppState, request: AuditRequest) -> Result<(JobRecord, JobWork), ApiError> {
    let limits = &state.config.limits;
    if request.attacks.is_empty() {
        return Err(ApiError::BadRequest("`attacks` is empty".into()));
    }
    if request.attacks.len() > limits.max_attacks_per_audit {
        return Err(ApiError::LimitExceeded(format!(
            "{} attacks; at most {} per audit (limits.max_attacks_per_audit)",
            request.attacks.len(),
            limits.max_attacks_per_audit
        )));
    }
    if let Some(gate) = &request.gate {
        gate.validate().map_err(ApiError::BadRequest)?;
    }
    if request.limit == Some(0) {
        return Err(ApiError::BadRequest("`limit` must be at least 1".into()));
    }
    let model = state.model(request.model.as_deref())?;
    for config in &request.attacks {
        check_attack(config, limits)?;
        attacker(&model.model, config.clone(), state.lexicon.as_deref())?;
    }
    let labels = &model.model.manifest().labels;
    let mut examples = match (&request.dataset.name, &request.dataset.examples) {
        (Some(name), None) => read_dataset(&state.datasets_dir, name, labels)?,
        (None, Some(inline)) => resolve_inline(inline, labels, "dataset.examples")?,
        _ => {
            return Err(ApiError::BadRequest(
                "`dataset` needs exactly one of `name` (a file in the data directory) and `examples` (inline)".into(),
            ))
        }
    };
    if let Some(limit) = request.limit {
        examples.truncate(limit);
    }
    if examples.is_empty() {
        return Err(ApiError::BadRequest("the dataset has no example".into()));
    }
    if examples.len() > limits.max_audit_examples {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} examples; at most {} per audit (limits.max_audit_examples); use `limit`",
            examples.len(),
            limits.max_audit_examples
        )));
    }
    check_each_text(
        examples.iter().map(|e| e.text.as_str()),
        limits,
        "dataset.examples",
    )?;
    let record = JobRecord {
        id: Uuid::new_v4(),
        state: JobState::Queued,
        model: model.name.clone(),
        model_digest: model.model.digest().to_owned(),
        examples: examples.len(),
        created_at_ms: now_ms(),
        started_at_ms: None,
        finished_at_ms: None,
        cancel_requested: false,
        progress: JobProgress {
            attacks_total: request.attacks.len(),
            total: request.attacks.len() * examples.len(),
            ..JobProgress::default()
        },
        reports: Vec::new(),
        gate: None,
        error: None,
        request,
    };
    Ok((
        record,
        JobWork {
            model,
            examples,
            lexicon: state.lexicon.clone(),
        },
    ))
}

async fn submit(
    state: web::Data<AppState>,
    body: web::Json<AuditRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let st = state.clone();
    let view = web::block(move || {
        let (record, work) = prepare(&st, request)?;
        st.scheduler.submit(record, work)
    })
    .await
    .map_err(blocking_error)??;
    tracing::info!("audit {} queued", view.id);
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/audits/{}", view.id)))
        .json(view))
}

async fn list(state: web::Data<AppState>, query: web::Query<ListQuery>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "audits": state.scheduler.list(query.state) }))
}

async fn show(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let job = state.scheduler.get(*id)?;
    Ok(HttpResponse::Ok().json(job.read(JobRecord::view)))
}

async fn examples(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ExamplesQuery>,
) -> Result<HttpResponse, ApiError> {
    let max = state.config.limits.max_page_size;
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::LimitExceeded(format!(
            "limit {limit} must lie in 1..={max} (limits.max_page_size)"
        )));
    }
    let job = state.scheduler.get(*id)?;
    let page = job.read(|r| {
        let all: Vec<ExampleItem<'_>> = r
            .reports
            .iter()
            .enumerate()
            .filter(|(i, _)| query.attack.is_none_or(|a| a == *i))
            .flat_map(|(i, rep)| {
                rep.examples.iter().map(move |e| ExampleItem {
                    attack: rep.config.kind.name(),
                    attack_index: i,
                    example: e,
                })
            })
            .filter(|item| query.outcome.is_none_or(|o| item.example.outcome == o))
            .collect();
        let total = all.len();
        let items: Vec<_> = all.into_iter().skip(query.offset).take(limit).collect();
        json!({ "total": total, "offset": query.offset, "limit": limit, "items": items })
    });
    Ok(HttpResponse::Ok().json(page))
}

async fn cancel(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(match state.scheduler.cancel(*id)? {
        Cancelled::Now(view) => HttpResponse::Ok().json(view),
        Cancelled::Requested(view) => HttpResponse::Accepted().json(view),
    })
}

async fn delete(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    state.scheduler.delete(*id)?;
    Ok(HttpResponse::NoContent().finish())
}
