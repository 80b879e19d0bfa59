//! Thresholds and verdicts: the CI gate shared by `audit`, `gate` and `run`.
//!
//! Two thresholds exist: a maximum success rate of the attack (successes over attacked
//! examples, at the report's confidence) and a minimum accuracy under attack (examples
//! still classified correctly after the attack, over all examples). A threshold holds when
//! the value is on its side of the limit *or equal to it*. A cancelled (partial) report
//! cannot be gated: that is an error, not a pass.

use anyhow::{bail, Result};
use gauntlet_attacks::AttackReport;
use serde::Deserialize;

use crate::args::{GateArgs, ThresholdArgs};
use crate::output::read_report;

/// The result of a command: every threshold held, or one was breached (errors are `Err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exit 0.
    Passed,
    /// Exit 1.
    Breached,
}

impl Verdict {
    /// `Breached` if either is.
    pub fn and(self, other: Verdict) -> Verdict {
        if self == Verdict::Breached || other == Verdict::Breached {
            Verdict::Breached
        } else {
            Verdict::Passed
        }
    }
}

/// Thresholds of one attack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Highest acceptable success rate.
    pub max_success_rate: Option<f64>,
    /// Lowest acceptable accuracy under attack.
    pub min_accuracy_under_attack: Option<f64>,
}

impl From<ThresholdArgs> for Thresholds {
    fn from(a: ThresholdArgs) -> Self {
        Self {
            max_success_rate: a.max_success_rate,
            min_accuracy_under_attack: a.min_accuracy_under_attack,
        }
    }
}

/// One checked threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was measured, in words.
    pub metric: &'static str,
    /// The measured value.
    pub value: f64,
    /// `<=` or `>=`.
    pub relation: &'static str,
    /// The limit.
    pub limit: f64,
    /// Whether the threshold held.
    pub passed: bool,
}

impl Thresholds {
    /// Whether no threshold is set.
    pub fn is_empty(&self) -> bool {
        self.max_success_rate.is_none() && self.min_accuracy_under_attack.is_none()
    }

    /// Checks that every limit is a rate in [0, 1].
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("max_success_rate", self.max_success_rate),
            ("min_accuracy_under_attack", self.min_accuracy_under_attack),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    bail!("{name} = {v}: a rate must lie in [0, 1]");
                }
            }
        }
        Ok(())
    }

    /// Checks a report; a cancelled report is an error.
    pub fn check(&self, report: &AttackReport) -> Result<Vec<Check>> {
        if report.cancelled {
            bail!("the report is partial (the run was cancelled); it cannot be gated");
        }
        let s = &report.summary;
        let mut checks = Vec::new();
        if let Some(limit) = self.max_success_rate {
            checks.push(Check {
                metric: "success rate",
                value: s.success_rate,
                relation: "<=",
                limit,
                passed: s.success_rate <= limit,
            });
        }
        if let Some(limit) = self.min_accuracy_under_attack {
            checks.push(Check {
                metric: "accuracy under attack",
                value: s.accuracy_under_attack,
                relation: ">=",
                limit,
                passed: s.accuracy_under_attack >= limit,
            });
        }
        Ok(checks)
    }

    /// Checks a report and prints one line per threshold (on stdout, or on stderr when
    /// stdout carries the report itself).
    pub fn apply(&self, name: &str, report: &AttackReport, stderr: bool) -> Result<Verdict> {
        let checks = self.check(report)?;
        if report.summary.attacked == 0 && !checks.is_empty() {
            eprintln!(
                "warning: {name}: no example was attacked (the model misclassifies every one), \
                 so the success rate is 0"
            );
        }
        let mut verdict = Verdict::Passed;
        for c in &checks {
            let line = format!(
                "{} {name}: {} {:.2}% {} {:.2}% ({} examples, {} attacked, {} successes)",
                if c.passed { "PASS" } else { "FAIL" },
                c.metric,
                100.0 * c.value,
                c.relation,
                100.0 * c.limit,
                report.summary.examples,
                report.summary.attacked,
                report.summary.successes,
            );
            if stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            if !c.passed {
                verdict = Verdict::Breached;
            }
        }
        Ok(verdict)
    }
}

/// `gauntlet gate`: checks a saved JSON report.
pub fn run_gate(args: &GateArgs) -> Result<Verdict> {
    let thresholds = Thresholds::from(args.thresholds);
    if thresholds.is_empty() {
        bail!("give at least one of --max-success-rate and --min-accuracy-under-attack");
    }
    thresholds.validate()?;
    let report = read_report(&args.report)?;
    thresholds.apply(report.config.kind.name(), &report, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_be_rates_and_verdicts_combine() {
        let t = Thresholds {
            max_success_rate: Some(1.5),
            min_accuracy_under_attack: None,
        };
        assert!(t.validate().is_err());
        assert!(Thresholds::default().is_empty());
        assert_eq!(Verdict::Passed.and(Verdict::Breached), Verdict::Breached);
        assert_eq!(Verdict::Passed.and(Verdict::Passed), Verdict::Passed);
    }
}
