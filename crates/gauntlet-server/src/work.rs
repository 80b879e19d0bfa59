//! From an audit request to a job: the checks a submission passes ([`prepare`]), and the
//! same work rebuilt for a job that resumes after a restart ([`rebuild`]), which must find
//! the same model (by digest), the same data (by [`DataIdentity`]) and, for a `sem` attack,
//! the same word vectors.

use std::sync::Arc;

use gauntlet_attacks::audit::{resolve_inline, DataIdentity};
use gauntlet_attacks::AttackKind;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{AuditRequest, JobProgress, JobRecord, JobState};
use crate::registry::{now_ms, LoadedModel};
use crate::requests::{check_attack, check_each_text, read_dataset};
use crate::scheduler::JobWork;
use crate::state::{audit_error, AppState};

/// A new job for `request`: checked against the limits and the model, its dataset read,
/// its record ready to persist.
pub fn prepare(
    state: &AppState,
    mut request: AuditRequest,
) -> Result<(JobRecord, JobWork), ApiError> {
    let model = state.model(request.model.as_deref())?;
    // Stored with its kinds explicit, so the job's attack names never depend on a model.
    request.fit_defaults(model.model.classifier().input_kind());
    let (work, attacked, data) = work_for(state, &request, Arc::clone(&model))?;
    let record = JobRecord {
        id: Uuid::new_v4(),
        state: JobState::Queued,
        model: model.name.clone(),
        model_digest: model.model.digest().to_owned(),
        sem_vectors_digest: sem_vectors_digest(&request, &model),
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
        data: Some(data),
        checkpoint: None,
        examples_in_results: true,
        resumed: 0,
        request,
    };
    Ok((record, work))
}

/// The work of a job that was queued or running when the server stopped: its model
/// (loaded again when needed) must have the digest it was submitted with, and its dataset
/// the same identity. The error says why the job cannot resume.
pub fn rebuild(state: &AppState, record: &JobRecord) -> Result<JobWork, String> {
    let name = &record.model;
    let model = match state.models.get(name) {
        Ok(model) => model,
        Err(_) => state
            .models
            .load(name)
            .map_err(|e| format!("its model {name:?} cannot be loaded: {e}"))?,
    };
    if model.model.digest() != record.model_digest {
        return Err(format!(
            "its model {name:?} changed (digest {} at submission, {} now)",
            record.model_digest,
            model.model.digest()
        ));
    }
    let vectors = sem_vectors_digest(&record.request, &model);
    if vectors != record.sem_vectors_digest {
        let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "none".into());
        return Err(format!(
            "the word vectors of its sem attack changed (attacks.sem_vectors: digest {} at submission, {} now)",
            show(&record.sem_vectors_digest),
            show(&vectors)
        ));
    }
    let (work, attacked, data) = work_for(state, &record.request, model)
        .map_err(|e| format!("its request no longer passes: {e}"))?;
    if record.data.as_ref().is_some_and(|d| *d != data) || attacked != record.examples {
        return Err("its dataset changed since it was submitted".into());
    }
    Ok(work)
}

/// The digest of the vectors `sem` takes its similarities from on `model`, when `request`
/// has a `sem` attack: a resumed job must use the same ones.
fn sem_vectors_digest(request: &AuditRequest, model: &LoadedModel) -> Option<String> {
    let sem = request
        .attacks
        .iter()
        .any(|a| a.kind == Some(AttackKind::Sem));
    sem.then(|| model.model.sem_vectors().map(|v| v.digest.clone()))
        .flatten()
}

/// Checks `request` against the server's limits and `model`, reads its dataset, and
/// builds its work; also returns how many examples it attacks (its shard's) and the
/// dataset's identity (before the shard).
fn work_for(
    state: &AppState,
    request: &AuditRequest,
    model: Arc<LoadedModel>,
) -> Result<(JobWork, usize, DataIdentity), ApiError> {
    let limits = &state.config.limits;
    if request.attacks.len() > limits.max_attacks_per_audit.get() {
        return Err(ApiError::LimitExceeded(format!(
            "{} attacks; at most {} per audit (limits.max_attacks_per_audit)",
            request.attacks.len(),
            limits.max_attacks_per_audit.get()
        )));
    }
    request.validate().map_err(audit_error)?;
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
            resolve_inline(inline, labels, "dataset.examples").map_err(ApiError::InvalidLabel)?
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
            "{used} examples; at most {} per audit (limits.max_audit_examples); use `limit`",
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
    let data = DataIdentity::of(&examples[..used]);
    let work = JobWork {
        model,
        plan,
        examples,
        lexicon: state.lexicon.clone(),
    };
    Ok((work, attacked, data))
}
