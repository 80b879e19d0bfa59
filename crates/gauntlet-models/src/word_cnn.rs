//! Kim (2014) CNN: word embeddings, convolutions of widths 3/4/5 with 100 maps each, ReLU,
//! max-over-time pooling, dropout, linear layer to the classes.
//!
//! Pooling only reads windows that start inside the text (or the first window when the text
//! is shorter than the filter), so padding never changes an example's logits.

use gauntlet_core::InputKind;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Tensor};

use crate::batch::PaddedBatch;
use crate::convolution::pooled_convolutions;
use crate::embedding::InputEmbedding;
use crate::error::ModelsError;
use crate::lookup_forward::{FrozenForward, LookupWordCnn, MAX_TABLE_BYTES};
use crate::network::{dropout, lengths_tensor, Network};

/// Hyper-parameters of [`WordCnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WordCnnConfig {
    /// Word embedding width.
    pub embedding_dim: i64,
    /// Convolution widths in words.
    pub filter_widths: Vec<i64>,
    /// Feature maps per width.
    pub feature_maps: i64,
    /// Dropout before the output layer.
    pub dropout: f64,
    /// Frequency-weighted embedding normalization (Miyato et al. 2017); the trainer turns
    /// it on for `l2` and `vat` adversarial training.
    pub normalize_embeddings: bool,
}

impl Default for WordCnnConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 128,
            filter_widths: vec![3, 4, 5],
            feature_maps: 100,
            dropout: 0.5,
            normalize_embeddings: false,
        }
    }
}

/// Kim's CNN sentence classifier.
#[derive(Debug)]
pub struct WordCnn {
    embedding: InputEmbedding,
    convs: Vec<(i64, nn::Conv1D)>,
    output: nn::Linear,
    config: WordCnnConfig,
}

impl WordCnn {
    /// Creates the variables under `path`.
    pub fn new(
        path: &nn::Path,
        config: WordCnnConfig,
        rows: i64,
        classes: i64,
    ) -> Result<Self, ModelsError> {
        if config.filter_widths.is_empty()
            || config.filter_widths.iter().any(|&w| w < 1)
            || config.feature_maps < 1
            || config.embedding_dim < 1
        {
            return Err(ModelsError::Config(
                "word-cnn: filter_widths, feature_maps and embedding_dim must be positive".into(),
            ));
        }
        let embedding = InputEmbedding::new(
            path,
            rows,
            config.embedding_dim,
            config.normalize_embeddings,
        );
        let convs = config
            .filter_widths
            .iter()
            .map(|&w| {
                (
                    w,
                    nn::conv1d(
                        path / format!("conv{w}"),
                        config.embedding_dim,
                        config.feature_maps,
                        w,
                        Default::default(),
                    ),
                )
            })
            .collect();
        let features = config.feature_maps * config.filter_widths.len() as i64;
        let output = nn::linear(path / "output", features, classes, Default::default());
        Ok(Self {
            embedding,
            convs,
            output,
            config,
        })
    }
}

#[cfg(test)]
impl WordCnn {
    pub(crate) fn banks(&self) -> &[(i64, nn::Conv1D)] {
        &self.convs
    }

    pub(crate) fn output(&self) -> &nn::Linear {
        &self.output
    }
}

impl Network for WordCnn {
    fn input_kind(&self) -> InputKind {
        InputKind::Word
    }

    fn min_len(&self) -> usize {
        self.config.filter_widths.iter().copied().max().unwrap_or(1) as usize
    }

    fn input_embedding(&self) -> &InputEmbedding {
        &self.embedding
    }

    fn logits(&self, embedded: &Tensor, batch: &PaddedBatch, train: bool) -> Tensor {
        let lengths = lengths_tensor(&batch.word_lengths, embedded);
        let features = pooled_convolutions(embedded, &self.convs, &lengths);
        self.output
            .forward(&dropout(&features, self.config.dropout, train))
    }

    fn frozen_forward(&self) -> Option<Box<dyn FrozenForward>> {
        let embedding = tch::no_grad(|| self.embedding());
        LookupWordCnn::new(&embedding, &self.convs, &self.output, MAX_TABLE_BYTES)
            .map(|f| Box::new(f) as Box<dyn FrozenForward>)
    }
}
