//! [`AuditReport`]: the machine-readable result of an audit (`audit.json`), the same from
//! the CLI, the server (`GET /v1/audits/{id}/report`) and a merge of shards.

use gauntlet_core::Example;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::gate::{Gate, GateVerdict};
use super::plan::Shard;
use crate::report::AttackReport;

/// The model identity every report carries: `name@digest`.
pub fn model_identity(name: &str, digest: &str) -> String {
    format!("{name}@{digest}")
}

/// The dataset an audit ran on: after `limit`, before sharding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// SHA-256 over every example's label and text, in order (each as its decimal label, a
    /// tab, its text's bytes, a newline).
    pub digest: String,
    /// Number of examples.
    pub examples: usize,
}

impl DataIdentity {
    /// The identity of `examples`.
    pub fn of(examples: &[Example]) -> Self {
        let mut hasher = Sha256::new();
        for ex in examples {
            hasher.update(ex.label.to_string().as_bytes());
            hasher.update(b"\t");
            hasher.update(ex.text.as_bytes());
            hasher.update(b"\n");
        }
        Self {
            digest: hex::encode(hasher.finalize()),
            examples: examples.len(),
        }
    }
}

/// Which shards a merged report was made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedFrom {
    /// The number of shards of the plan.
    pub count: usize,
    /// The shard indices merged, ascending (every one of `0..count`).
    pub shards: Vec<usize>,
}

/// One attack of an audit with its name and thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedReport {
    /// The attack's name in the plan.
    pub name: String,
    /// The thresholds in force for it (empty when none).
    #[serde(default, skip_serializing_if = "Gate::is_empty")]
    pub gate: Gate,
    /// `random`: the earlier attack whose change counts it copied (the counts themselves
    /// are left out of `report.config`, so shards of one plan share one configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_from: Option<String>,
    /// The engine's report.
    pub report: AttackReport,
}

/// The result of an audit, or of one shard of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// `name@digest` of the model.
    pub model: String,
    /// The dataset (the whole one, also in a shard's report).
    pub data: DataIdentity,
    /// The shard this report covers; absent when it covers every example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// For a merge of shards: which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<MergedFrom>,
    /// The attacks, in plan order (fewer when cancelled).
    pub attacks: Vec<NamedReport>,
    /// The gate's verdict: on whole audits with thresholds, once every attack finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<GateVerdict>,
    /// Whether the run was cancelled before it finished.
    pub cancelled: bool,
    /// Wall time of the whole audit, in milliseconds (of a merge: the longest shard's).
    pub wall_time_ms: f64,
}

impl AuditReport {
    /// Recomputes the verdict from the attacks' thresholds: none on a shard, on a cancelled
    /// audit or when no attack has a threshold.
    pub fn judge(&mut self) -> Result<(), super::AuditError> {
        self.verdict = if self.shard.is_some()
            || self.cancelled
            || self.attacks.iter().all(|a| a.gate.is_empty())
        {
            None
        } else {
            Some(GateVerdict::of(
                self.attacks
                    .iter()
                    .map(|a| (a.name.as_str(), &a.gate, &a.report)),
            )?)
        };
        Ok(())
    }
}
