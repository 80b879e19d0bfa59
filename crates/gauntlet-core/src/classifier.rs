//! The two traits through which attacks and adversarial training see a model.
//!
//! [`Classifier`] is the black-box view (ids in, class probabilities out); [`WhiteBox`] adds
//! the input-embedding table and gradients of the loss with respect to the embedded inputs.
//! Both traits speak plain `f32` buffers, never runtime tensors, so an attack crate that uses
//! them needs neither libtorch nor ONNX Runtime. Backends may batch and pad as they like, but
//! every buffer they return is indexed by the *unpadded* positions of the input.

use crate::error::ModelError;
use crate::manifest::{Label, Manifest};
use crate::scoring::{
    check_gradients, check_queries, reference_state_flips, reference_top_flips, FlipBatch,
    FlipQuery, ScoredFlip, TargetMask,
};

/// How a model reads text: one id per word, or one id per character grouped by word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// One id per word token.
    Word,
    /// One id per character, grouped by word.
    Char,
}

/// The ids of one text, unpadded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenIds {
    /// Word ids, one per token.
    Words(Vec<u32>),
    /// Character ids, one vector per word.
    Chars(Vec<Vec<u32>>),
}

impl TokenIds {
    /// The input kind these ids belong to.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::Words(_) => InputKind::Word,
            Self::Chars(_) => InputKind::Char,
        }
    }

    /// Number of embedded positions: words, or characters over all words.
    pub fn positions(&self) -> usize {
        match self {
            Self::Words(ids) => ids.len(),
            Self::Chars(words) => words.iter().map(Vec::len).sum(),
        }
    }

    /// The ids of every embedded position in order (characters flattened word by word).
    pub fn flat(&self) -> Vec<u32> {
        match self {
            Self::Words(ids) => ids.clone(),
            Self::Chars(words) => words.iter().flatten().copied().collect(),
        }
    }

    /// Whether there is nothing to classify.
    pub fn is_empty(&self) -> bool {
        self.positions() == 0
    }
}

/// Class probabilities of a batch, row-major `[batch, classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probabilities {
    /// Number of classes per row.
    pub classes: usize,
    /// `batch * classes` probabilities.
    pub values: Vec<f32>,
}

impl Probabilities {
    /// Probabilities of example `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.classes..(i + 1) * self.classes]
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.classes).unwrap_or(0)
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index and probability of the most probable class of example `i`.
    pub fn argmax(&self, i: usize) -> (usize, f32) {
        argmax(self.row(i))
    }
}

/// Index and value of the largest probability of a row (the first one on ties).
pub fn argmax(row: &[f32]) -> (usize, f32) {
    row.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (k, p)| {
            if p > best.1 {
                (k, p)
            } else {
                best
            }
        })
}

/// A black-box text classifier: batched forward pass from ids to class probabilities.
pub trait Classifier: Send + Sync {
    /// The model's labels, indexed by class id.
    fn labels(&self) -> &[Label];
    /// Whether the model reads word or character ids.
    fn input_kind(&self) -> InputKind;
    /// Maximum number of words the model reads; longer inputs are truncated by the codec.
    fn max_len(&self) -> usize;
    /// Class probabilities for every text of the batch (padding and masks are the
    /// backend's business).
    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError>;
}

/// A backend serving a model bundle. Labels, input kind and length are the manifest's, so a
/// backend writes only its forward pass and is a [`Classifier`] by the blanket impl below
/// (one adapter for the native, ONNX Runtime and interpreter backends).
pub trait BundleModel: Send + Sync {
    /// The bundle's manifest.
    fn bundle_manifest(&self) -> &Manifest;
    /// Class probabilities for every text of the batch ([`Classifier::predict`]).
    fn forward_probabilities(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError>;
}

impl<T: BundleModel> Classifier for T {
    fn labels(&self) -> &[Label] {
        &self.bundle_manifest().labels
    }

    fn input_kind(&self) -> InputKind {
        self.bundle_manifest().tokenization.kind
    }

    fn max_len(&self) -> usize {
        self.bundle_manifest().tokenization.max_length
    }

    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        self.forward_probabilities(batch)
    }
}

/// A host copy of an input-embedding matrix, row-major `[rows, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTable {
    /// Number of rows (vocabulary or alphabet size).
    pub rows: usize,
    /// Embedding width.
    pub dim: usize,
    /// `rows * dim` values.
    pub values: Vec<f32>,
}

impl EmbeddingTable {
    /// The embedding of id `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Gradient of the loss with respect to the embedded inputs of one example.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleGradient {
    /// Loss (cross-entropy of the requested label) at the current input.
    pub loss: f32,
    /// Gradient, row-major `[positions, dim]` in the order of [`TokenIds::flat`].
    pub values: Vec<f32>,
}

/// Result of one batched forward and backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientBatch {
    /// Class probabilities at the current inputs.
    pub probabilities: Probabilities,
    /// One gradient per example.
    pub gradients: Vec<ExampleGradient>,
    /// Embedding width of every gradient row.
    pub dim: usize,
}

/// Checks the labels given to [`WhiteBox::loss_gradients`]: one per example, each a class
/// of the model.
pub fn check_labels(labels: &[usize], examples: usize, classes: usize) -> Result<(), ModelError> {
    if labels.len() != examples {
        return Err(ModelError::InvalidInput(format!(
            "{} labels for {examples} examples",
            labels.len()
        )));
    }
    match labels.iter().find(|&&l| l >= classes) {
        Some(bad) => Err(ModelError::InvalidInput(format!(
            "label {bad} is outside the model's {classes} classes"
        ))),
        None => Ok(()),
    }
}

/// A classifier whose input embeddings and loss gradients are visible.
pub trait WhiteBox: Classifier {
    /// The input-embedding table indexed by the ids the model reads (word vocabulary for
    /// word models, alphabet for character models).
    fn embedding_table(&self) -> &EmbeddingTable;

    /// Class probabilities computed from given embeddings instead of looking ids up.
    /// `embeddings[i]` is `[positions, dim]` for `batch[i]`, in [`TokenIds::flat`] order;
    /// the ids still define the structure (lengths, word boundaries).
    fn predict_embedded(
        &self,
        batch: &[TokenIds],
        embeddings: &[Vec<f32>],
    ) -> Result<Probabilities, ModelError>;

    /// One batched forward and backward pass: for every example, the cross-entropy loss of
    /// `labels[i]` and its gradient with respect to the embedded inputs.
    fn loss_gradients(
        &self,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<GradientBatch, ModelError>;

    /// One batched forward and backward pass that returns, instead of the gradients, the
    /// `k` best word flips of every state (see [`crate::scoring`] for the estimate, the
    /// masks and the order). Word ids only. The default runs [`Self::loss_gradients`] and
    /// scores on the host; backends that can keep the gradients on their device override
    /// it, and must return the same flips.
    fn top_word_flips(
        &self,
        batch: &[TokenIds],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<FlipBatch, ModelError> {
        check_queries(batch, queries, masks, self.labels().len())?;
        let labels: Vec<usize> = queries.iter().map(|q| q.label).collect();
        let pass = self.loss_gradients(batch, &labels)?;
        reference_top_flips(pass, batch, self.embedding_table(), queries, masks, k)
    }

    /// The `k` best word flips of every state for given gradients (`gradients[i]` is
    /// `[positions, dim]` of `batch[i]`), without a model pass: what searches that draw
    /// their own directions (`random-gradient`) score with. Same estimate, masks and order
    /// as [`Self::top_word_flips`]; the default scores on the host.
    fn score_word_flips(
        &self,
        batch: &[TokenIds],
        gradients: &[Vec<f32>],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<Vec<Vec<ScoredFlip>>, ModelError> {
        check_queries(batch, queries, masks, self.labels().len())?;
        check_gradients(batch, gradients)?;
        batch
            .iter()
            .zip(gradients)
            .zip(queries)
            .map(|((ids, g), q)| match ids {
                TokenIds::Words(words) => {
                    reference_state_flips(words, g, self.embedding_table(), q, masks, k)
                }
                TokenIds::Chars(_) => Err(ModelError::InvalidInput(
                    "word flips need word ids, not character ids".into(),
                )),
            })
            .collect()
    }

    /// Whether padded positions are fed the zero vector (native models mask the lookup)
    /// rather than the embedding row of the pad id (ONNX graphs look padding up like any
    /// other id). Estimates of edits that free a position (character deletes) score the
    /// freed position against this vector.
    fn padding_is_zero(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_ids_flatten_word_by_word() {
        let ids = TokenIds::Chars(vec![vec![1, 2], vec![3]]);
        assert_eq!(ids.flat(), vec![1, 2, 3]);
        assert_eq!(ids.positions(), 3);
        assert_eq!(ids.kind(), InputKind::Char);
    }

    #[test]
    fn argmax_picks_the_largest_probability() {
        let p = Probabilities {
            classes: 3,
            values: vec![0.2, 0.5, 0.3, 0.6, 0.3, 0.1],
        };
        assert_eq!(p.len(), 2);
        assert_eq!(p.argmax(0), (1, 0.5));
        assert_eq!(p.argmax(1).0, 0);
    }
}
