//! The CI gate: thresholds ([`Gate`]) and the one verdict type ([`GateVerdict`]) that the
//! CLI (`audit`, `run`, `gate`) and the server answer with.
//!
//! A threshold holds when the value is on its side of the limit *or equal to it*. A
//! cancelled (partial) report cannot be gated: that is an error, not a pass. A verdict is
//! given on whole audits only (unsharded or merged), never on one shard.

use serde::{Deserialize, Serialize};

use super::AuditError;
use crate::report::AttackReport;

/// Thresholds checked on an attack's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Fail when the attack's success rate is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_success_rate: Option<f64>,
    /// Fail when accuracy under the attack is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy_under_attack: Option<f64>,
    /// Fail when clean accuracy is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_clean_accuracy: Option<f64>,
}

/// One threshold checked against one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// The attack's name in the audit.
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

impl GateCheck {
    /// One line for a terminal: `PASS hotflip-word: success_rate 12.00% <= 50.00%`.
    pub fn line(&self) -> String {
        let relation = if self.metric == "success_rate" {
            "<="
        } else {
            ">="
        };
        format!(
            "{} {}: {} {:.2}% {relation} {:.2}%",
            if self.passed { "PASS" } else { "FAIL" },
            self.attack,
            self.metric,
            100.0 * self.value,
            100.0 * self.threshold
        )
    }
}

/// The gate's verdict on an audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// Whether every check passed.
    pub passed: bool,
    /// Every check, attack by attack.
    pub checks: Vec<GateCheck>,
}

impl GateVerdict {
    /// Checks every `(name, gate, report)`; a cancelled report is an error.
    pub fn of<'r>(
        attacks: impl IntoIterator<Item = (&'r str, &'r Gate, &'r AttackReport)>,
    ) -> Result<Self, AuditError> {
        let mut checks = Vec::new();
        for (name, gate, report) in attacks {
            checks.extend(gate.check(name, report)?);
        }
        Ok(Self {
            passed: checks.iter().all(|c| c.passed),
            checks,
        })
    }
}

impl Gate {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        self.max_success_rate.is_none()
            && self.min_accuracy_under_attack.is_none()
            && self.min_clean_accuracy.is_none()
    }

    /// Every threshold must be a rate in [0, 1]; `at` names the place in messages.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        for (name, v) in [
            ("max_success_rate", self.max_success_rate),
            ("min_accuracy_under_attack", self.min_accuracy_under_attack),
            ("min_clean_accuracy", self.min_clean_accuracy),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("{at}.{name} = {v} must lie in [0, 1]"));
                }
            }
        }
        Ok(())
    }

    /// Checks the thresholds against one attack's report.
    pub fn check(&self, name: &str, report: &AttackReport) -> Result<Vec<GateCheck>, AuditError> {
        if report.cancelled {
            return Err(AuditError::Gate(format!(
                "the report of {name} is partial (the run was cancelled); it cannot be gated"
            )));
        }
        let s = &report.summary;
        let mut checks = Vec::new();
        for (metric, threshold, value, at_most) in [
            ("success_rate", self.max_success_rate, s.success_rate, true),
            (
                "accuracy_under_attack",
                self.min_accuracy_under_attack,
                s.accuracy_under_attack,
                false,
            ),
            (
                "clean_accuracy",
                self.min_clean_accuracy,
                s.clean_accuracy,
                false,
            ),
        ] {
            if let Some(threshold) = threshold {
                checks.push(GateCheck {
                    attack: name.to_owned(),
                    metric: metric.into(),
                    threshold,
                    value,
                    passed: if at_most {
                        value <= threshold
                    } else {
                        value >= threshold
                    },
                });
            }
        }
        Ok(checks)
    }
}
