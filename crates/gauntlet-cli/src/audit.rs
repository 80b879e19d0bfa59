//! `gauntlet audit`: one attack given by flags, which spell an [`AuditPlan`] of one attack
//! (see `gauntlet_attacks::audit::plan` for the mapping), run by the shared [`Session`].
//!
//! The JSON report is the audit report (`gauntlet merge` and `gauntlet gate` read it);
//! Markdown and JUnit render the attack's report.

use anyhow::{bail, Result};
use gauntlet_attacks::audit::{AttackSpec, AuditPlan, DatasetSpec, Gate, LabelRef};
use gauntlet_attacks::AttackKind;

use crate::args::AuditArgs;
use crate::gate::{announce, Verdict};
use crate::output::{check_target, read_report, render_audit, write_atomic, Format};
use crate::session::Session;

/// The plan the `audit` flags spell.
fn plan_of(args: &AuditArgs, session: &Session) -> Result<AuditPlan> {
    let mut a = AttackSpec::new(args.attack);
    a.beam_width = args.beam;
    a.budget = args.budget.map(gauntlet_attacks::audit::BudgetSpec::Budget);
    a.confidence = args.confidence;
    a.curve = args.curve.clone();
    a.cosine_threshold = args.cosine_threshold;
    a.target = args.target.clone().map(LabelRef::Name);
    if let Some(path) = &args.random_counts_from {
        let origin = path.display().to_string();
        let report = read_report(path)?;
        let [source] = report.attacks.as_slice() else {
            bail!(
                "{origin}: the report holds {} attacks; take change counts from a one-attack \
                 report, or use `counts_from` in a spec file",
                report.attacks.len()
            );
        };
        let n = session.examples.len().min(args.limit.unwrap_or(usize::MAX));
        let covered = source.report.examples.len();
        if covered != n || report.shard.is_some() {
            bail!(
                "{origin}: the report covers {covered} examples but this audit has {n}; run the \
                 random baseline on the same data and limit"
            );
        }
        if let Some(e) = source
            .report
            .examples
            .iter()
            .find(|e| session.examples.get(e.index).map(|x| &x.text) != Some(&e.original_text))
        {
            bail!(
                "{origin}: example {} of the report is not the same text as {}:{}; run the \
                 random baseline on the same data and limit",
                e.index,
                session.data.display(),
                session.lines.get(e.index).copied().unwrap_or(0)
            );
        }
        if !report.model.ends_with(session.model.digest()) {
            eprintln!(
                "warning: {origin} was made with another model; using its change counts anyway"
            );
        }
        a.random_change_counts = Some(source.report.change_counts());
    }
    let gate = Gate::from(args.thresholds);
    Ok(AuditPlan {
        model: Some(args.model.display().to_string()),
        dataset: DatasetSpec::file(args.data.display().to_string()),
        attacks: vec![a],
        limit: args.limit,
        seed: args.seed,
        batch_size: args.batch_size,
        gate: (!gate.is_empty()).then_some(gate),
        shard: args.shard,
    })
}

/// `gauntlet audit`.
pub fn run_audit(args: &AuditArgs) -> Result<Verdict> {
    if let Some(out) = &args.out {
        check_target(out)?;
    }
    if args.random_counts_from.is_some() && args.attack != AttackKind::Random {
        bail!("--random-counts-from applies to the `random` attack only");
    }
    let format = args
        .format
        .or_else(|| args.out.as_deref().map(Format::from_path))
        .unwrap_or(Format::Json);
    let session = Session::open(
        &args.model,
        &args.data,
        args.device,
        args.threads,
        args.sem_vectors.as_deref(),
    )?;
    let plan = plan_of(args, &session)?;
    plan.validate()?;
    let report = session.run(plan, args.wordnet.as_deref())?;
    // The run's summary, on stderr after the progress bars (stdout may carry the report).
    eprint!("{}", gauntlet_report::summary_table(&report));
    let text = render_audit(format, &report)?;
    match &args.out {
        Some(out) => {
            write_atomic(out, &text)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    Ok(announce(&report, args.out.is_none()))
}
