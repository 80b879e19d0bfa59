//! The audit report: one serde schema for files, the CLI and the REST server.
//!
//! An [`AttackReport`] holds one [`ExampleReport`] per example (in input order) and a
//! [`Summary`] computed from them by [`Summary::compute`]. All field names are snake_case.
//! Conventions: probabilities are those of the predicted (argmax) class; "units" are
//! characters for character models and for character edits of subword models, and words
//! (tokens) for word and subword models otherwise; rates whose denominator is
//! zero are reported as 0. Success-related aggregates (changes histogram, mean fraction
//! changed, operation mix) are taken over the examples the adversary fooled at the
//! configured confidence; pass counts over the attacked examples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::AttackConfig;

/// One edit of an adversarial example, in the order applied. Character indices are
/// positions in the word at the time of the edit; word indices are positions among the
/// encoded words (the spans of [`gauntlet_core::Encoded`]). Character edits of subword
/// models address the text's words instead (the tokenizer's pre-tokenized words, specials
/// aside, as numbered by [`gauntlet_core::TokenRole`]) and may insert after a word's last
/// character (`char` equal to its length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// A character replaced by another.
    Flip {
        /// Word index (for subword models, the index of the word among the text's words).
        word: usize,
        /// Character index in the word.
        char: usize,
        /// The character before.
        before: String,
        /// The character after.
        after: String,
    },
    /// A character inserted before character `char`.
    Insert {
        /// Word index.
        word: usize,
        /// Character index of the inserted character.
        char: usize,
        /// The inserted character.
        after: String,
    },
    /// A character removed.
    Delete {
        /// Word index.
        word: usize,
        /// Character index of the removed character.
        char: usize,
        /// The removed character.
        before: String,
    },
    /// A word replaced by another vocabulary word.
    WordFlip {
        /// Word index (token index, special tokens counted, for subword models).
        word: usize,
        /// The word (or subword piece, as spelled in the text) before.
        before: String,
        /// The word (or piece, without `##`/`Ġ` markers) after.
        after: String,
    },
    /// A word respelled out of vocabulary (the model reads `[UNK]`).
    Unk {
        /// Word index.
        word: usize,
        /// The word before.
        before: String,
        /// The legible out-of-vocabulary spelling shown in the adversarial text.
        after: String,
    },
}

impl Operation {
    /// The operation's kind as written in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Flip { .. } => "flip",
            Self::Insert { .. } => "insert",
            Self::Delete { .. } => "delete",
            Self::WordFlip { .. } => "word_flip",
            Self::Unk { .. } => "unk",
        }
    }
}

/// A predicted class and its probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Prediction {
    /// Class id.
    pub label: usize,
    /// Its probability.
    pub probability: f64,
}

/// How the attack on one example ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The adversary reached its goal at the configured confidence.
    Success,
    /// The budget ran out (or no allowed change remained) first.
    Failure,
    /// Not attacked (see [`SkipReason`]).
    Skipped,
}

/// Why an example was not attacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The model already misclassifies it.
    Misclassified,
    /// Targeted mode: its true label is the target.
    AlreadyTarget,
}

/// Whether (and after how many changes) the search first reached a success with at least
/// this confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ThresholdResult {
    /// The confidence τ.
    pub confidence: f64,
    /// Whether a success with probability ≥ τ was reached.
    pub success: bool,
    /// Changes of the first such success.
    pub changes: Option<usize>,
}

/// The attack on one example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ExampleReport {
    /// 0-based index in the input.
    pub index: usize,
    /// The text as given.
    pub original_text: String,
    /// The text with the adversary's edits spliced in (the original text when unchanged).
    pub adversarial_text: String,
    /// The edits, in order.
    pub operations: Vec<Operation>,
    /// The true class.
    pub true_label: usize,
    /// The target class (targeted mode).
    pub target_label: Option<usize>,
    /// Prediction on the original text.
    pub before: Prediction,
    /// Prediction on the adversarial text.
    pub after: Prediction,
    /// Number of edits.
    pub changes: usize,
    /// Characters (character models) or words (word models) the model read.
    pub units: usize,
    /// `changes / units`.
    pub fraction_changed: f64,
    /// Forward passes this example took part in (a batched call counts once per example).
    pub forward_passes: u64,
    /// Backward passes this example took part in.
    pub backward_passes: u64,
    /// Wall time from the start of this example's search to its end, in milliseconds
    /// (searches of batched examples overlap).
    pub wall_time_ms: f64,
    /// How the attack ended.
    pub outcome: Outcome,
    /// Why the example was skipped.
    pub skip_reason: Option<SkipReason>,
    /// Success at every tracked confidence, ascending.
    pub curve: Vec<ThresholdResult>,
}

/// Successful examples by number of changes (paper, Table 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct ChangesHistogram {
    /// One change.
    pub one: usize,
    /// Two changes.
    pub two: usize,
    /// Three or more.
    pub three_or_more: usize,
}

/// The success rate at one confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct CurvePoint {
    /// The confidence τ.
    pub confidence: f64,
    /// Attacked examples fooled with probability ≥ τ.
    pub successes: usize,
    /// `successes / attacked`.
    pub success_rate: f64,
}

/// Aggregates over all examples of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Summary {
    /// Examples reported.
    pub examples: usize,
    /// Examples the model classified correctly before the attack.
    pub clean_correct: usize,
    /// `clean_correct / examples`.
    pub clean_accuracy: f64,
    /// Examples attacked.
    pub attacked: usize,
    /// Examples skipped.
    pub skipped: usize,
    /// Attacked examples fooled at the configured confidence.
    pub successes: usize,
    /// The configured confidence.
    pub confidence: f64,
    /// `successes / attacked`.
    pub success_rate: f64,
    /// Success rate at every tracked confidence, ascending.
    pub curve: Vec<CurvePoint>,
    /// Fraction of all examples whose prediction after the attack is still the true label.
    pub accuracy_under_attack: f64,
    /// Successful examples by number of changes.
    pub changes_histogram: ChangesHistogram,
    /// Mean fraction of units changed over successful examples.
    pub mean_fraction_changed: f64,
    /// Operations of successful examples by kind (`flip`, `insert`, `delete`, `word_flip`,
    /// `unk`).
    pub operation_mix: BTreeMap<String, usize>,
    /// Mean forward passes per attacked example.
    pub mean_forward_passes: f64,
    /// Mean backward passes per attacked example.
    pub mean_backward_passes: f64,
    /// Wall time of the whole run, in milliseconds.
    pub wall_time_ms: f64,
    /// Examples per second over the whole run.
    pub examples_per_second: f64,
}

fn ratio(num: f64, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num / den as f64
    }
}

impl Summary {
    /// Aggregates example reports of a run that took `wall_time_ms`.
    pub fn compute(examples: &[ExampleReport], confidence: f64, wall_time_ms: f64) -> Self {
        let n = examples.len();
        let attacked: Vec<&ExampleReport> = examples
            .iter()
            .filter(|e| e.outcome != Outcome::Skipped)
            .collect();
        let successes: Vec<&ExampleReport> = examples
            .iter()
            .filter(|e| e.outcome == Outcome::Success)
            .collect();
        let clean_correct = examples
            .iter()
            .filter(|e| e.before.label == e.true_label)
            .count();
        let mut taus: Vec<f64> = examples
            .iter()
            .flat_map(|e| e.curve.iter().map(|t| t.confidence))
            .collect();
        taus.sort_by(f64::total_cmp);
        taus.dedup();
        let curve = taus
            .into_iter()
            .map(|tau| {
                let s = attacked
                    .iter()
                    .filter(|e| e.curve.iter().any(|t| t.confidence == tau && t.success))
                    .count();
                CurvePoint {
                    confidence: tau,
                    successes: s,
                    success_rate: ratio(s as f64, attacked.len()),
                }
            })
            .collect();
        let mut histogram = ChangesHistogram::default();
        let mut mix: BTreeMap<String, usize> = BTreeMap::new();
        for e in &successes {
            match e.changes {
                0 | 1 => histogram.one += 1,
                2 => histogram.two += 1,
                _ => histogram.three_or_more += 1,
            }
            for op in &e.operations {
                *mix.entry(op.kind().to_owned()).or_default() += 1;
            }
        }
        let still_correct = examples
            .iter()
            .filter(|e| e.after.label == e.true_label)
            .count();
        Self {
            examples: n,
            clean_correct,
            clean_accuracy: ratio(clean_correct as f64, n),
            attacked: attacked.len(),
            skipped: n - attacked.len(),
            successes: successes.len(),
            confidence,
            success_rate: ratio(successes.len() as f64, attacked.len()),
            curve,
            accuracy_under_attack: ratio(still_correct as f64, n),
            changes_histogram: histogram,
            mean_fraction_changed: ratio(
                successes.iter().map(|e| e.fraction_changed).sum(),
                successes.len(),
            ),
            operation_mix: mix,
            mean_forward_passes: ratio(
                attacked.iter().map(|e| e.forward_passes as f64).sum(),
                attacked.len(),
            ),
            mean_backward_passes: ratio(
                attacked.iter().map(|e| e.backward_passes as f64).sum(),
                attacked.len(),
            ),
            wall_time_ms,
            examples_per_second: if wall_time_ms > 0.0 {
                n as f64 / (wall_time_ms / 1000.0)
            } else {
                0.0
            },
        }
    }
}

/// The result of one attack run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct AttackReport {
    /// Model identity as given by the caller (e.g. the bundle manifest's hash).
    pub model: String,
    /// The attack configuration.
    pub config: AttackConfig,
    /// The seed (also in `config`, repeated for convenience).
    pub seed: u64,
    /// How the run interpreted its configuration where that is not obvious (e.g.
    /// `hotflip-char` on a subword model runs the exact-loss character search). Omitted
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Whether the run was cancelled; only the examples finished by then are reported.
    pub cancelled: bool,
    /// Aggregates.
    pub summary: Summary,
    /// One report per example, in input order.
    pub examples: Vec<ExampleReport>,
}

impl AttackReport {
    /// Changes made on every example, indexed like the input (0 for examples not
    /// reported): the input of the `random` baseline
    /// ([`AttackConfig::random_change_counts`]).
    pub fn change_counts(&self) -> Vec<usize> {
        let len = self.examples.iter().map(|e| e.index + 1).max().unwrap_or(0);
        let mut counts = vec![0; len];
        for e in &self.examples {
            counts[e.index] = e.changes;
        }
        counts
    }
}
