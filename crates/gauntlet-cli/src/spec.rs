//! `gauntlet run --spec gauntlet-audit.toml`: a declarative audit for CI.
//!
//! ```toml
//! model = "models/sst2-word-cnn"      # paths are relative to the spec file
//! data = "data/test.tsv"
//! limit = 200                          # optional: first N examples
//! seed = 0                             # optional: default seed of every attack
//! device = "cpu"                       # optional: auto (default), cpu or cuda
//! out_dir = "gauntlet-reports"         # optional (this is the default)
//! formats = ["json", "junit"]          # optional: json (default), markdown, junit
//!
//! [[attack]]
//! kind = "hotflip-word"
//! beam = 10
//! budget = 2                           # a count, a fraction (0.1) or "10%"
//! max_success_rate = 0.5
//! min_accuracy_under_attack = 0.4
//!
//! [[attack]]
//! kind = "random"
//! counts_from = "hotflip-word"         # as many changes as that attack made per example
//! max_success_rate = 0.2
//! ```
//!
//! Everything is validated before the first attack runs (unknown keys and attacks, an
//! attack that does not fit the model, the data, WordNet for `sem`), and the reports
//! (`<name>.<ext>` per attack and format, plus `summary.json`) are written only once every
//! attack has finished: an error (exit 2) writes nothing. Exit 1 when a threshold of any
//! attack is breached.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gauntlet_attacks::{AttackConfig, AttackKind, AttackReport, Budget};
use gauntlet_core::DeviceChoice;
use serde::Deserialize;

use crate::args::{parse_attack, parse_budget, RunArgs};
use crate::audit::Session;
use crate::gate::{Thresholds, Verdict};
use crate::output::{write_atomic, Format};
use crate::wordnet;

/// A spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Model bundle directory.
    pub model: PathBuf,
    /// Labelled dataset.
    pub data: PathBuf,
    /// Attack only the first N examples.
    pub limit: Option<usize>,
    /// Default seed of every attack.
    pub seed: Option<u64>,
    /// Device (`auto`, `cpu`, `cuda`).
    pub device: Option<String>,
    /// Default batch size of every attack.
    pub batch_size: Option<usize>,
    /// libtorch threads.
    pub threads: Option<i32>,
    /// Output directory (default `gauntlet-reports`).
    pub out_dir: Option<PathBuf>,
    /// Report formats (default `["json"]`).
    #[serde(default)]
    pub formats: Vec<Format>,
    /// WordNet directory for `sem`.
    pub wordnet: Option<PathBuf>,
    /// The attacks, run in order.
    #[serde(default, alias = "attacks")]
    pub attack: Vec<AttackSpec>,
}

/// A budget as a spec writes it: `2`, `0.1` or `"10%"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BudgetSpec {
    /// A number of changes.
    Count(u64),
    /// A fraction of the units.
    Fraction(f64),
    /// Either, as text.
    Text(String),
}

impl BudgetSpec {
    fn resolve(&self) -> Result<Budget, String> {
        match self {
            Self::Count(n) => parse_budget(&n.to_string()),
            // A float that parses as an integer (`1.0`) stays a fraction.
            Self::Fraction(f) if *f > 0.0 && *f <= 1.0 => Ok(Budget::Fraction(*f)),
            Self::Fraction(f) => Err(format!("fraction {f} must lie in (0, 1]")),
            Self::Text(t) => parse_budget(t),
        }
    }
}

/// One attack of a spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// The attack (`hotflip-word`, ...).
    pub kind: String,
    /// Report file stem (default: the attack's name); unique within the spec.
    pub name: Option<String>,
    /// Beam width.
    pub beam: Option<usize>,
    /// Changes allowed per example.
    pub budget: Option<BudgetSpec>,
    /// Confidence τ.
    pub confidence: Option<f64>,
    /// Success-vs-τ curve.
    pub curve: Option<Vec<f64>>,
    /// Targeted mode: label key or name.
    pub target: Option<String>,
    /// `sem` cosine threshold.
    pub cosine_threshold: Option<f64>,
    /// Candidate cap of `loss-beam` and `random`.
    pub candidates_cap: Option<usize>,
    /// Seed (overrides the spec's).
    pub seed: Option<u64>,
    /// Batch size (overrides the spec's).
    pub batch_size: Option<usize>,
    /// `random`: take per-example change counts from this earlier attack of the spec.
    pub counts_from: Option<String>,
    /// Highest acceptable success rate.
    pub max_success_rate: Option<f64>,
    /// Lowest acceptable accuracy under attack.
    pub min_accuracy_under_attack: Option<f64>,
}

/// A validated attack of the spec.
struct Planned {
    name: String,
    config: AttackConfig,
    counts_from: Option<usize>,
    thresholds: Thresholds,
}

fn read_spec(path: &Path) -> Result<Spec> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the spec file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: invalid spec", path.display()))
}

fn plan(spec: &Spec, session: &Session, path: &Path) -> Result<Vec<Planned>> {
    if spec.attack.is_empty() {
        bail!("{}: the spec lists no [[attack]]", path.display());
    }
    let mut planned: Vec<Planned> = Vec::new();
    for (i, a) in spec.attack.iter().enumerate() {
        let at = || format!("{}: attack #{} ({})", path.display(), i + 1, a.kind);
        let kind = parse_attack(&a.kind)
            .map_err(anyhow::Error::msg)
            .with_context(at)?;
        let name = a.name.clone().unwrap_or_else(|| kind.name().to_owned());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!(
                "{}: name {name:?} must be letters, digits, '-', '_' or '.'",
                at()
            );
        }
        if planned.iter().any(|p| p.name == name) || name == "summary" {
            bail!(
                "{}: the report name {name:?} is taken; give the attack a `name`",
                at()
            );
        }
        let mut c = AttackConfig::new(kind);
        c.beam_width = a.beam.unwrap_or(c.beam_width);
        c.budget = a
            .budget
            .as_ref()
            .map(BudgetSpec::resolve)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(at)?;
        c.confidence = a.confidence.unwrap_or(c.confidence);
        c.curve = a.curve.clone().unwrap_or(c.curve);
        c.cosine_threshold = a.cosine_threshold.unwrap_or(c.cosine_threshold);
        c.candidates_cap = a.candidates_cap.or(c.candidates_cap);
        c.seed = a.seed.or(spec.seed).unwrap_or(c.seed);
        c.batch_size = a.batch_size.or(spec.batch_size).unwrap_or(c.batch_size);
        if let Some(t) = &a.target {
            c.target_label = Some(session.label(t).with_context(at)?);
        }
        let counts_from = match &a.counts_from {
            None => None,
            Some(_) if kind != AttackKind::Random => {
                bail!("{}: counts_from applies to the `random` attack only", at())
            }
            Some(other) => Some(planned.iter().position(|p| &p.name == other).with_context(
                || format!("{}: counts_from {other:?} names no earlier attack", at()),
            )?),
        };
        let thresholds = Thresholds {
            max_success_rate: a.max_success_rate,
            min_accuracy_under_attack: a.min_accuracy_under_attack,
        };
        thresholds.validate().with_context(at)?;
        planned.push(Planned {
            name,
            config: c,
            counts_from,
            thresholds,
        });
    }
    Ok(planned)
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
    let spec = read_spec(&args.spec)?;
    let base = args
        .spec
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let device: DeviceChoice = match (&args.device, &spec.device) {
        (Some(d), _) => *d,
        (None, Some(d)) => d
            .parse()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: device", args.spec.display()))?,
        (None, None) => DeviceChoice::Auto,
    };
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        relative(
            &base,
            spec.out_dir
                .as_deref()
                .unwrap_or(Path::new("gauntlet-reports")),
        )
    });
    if out_dir.exists() && !out_dir.is_dir() {
        bail!("{}: the output directory is a file", out_dir.display());
    }
    let formats = if spec.formats.is_empty() {
        vec![Format::Json]
    } else {
        spec.formats.clone()
    };
    let session = Session::open(
        &relative(&base, &spec.model),
        &relative(&base, &spec.data),
        device,
        args.limit.or(spec.limit),
        args.threads.or(spec.threads),
    )?;
    let planned = plan(&spec, &session, &args.spec)?;
    let lexicon = if planned.iter().any(|p| p.config.kind == AttackKind::Sem) {
        let given = args
            .wordnet
            .clone()
            .or_else(|| spec.wordnet.as_deref().map(|w| relative(&base, w)));
        Some(wordnet::load(given.as_deref())?)
    } else {
        None
    };
    // Every attack must fit the model before the first one runs.
    for p in &planned {
        session
            .attacker(p.config.clone(), lexicon.as_ref())
            .with_context(|| format!("{}: attack {:?}", args.spec.display(), p.name))?;
    }

    let mut reports: Vec<AttackReport> = Vec::with_capacity(planned.len());
    for p in &planned {
        let mut config = p.config.clone();
        if let Some(source) = p.counts_from {
            config.random_change_counts = Some(reports[source].change_counts());
        }
        let attacker = session.attacker(config, lexicon.as_ref())?;
        reports.push(session.run(&p.name, &attacker)?);
    }

    let mut verdict = Verdict::Passed;
    let mut summary = Vec::new();
    for (p, report) in planned.iter().zip(&reports) {
        let v = p.thresholds.apply(&p.name, report, false)?;
        verdict = verdict.and(v);
        let s = &report.summary;
        summary.push(serde_json::json!({
            "name": p.name,
            "attack": p.config.kind.name(),
            "reports": formats.iter().map(|f| format!("{}.{}", p.name, f.extension())).collect::<Vec<_>>(),
            "examples": s.examples,
            "attacked": s.attacked,
            "successes": s.successes,
            "success_rate": s.success_rate,
            "accuracy_under_attack": s.accuracy_under_attack,
            "max_success_rate": p.thresholds.max_success_rate,
            "min_accuracy_under_attack": p.thresholds.min_accuracy_under_attack,
            "passed": v == Verdict::Passed,
        }));
    }
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (p, report) in planned.iter().zip(&reports) {
        for f in &formats {
            files.insert(
                out_dir.join(format!("{}.{}", p.name, f.extension())),
                f.render(report)?,
            );
        }
    }
    let summary = serde_json::json!({
        "spec": args.spec.display().to_string(),
        "model": session.model.digest(),
        "passed": verdict == Verdict::Passed,
        "attacks": summary,
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
    Ok(verdict)
}
