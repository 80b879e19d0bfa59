//! The attack engine: [`Attacker`] runs one configured attack over many examples.
//!
//! Scheduling: examples are encoded (or given encoded), classified once in batches (one
//! forward pass each), and the correctly classified ones are attacked; the others are
//! reported as skipped. Attacked examples run concurrently in an active window of
//! `max(1, batch_size / beam_width)` examples (refilled as examples finish); every beam
//! step gathers the states of *all* active examples and evaluates them in model calls of at
//! most `batch_size` texts.
//!
//! Pass accounting: one evaluation of a step's states counts as one pass for *each*
//! example with at least one text in it, however many model calls of `batch_size` texts it
//! took (an evaluation over states of 3 examples adds one forward pass to each of the 3;
//! `loss_gradients` adds one forward and one backward). The initial classification counts
//! as one forward pass. So pass counts, like everything else in an example's report but its
//! wall time, do not depend on which examples shared a batch.
//!
//! Determinism: every random choice of an example comes from its own
//! `StdRng::seed_from_u64(seed ⊕ index·φ)`, `index` being its place in the whole dataset
//! ([`PreparedExample::index`]), and all orderings are total (no hash-map
//! iteration reaches a result), so a report depends only on the configuration, the seed,
//! the examples and the model's answers — not on batching or on the confidence thresholds,
//! which only decide when a search stops. Cancellation is checked once per beam step; a
//! cancelled run reports the examples finished so far with `cancelled = true`.
//!
//! Character attacks on subword models (`hotflip-char`, or `char_edits` with `loss-beam` or
//! `random`) edit the text and re-encode it (see `retokenize`): `hotflip-char` then runs
//! the exact-loss beam search, needs no gradients, and its report's configuration has
//! `char_edits` set and a note saying so.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gauntlet_core::{
    Classifier, EmbeddingTable, Encoded, Example, InputKind, TextCodec, TokenIds, TokenRole,
    WhiteBox,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::best_first::WordMasks;
use crate::candidates::{EditSpace, Rules, SemFilter, WordTargets};
use crate::config::{AttackConfig, AttackKind};
use crate::error::AttackError;
use crate::lexicon::Lexicon;
use crate::report::{
    AttackReport, ExampleReport, Outcome, Prediction, SkipReason, Summary, ThresholdResult,
};
use crate::retokenize::{self, Retokenize};
use crate::search::{self, ExampleRun, Hit};
use crate::spelling::oov_spelling;
use crate::state::{Space, State};

/// The model under attack: with gradients, or predictions only (`loss-beam`, `random`).
#[derive(Clone, Copy)]
pub enum ModelRef<'a> {
    /// A white-box model.
    WhiteBox(&'a dyn WhiteBox),
    /// A black-box classifier.
    Classifier(&'a dyn Classifier),
}

impl<'a> ModelRef<'a> {
    /// The view of a model an attack `kind` needs: the white box for attacks that use
    /// gradients (refused, with `why_not`, when there is none and the attack cannot do
    /// without), the black-box classifier otherwise. `unk` takes the white box when there is
    /// one (the paper's gradient estimate) and runs forward-only otherwise.
    pub fn for_attack(
        kind: AttackKind,
        codec: &TextCodec,
        classifier: &'a dyn Classifier,
        white_box: Option<&'a dyn WhiteBox>,
        why_not: Option<&str>,
    ) -> Result<Self, AttackError> {
        let subword = codec.is_subword();
        match white_box {
            Some(white_box) if kind.prefers_gradients(subword) => Ok(Self::WhiteBox(white_box)),
            _ if !kind.needs_gradients(subword) => Ok(Self::Classifier(classifier)),
            _ => Err(AttackError::GradientsUnavailable {
                attack: kind,
                reason: why_not.unwrap_or("no white-box runtime").to_owned(),
            }),
        }
    }

    /// The black-box view.
    pub fn classifier(&self) -> &'a dyn Classifier {
        match *self {
            Self::WhiteBox(m) => m,
            Self::Classifier(m) => m,
        }
    }

    /// The white-box view, if any.
    pub fn white_box(&self) -> Option<&'a dyn WhiteBox> {
        match *self {
            Self::WhiteBox(m) => Some(m),
            Self::Classifier(_) => None,
        }
    }
}

/// Progress of a run, passed to the progress callback whenever examples finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Examples finished (attacked or skipped).
    pub done: usize,
    /// Examples in the run.
    pub total: usize,
    /// Successful attacks so far.
    pub successes: usize,
    /// Texts the model has evaluated so far (clean pass, beam states and candidates):
    /// moves within a slow example, when `done` does not.
    pub evaluated: u64,
}

/// Cancellation flag, progress callbacks and resumed results of a run.
#[derive(Default, Clone, Copy)]
pub struct RunControl<'a> {
    /// Set to `true` to stop at the next beam step.
    pub cancel: Option<&'a AtomicBool>,
    /// Called whenever examples finish.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// Called with each example's report as it is produced (not for `resumed` ones), in
    /// the order examples finish: what a checkpoint appends.
    pub on_example: Option<&'a (dyn Fn(&ExampleReport) + Sync)>,
    /// Reports of a previous, interrupted run of the same attack, by dataset index: those
    /// examples are not evaluated again and their reports are taken as they are. Per-example
    /// seeding makes the result equal to an uninterrupted run, wall times aside.
    pub resumed: Option<&'a BTreeMap<usize, ExampleReport>>,
}

/// An example ready to attack: its text, true label and encoding for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedExample {
    /// The example's index in the whole dataset: it seeds the example's random choices and
    /// numbers its report, so a shard of a dataset reports exactly what the whole run
    /// reports for the same examples.
    pub index: usize,
    /// The text as given (edits are spliced into it).
    pub text: String,
    /// True class id.
    pub label: usize,
    /// The codec's encoding of `text`.
    pub encoded: Encoded,
}

/// Runs one configured attack against one model.
pub struct Attacker<'a> {
    model: ModelRef<'a>,
    codec: &'a TextCodec,
    config: AttackConfig,
    lexicon: Option<&'a dyn Lexicon>,
    similarity: Option<(&'a EmbeddingTable, String)>,
    model_id: String,
    /// Character edits of a subword model: edit the text and re-encode it.
    retokenize: bool,
    /// Score candidates on the reference path (see [`Attacker::with_reference_scoring`]).
    reference: bool,
}

/// The note of a `hotflip-char` report on a subword model.
const EXACT_CHAR_NOTE: &str = "hotflip-char on a subword model: character edits of the text \
    are re-tokenized and scored by their exact loss (forward passes only), since gradient \
    estimates over token embeddings do not transfer across re-tokenization";

/// How often a run tells its progress within a beam step (texts evaluated).
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Vocabularies above this size give `loss-beam` word flips a default candidate cap: an
/// exhaustive step costs positions × vocabulary forward passes (30 × 30,000 on a BERT
/// vocabulary: minutes per example).
pub const LARGE_VOCABULARY: usize = 5_000;

/// The candidates per beam state `loss-beam` samples on a large vocabulary when no
/// `candidates_cap` is set.
pub const DEFAULT_LARGE_VOCABULARY_CAP: usize = 1_000;

/// The note of an `unk` report on a black-box model.
const EXACT_UNK_NOTE: &str = "unk on a model without gradients: the word to replace is chosen \
    by the exact loss of every candidate replacement (forward passes only) instead of the \
    gradient estimate";

impl<'a> Attacker<'a> {
    /// Validates `config` against the model and codec. `hotflip-char` on a subword model
    /// turns `char_edits` on (the exact-loss character search).
    pub fn new(
        model: ModelRef<'a>,
        codec: &'a TextCodec,
        mut config: AttackConfig,
    ) -> Result<Self, AttackError> {
        let retokenize = Self::check(model, codec, &mut config)?;
        Ok(Self {
            model,
            codec,
            config,
            lexicon: None,
            similarity: None,
            model_id: String::new(),
            retokenize,
            reference: false,
        })
    }

    /// Checks `config` against the model and codec without building an attacker (what
    /// [`Attacker::new`] checks), normalizing it as `new` would; answers whether character
    /// edits re-tokenize the text.
    pub fn check(
        model: ModelRef<'_>,
        codec: &TextCodec,
        config: &mut AttackConfig,
    ) -> Result<bool, AttackError> {
        let classifier = model.classifier();
        let kind = classifier.input_kind();
        if codec.is_subword() && config.kind == AttackKind::HotflipChar {
            config.char_edits = true;
        }
        if config.char_edits && kind == InputKind::Word && !codec.is_subword() {
            return Err(AttackError::config(
                "char_edits",
                "character edits need a subword (WordPiece/BPE) or character model; on a \
                 word-vocabulary model use unk (out-of-vocabulary respellings)",
            ));
        }
        let retokenize = config.char_edits && codec.is_subword();
        config.validate(kind, classifier.labels().len())?;
        if codec.kind() != kind {
            return Err(AttackError::config(
                "codec",
                format!(
                    "the codec encodes {:?} but the model reads {kind:?}",
                    codec.kind()
                ),
            ));
        }
        if config.kind.needs_gradients(retokenize) && model.white_box().is_none() {
            return Err(AttackError::NeedsGradients(config.kind));
        }
        Ok(retokenize)
    }

    /// The lexicon of the `sem` attack's part-of-speech and lemma constraints.
    pub fn with_lexicon(mut self, lexicon: &'a dyn Lexicon) -> Self {
        self.lexicon = Some(lexicon);
        self
    }

    /// Embeddings (indexed by the model's vocabulary ids) for the `sem` cosine constraint,
    /// instead of the model's own input embeddings; `source` says what they are, and `sem`
    /// reports name it in a note.
    pub fn with_similarity_table(
        mut self,
        table: &'a EmbeddingTable,
        source: impl Into<String>,
    ) -> Self {
        self.similarity = Some((table, source.into()));
        self
    }

    /// The model identity written into reports (e.g. the manifest hash).
    pub fn with_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = id.into();
        self
    }

    /// Scores candidates on the host reference path: a full score matrix per state and
    /// every edit enumerated and checked against the constraints. Gives the same reports
    /// as the default fast path (which scores word flips on the backend's device and
    /// checks constraints lazily) up to float rounding of the backend's matrix product;
    /// meant for tests and for checking a backend.
    pub fn with_reference_scoring(mut self) -> Self {
        self.reference = true;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &AttackConfig {
        &self.config
    }

    /// Encodes labelled texts, numbered from 0. Empty texts and labels out of range are
    /// errors naming the example's index.
    pub fn prepare(&self, examples: &[Example]) -> Result<Vec<PreparedExample>, AttackError> {
        self.prepare_indexed(examples.iter().enumerate())
    }

    /// Encodes labelled texts given with their indices in the whole dataset (a shard).
    pub fn prepare_indexed<'e>(
        &self,
        examples: impl IntoIterator<Item = (usize, &'e Example)>,
    ) -> Result<Vec<PreparedExample>, AttackError> {
        examples
            .into_iter()
            .map(|(index, ex)| {
                if ex.text.trim().is_empty() {
                    return Err(AttackError::InvalidExample {
                        index,
                        message: "the text is empty".into(),
                    });
                }
                let encoded = self
                    .codec
                    .encode(&ex.text)
                    .map_err(|source| AttackError::Encode { index, source })?;
                Ok(PreparedExample {
                    index,
                    text: ex.text.clone(),
                    label: ex.label,
                    encoded,
                })
            })
            .collect()
    }

    /// Encodes and attacks labelled texts.
    pub fn run_examples(
        &self,
        examples: &[Example],
        control: &RunControl<'_>,
    ) -> Result<AttackReport, AttackError> {
        let prepared = self.prepare(examples)?;
        self.run(&prepared, control)
    }

    /// Attacks prepared examples.
    pub fn run(
        &self,
        examples: &[PreparedExample],
        control: &RunControl<'_>,
    ) -> Result<AttackReport, AttackError> {
        let started = Instant::now();
        let classifier = self.model.classifier();
        let labels = classifier.labels().len();
        let kind = classifier.input_kind();
        for ex in examples {
            let index = ex.index;
            if ex.label >= labels {
                return Err(AttackError::InvalidExample {
                    index,
                    message: format!(
                        "label {} is out of range (the model has {labels} classes)",
                        ex.label
                    ),
                });
            }
            if ex.encoded.ids.is_empty() || ex.encoded.ids.kind() != kind {
                return Err(AttackError::InvalidExample {
                    index,
                    message: "the encoding is empty or of the wrong kind".into(),
                });
            }
        }
        let mut ctx: search::Context<'_> = self.context()?;
        let thresholds = self.config.thresholds();
        let total = examples.len();

        // A resumed report counts only for the same text at the same index.
        let resumed = |ex: &PreparedExample| {
            control
                .resumed
                .and_then(|r| r.get(&ex.index))
                .filter(|r| r.original_text == ex.text)
        };
        // Clean pass: one forward pass per example not resumed.
        let fresh: Vec<usize> = (0..total)
            .filter(|&i| resumed(&examples[i]).is_none())
            .collect();
        let mut clean: Vec<Vec<f32>> = vec![Vec::new(); total];
        for chunk in fresh.chunks(self.config.batch_size) {
            let batch: Vec<TokenIds> = chunk
                .iter()
                .map(|&i| examples[i].encoded.ids.clone())
                .collect();
            let probs = classifier.predict(&batch)?;
            search::check_rows(&probs, batch.len(), labels)?;
            for (row, &i) in chunk.iter().enumerate() {
                clean[i] = probs.row(row).to_vec();
            }
        }
        let told = |report: &ExampleReport| {
            if let Some(on_example) = control.on_example {
                on_example(report);
            }
        };

        let mut reports: Vec<ExampleReport> = Vec::with_capacity(total);
        let mut queue = Vec::new();
        let mut successes = 0;
        for (index, (ex, probs)) in examples.iter().zip(&clean).enumerate() {
            if let Some(report) = resumed(ex) {
                successes += usize::from(report.outcome == Outcome::Success);
                reports.push(report.clone());
                continue;
            }
            let before = search::prediction(probs);
            let skip = if before.label != ex.label {
                Some(SkipReason::Misclassified)
            } else if self.config.target_label == Some(ex.label) {
                Some(SkipReason::AlreadyTarget)
            } else {
                None
            };
            match skip {
                Some(reason) => {
                    let report = skipped(
                        ex,
                        self.units(ex),
                        before,
                        reason,
                        &thresholds,
                        self.config.target_label,
                    );
                    told(&report);
                    reports.push(report);
                }
                None => queue.push(index),
            }
        }
        let evaluated = Cell::new(fresh.len() as u64);
        let (done_so_far, successes_so_far) = (Cell::new(0), Cell::new(0));
        let notify = |done: usize, successes: usize| {
            done_so_far.set(done);
            successes_so_far.set(successes);
            if let Some(progress) = control.progress {
                progress(Progress {
                    done,
                    total,
                    successes,
                    evaluated: evaluated.get(),
                });
            }
        };
        notify(reports.len(), successes);
        // Within a step, progress is told at most every PROGRESS_INTERVAL.
        let last_told = Cell::new(Instant::now());
        let hook = |texts: usize| {
            evaluated.set(evaluated.get() + texts as u64);
            if last_told.get().elapsed() >= PROGRESS_INTERVAL {
                last_told.set(Instant::now());
                notify(done_so_far.get(), successes_so_far.get());
            }
        };
        if control.progress.is_some() {
            ctx.on_evaluated = Some(&hook);
        }

        let window = match self.config.kind {
            AttackKind::Random => self.config.batch_size,
            _ => (self.config.batch_size / self.config.beam_width).max(1),
        };
        let mut queue = queue.into_iter();
        let mut active: Vec<ExampleRun<'_>> = Vec::new();
        let mut cancelled = false;
        loop {
            if control.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                cancelled = true;
                break;
            }
            while active.len() < window {
                let Some(index) = queue.next() else { break };
                active.push(self.start(index, &examples[index], &clean[index], &thresholds, &ctx));
            }
            if active.is_empty() {
                break;
            }
            match self.config.kind {
                AttackKind::LossBeam => search::loss_step(&mut ctx, &mut active)?,
                AttackKind::HotflipChar if self.retokenize => {
                    search::loss_step(&mut ctx, &mut active)?
                }
                AttackKind::Unk if self.model.white_box().is_none() => {
                    search::loss_step(&mut ctx, &mut active)?
                }
                AttackKind::Random => search::random_step(&mut ctx, &mut active)?,
                _ => search::gradient_step(&mut ctx, &mut active)?,
            }
            let before = reports.len();
            let mut still = Vec::with_capacity(active.len());
            for run in active {
                if run.done {
                    let report = self.finish(run, examples, &thresholds);
                    successes += usize::from(report.outcome == Outcome::Success);
                    told(&report);
                    reports.push(report);
                } else {
                    still.push(run);
                }
            }
            active = still;
            if reports.len() > before {
                notify(reports.len(), successes);
            }
        }
        reports.sort_by_key(|r| r.index);
        let wall_time_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut notes = match self.config.kind {
            AttackKind::HotflipChar if self.retokenize => vec![EXACT_CHAR_NOTE.to_owned()],
            AttackKind::Unk if self.model.white_box().is_none() => {
                vec![EXACT_UNK_NOTE.to_owned()]
            }
            _ => Vec::new(),
        };
        if let (AttackKind::Sem, Some((_, source))) = (self.config.kind, &self.similarity) {
            notes.push(format!(
                "sem: cosine similarity from {source}, not from the model's input embeddings"
            ));
        }
        if let Some(cap) = self.default_cap() {
            notes.push(format!(
                "loss-beam on a vocabulary of {} tokens: each beam state evaluates a seeded \
                 sample of {cap} candidate flips (the default above {LARGE_VOCABULARY} tokens); \
                 set candidates_cap to change it",
                self.codec.size()
            ));
        }
        Ok(AttackReport {
            model: self.model_id.clone(),
            config: self.config.clone(),
            seed: self.config.seed,
            notes,
            cancelled,
            summary: Summary::compute(&reports, self.config.confidence, wall_time_ms),
            examples: reports,
        })
    }

    /// The candidate cap `loss-beam` word flips get on a large vocabulary when none is set.
    fn default_cap(&self) -> Option<usize> {
        let large = self.codec.kind() == InputKind::Word && self.codec.size() > LARGE_VOCABULARY;
        (self.config.kind == AttackKind::LossBeam
            && self.config.candidates_cap.is_none()
            && !self.config.char_edits
            && large)
            .then_some(DEFAULT_LARGE_VOCABULARY_CAP)
    }

    fn context(&self) -> Result<search::Context<'a>, AttackError> {
        let classifier = self.model.classifier();
        let kind = classifier.input_kind();
        let table = self.model.white_box().map(|m| m.embedding_table());
        let rows = table.map_or(self.codec.size(), |t| t.rows.min(self.codec.size()));
        let space = match (self.config.kind, kind) {
            _ if self.retokenize => EditSpace::Chars,
            (AttackKind::Sem, _) => EditSpace::Sem,
            (AttackKind::Unk, _) => EditSpace::Unk,
            (_, InputKind::Char) => EditSpace::Chars,
            (_, InputKind::Word) => EditSpace::WordFlips,
        };
        let sem = match space {
            EditSpace::Sem => {
                let lexicon = self.lexicon.ok_or(AttackError::MissingLexicon)?;
                let similarity = self
                    .similarity
                    .as_ref()
                    .map(|(t, _)| *t)
                    .or(table)
                    .ok_or(AttackError::NeedsGradients(self.config.kind))?;
                if similarity.rows < self.codec.size() {
                    return Err(AttackError::config(
                        "similarity",
                        format!(
                            "the table has {} rows for a vocabulary of {} ids",
                            similarity.rows,
                            self.codec.size()
                        ),
                    ));
                }
                Some(SemFilter::new(
                    similarity,
                    self.config.cosine_threshold,
                    lexicon,
                ))
            }
            _ => None,
        };
        // Readable spellings: the search shows, compares and splices these.
        let tokens = Arc::clone(&self.codec.spellings().tokens);
        let targets = WordTargets::new(self.codec, rows);
        let masks = match space {
            EditSpace::WordFlips => WordMasks::new(&targets, rows),
            _ => WordMasks { masks: Vec::new() },
        };
        // Character edits of subword models: units are the text's characters, edits
        // introduce alphabet characters (ids index the alphabet), and whole words are edited.
        let (tokens, max_chars, ids) = if self.retokenize {
            let alphabet = retokenize::alphabet(self.codec);
            let n = alphabet.len() as u32;
            (alphabet.into(), usize::MAX, 0..n)
        } else {
            (tokens, self.codec.max_word_chars().max(1), 2..rows as u32)
        };
        let mut config = self.config.clone();
        config.candidates_cap = config.candidates_cap.or(self.default_cap());
        Ok(search::Context {
            config,
            model: self.model,
            table,
            tokens,
            max_chars,
            masks,
            zero_padding: self.model.white_box().is_some_and(|m| m.padding_is_zero()),
            reference: self.reference,
            on_evaluated: None,
            rules: Rules {
                space,
                one_change_per_word: self.config.one_change_per_word,
                require_oov: self.config.require_oov,
                codec: self.codec,
                ids,
                targets,
                sem,
            },
        })
    }

    fn start(
        &self,
        index: usize,
        ex: &PreparedExample,
        clean: &[f32],
        thresholds: &[f64],
        ctx: &search::Context<'_>,
    ) -> ExampleRun<'a> {
        let kind = self.model.classifier().input_kind();
        let (initial, editable, retokenize) = if self.retokenize {
            let spans = retokenize::word_spans(&ex.encoded);
            let initial = retokenize::initial_state(&ex.text, &spans, self.codec, &ctx.tokens);
            let retokenize = Retokenize {
                codec: self.codec,
                text: ex.text.as_str().into(),
                spans: spans.into(),
                index: ex.index,
            };
            let editable = retokenize::editable_words(&initial);
            (initial, editable, Some(retokenize))
        } else {
            (
                State::initial(&ex.text, &ex.encoded, self.codec),
                self.editable(&ex.encoded),
                None,
            )
        };
        let unk_spellings = if self.config.kind == AttackKind::Unk {
            initial
                .words
                .iter()
                .zip(&editable)
                .map(|(w, &ok)| ok.then(|| oov_spelling(&w[0].text, self.codec)).flatten())
                .collect()
        } else {
            Vec::new()
        };
        let units = self.units(ex);
        let budget = self.config.effective_budget(kind).resolve(units);
        let random_changes = self
            .config
            .random_change_counts
            .as_ref()
            .and_then(|c| c.get(ex.index).copied())
            .unwrap_or(budget);
        let seed = self.config.seed ^ (ex.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ExampleRun {
            index,
            space: Space {
                kind,
                max_chars: ctx.max_chars,
                tokens: ctx.tokens.clone(),
                unk_spellings,
                editable,
                unk_id: self.codec.unk_id(),
                retokenize,
            },
            label: ex.label,
            objective: self.config.target_label.unwrap_or(ex.label),
            targeted: self.config.target_label.is_some(),
            budget,
            random_changes,
            beam: vec![initial.clone()],
            initial: Hit {
                state: initial,
                probs: clean.to_vec(),
            },
            step: 0,
            rng: StdRng::seed_from_u64(seed),
            thresholds: thresholds.to_vec(),
            hits: vec![None; thresholds.len()],
            last: None,
            forward: 1,
            backward: 0,
            started: Instant::now(),
            done: false,
        }
    }

    /// Which words (tokens) of an example edits may touch: whole words; with
    /// `allow_subword_pieces`, pieces too (not for `sem` and `unk`); never special tokens.
    /// Native word models: every word. Character models: no restriction.
    fn editable(&self, encoded: &Encoded) -> Vec<bool> {
        let pieces = self.config.allow_subword_pieces
            && !matches!(self.config.kind, AttackKind::Sem | AttackKind::Unk);
        let ids = encoded.ids.flat();
        // A token that spells nothing (a lone byte-level space) has no place to splice into.
        let readable = |k: usize| {
            ids.get(k)
                .and_then(|&id| self.codec.display_token(id))
                .is_some_and(|s| !s.trim().is_empty())
        };
        encoded
            .roles
            .iter()
            .enumerate()
            .map(|(k, role)| match role {
                TokenRole::Word { .. } => true,
                TokenRole::Piece { .. } => pieces && readable(k),
                TokenRole::Special => false,
            })
            .collect()
    }

    /// Units of an example: characters of its words for character edits of subword
    /// models, otherwise positions (special tokens aside).
    fn units(&self, ex: &PreparedExample) -> usize {
        if self.retokenize {
            retokenize::char_units(&ex.text, &retokenize::word_spans(&ex.encoded))
        } else {
            content_units(&ex.encoded)
        }
    }

    fn finish(
        &self,
        run: ExampleRun<'_>,
        examples: &[PreparedExample],
        thresholds: &[f64],
    ) -> ExampleReport {
        let ex = &examples[run.index];
        let conf = thresholds
            .iter()
            .position(|&t| t == self.config.confidence)
            .unwrap_or(0);
        let (hit, outcome) = match &run.hits[conf] {
            Some(hit) => (hit.clone(), Outcome::Success),
            None => (
                run.last.clone().unwrap_or_else(|| run.initial.clone()),
                Outcome::Failure,
            ),
        };
        let units = self.units(ex);
        let changes = hit.state.ops.len();
        // Native word models keep their historical splice (no added spaces).
        let separate: Vec<bool> = if self.codec.is_subword() {
            let roles = &ex.encoded.roles;
            roles
                .iter()
                .map(|r| matches!(r, TokenRole::Word { .. }))
                .collect()
        } else {
            Vec::new()
        };
        ExampleReport {
            index: ex.index,
            original_text: ex.text.clone(),
            adversarial_text: match &run.space.retokenize {
                Some(retokenize) => retokenize.text_of(&hit.state),
                None => hit
                    .state
                    .splice(&ex.text, &ex.encoded.spans, &separate, Some(self.codec)),
            },
            operations: hit.state.ops.clone(),
            true_label: ex.label,
            target_label: self.config.target_label,
            before: search::prediction(&run.initial.probs),
            after: search::prediction(&hit.probs),
            changes,
            units,
            fraction_changed: changes as f64 / units.max(1) as f64,
            forward_passes: run.forward,
            backward_passes: run.backward,
            wall_time_ms: run.started.elapsed().as_secs_f64() * 1000.0,
            outcome,
            skip_reason: None,
            curve: thresholds
                .iter()
                .zip(&run.hits)
                .map(|(&confidence, h)| ThresholdResult {
                    confidence,
                    success: h.is_some(),
                    changes: h.as_ref().map(|h| h.state.ops.len()),
                })
                .collect(),
        }
    }
}

/// Units an attack may change: positions, special tokens of subword models aside.
fn content_units(encoded: &Encoded) -> usize {
    if encoded.roles.is_empty() {
        encoded.ids.positions()
    } else {
        encoded
            .roles
            .iter()
            .filter(|r| **r != TokenRole::Special)
            .count()
    }
}

fn skipped(
    ex: &PreparedExample,
    units: usize,
    before: Prediction,
    reason: SkipReason,
    thresholds: &[f64],
    target_label: Option<usize>,
) -> ExampleReport {
    ExampleReport {
        index: ex.index,
        original_text: ex.text.clone(),
        adversarial_text: ex.text.clone(),
        operations: Vec::new(),
        true_label: ex.label,
        target_label,
        before,
        after: before,
        changes: 0,
        units,
        fraction_changed: 0.0,
        forward_passes: 1,
        backward_passes: 0,
        wall_time_ms: 0.0,
        outcome: Outcome::Skipped,
        skip_reason: Some(reason),
        curve: thresholds
            .iter()
            .map(|&confidence| ThresholdResult {
                confidence,
                success: false,
                changes: None,
            })
            .collect(),
    }
}
