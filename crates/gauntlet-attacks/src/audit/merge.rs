//! [`merge`]: shard reports of one plan into the report one machine would have written.
//!
//! Checks, each refused with the shard it is about: every report is a shard (not a whole
//! or merged report), not cancelled, of the same shard count, model, dataset, attacks
//! (names, thresholds, configurations, notes) and seed; each shard index appears once and
//! none is missing; every example index of the dataset is reported by exactly the shard it
//! belongs to. The merged report's examples are in index order and its summaries are
//! recomputed from them with [`Summary::compute`], so it equals the unsharded report in
//! every field but wall times (a merge reports the longest shard's) and `merged_from`.

use super::report::{AuditReport, MergedFrom, NamedReport};
use super::AuditError;
use crate::report::{AttackReport, ExampleReport, Summary};

/// Merges shard reports (in any order) of one plan.
pub fn merge(shards: Vec<AuditReport>) -> Result<AuditReport, AuditError> {
    let bad = |m: String| Err(AuditError::Merge(m));
    let Some(first) = shards.first() else {
        return bad("no report given".into());
    };
    let Some(count) = first.shard.map(|s| s.count) else {
        return bad(
            "report 1 is not a shard (it has no `shard`): merge the reports of `--shard I/N` runs"
                .into(),
        );
    };
    let mut seen: Vec<Option<usize>> = vec![None; count];
    for (k, r) in shards.iter().enumerate() {
        let which = format!(
            "report {} (shard {})",
            k + 1,
            r.shard.map_or("none".into(), |s| s.to_string())
        );
        let Some(shard) = r.shard else {
            return bad(format!("{which} is not a shard"));
        };
        if shard.count != count {
            return bad(format!(
                "{which} is one of {} shards, report 1 one of {count}",
                shard.count
            ));
        }
        if let Some(j) = seen[shard.index].replace(k) {
            return bad(format!(
                "shard {shard} is given twice: reports {} and {}",
                j + 1,
                k + 1
            ));
        }
        if r.cancelled || r.attacks.iter().any(|a| a.report.cancelled) {
            return bad(format!("{which} is partial (its run was cancelled)"));
        }
        if r.model != first.model {
            return bad(format!(
                "{which} is of model {}, report 1 of {}",
                r.model, first.model
            ));
        }
        if r.data != first.data {
            return bad(format!(
                "{which} is of another dataset ({} examples, digest {}; report 1: {} examples, digest {})",
                r.data.examples, r.data.digest, first.data.examples, first.data.digest
            ));
        }
        if r.attacks.len() != first.attacks.len()
            || r.attacks
                .iter()
                .zip(&first.attacks)
                .any(|(a, b)| !same_attack(a, b))
        {
            return bad(format!(
                "{which} ran other attacks or settings than report 1 ({} vs {})",
                names(r),
                names(first)
            ));
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return bad(format!("shard(s) {} missing", missing.join(", ")));
    }

    let total = first.data.examples;
    let mut attacks = Vec::with_capacity(first.attacks.len());
    for (a, template) in first.attacks.iter().enumerate() {
        let mut examples: Vec<ExampleReport> = Vec::with_capacity(total);
        let mut wall = 0.0_f64;
        for r in &shards {
            let shard = r
                .shard
                .ok_or_else(|| AuditError::Merge("not a shard".into()))?;
            let report = &r.attacks[a].report;
            if let Some(e) = report.examples.iter().find(|e| !shard.contains(e.index)) {
                return bad(format!(
                    "shard {shard} reports example {} of attack {}, which belongs to shard {}/{count}",
                    e.index,
                    template.name,
                    e.index % count
                ));
            }
            examples.extend(report.examples.iter().cloned());
            wall = wall.max(report.summary.wall_time_ms);
        }
        examples.sort_by_key(|e| e.index);
        if examples.len() != total || examples.iter().enumerate().any(|(i, e)| e.index != i) {
            return bad(format!(
                "attack {}: the shards report {} examples, not each of the dataset's {total} once",
                template.name,
                examples.len()
            ));
        }
        let t = &template.report;
        attacks.push(NamedReport {
            name: template.name.clone(),
            gate: template.gate.clone(),
            counts_from: template.counts_from.clone(),
            report: AttackReport {
                model: t.model.clone(),
                config: t.config.clone(),
                seed: t.seed,
                notes: t.notes.clone(),
                cancelled: false,
                summary: Summary::compute(&examples, t.config.confidence, wall),
                examples,
            },
        });
    }
    let mut merged = AuditReport {
        model: first.model.clone(),
        data: first.data.clone(),
        shard: None,
        merged_from: Some(MergedFrom {
            count,
            shards: (0..count).collect(),
        }),
        attacks,
        verdict: None,
        cancelled: false,
        wall_time_ms: shards.iter().map(|r| r.wall_time_ms).fold(0.0, f64::max),
    };
    merged.judge()?;
    Ok(merged)
}

fn same_attack(a: &NamedReport, b: &NamedReport) -> bool {
    a.name == b.name
        && a.gate == b.gate
        && a.counts_from == b.counts_from
        && a.report.config == b.report.config
        && a.report.seed == b.report.seed
        && a.report.notes == b.report.notes
        && a.report.model == b.report.model
}

fn names(r: &AuditReport) -> String {
    r.attacks
        .iter()
        .map(|a| a.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
