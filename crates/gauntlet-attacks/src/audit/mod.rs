//! Audits: one [`AuditPlan`] run the same way by `gauntlet run`, `gauntlet audit`, the
//! server's workers and a Kubernetes Indexed Job, and one [`AuditReport`] they all write.
//!
//! Flow: parse a plan ([`plan`], three spellings of one serde type), [`AuditPlan::resolve`]
//! it against the model (an [`AuditTarget`]), then [`run`] it over the dataset. Invariants:
//!
//! * the model is named `name@digest` in every report ([`model_identity`]);
//! * `limit` applies to the dataset first, then the shard ([`Shard`]: the examples whose
//!   index is ≡ I mod N); examples keep their index in the whole dataset, which seeds their
//!   random choices, so a shard's example reports are exactly the unsharded run's for
//!   those examples, whatever N and the batch size (see [`crate::engine`]);
//! * [`merge`] of shards 0..N of one plan equals the unsharded report in every field but
//!   wall times and `merged_from`;
//! * a [`GateVerdict`] is given on whole audits only (unsharded or merged).

mod gate;
mod merge;
pub mod plan;
mod report;
mod run;

pub use gate::{Gate, GateCheck, GateVerdict};
pub use merge::merge;
pub use plan::{
    resolve_inline, AttackSpec, AuditPlan, BudgetSpec, DatasetFields, DatasetSpec, InlineExample,
    LabelRef, ResolvedAttack, ResolvedPlan, Shard,
};
pub use report::{model_identity, AuditReport, DataIdentity, MergedFrom, NamedReport};
pub use run::{attacker_for, run, AuditControl, AuditObserver, AuditResume, AuditTarget};

use crate::error::AttackError;

/// Errors of planning, running, merging and gating audits.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The plan is invalid before any model is looked at.
    #[error("invalid audit plan: {0}")]
    Plan(String),
    /// The plan's settings are each valid but contradict each other (a shard index not
    /// below its count, a report name used twice, `counts_from` naming no earlier attack).
    #[error("inconsistent audit plan: {0}")]
    Inconsistent(String),
    /// An attack of the plan does not fit the model, or failed.
    #[error("attack {name:?}: {error}")]
    Attack {
        /// The attack's name in the plan.
        name: String,
        /// The engine's error.
        error: AttackError,
    },
    /// The dataset does not fit the plan.
    #[error("{0}")]
    Data(String),
    /// Reports that do not merge.
    #[error("cannot merge: {0}")]
    Merge(String),
    /// A report that cannot be gated.
    #[error("{0}")]
    Gate(String),
}

#[cfg(test)]
mod tests;
