//! `gauntlet audit`, and the pieces `run` shares with it: a [`Session`] (one model and one
//! dataset, loaded and validated once) that runs attacks with a progress bar.
//!
//! Input policy, the same for every command:
//!
//! * the dataset is read and validated *completely* (every row, every label) before
//!   anything runs, even with `--limit`; a malformed row, an empty text or a label outside
//!   the model's labels is an error naming the file and line;
//! * a text longer than the model's limit (`max_length` words, or `max_word_length`
//!   characters per word for character models) is *truncated*, as in training and
//!   evaluation, and a warning says how many texts were and names the first one's line;
//! * the attack is checked against the model (a character attack on a word model is an
//!   error) before any example is attacked.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use gauntlet_attacks::{
    AttackConfig, AttackError, AttackKind, AttackReport, Attacker, Lexicon, ModelRef,
    PreparedExample, RunControl, WordNetLexicon,
};
use gauntlet_backends::{LoadOptions, LoadedBundle};
use gauntlet_core::dataset::{read_raw, resolve};
use gauntlet_core::{DeviceChoice, Example};

use crate::args::AuditArgs;
use crate::gate::{Thresholds, Verdict};
use crate::output::{check_target, read_report, write_atomic, AttackBar, Format};
use crate::wordnet;

/// A loaded model and dataset.
pub struct Session {
    /// The model under audit, on its runtime.
    pub model: LoadedBundle,
    /// The dataset file (for messages).
    pub data: PathBuf,
    /// The examples to attack (after `limit`).
    pub examples: Vec<Example>,
    /// 1-based line of every example in the dataset file.
    pub lines: Vec<usize>,
}

impl Session {
    /// Loads the model, then reads and validates the whole dataset, keeping the first
    /// `limit` examples.
    pub fn open(
        model_dir: &Path,
        data: &Path,
        device: DeviceChoice,
        limit: Option<usize>,
        threads: Option<i32>,
    ) -> Result<Self> {
        if limit == Some(0) {
            bail!("--limit 0 leaves nothing to attack; give at least 1");
        }
        if let Some(t) = threads {
            if t < 1 {
                bail!("--threads {t}: give at least 1");
            }
            tch::set_num_threads(t);
        }
        if !data.is_file() {
            bail!("{}: data file not found", data.display());
        }
        let options = LoadOptions {
            device,
            ..LoadOptions::default()
        };
        let model = LoadedBundle::load(model_dir, &options)
            .with_context(|| format!("loading the model bundle {}", model_dir.display()))?;
        let raw = read_raw(data)?;
        let lines: Vec<usize> = raw.iter().map(|r| r.line).collect();
        let mut examples = resolve(data, raw, &model.manifest().labels)?;
        let keep = limit.unwrap_or(examples.len()).min(examples.len());
        examples.truncate(keep);
        Ok(Self {
            model,
            data: data.to_owned(),
            examples,
            lines: lines[..keep].to_vec(),
        })
    }

    /// The class id of a label given by key or name.
    pub fn label(&self, text: &str) -> Result<usize> {
        let manifest = self.model.manifest();
        manifest.label(text).map(|l| l.id).ok_or_else(|| {
            let known: Vec<&str> = manifest.labels.iter().map(|l| l.key.as_str()).collect();
            anyhow!(
                "target label {text:?} is not one of the model's labels ({})",
                known.join(", ")
            )
        })
    }

    /// An attacker for `config`, validated against the model.
    pub fn attacker<'a>(
        &'a self,
        config: AttackConfig,
        lexicon: Option<&'a WordNetLexicon>,
    ) -> Result<Attacker<'a>> {
        let kind = config.kind;
        if kind == AttackKind::Sem && lexicon.is_none() {
            bail!("attack `sem` needs WordNet; pass --wordnet DIR or set GAUNTLET_WORDNET");
        }
        let subword = self.model.codec().is_subword();
        let model = if let (true, Some(white_box)) =
            (kind.prefers_gradients(subword), self.model.white_box())
        {
            ModelRef::WhiteBox(white_box)
        } else if kind.needs_gradients(subword) {
            ModelRef::WhiteBox(self.model.white_box().ok_or_else(|| {
                anyhow!(
                    "attack `{kind}` needs gradients, which this ONNX bundle cannot give ({}); forward-only attacks (loss-beam, random, unk) still run",
                    self.model.white_box_unavailable().unwrap_or("no white-box runtime")
                )
            })?)
        } else {
            ModelRef::Classifier(self.model.classifier())
        };
        let mut attacker = Attacker::new(model, self.model.codec(), config)
            .with_context(|| {
                format!(
                    "attack `{kind}` on model {}",
                    self.model.manifest().architecture
                )
            })?
            .with_model_id(self.model.digest());
        if let Some(lexicon) = lexicon {
            attacker = attacker.with_lexicon(lexicon as &dyn Lexicon);
        }
        Ok(attacker)
    }

    /// Encodes the examples for `attacker`, warning about truncated texts.
    pub fn prepare(&self, attacker: &Attacker<'_>) -> Result<Vec<PreparedExample>> {
        let prepared = attacker
            .prepare(&self.examples)
            .map_err(|e| self.locate(e))?;
        let truncated: Vec<usize> = prepared
            .iter()
            .enumerate()
            .filter(|(_, p)| p.encoded.truncated)
            .map(|(i, _)| i)
            .collect();
        if let Some(&first) = truncated.first() {
            let codec = self.model.codec();
            eprintln!(
                "warning: {} of {} texts exceed the model's limit ({} words, {} characters \
                 per word for character models) and are attacked truncated to it (first: {}:{})",
                truncated.len(),
                prepared.len(),
                codec.max_words(),
                codec.max_word_chars(),
                self.data.display(),
                self.lines[first]
            );
        }
        Ok(prepared)
    }

    /// Runs one attack with a progress bar labelled `name`.
    pub fn run(&self, name: &str, attacker: &Attacker<'_>) -> Result<AttackReport> {
        let prepared = self.prepare(attacker)?;
        let bar = AttackBar::new(name, prepared.len());
        let on_progress = |p| bar.update(p);
        let control = RunControl {
            cancel: None,
            progress: Some(&on_progress),
        };
        let started = Instant::now();
        let report = attacker
            .run(&prepared, &control)
            .map_err(|e| self.locate(e));
        bar.finish();
        let report = report?;
        let s = &report.summary;
        eprintln!(
            "{name}: {} examples, {} attacked, {} successes ({:.1}%), accuracy {:.1}% → {:.1}% \
             under attack, {:.1}s on {}",
            s.examples,
            s.attacked,
            s.successes,
            100.0 * s.success_rate,
            100.0 * s.clean_accuracy,
            100.0 * s.accuracy_under_attack,
            started.elapsed().as_secs_f64(),
            self.model.device_name()
        );
        Ok(report)
    }

    /// Turns an example index in an engine error into the dataset's file and line.
    fn locate(&self, e: AttackError) -> anyhow::Error {
        let at = |index: usize| {
            format!(
                "{}:{}",
                self.data.display(),
                self.lines.get(index).copied().unwrap_or(index + 1)
            )
        };
        match e {
            AttackError::InvalidExample { index, message } => anyhow!("{}: {message}", at(index)),
            AttackError::Encode { index, source } => anyhow!("{}: {source}", at(index)),
            other => other.into(),
        }
    }

    /// The change counts of a saved report, for the `random` baseline. The report must
    /// cover exactly these examples (same data, same limit).
    pub fn counts_from(&self, report: &AttackReport, origin: &str) -> Result<Vec<usize>> {
        let n = self.examples.len();
        if report.summary.examples != n || report.examples.len() != n {
            bail!(
                "{origin}: the report covers {} examples but this audit has {n}; run the \
                 random baseline on the same data and limit",
                report.examples.len()
            );
        }
        if let Some(e) = report
            .examples
            .iter()
            .find(|e| self.examples.get(e.index).map(|x| &x.text) != Some(&e.original_text))
        {
            bail!(
                "{origin}: example {} of the report is not the same text as {}:{}; run the \
                 random baseline on the same data and limit",
                e.index,
                self.data.display(),
                self.lines.get(e.index).copied().unwrap_or(0)
            );
        }
        if report.model != self.model.digest() {
            eprintln!(
                "warning: {origin} was made with another model; using its change counts anyway"
            );
        }
        Ok(report.change_counts())
    }
}

/// The attack configuration of the `audit` flags (engine defaults for the rest).
fn config_of(args: &AuditArgs, session: &Session) -> Result<AttackConfig> {
    let mut c = AttackConfig::new(args.attack);
    if let Some(b) = args.beam {
        c.beam_width = b;
    }
    c.budget = args.budget.or(c.budget);
    if let Some(v) = args.confidence {
        c.confidence = v;
    }
    if let Some(v) = &args.curve {
        c.curve = v.clone();
    }
    if let Some(v) = args.cosine_threshold {
        c.cosine_threshold = v;
    }
    if let Some(v) = args.seed {
        c.seed = v;
    }
    if let Some(v) = args.batch_size {
        c.batch_size = v;
    }
    if let Some(t) = &args.target {
        c.target_label = Some(session.label(t)?);
    }
    Ok(c)
}

/// `gauntlet audit`.
pub fn run_audit(args: &AuditArgs) -> Result<Verdict> {
    let thresholds = Thresholds::from(args.thresholds);
    thresholds.validate()?;
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
        args.limit,
        args.threads,
    )?;
    let mut config = config_of(args, &session)?;
    if let Some(path) = &args.random_counts_from {
        let report = read_report(path)?;
        config.random_change_counts =
            Some(session.counts_from(&report, &path.display().to_string())?);
    }
    let lexicon = match args.attack {
        AttackKind::Sem => Some(wordnet::load(args.wordnet.as_deref())?),
        _ => None,
    };
    let attacker = session.attacker(config, lexicon.as_ref())?;
    let report = session.run(args.attack.name(), &attacker)?;
    let text = format.render(&report)?;
    match &args.out {
        Some(out) => {
            write_atomic(out, &text)?;
            eprintln!("wrote {}", out.display());
        }
        None => print!("{text}"),
    }
    thresholds.apply(args.attack.name(), &report, args.out.is_none())
}
