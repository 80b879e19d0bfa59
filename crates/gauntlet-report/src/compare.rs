//! Two reports of the same data and attacks, side by side: the deltas in success rate,
//! accuracy under attack and clean accuracy, both curves, and the examples one model resists
//! and the other does not (fooled by one, a failed attack on the other).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gauntlet_attacks::audit::{AuditReport, DataIdentity};
use gauntlet_attacks::{AttackReport, CurvePoint, ExampleReport, Outcome};
use serde::{Deserialize, Serialize};

use crate::CompareError;

/// One of the two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// What the user called it (e.g. the file name).
    pub label: String,
    /// The model, `name@digest`.
    pub model: String,
}

/// One attack's figures in one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideMetrics {
    /// Success rate at the attack's confidence.
    pub success_rate: f64,
    /// Accuracy under attack.
    pub accuracy_under_attack: f64,
    /// Clean accuracy.
    pub clean_accuracy: f64,
    /// Examples attacked.
    pub attacked: usize,
    /// Successful attacks.
    pub successes: usize,
    /// The success-vs-τ curve.
    pub curve: Vec<CurvePoint>,
}

/// B minus A.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Success rate, B − A.
    pub success_rate: f64,
    /// Accuracy under attack, B − A.
    pub accuracy_under_attack: f64,
    /// Clean accuracy, B − A.
    pub clean_accuracy: f64,
}

/// An example one model resists and the other does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FooledExample {
    /// Index in the dataset.
    pub index: usize,
    /// True class.
    pub true_label: usize,
    /// The text.
    pub original_text: String,
    /// What the adversary made of it against A.
    pub a_adversarial: String,
    /// What the adversary made of it against B.
    pub b_adversarial: String,
}

/// One attack of both reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackComparison {
    /// The attack's name in both plans.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// A's figures.
    pub a: SideMetrics,
    /// B's figures.
    pub b: SideMetrics,
    /// B − A.
    pub delta: Delta,
    /// Fooled A, resisted by B (a failed attack on B), by index.
    pub only_a_fooled: Vec<FooledExample>,
    /// Fooled B, resisted by A, by index.
    pub only_b_fooled: Vec<FooledExample>,
}

/// Two reports compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first report (the baseline, say).
    pub a: Side,
    /// The second (the hardened model, say).
    pub b: Side,
    /// The data both ran on.
    pub data: DataIdentity,
    /// Attack by attack, in plan order.
    pub attacks: Vec<AttackComparison>,
}

fn metrics(r: &AttackReport) -> SideMetrics {
    let s = &r.summary;
    SideMetrics {
        success_rate: s.success_rate,
        accuracy_under_attack: s.accuracy_under_attack,
        clean_accuracy: s.clean_accuracy,
        attacked: s.attacked,
        successes: s.successes,
        curve: s.curve.clone(),
    }
}

/// The settings that make two runs of an attack the same attack (seed and batch size aside).
fn same_attack(a: &AttackReport, b: &AttackReport) -> bool {
    let (x, y) = (&a.config, &b.config);
    x.kind == y.kind
        && x.beam_width == y.beam_width
        && x.budget == y.budget
        && x.confidence == y.confidence
        && x.curve == y.curve
        && x.target_label == y.target_label
}

/// Examples fooled in `fooled` whose attack failed in `resisted`, by index.
fn fooled_only(
    fooled: &[ExampleReport],
    resisted: &[ExampleReport],
    a_first: bool,
) -> Vec<FooledExample> {
    let other: BTreeMap<usize, &ExampleReport> = resisted.iter().map(|e| (e.index, e)).collect();
    fooled
        .iter()
        .filter(|e| e.outcome == Outcome::Success)
        .filter_map(|e| {
            let o = other
                .get(&e.index)
                .filter(|o| o.outcome == Outcome::Failure)?;
            let (a, b) = if a_first { (e, *o) } else { (*o, e) };
            Some(FooledExample {
                index: e.index,
                true_label: e.true_label,
                original_text: e.original_text.clone(),
                a_adversarial: a.adversarial_text.clone(),
                b_adversarial: b.adversarial_text.clone(),
            })
        })
        .collect()
}

/// Compares `a` and `b`, which must cover the same data with the same attacks (by name,
/// kind, beam, budget, confidence, curve and target), complete.
pub fn compare(
    a: &AuditReport,
    a_label: &str,
    b: &AuditReport,
    b_label: &str,
) -> Result<Comparison, CompareError> {
    let bad = |m: String| Err(CompareError(m));
    if a.data != b.data {
        return bad(format!(
            "{a_label} and {b_label} ran on different data ({} examples, sha256 {} vs {} examples, sha256 {})",
            a.data.examples, a.data.digest, b.data.examples, b.data.digest
        ));
    }
    if a.shard != b.shard {
        return bad(format!("{a_label} and {b_label} cover different shards"));
    }
    for (label, r) in [(a_label, a), (b_label, b)] {
        if r.cancelled || r.attacks.iter().any(|x| x.report.cancelled) {
            return bad(format!("{label} is partial (its run was cancelled)"));
        }
    }
    let names = |r: &AuditReport| r.attacks.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        return bad(format!(
            "{a_label} has the attacks {:?}, {b_label} {:?}",
            names(a),
            names(b)
        ));
    }
    let mut attacks = Vec::with_capacity(a.attacks.len());
    for (x, y) in a.attacks.iter().zip(&b.attacks) {
        if !same_attack(&x.report, &y.report) {
            return bad(format!(
                "attack {:?} has different settings in {a_label} and {b_label}",
                x.name
            ));
        }
        let (ma, mb) = (metrics(&x.report), metrics(&y.report));
        attacks.push(AttackComparison {
            name: x.name.clone(),
            kind: x.report.config.kind.name().to_owned(),
            delta: Delta {
                success_rate: mb.success_rate - ma.success_rate,
                accuracy_under_attack: mb.accuracy_under_attack - ma.accuracy_under_attack,
                clean_accuracy: mb.clean_accuracy - ma.clean_accuracy,
            },
            a: ma,
            b: mb,
            only_a_fooled: fooled_only(&x.report.examples, &y.report.examples, true),
            only_b_fooled: fooled_only(&y.report.examples, &x.report.examples, false),
        });
    }
    Ok(Comparison {
        a: Side {
            label: a_label.to_owned(),
            model: a.model.clone(),
        },
        b: Side {
            label: b_label.to_owned(),
            model: b.model.clone(),
        },
        data: a.data.clone(),
        attacks,
    })
}

impl Comparison {
    /// A Markdown summary: the deltas table and the counts of examples only one resists.
    pub fn to_markdown(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let pt = |x: f64| format!("{:+.1} pt", 100.0 * x);
        let mut out = format!(
            "# Gauntlet comparison\n\n- A: {} (`{}`)\n- B: {} (`{}`)\n- Data: {} examples, sha256 `{}`\n\n",
            self.a.label, self.a.model, self.b.label, self.b.model, self.data.examples, self.data.digest
        );
        out.push_str("| attack | success rate A | B | Δ | acc. under attack A | B | Δ | clean acc. A | B | Δ | only A fooled | only B fooled |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for a in &self.attacks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                a.name,
                pct(a.a.success_rate),
                pct(a.b.success_rate),
                pt(a.delta.success_rate),
                pct(a.a.accuracy_under_attack),
                pct(a.b.accuracy_under_attack),
                pt(a.delta.accuracy_under_attack),
                pct(a.a.clean_accuracy),
                pct(a.b.clean_accuracy),
                pt(a.delta.clean_accuracy),
                a.only_a_fooled.len(),
                a.only_b_fooled.len()
            );
        }
        out
    }
}
