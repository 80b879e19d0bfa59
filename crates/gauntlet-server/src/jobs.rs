//! Audit jobs: the request a client submits ([`AuditRequest`]), the durable record of a job
//! ([`JobRecord`], what the store writes), the view the API answers with ([`JobView`]),
//! and the CI gate ([`Gate`], [`GateVerdict`]).
//!
//! A job runs its attacks one after another over the same examples; progress counts
//! examples over all attacks. The gate is checked against every attack's summary once the
//! job has succeeded.

use gauntlet_attacks::{AttackConfig, AttackReport, Summary};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// The server stopped before the job finished.
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

/// A label given inline: the class id, or the label's key or name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelRef {
    /// Class id.
    Id(usize),
    /// Key (as in datasets) or display name.
    Name(String),
}

/// One labelled text given inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineExample {
    /// The text.
    pub text: String,
    /// Its true label.
    pub label: LabelRef,
}

/// Where an audit's examples come from: exactly one of `name` and `examples`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A dataset file in the data directory's `datasets` folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Examples given inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Vec<InlineExample>>,
}

/// Thresholds a CI gate checks on every attack's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Fail when an attack's success rate is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_success_rate: Option<f64>,
    /// Fail when accuracy under an attack is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy_under_attack: Option<f64>,
    /// Fail when clean accuracy is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_clean_accuracy: Option<f64>,
}

/// One threshold checked against one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// The attack.
    pub attack: String,
    /// `success_rate`, `accuracy_under_attack` or `clean_accuracy`.
    pub metric: String,
    /// The threshold.
    pub threshold: f64,
    /// The measured value.
    pub value: f64,
    /// Whether the check passed.
    pub passed: bool,
}

/// The gate's verdict on a finished job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Whether every check passed.
    pub passed: bool,
    /// Every check.
    pub checks: Vec<GateCheck>,
}

impl Gate {
    /// Checks the thresholds against every report.
    pub fn verdict(&self, reports: &[AttackReport]) -> GateVerdict {
        let mut checks = Vec::new();
        for r in reports {
            let s = &r.summary;
            let attack = r.config.kind.name().to_owned();
            let mut check = |metric: &str, threshold: Option<f64>, value: f64, max: bool| {
                if let Some(threshold) = threshold {
                    checks.push(GateCheck {
                        attack: attack.clone(),
                        metric: metric.into(),
                        threshold,
                        value,
                        passed: if max {
                            value <= threshold
                        } else {
                            value >= threshold
                        },
                    });
                }
            };
            check("success_rate", self.max_success_rate, s.success_rate, true);
            check(
                "accuracy_under_attack",
                self.min_accuracy_under_attack,
                s.accuracy_under_attack,
                false,
            );
            check(
                "clean_accuracy",
                self.min_clean_accuracy,
                s.clean_accuracy,
                false,
            );
        }
        GateVerdict {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }

    /// Every threshold must be a rate in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_success_rate", self.max_success_rate),
            ("min_accuracy_under_attack", self.min_accuracy_under_attack),
            ("min_clean_accuracy", self.min_clean_accuracy),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("gate.{name} = {v} must lie in [0, 1]"));
                }
            }
        }
        Ok(())
    }
}

/// `POST /v1/audits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// A loaded model; the default model when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The attacks to run, in order.
    pub attacks: Vec<AttackConfig>,
    /// The examples.
    pub dataset: DatasetSpec,
    /// Attack only the first `limit` examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Seed of every attack (overrides the attacks' own seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Optional CI gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

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
    /// Reports of the attacks finished (or cancelled) so far.
    pub reports: Vec<AttackReport>,
    /// The gate verdict, when the job succeeded and had a gate.
    pub gate: Option<GateVerdict>,
    /// Why the job failed or was interrupted.
    pub error: Option<String>,
}

/// One attack's aggregate in a [`JobView`].
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    /// The attack.
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
    /// Attack names, in order.
    pub attacks: Vec<String>,
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
            attacks: self
                .request
                .attacks
                .iter()
                .map(|a| a.kind.name().to_owned())
                .collect(),
            examples: self.examples,
            created_at_ms: self.created_at_ms,
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            cancel_requested: self.cancel_requested,
            progress: self.progress.clone(),
            results: self
                .reports
                .iter()
                .map(|r| AttackResult {
                    attack: r.config.kind.name().to_owned(),
                    cancelled: r.cancelled,
                    summary: r.summary.clone(),
                })
                .collect(),
            gate: self.gate.clone(),
            error: self.error.clone(),
        }
    }
}
