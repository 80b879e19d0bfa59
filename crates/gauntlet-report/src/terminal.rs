//! The compact summary a CLI audit prints at its end (after TextAttack's "Attack Results"
//! table): one column per attack.

use std::fmt::Write as _;

use gauntlet_attacks::audit::AuditReport;

/// The table, with a trailing newline; plain ASCII so CI logs keep it intact.
pub fn summary_table(report: &AuditReport) -> String {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut rows: Vec<(String, Vec<String>)> = vec![("Attack results".into(), Vec::new())];
    let mut add = |name: &str, f: &dyn Fn(&gauntlet_attacks::AttackReport) -> String| {
        rows.push((
            name.into(),
            report.attacks.iter().map(|a| f(&a.report)).collect(),
        ));
    };
    add("Successful attacks", &|r| r.summary.successes.to_string());
    add("Failed attacks", &|r| {
        (r.summary.attacked - r.summary.successes).to_string()
    });
    add("Skipped (misclassified)", &|r| {
        r.summary.skipped.to_string()
    });
    add("Clean accuracy", &|r| pct(r.summary.clean_accuracy));
    add("Accuracy under attack", &|r| {
        pct(r.summary.accuracy_under_attack)
    });
    add("Attack success rate", &|r| pct(r.summary.success_rate));
    add("Mean fraction changed", &|r| {
        pct(r.summary.mean_fraction_changed)
    });
    add("Forward passes per example", &|r| {
        format!("{:.1}", r.summary.mean_forward_passes)
    });
    add("Time per example (ms)", &|r| {
        format!(
            "{:.1}",
            r.summary.wall_time_ms / r.summary.examples.max(1) as f64
        )
    });
    rows[0].1 = report.attacks.iter().map(|a| a.name.clone()).collect();
    let width0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..report.attacks.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.1[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = {
        let mut s = format!("+-{}-+", "-".repeat(width0));
        for w in &widths {
            let _ = write!(s, "-{}-+", "-".repeat(*w));
        }
        s + "\n"
    };
    let mut out = rule.clone();
    for (k, (name, cells)) in rows.iter().enumerate() {
        let _ = write!(out, "| {name:<width0$} |");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, " {cell:>w$} |");
        }
        out.push('\n');
        if k == 0 {
            out.push_str(&rule);
        }
    }
    out.push_str(&rule);
    out
}
