//! A pure-Rust test model: a linear bag-of-embeddings classifier with exact gradients.
//!
//! `logits = W · Σ_k s_k e_{x_k} + b` over every embedded position (words, or characters of
//! all words), softmax probabilities, cross-entropy loss. The position scales `s_k` are 1
//! unless [`LinearBag::with_position_scales`] sets them (cycled over positions); then the
//! gradient differs at every position, `s_k · Wᵀ(p − onehot(y))`, which is what exposes an
//! offset bug in code that reads per-position gradients. It never reads padding, so it
//! can claim either padding convention ([`LinearBag::with_zero_padding`]). It
//! implements [`Classifier`] and [`WhiteBox`] for word and character inputs, and comes with
//! helpers that build matching [`TextCodec`]s. Available to this crate's tests and, with the
//! `test-support` feature, to other crates.

use gauntlet_core::{
    Classifier, EmbeddingTable, ExampleGradient, GradientBatch, InputKind, Label, ModelError,
    Probabilities, TextCodec, TokenIds, Tokenization, WhiteBox,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A linear bag-of-embeddings classifier.
#[derive(Debug, Clone)]
pub struct LinearBag {
    labels: Vec<Label>,
    kind: InputKind,
    table: EmbeddingTable,
    /// `[classes, dim]`, row-major.
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// Per-position scales, cycled; empty means all 1.
    scales: Vec<f32>,
    /// What [`WhiteBox::padding_is_zero`] answers.
    zero_padding: bool,
}

impl LinearBag {
    /// A model from its embedding table, weights `[classes, dim]` and biases.
    pub fn new(kind: InputKind, table: EmbeddingTable, weights: Vec<f32>, bias: Vec<f32>) -> Self {
        let labels = (0..bias.len())
            .map(|id| Label {
                id,
                key: id.to_string(),
                name: format!("class-{id}"),
            })
            .collect();
        Self {
            labels,
            kind,
            table,
            weights,
            bias,
            scales: Vec::new(),
            zero_padding: false,
        }
    }

    /// Scales position `k`'s embedding by `scales[k % scales.len()]`.
    pub fn with_position_scales(mut self, scales: Vec<f32>) -> Self {
        self.scales = scales;
        self
    }

    /// Claims the native convention that padded positions are fed the zero vector.
    pub fn with_zero_padding(mut self) -> Self {
        self.zero_padding = true;
        self
    }

    /// Overwrites embedding row `id` (e.g. a nonzero PAD row).
    pub fn set_row(&mut self, id: usize, values: &[f32]) {
        let dim = self.table.dim;
        self.table.values[id * dim..(id + 1) * dim].copy_from_slice(values);
    }

    fn scale(&self, k: usize) -> f32 {
        if self.scales.is_empty() {
            1.0
        } else {
            self.scales[k % self.scales.len()]
        }
    }

    /// A model with seeded uniform random parameters in `[-scale, scale]`; PAD embeds to 0.
    pub fn random(
        kind: InputKind,
        rows: usize,
        dim: usize,
        classes: usize,
        scale: f32,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut values: Vec<f32> = (0..rows * dim)
            .map(|_| rng.gen_range(-scale..scale))
            .collect();
        values[..dim].iter_mut().for_each(|v| *v = 0.0);
        let weights = (0..classes * dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        Self::new(
            kind,
            EmbeddingTable { rows, dim, values },
            weights,
            vec![0.0; classes],
        )
    }

    /// The classifier's weights `[classes, dim]`.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Logits of a summed embedding.
    pub fn logits(&self, sum: &[f32]) -> Vec<f32> {
        let dim = self.table.dim;
        (0..self.bias.len())
            .map(|c| {
                let w = &self.weights[c * dim..(c + 1) * dim];
                self.bias[c] + w.iter().zip(sum).map(|(a, b)| a * b).sum::<f32>()
            })
            .collect()
    }

    /// Softmax probabilities of a summed embedding.
    pub fn probabilities(&self, sum: &[f32]) -> Vec<f32> {
        let logits = self.logits(sum);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f32 = exp.iter().sum();
        exp.into_iter().map(|e| e / z).collect()
    }

    /// Scaled sum of the embeddings of every position of `ids`.
    pub fn embedding_sum(&self, ids: &TokenIds) -> Vec<f32> {
        let mut sum = vec![0.0; self.table.dim];
        for (k, id) in ids.flat().into_iter().enumerate() {
            let scale = self.scale(k);
            for (s, v) in sum.iter_mut().zip(self.table.row(id as usize)) {
                *s += scale * v;
            }
        }
        sum
    }

    /// Cross-entropy of `label` at `ids`.
    pub fn loss(&self, ids: &TokenIds, label: usize) -> f32 {
        -self.probabilities(&self.embedding_sum(ids))[label].ln()
    }

    fn check(&self, batch: &[TokenIds]) -> Result<(), ModelError> {
        for ids in batch {
            if ids.kind() != self.kind || ids.is_empty() {
                return Err(ModelError::InvalidInput("wrong kind or empty".into()));
            }
            if ids.flat().iter().any(|&id| id as usize >= self.table.rows) {
                return Err(ModelError::InvalidInput("id out of range".into()));
            }
        }
        Ok(())
    }
}

impl Classifier for LinearBag {
    fn labels(&self) -> &[Label] {
        &self.labels
    }

    fn input_kind(&self) -> InputKind {
        self.kind
    }

    fn max_len(&self) -> usize {
        usize::MAX
    }

    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        self.check(batch)?;
        let values = batch
            .iter()
            .flat_map(|ids| self.probabilities(&self.embedding_sum(ids)))
            .collect();
        Ok(Probabilities {
            classes: self.bias.len(),
            values,
        })
    }
}

impl WhiteBox for LinearBag {
    fn embedding_table(&self) -> &EmbeddingTable {
        &self.table
    }

    fn padding_is_zero(&self) -> bool {
        self.zero_padding
    }

    fn predict_embedded(
        &self,
        batch: &[TokenIds],
        embeddings: &[Vec<f32>],
    ) -> Result<Probabilities, ModelError> {
        let dim = self.table.dim;
        let mut values = Vec::new();
        for (ids, emb) in batch.iter().zip(embeddings) {
            if emb.len() != ids.positions() * dim {
                return Err(ModelError::InvalidInput("embedding shape".into()));
            }
            let mut sum = vec![0.0; dim];
            for (k, row) in emb.chunks(dim).enumerate() {
                let scale = self.scale(k);
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += scale * v);
            }
            values.extend(self.probabilities(&sum));
        }
        Ok(Probabilities {
            classes: self.bias.len(),
            values,
        })
    }

    fn loss_gradients(
        &self,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<GradientBatch, ModelError> {
        self.check(batch)?;
        let dim = self.table.dim;
        let classes = self.bias.len();
        let mut values = Vec::new();
        let mut gradients = Vec::new();
        for (ids, &label) in batch.iter().zip(labels) {
            let p = self.probabilities(&self.embedding_sum(ids));
            // dCE/dsum = Wᵀ (p − onehot(label)); position k's gradient is s_k times it.
            let mut g = vec![0.0f32; dim];
            for (c, pc) in p.iter().enumerate() {
                let delta = pc - if c == label { 1.0 } else { 0.0 };
                for (gd, w) in g.iter_mut().zip(&self.weights[c * dim..(c + 1) * dim]) {
                    *gd += delta * w;
                }
            }
            gradients.push(ExampleGradient {
                loss: -p[label].ln(),
                values: (0..ids.positions())
                    .flat_map(|k| g.iter().map(move |v| v * self.scale(k)))
                    .collect(),
            });
            values.extend(p);
        }
        Ok(GradientBatch {
            probabilities: Probabilities { classes, values },
            gradients,
            dim,
        })
    }
}

/// A lowercasing codec built from `texts` (vocabulary for word models, alphabet and word
/// list for character models).
pub fn codec(
    kind: InputKind,
    texts: &[&str],
    max_words: usize,
    max_word_chars: usize,
) -> TextCodec {
    let options = gauntlet_core::codec::VocabularyOptions {
        kind,
        lowercase: true,
        min_count: 1,
        max_size: 10_000,
    };
    let tokenization = Tokenization {
        kind,
        lowercase: true,
        max_length: max_words,
        max_word_length: max_word_chars,
        pad_token: gauntlet_core::codec::PAD_TOKEN.into(),
        unk_token: gauntlet_core::codec::UNK_TOKEN.into(),
        scheme: Default::default(),
    };
    #[allow(clippy::expect_used)]
    let (tokenizer, words) = TextCodec::build(texts, &options).expect("test vocabulary builds");
    #[allow(clippy::expect_used)]
    TextCodec::new(tokenizer, &tokenization, words).expect("test codec builds")
}
