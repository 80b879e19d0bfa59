//! [`run`]: a resolved plan over a dataset, on one model, attack after attack.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gauntlet_core::vectors::SimilarityVectors;
use gauntlet_core::{Classifier, Example, TextCodec, WhiteBox};

use super::plan::{model_ref_of, ResolvedPlan};
use super::report::{model_identity, AuditReport, DataIdentity, NamedReport};
use super::AuditError;
use crate::config::AttackConfig;
use crate::engine::{Attacker, Progress, RunControl};
use crate::error::AttackError;
use crate::lexicon::Lexicon;
use crate::report::ExampleReport;

/// A model an audit can run on: its codec, its black-box and (when it has one) white-box
/// views, and its digest.
pub trait AuditTarget {
    /// The model's text codec.
    fn codec(&self) -> &TextCodec;
    /// Predictions.
    fn classifier(&self) -> &dyn Classifier;
    /// Gradients, when the runtime gives them.
    fn white_box(&self) -> Option<&dyn WhiteBox>;
    /// Why there is no white box, for messages.
    fn white_box_unavailable(&self) -> Option<&str> {
        None
    }
    /// The model's content digest (e.g. the bundle's SHA-256).
    fn digest(&self) -> &str;
    /// Word vectors for the `sem` attack's cosine constraint, laid out by the model's ids;
    /// `None` (the default, and the paper's choice) takes the model's input embeddings.
    fn sem_similarity(&self) -> Option<&SimilarityVectors> {
        None
    }
}

/// An attacker for `target` with `config` and what `sem` needs: the `lexicon`, and the
/// target's similarity vectors when it has some. The server's one-off attacks and every
/// audit build their attackers here.
pub fn attacker_for<'a>(
    target: &'a dyn AuditTarget,
    config: AttackConfig,
    lexicon: Option<&'a dyn Lexicon>,
) -> Result<Attacker<'a>, AttackError> {
    let model = model_ref_of(target, config.kind)?;
    let mut attacker = Attacker::new(model, target.codec(), config)?;
    if let Some(lexicon) = lexicon {
        attacker = attacker.with_lexicon(lexicon);
    }
    if let Some(vectors) = target.sem_similarity() {
        attacker = attacker.with_similarity_table(&vectors.table, vectors.describe());
    }
    Ok(attacker)
}

/// What a caller hears of a running audit. Every method has an empty default.
pub trait AuditObserver: Sync {
    /// Attack `attack` (index in the plan) encoded its `examples`; `truncated` lists the
    /// dataset indices of texts cut to the model's limit.
    fn prepared(&self, _attack: usize, _name: &str, _examples: usize, _truncated: &[usize]) {}
    /// Examples of attack `attack` finished.
    fn progress(&self, _attack: usize, _progress: Progress) {}
    /// One example of attack `attack` finished (resumed examples are not told again).
    fn example_finished(&self, _attack: usize, _example: &ExampleReport) {}
    /// An attack finished (or was cancelled): the audit so far.
    fn attack_finished(&self, _partial: &AuditReport) {}
}

/// Where an interrupted audit picks up: the attacks it finished, and the example reports
/// of the attack it was running. [`run`] takes both as they are, so a resumed audit reports
/// exactly what an uninterrupted one does, wall times aside.
#[derive(Debug, Clone, Default)]
pub struct AuditResume {
    /// Attacks finished before the interruption, in plan order, examples included.
    pub finished: Vec<NamedReport>,
    /// Reports of the next attack's examples that had finished, by dataset index.
    pub partial: BTreeMap<usize, ExampleReport>,
}

/// Cancellation and observation of a run.
#[derive(Default, Clone, Copy)]
pub struct AuditControl<'a> {
    /// Set to `true` to stop at the next beam step.
    pub cancel: Option<&'a AtomicBool>,
    /// Told about progress.
    pub observer: Option<&'a dyn AuditObserver>,
    /// Results of an interrupted run of the same plan on the same model and data.
    pub resume: Option<&'a AuditResume>,
}

/// Runs `plan` over `examples` (the whole dataset: the plan's `limit` and `shard` select
/// from it) on `target`, named `name` in reports. `lexicon` serves `sem`.
pub fn run(
    plan: &ResolvedPlan,
    target: &dyn AuditTarget,
    name: &str,
    lexicon: Option<&dyn Lexicon>,
    examples: &[Example],
    control: &AuditControl<'_>,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let keep = plan
        .plan
        .limit
        .unwrap_or(examples.len())
        .min(examples.len());
    let examples = &examples[..keep];
    if examples.is_empty() {
        return Err(AuditError::Data("the dataset has no example".into()));
    }
    let shard = plan.plan.shard;
    let selected: Vec<(usize, &Example)> = examples
        .iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.contains(*i)))
        .collect();
    let mut audit = AuditReport {
        model: model_identity(name, target.digest()),
        data: DataIdentity::of(examples),
        shard,
        merged_from: None,
        attacks: Vec::with_capacity(plan.attacks.len()),
        verdict: None,
        cancelled: false,
        wall_time_ms: 0.0,
    };
    let observer = control.observer;
    let resume = control.resume;
    if let Some(resume) = resume {
        check_resume(plan, resume)?;
        audit.attacks.extend(resume.finished.iter().cloned());
    }
    let first = audit.attacks.len();
    for (i, attack) in plan.attacks.iter().enumerate().skip(first) {
        if control.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            audit.cancelled = true;
            break;
        }
        let fail = |error| AuditError::Attack {
            name: attack.name.clone(),
            error,
        };
        let mut config = attack.config.clone();
        let counts_from = attack.counts_from.map(|j| &audit.attacks[j]);
        if let Some(source) = counts_from {
            config.random_change_counts = Some(source.report.change_counts());
        }
        let attacker = attacker_for(target, config, lexicon)
            .map_err(fail)?
            .with_model_id(audit.model.clone());
        let prepared = attacker
            .prepare_indexed(selected.iter().copied())
            .map_err(fail)?;
        if let Some(o) = observer {
            let truncated: Vec<usize> = prepared
                .iter()
                .filter(|p| p.encoded.truncated)
                .map(|p| p.index)
                .collect();
            o.prepared(i, &attack.name, prepared.len(), &truncated);
        }
        let progress = |p: Progress| {
            if let Some(o) = observer {
                o.progress(i, p);
            }
        };
        let on_example = |e: &ExampleReport| {
            if let Some(o) = observer {
                o.example_finished(i, e);
            }
        };
        let run_control = RunControl {
            cancel: control.cancel,
            progress: Some(&progress),
            on_example: Some(&on_example),
            resumed: resume.filter(|_| i == first).map(|r| &r.partial),
        };
        let mut report = attacker.run(&prepared, &run_control).map_err(fail)?;
        let counts_from = counts_from.map(|a| a.name.clone());
        if counts_from.is_some() {
            report.config.random_change_counts = None;
        }
        let cancelled = report.cancelled;
        audit.attacks.push(NamedReport {
            name: attack.name.clone(),
            gate: attack.gate.clone(),
            counts_from,
            report,
        });
        audit.cancelled = cancelled;
        audit.wall_time_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some(o) = observer {
            o.attack_finished(&audit);
        }
        if cancelled {
            break;
        }
    }
    audit.wall_time_ms = started.elapsed().as_secs_f64() * 1000.0;
    audit.judge()?;
    Ok(audit)
}

/// A resume must continue this plan: its finished attacks are the plan's first ones, by
/// name, each complete.
fn check_resume(plan: &ResolvedPlan, resume: &AuditResume) -> Result<(), AuditError> {
    if resume.finished.len() > plan.attacks.len() {
        return Err(AuditError::Plan(format!(
            "cannot resume: {} attacks finished, but the plan has {}",
            resume.finished.len(),
            plan.attacks.len()
        )));
    }
    for (done, attack) in resume.finished.iter().zip(&plan.attacks) {
        if done.name != attack.name || done.report.cancelled {
            return Err(AuditError::Plan(format!(
                "cannot resume: finished attack {:?} is not the plan's complete attack {:?}",
                done.name, attack.name
            )));
        }
    }
    if resume.finished.len() == plan.attacks.len() && !resume.partial.is_empty() {
        return Err(AuditError::Plan(
            "cannot resume: example results beyond the plan's last attack".into(),
        ));
    }
    Ok(())
}
