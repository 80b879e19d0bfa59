//! `gauntlet run --spec gauntlet-audit.toml`: an [`AuditPlan`] written as TOML, for CI.
//!
//! ```toml
//! model = "models/sst2-word-cnn"      # paths are relative to the spec file
//! data = "data/test.tsv"
//! limit = 200                          # optional: first N examples
//! seed = 0                             # optional: default seed of every attack
//! shard = "0/4"                        # optional: run one shard (or --shard)
//! device = "cpu"                       # optional: auto (default), cpu or cuda
//! out_dir = "gauntlet-reports"         # optional (this is the default)
//! formats = ["json", "junit"]          # optional: json (default), markdown, junit, html
//!
//! [gate]                               # optional: thresholds of every attack
//! max_success_rate = 0.9
//!
//! [[attack]]
//! kind = "hotflip-word"
//! beam = 10
//! budget = 2                           # a count, a fraction (0.1) or "10%"
//! max_success_rate = 0.5               # this attack's own thresholds
//! min_accuracy_under_attack = 0.4
//!
//! [[attack]]
//! kind = "random"
//! counts_from = "hotflip-word"         # as many changes as that attack made per example
//! ```
//!
//! `device`, `threads`, `out_dir`, `formats`, `wordnet` and `sem_vectors` (a word2vec or
//! GloVe file `sem` takes its cosine similarities from) say how this machine runs the
//! plan and are not part of it; every other key is the plan's (see
//! `gauntlet_attacks::audit::plan`). Everything is validated before the first attack runs,
//! and the reports (`<name>.<ext>` per attack and format, `audit.json` — the audit report
//! that `gauntlet merge` and `gauntlet gate` read — and `summary.json`) are written only
//! once every attack has finished: an error (exit 2) writes nothing. Exit 1 when a
//! threshold is breached (not with `--no-gate`; never for a shard, which has no verdict).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gauntlet_attacks::audit::AuditPlan;
use gauntlet_core::DeviceChoice;
use serde::Deserialize;

use crate::args::RunArgs;
use crate::gate::{announce, Verdict};
use crate::output::{render_audit, write_atomic, Format};
use crate::session::Session;

/// How this machine runs a spec: the keys of a spec file that are not the plan's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Machine {
    /// Device (`auto`, `cpu`, `cuda`).
    device: Option<String>,
    /// libtorch threads.
    threads: Option<i32>,
    /// Output directory (default `gauntlet-reports`).
    out_dir: Option<PathBuf>,
    /// Report formats (default `["json"]`).
    #[serde(default)]
    formats: Vec<Format>,
    /// WordNet directory for `sem`.
    wordnet: Option<PathBuf>,
    /// Word vectors for `sem`'s cosine similarity (default: the model's embeddings).
    sem_vectors: Option<PathBuf>,
}

const MACHINE_KEYS: [&str; 6] = [
    "device",
    "threads",
    "out_dir",
    "formats",
    "wordnet",
    "sem_vectors",
];

fn read_spec(path: &Path) -> Result<(AuditPlan, Machine)> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the spec file {}", path.display()))?;
    let invalid = || format!("{}: invalid spec", path.display());
    let mut table: toml::Table = text.parse().with_context(invalid)?;
    let mut machine = toml::Table::new();
    for key in MACHINE_KEYS {
        if let Some(v) = table.remove(key) {
            machine.insert(key.to_owned(), v);
        }
    }
    let machine: Machine = machine.try_into().with_context(invalid)?;
    let plan: AuditPlan = table.try_into().with_context(invalid)?;
    Ok((plan, machine))
}

fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// `gauntlet run`.
pub fn run_spec(args: &RunArgs) -> Result<Verdict> {
    let (mut plan, machine) = read_spec(&args.spec)?;
    let at = |what: &str| format!("{}: {what}", args.spec.display());
    let base = args
        .spec
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    if args.limit.is_some() {
        plan.limit = args.limit;
    }
    if args.shard.is_some() {
        plan.shard = args.shard;
    }
    plan.validate().with_context(|| at("invalid plan"))?;
    let device: DeviceChoice = match (&args.device, &machine.device) {
        (Some(d), _) => *d,
        (None, Some(d)) => d
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(|| at("device"))?,
        (None, None) => DeviceChoice::Auto,
    };
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        relative(
            &base,
            machine
                .out_dir
                .as_deref()
                .unwrap_or(Path::new("gauntlet-reports")),
        )
    });
    if out_dir.exists() && !out_dir.is_dir() {
        bail!("{}: the output directory is a file", out_dir.display());
    }
    let formats = if !args.formats.is_empty() {
        args.formats.clone()
    } else if machine.formats.is_empty() {
        vec![Format::Json]
    } else {
        machine.formats.clone()
    };
    let Some(model) = plan.model.clone() else {
        bail!("{}", at("`model` (the bundle directory) is missing"));
    };
    let Some(data) = plan.dataset.0.name.clone() else {
        bail!(
            "{}",
            at("`data` (the dataset file) is missing; inline examples are for the server")
        );
    };
    let session = Session::open(
        &relative(&base, Path::new(&model)),
        &relative(&base, Path::new(&data)),
        device,
        args.threads.or(machine.threads),
        args.sem_vectors
            .clone()
            .or_else(|| machine.sem_vectors.as_deref().map(|v| relative(&base, v)))
            .as_deref(),
    )?;
    let wordnet = args
        .wordnet
        .clone()
        .or_else(|| machine.wordnet.as_deref().map(|w| relative(&base, w)));
    let report = session
        .run(plan, wordnet.as_deref())
        .with_context(|| at("audit"))?;
    eprint!("{}", gauntlet_report::summary_table(&report));

    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    if formats.contains(&Format::Html) {
        files.insert(
            out_dir.join("audit.html"),
            render_audit(Format::Html, &report)?,
        );
    }
    for a in &report.attacks {
        for f in formats.iter().filter(|f| **f != Format::Html) {
            files.insert(
                out_dir.join(format!("{}.{}", a.name, f.extension())),
                f.render(&a.report)?,
            );
        }
    }
    files.insert(
        out_dir.join("audit.json"),
        render_audit(Format::Json, &report)?,
    );
    let summary = serde_json::json!({
        "spec": args.spec.display().to_string(),
        "model": report.model,
        "shard": report.shard.map(|s| s.to_string()),
        "passed": report.verdict.as_ref().is_none_or(|v| v.passed),
        "attacks": report.attacks.iter().map(|a| {
            let s = &a.report.summary;
            serde_json::json!({
                "name": a.name,
                "attack": a.report.config.kind.name(),
                "reports": formats.iter().filter(|f| **f != Format::Html).map(|f| format!("{}.{}", a.name, f.extension())).collect::<Vec<_>>(),
                "examples": s.examples,
                "attacked": s.attacked,
                "successes": s.successes,
                "success_rate": s.success_rate,
                "accuracy_under_attack": s.accuracy_under_attack,
                "max_success_rate": a.gate.max_success_rate,
                "min_accuracy_under_attack": a.gate.min_accuracy_under_attack,
                "passed": report.verdict.as_ref().is_none_or(|v| {
                    v.checks.iter().filter(|c| c.attack == a.name).all(|c| c.passed)
                }),
            })
        }).collect::<Vec<_>>(),
    });
    files.insert(
        out_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    );
    for (path, text) in &files {
        write_atomic(path, text)?;
    }
    eprintln!(
        "wrote {} report file(s) to {}",
        files.len(),
        out_dir.display()
    );
    if let Some(shard) = report.shard {
        eprintln!(
            "shard {shard}: no verdict on one shard; `gauntlet merge` the shards' audit.json, then `gauntlet gate`"
        );
    }
    let verdict = announce(&report, false);
    Ok(if args.no_gate {
        Verdict::Passed
    } else {
        verdict
    })
}
