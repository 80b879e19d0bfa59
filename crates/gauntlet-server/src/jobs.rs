//! Audit jobs: the plan a client submits ([`AuditRequest`], the engine's
//! [`AuditPlan`]), the durable record of a job ([`JobRecord`], what the store writes) and
//! the view the API answers with ([`JobView`]).
//!
//! A job runs its plan through the engine's one audit runner; its [`AuditReport`] (the
//! report `gauntlet run` writes for the same plan) grows attack by attack. Progress counts
//! examples over all attacks. The gate's verdict is the report's, given once the job has
//! succeeded (never for one shard).

use gauntlet_attacks::audit::{AuditPlan, AuditReport, DataIdentity, GateVerdict, NamedReport};
use gauntlet_attacks::{AttackReport, Summary};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::Checkpoint;

/// The lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in the queue.
    Queued,
    /// A worker runs it.
    Running,
    /// Every attack finished.
    Succeeded,
    /// An attack failed; see `error`.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// The server stopped before the job finished and the job cannot resume (resuming is
    /// off, or its model or dataset is gone); `error` says why.
    Interrupted,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
    ];

    /// Whether the job will not change any more.
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The state as written in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }
}

/// `POST /v1/audits`: the engine's audit plan, in its JSON spelling (see
/// `gauntlet_attacks::audit::plan`); `model` names a loaded model and `dataset.name` a file
/// in the data directory's `datasets` folder.
pub type AuditRequest = AuditPlan;

/// Progress of a job over all its attacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Attacks finished.
    pub attacks_done: usize,
    /// Attacks in the job.
    pub attacks_total: usize,
    /// Examples finished, over all attacks.
    pub done: usize,
    /// Examples times attacks.
    pub total: usize,
    /// Successful attacks so far in the running attack.
    pub successes: usize,
    /// Texts the model has evaluated so far in the running attack (moves while one slow
    /// example is searched).
    #[serde(default)]
    pub evaluated: u64,
}

/// The durable record of a job (one JSON file in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id.
    pub id: Uuid,
    /// State.
    pub state: JobState,
    /// The request as submitted.
    pub request: AuditRequest,
    /// The model's name.
    pub model: String,
    /// The model's bundle digest.
    pub model_digest: String,
    /// Digest of the word vectors `sem` took its similarities from (`attacks.sem_vectors`),
    /// when the plan has a `sem` attack and the server was given vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sem_vectors_digest: Option<String>,
    /// Number of examples.
    pub examples: usize,
    /// Submission time, ms since the epoch.
    pub created_at_ms: u64,
    /// Start time.
    pub started_at_ms: Option<u64>,
    /// End time.
    pub finished_at_ms: Option<u64>,
    /// Whether a client asked to cancel.
    pub cancel_requested: bool,
    /// Progress.
    pub progress: JobProgress,
    /// The audit report of the attacks finished (or cancelled) so far. When
    /// `examples_in_results` holds (every record this server writes), its attacks'
    /// `examples` are empty here and live in the job's results file.
    #[serde(default)]
    pub report: Option<AuditReport>,
    /// Why the job failed or was interrupted.
    pub error: Option<String>,
    /// The dataset the job was submitted with (the examples before `shard`): a resumed job
    /// must find the same data.
    #[serde(default)]
    pub data: Option<DataIdentity>,
    /// What of the results file is durable (see [`crate::store`]).
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// Whether the report's examples live in the results file (records written before
    /// results files held them inline).
    #[serde(default)]
    pub examples_in_results: bool,
    /// How many times the job resumed after a restart.
    #[serde(default)]
    pub resumed: u32,
}

/// One attack's aggregate in a [`JobView`].
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    /// The attack's name in the plan.
    pub attack: String,
    /// Whether it was cancelled before finishing.
    pub cancelled: bool,
    /// Its summary.
    pub summary: Summary,
}

/// A job as the API shows it (without per-example results).
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Job id.
    pub id: Uuid,
    /// State.
    pub state: JobState,
    /// Model name.
    pub model: String,
    /// Model digest.
    pub model_digest: String,
    /// The attacks' names in the plan, in order.
    pub attacks: Vec<String>,
    /// The shard of the plan this job runs (`I/N`), when it runs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Number of examples.
    pub examples: usize,
    /// Submission time.
    pub created_at_ms: u64,
    /// Start time.
    pub started_at_ms: Option<u64>,
    /// End time.
    pub finished_at_ms: Option<u64>,
    /// Whether a client asked to cancel.
    pub cancel_requested: bool,
    /// Progress.
    pub progress: JobProgress,
    /// How many times the job resumed from its checkpoint after a restart.
    pub resumed: u32,
    /// When the last checkpoint was written, ms since the epoch.
    pub checkpoint_at_ms: Option<u64>,
    /// Aggregates of the attacks finished so far.
    pub results: Vec<AttackResult>,
    /// Gate verdict.
    pub gate: Option<GateVerdict>,
    /// Error message.
    pub error: Option<String>,
}

impl JobRecord {
    /// The API view.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id,
            state: self.state,
            model: self.model.clone(),
            model_digest: self.model_digest.clone(),
            attacks: self.request.validate().unwrap_or_default(),
            shard: self.request.shard.map(|s| s.to_string()),
            examples: self.examples,
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            cancel_requested: self.cancel_requested,
            progress: self.progress.clone(),
            resumed: self.resumed,
            checkpoint_at_ms: self.checkpoint.map(|c| c.at_ms),
            results: self
                .report
                .iter()
                .flat_map(|r| &r.attacks)
                .map(|a| AttackResult {
                    attack: a.name.clone(),
                    cancelled: a.report.cancelled,
                    summary: a.report.summary.clone(),
                })
                .collect(),
            gate: self.report.as_ref().and_then(|r| r.verdict.clone()),
            error: self.error.clone(),
        }
    }
}

/// The report without its example lists (what a record keeps; examples live in the
/// results file).
pub fn summaries_only(report: &AuditReport) -> AuditReport {
    // Field by field, so the examples (most of a report) are never copied.
    let attacks = report
        .attacks
        .iter()
        .map(|a| {
            let r = &a.report;
            NamedReport {
                name: a.name.clone(),
                gate: a.gate.clone(),
                counts_from: a.counts_from.clone(),
                report: AttackReport {
                    model: r.model.clone(),
                    config: r.config.clone(),
                    seed: r.seed,
                    notes: r.notes.clone(),
                    cancelled: r.cancelled,
                    summary: r.summary.clone(),
                    examples: Vec::new(),
                },
            }
        })
        .collect();
    AuditReport {
        model: report.model.clone(),
        data: report.data.clone(),
        shard: report.shard,
        merged_from: report.merged_from.clone(),
        attacks,
        verdict: report.verdict.clone(),
        cancelled: report.cancelled,
        wall_time_ms: report.wall_time_ms,
    }
}
