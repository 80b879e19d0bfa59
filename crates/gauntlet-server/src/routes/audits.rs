//! Audit jobs: submit a plan (202 with the job), list (filter by state), show, the audit
//! report (what `gauntlet run` writes for the same plan), page through the per-example
//! results, cancel, delete.

use actix_web::{web, HttpResponse};
use gauntlet_attacks::audit::AuditReport;
use gauntlet_attacks::{ExampleReport, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{AuditRequest, JobRecord, JobState};
use crate::routes::method_not_allowed;
use crate::scheduler::Cancelled;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/audits")
            .route(web::get().to(list))
            .route(web::post().to(submit))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/audits/{id}")
            .route(web::get().to(show))
            .route(web::delete().to(delete))
            .default_service(method_not_allowed("GET, DELETE")),
    )
    .service(
        web::resource("/audits/{id}/report")
            .route(web::get().to(report))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/audits/{id}/report.html")
            .route(web::get().to(report_html))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/audits/{id}/examples")
            .route(web::get().to(examples))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/audits/{id}/cancel")
            .route(web::post().to(cancel))
            .default_service(method_not_allowed("POST")),
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

async fn submit(
    state: web::Data<AppState>,
    body: web::Json<AuditRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let st = state.clone();
    let view = web::block(move || {
        let (record, work) = crate::work::prepare(&st, request)?;
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

/// The whole report of a job that has succeeded, its examples read from the job's results
/// file (409 before).
async fn full_report(state: &web::Data<AppState>, id: Uuid) -> Result<AuditReport, ApiError> {
    let record = state.scheduler.get(id)?.record();
    let report = match (&record.report, record.state) {
        (Some(report), JobState::Succeeded) => report.clone(),
        (_, s) => {
            return Err(ApiError::Conflict(format!(
                "audit {} is {}; its report is available once it has succeeded (GET /v1/audits/{} for progress, /examples for partial results)",
                record.id,
                s.name(),
                record.id
            )))
        }
    };
    let st = state.clone();
    web::block(move || -> Result<_, ApiError> {
        let mut report = report;
        let examples = st.scheduler.examples(&record)?;
        for (attack, examples) in report.attacks.iter_mut().zip(examples) {
            attack.report.examples = examples;
        }
        Ok(report)
    })
    .await
    .map_err(blocking_error)?
}

/// The audit report of a job that has succeeded: what `gauntlet run` writes as
/// `audit.json` for the same plan (a shard's, for a shard job).
async fn report(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(full_report(&state, *id).await?))
}

/// The same report as the page `gauntlet audit --format html` writes, under its own
/// Content-Security-Policy.
async fn report_html(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let report = full_report(&state, *id).await?;
    let page = web::block(move || gauntlet_report::audit_page(&report))
        .await
        .map_err(blocking_error)?;
    let policy = page.header_policy();
    Ok(crate::routes::ui::html_response(page.html, &policy))
}

/// A page of a job's example reports, attack by attack in index order: those of finished
/// attacks and, while a job runs, those its last checkpoint holds.
async fn examples(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ExamplesQuery>,
) -> Result<HttpResponse, ApiError> {
    let max = state.config.limits.max_page_size.get();
    let limit = query.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::LimitExceeded(format!(
            "limit {limit} must lie in 1..={max} (limits.max_page_size)"
        )));
    }
    let attacks = state.config.limits.max_attacks_per_audit.get();
    let offsets = state.config.limits.max_audit_examples.get() * attacks;
    if query.offset > offsets {
        return Err(ApiError::LimitExceeded(format!(
            "offset {} is above {offsets} (limits.max_audit_examples × limits.max_attacks_per_audit)",
            query.offset
        )));
    }
    if let Some(a) = query.attack.filter(|&a| a >= attacks) {
        return Err(ApiError::LimitExceeded(format!(
            "attack {a} must lie below {attacks} (limits.max_attacks_per_audit)"
        )));
    }
    let record = state.scheduler.get(*id)?.record();
    let st = state.clone();
    let query = query.into_inner();
    let page = web::block(move || -> Result<_, ApiError> {
        let names = record.request.validate().unwrap_or_default();
        let by_attack = st.scheduler.examples(&record)?;
        let all: Vec<ExampleItem<'_>> = by_attack
            .iter()
            .enumerate()
            .filter(|(i, _)| query.attack.is_none_or(|a| a == *i))
            .flat_map(|(i, examples)| {
                let name = names.get(i).map_or("", String::as_str);
                examples.iter().map(move |e| ExampleItem {
                    attack: name,
                    attack_index: i,
                    example: e,
                })
            })
            .filter(|item| query.outcome.is_none_or(|o| item.example.outcome == o))
            .collect();
        let total = all.len();
        let items: Vec<_> = all.into_iter().skip(query.offset).take(limit).collect();
        Ok(json!({ "total": total, "offset": query.offset, "limit": limit, "items": items }))
    })
    .await
    .map_err(blocking_error)??;
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
