//! Audit jobs: submit a plan (202 with the job), list (filter by state), show, the audit
//! report (what `gauntlet run` writes for the same plan), page through the per-example
//! results, cancel, delete.

use actix_web::{web, HttpResponse};
use gauntlet_attacks::{ExampleReport, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use gauntlet_attacks::audit::resolve_inline;

use crate::jobs::{AuditRequest, JobProgress, JobRecord, JobState};
use crate::registry::now_ms;
use crate::requests::{check_attack, check_each_text, read_dataset};
use crate::routes::method_not_allowed;
use crate::scheduler::{Cancelled, JobWork};
use crate::state::{audit_error, AppState};

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
        web::resource("/audits/{id}/report")
            .route(web::get().to(report))
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
    /// The attack's name in the plan.
    pub attack: &'a str,
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
    if request.attacks.len() > limits.max_attacks_per_audit.get() {
        return Err(ApiError::LimitExceeded(format!(
            "{} attacks; at most {} per audit (limits.max_attacks_per_audit.get())",
            request.attacks.len(),
            limits.max_attacks_per_audit.get()
        )));
    }
    request.validate().map_err(audit_error)?;
    let model = state.model(request.model.as_deref())?;
    let plan = request
        .clone()
        .resolve(&model.model, state.lexicon.is_some())
        .map_err(audit_error)?;
    for attack in &plan.attacks {
        check_attack(&attack.config, limits)?;
    }
    let labels = &model.model.manifest().labels;
    let dataset = &request.dataset.0;
    let examples = match (&dataset.name, &dataset.examples) {
        (Some(name), None) => read_dataset(&state.datasets_dir, name, labels)?,
        (None, Some(inline)) => {
            resolve_inline(inline, labels, "dataset.examples").map_err(ApiError::BadRequest)?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "`dataset` needs exactly one of `name` (a file in the data directory) and `examples` (inline)".into(),
            ))
        }
    };
    let used = request.limit.unwrap_or(examples.len()).min(examples.len());
    if used == 0 {
        return Err(ApiError::BadRequest("the dataset has no example".into()));
    }
    if used > limits.max_audit_examples.get() {
        return Err(ApiError::PayloadTooLarge(format!(
            "{used} examples; at most {} per audit (limits.max_audit_examples.get()); use `limit`",
            limits.max_audit_examples.get()
        )));
    }
    check_each_text(
        examples[..used].iter().map(|e| e.text.as_str()),
        limits,
        "dataset.examples",
    )?;
    let attacked = request
        .shard
        .map_or(used, |s| (0..used).filter(|&i| s.contains(i)).count());
    let record = JobRecord {
        id: Uuid::new_v4(),
        state: JobState::Queued,
        model: model.name.clone(),
        model_digest: model.model.digest().to_owned(),
        examples: attacked,
        created_at_ms: now_ms(),
        started_at_ms: None,
        finished_at_ms: None,
        cancel_requested: false,
        progress: JobProgress {
            attacks_total: request.attacks.len(),
            total: request.attacks.len() * attacked,
            ..JobProgress::default()
        },
        report: None,
        error: None,
        request,
    };
    Ok((
        record,
        JobWork {
            model,
            plan,
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

/// The audit report of a job that has succeeded: what `gauntlet run` writes as
/// `audit.json` for the same plan (a shard's, for a shard job).
async fn report(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let job = state.scheduler.get(*id)?;
    job.read(|r| match (&r.report, r.state) {
        (Some(report), JobState::Succeeded) => Ok(HttpResponse::Ok().json(report)),
        (_, s) => Err(ApiError::Conflict(format!(
            "audit {} is {}; its report is available once it has succeeded (GET /v1/audits/{} for progress, /examples for partial results)",
            r.id,
            s.name(),
            r.id
        ))),
    })
}

async fn examples(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ExamplesQuery>,
) -> Result<HttpResponse, ApiError> {
    let max = state.config.limits.max_page_size.get();
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::LimitExceeded(format!(
            "limit {limit} must lie in 1..={max} (limits.max_page_size.get())"
        )));
    }
    let job = state.scheduler.get(*id)?;
    let page = job.read(|r| {
        let all: Vec<ExampleItem<'_>> = r
            .report
            .iter()
            .flat_map(|report| &report.attacks)
            .enumerate()
            .filter(|(i, _)| query.attack.is_none_or(|a| a == *i))
            .flat_map(|(i, named)| {
                named.report.examples.iter().map(move |e| ExampleItem {
                    attack: named.name.as_str(),
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
