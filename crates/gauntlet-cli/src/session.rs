//! A [`Session`]: one model and one dataset, loaded and validated once, that runs audit
//! plans through the engine's one audit runner ([`gauntlet_attacks::audit::run`]) with a
//! progress bar.
//!
//! Input policy, the same for every command:
//!
//! * the dataset is read and validated *completely* (every row, every label) before
//!   anything runs, even with `--limit`; a malformed row, an empty text or a label outside
//!   the model's labels is an error naming the file and line;
//! * a text longer than the model's limit (`max_length` words, or `max_word_length`
//!   characters per word for character models) is *truncated*, as in training and
//!   evaluation, and a warning says how many texts were and names the first one's line;
//! * every attack is checked against the model (a character attack on a word model is an
//!   error) before any example is attacked.
//!
//! The model is named in reports by its bundle directory's name and digest
//! (`name@digest`), as the server names a bundle loaded from its models directory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use gauntlet_attacks::audit::{
    self, AuditControl, AuditError, AuditObserver, AuditPlan, AuditReport,
};
use gauntlet_attacks::{AttackError, AttackKind, Lexicon, Progress};
use gauntlet_backends::{LoadOptions, LoadedBundle};
use gauntlet_core::dataset::{read_raw, resolve};
use gauntlet_core::{DeviceChoice, Example};

use crate::output::AttackBar;
use crate::wordnet;

/// A loaded model and dataset.
pub struct Session {
    /// The model under audit, on its runtime.
    pub model: LoadedBundle,
    /// Its name in reports (the bundle directory's name).
    pub name: String,
    /// The dataset file (for messages).
    pub data: PathBuf,
    /// Every example of the dataset.
    pub examples: Vec<Example>,
    /// 1-based line of every example in the dataset file.
    pub lines: Vec<usize>,
}

impl Session {
    /// Loads the model (with `sem_vectors` for the `sem` attack, when given), then reads
    /// and validates the whole dataset.
    pub fn open(
        model_dir: &Path,
        data: &Path,
        device: DeviceChoice,
        threads: Option<i32>,
        sem_vectors: Option<&Path>,
    ) -> Result<Self> {
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
        let mut model = LoadedBundle::load(model_dir, &options)
            .with_context(|| format!("loading the model bundle {}", model_dir.display()))?;
        if let Some(file) = sem_vectors {
            model = model
                .with_sem_vectors(file)
                .with_context(|| format!("--sem-vectors {}", file.display()))?;
            if let Some(v) = model.sem_vectors() {
                eprintln!("sem: cosine similarity from {}", v.describe());
            }
        }
        let name = bundle_name(model_dir);
        let raw = read_raw(data)?;
        let lines: Vec<usize> = raw.iter().map(|r| r.line).collect();
        let examples = resolve(data, raw, &model.manifest().labels)?;
        Ok(Self {
            model,
            name,
            data: data.to_owned(),
            examples,
            lines,
        })
    }

    /// Runs `plan` (its model and dataset are this session's), loading WordNet from
    /// `wordnet` (or the default places) when an attack is `sem`.
    pub fn run(&self, plan: AuditPlan, wordnet: Option<&Path>) -> Result<AuditReport> {
        let lexicon = if plan.attacks.iter().any(|a| a.kind == Some(AttackKind::Sem)) {
            Some(wordnet::load(wordnet)?)
        } else {
            None
        };
        let resolved = plan
            .resolve(&self.model, lexicon.is_some())
            .map_err(|e| self.locate(e))?;
        let observer = Bars {
            session: self,
            bar: Mutex::new(None),
        };
        let control = AuditControl {
            observer: Some(&observer),
            ..AuditControl::default()
        };
        let report = audit::run(
            &resolved,
            &self.model,
            &self.name,
            lexicon.as_ref().map(|l| l as &dyn Lexicon),
            &self.examples,
            &control,
        );
        observer.clear();
        report.map_err(|e| self.locate(e))
    }

    /// Turns an example index in an engine error into the dataset's file and line.
    fn locate(&self, e: AuditError) -> anyhow::Error {
        let at = |index: usize| {
            format!(
                "{}:{}",
                self.data.display(),
                self.lines.get(index).copied().unwrap_or(index + 1)
            )
        };
        match e {
            AuditError::Attack {
                error: AttackError::InvalidExample { index, message },
                ..
            } => anyhow!("{}: {message}", at(index)),
            AuditError::Attack {
                error: AttackError::Encode { index, source },
                ..
            } => anyhow!("{}: {source}", at(index)),
            other => other.into(),
        }
    }
}

/// The name of a bundle in reports: its directory's name.
pub fn bundle_name(dir: &Path) -> String {
    let absolute = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    absolute
        .file_name()
        .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The progress bar and messages of a run.
struct Bars<'s> {
    session: &'s Session,
    bar: Mutex<Option<AttackBar>>,
}

impl Bars<'_> {
    fn clear(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            bar.finish();
        }
    }
}

impl AuditObserver for Bars<'_> {
    fn prepared(&self, _attack: usize, name: &str, examples: usize, truncated: &[usize]) {
        if let Some(&first) = truncated.first() {
            let codec = self.session.model.codec();
            eprintln!(
                "warning: {} of {examples} texts exceed the model's limit ({} words, {} characters \
                 per word for character models) and are attacked truncated to it (first: {}:{})",
                truncated.len(),
                codec.max_words(),
                codec.max_word_chars(),
                self.session.data.display(),
                self.session.lines.get(first).copied().unwrap_or(first + 1)
            );
        }
        self.clear();
        *self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(AttackBar::new(name, examples));
    }

    fn progress(&self, _attack: usize, progress: Progress) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            bar.update(progress);
        }
    }

    fn attack_finished(&self, partial: &AuditReport) {
        self.clear();
        let Some(last) = partial.attacks.last() else {
            return;
        };
        let s = &last.report.summary;
        eprintln!(
            "{}: {} examples, {} attacked, {} successes ({:.1}%), accuracy {:.1}% → {:.1}% \
             under attack, {:.1}s on {}",
            last.name,
            s.examples,
            s.attacked,
            s.successes,
            100.0 * s.success_rate,
            100.0 * s.clean_accuracy,
            100.0 * s.accuracy_under_attack,
            s.wall_time_ms / 1000.0,
            self.session.model.device_name()
        );
    }
}
