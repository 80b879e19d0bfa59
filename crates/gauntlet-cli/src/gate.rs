//! Verdicts on the command line: the engine's one gate ([`gauntlet_attacks::audit::Gate`])
//! printed one line per threshold, and `gauntlet gate` on a saved report.
//!
//! Thresholds are rates in [0, 1] and hold when the value is on their side of the limit or
//! equal to it. A cancelled (partial) report or a single shard cannot be gated: that is
//! an error, not a pass (merge the shards first).

use anyhow::{bail, Result};
use gauntlet_attacks::audit::{AuditReport, Gate};

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

impl From<ThresholdArgs> for Gate {
    fn from(a: ThresholdArgs) -> Self {
        Self {
            max_success_rate: a.max_success_rate,
            min_accuracy_under_attack: a.min_accuracy_under_attack,
            min_clean_accuracy: None,
        }
    }
}

/// Prints the report's verdict, one line per threshold (on stderr when stdout carries the
/// report itself), and answers it; `Passed` when the report has none.
pub fn announce(report: &AuditReport, stderr: bool) -> Verdict {
    let Some(verdict) = &report.verdict else {
        return Verdict::Passed;
    };
    for a in &report.attacks {
        if a.report.summary.attacked == 0 && !a.gate.is_empty() {
            eprintln!(
                "warning: {}: no example was attacked (the model misclassifies every one), \
                 so the success rate is 0",
                a.name
            );
        }
    }
    for check in &verdict.checks {
        let s = report
            .attacks
            .iter()
            .find(|a| a.name == check.attack)
            .map(|a| &a.report.summary);
        let line = match s {
            Some(s) => format!(
                "{} ({} examples, {} attacked, {} successes)",
                check.line(),
                s.examples,
                s.attacked,
                s.successes
            ),
            None => check.line(),
        };
        if stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if verdict.passed {
        Verdict::Passed
    } else {
        Verdict::Breached
    }
}

/// `gauntlet gate`: checks a saved JSON report against the given thresholds, or those its
/// plan set.
pub fn run_gate(args: &GateArgs) -> Result<Verdict> {
    let mut report = read_report(&args.report)?;
    if let Some(shard) = report.shard {
        bail!(
            "{} is shard {shard} of an audit; gate the whole audit: `gauntlet merge` the shards' reports first",
            args.report.display()
        );
    }
    let given = Gate::from(args.thresholds);
    given.validate("threshold").map_err(anyhow::Error::msg)?;
    if !given.is_empty() {
        for a in &mut report.attacks {
            a.gate = given.clone();
        }
    } else if report.attacks.iter().all(|a| a.gate.is_empty()) {
        bail!(
            "{} sets no threshold; give at least one of --max-success-rate and --min-accuracy-under-attack",
            args.report.display()
        );
    }
    report.judge()?;
    Ok(announce(&report, false))
}
