//! The tch-level network trait and the architecture registry.
//!
//! A [`Network`] splits its forward pass in two so white-box code can put a leaf (or a
//! perturbation) between them: [`Network::embed`] looks ids up (padding rows zeroed), and
//! [`Network::logits`] maps embedded inputs to logits. Hyper-parameters are serde structs
//! stored in the manifest; unknown keys are rejected so a typo cannot silently fall back to
//! a default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use gauntlet_core::InputKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::{nn, Kind, Tensor};

use crate::batch::PaddedBatch;
use crate::embedding::InputEmbedding;
use crate::error::ModelsError;
use crate::lookup_forward::FrozenForward;
use crate::{BiRnn, CharCnnLstm, WordCnn};

/// Hyper-parameters as stored in a manifest.
pub type HyperParameters = BTreeMap<String, serde_json::Value>;

/// A classifier network on libtorch, split at the input embeddings.
pub trait Network: Send + fmt::Debug {
    /// Word or character input.
    fn input_kind(&self) -> InputKind;
    /// Minimum padded length of the innermost input axis (widest convolution).
    fn min_len(&self) -> usize;
    /// The input-embedding layer.
    fn input_embedding(&self) -> &InputEmbedding;
    /// The effective input-embedding matrix `[rows, dim]` (normalized when enabled).
    fn embedding(&self) -> Tensor {
        self.input_embedding().matrix()
    }
    /// Looks the batch's ids up; padded positions are zero vectors, so the output never
    /// depends on the padding row.
    fn embed(&self, batch: &PaddedBatch) -> Tensor {
        Tensor::embedding(&self.embedding(), &batch.ids, -1, false, false)
            * batch.mask.unsqueeze(-1)
    }
    /// Logits `[B, classes]` from embedded inputs (`[B, T, D]` or `[B, W, C, D]`).
    /// `train` enables dropout.
    fn logits(&self, embedded: &Tensor, batch: &PaddedBatch, train: bool) -> Tensor;
    /// `logits(embed(batch))`.
    fn forward(&self, batch: &PaddedBatch, train: bool) -> Tensor {
        self.logits(&self.embed(batch), batch, train)
    }
    /// Cheaper inference passes (forward, and the input gradient where there is a closed
    /// form) that are only valid while the weights stay as they are now, for architectures
    /// that have them ([`crate::lookup_forward`]); the caller must never change the weights
    /// afterwards.
    fn frozen_forward(&self) -> Option<Box<dyn FrozenForward>> {
        None
    }
}

/// The native architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Kim (2014) CNN over word embeddings.
    WordCnn,
    /// HotFlip's character CNN, highway layers and 2-layer LSTM over words.
    CharCnnLstm,
    /// Bidirectional LSTM/GRU over word embeddings with an MLP head.
    BiRnn,
}

impl Architecture {
    /// All architectures, in the order `--arch` lists them.
    pub const ALL: [Self; 3] = [Self::WordCnn, Self::CharCnnLstm, Self::BiRnn];

    /// The name used in manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::WordCnn => "word-cnn",
            Self::CharCnnLstm => "char-cnn-lstm",
            Self::BiRnn => "birnn",
        }
    }

    /// Whether the architecture reads words or characters.
    pub fn input_kind(self) -> InputKind {
        match self {
            Self::CharCnnLstm => InputKind::Char,
            Self::WordCnn | Self::BiRnn => InputKind::Word,
        }
    }

    /// Default hyper-parameters (sized to train on a CPU in minutes).
    pub fn default_hyper_parameters(self) -> HyperParameters {
        match self {
            Self::WordCnn => to_map(&crate::word_cnn::WordCnnConfig::default()),
            Self::CharCnnLstm => to_map(&crate::char_cnn_lstm::CharCnnLstmConfig::default()),
            Self::BiRnn => to_map(&crate::birnn::BiRnnConfig::default()),
        }
    }

    /// Builds the network's variables under `path`. `rows` is the vocabulary (or alphabet)
    /// size including specials.
    pub fn build(
        self,
        path: &nn::Path,
        hyper: &HyperParameters,
        rows: usize,
        classes: usize,
    ) -> Result<Box<dyn Network>, ModelsError> {
        if rows < 3 || classes < 2 {
            return Err(ModelsError::Config(format!(
                "{}: need at least one token besides [PAD]/[UNK] and two classes (got {rows} ids, {classes} classes)",
                self.name()
            )));
        }
        let (rows, classes) = (rows as i64, classes as i64);
        Ok(match self {
            Self::WordCnn => Box::new(WordCnn::new(path, from_map(self, hyper)?, rows, classes)?),
            Self::CharCnnLstm => Box::new(CharCnnLstm::new(
                path,
                from_map(self, hyper)?,
                rows,
                classes,
            )?),
            Self::BiRnn => Box::new(BiRnn::new(path, from_map(self, hyper)?, rows, classes)?),
        })
    }
}

impl FromStr for Architecture {
    type Err = ModelsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                ModelsError::Config(format!(
                    "unknown architecture {s:?}; expected one of {}",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn to_map<T: Serialize>(config: &T) -> HyperParameters {
    match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => HyperParameters::new(),
    }
}

fn from_map<T: DeserializeOwned>(
    arch: Architecture,
    hyper: &HyperParameters,
) -> Result<T, ModelsError> {
    let value = serde_json::Value::Object(hyper.clone().into_iter().collect());
    serde_json::from_value(value)
        .map_err(|e| ModelsError::Config(format!("{} hyper-parameters: {e}", arch.name())))
}

/// Overrides of default hyper-parameters from `key=value` strings (values parsed as JSON,
/// falling back to strings).
pub fn apply_overrides(
    arch: Architecture,
    mut hyper: HyperParameters,
    overrides: &[String],
) -> Result<HyperParameters, ModelsError> {
    for item in overrides {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            ModelsError::Config(format!("hyper-parameter {item:?} is not key=value"))
        })?;
        if !hyper.contains_key(key) {
            return Err(ModelsError::Config(format!(
                "{} has no hyper-parameter {key:?}; known: {}",
                arch.name(),
                hyper.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let parsed = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        hyper.insert(key.to_owned(), parsed);
    }
    from_map::<serde_json::Value>(arch, &hyper)?;
    Ok(hyper)
}

/// Cross-entropy `[B]` of `targets[i]` (`[B]`, int64) under each example's logits.
pub(crate) fn cross_entropies(logits: &Tensor, targets: &Tensor) -> Tensor {
    -logits
        .log_softmax(-1, Kind::Float)
        .gather(1, &targets.unsqueeze(1), false)
        .squeeze_dim(1)
}

/// Logits (detached) and the gradient of the summed cross-entropies of `targets` with
/// respect to the embedded inputs, by autograd, in the batch's padded shape `+ [D]`.
/// Summing keeps each example's gradient equal to the gradient of its own loss.
pub(crate) fn autograd_loss_gradients(
    net: &dyn Network,
    padded: &PaddedBatch,
    targets: &Tensor,
) -> Option<(Tensor, Tensor)> {
    let embedded = net.embed(padded).detach().set_requires_grad(true);
    let logits = net.logits(&embedded, padded, false);
    let loss = cross_entropies(&logits, targets).sum(Kind::Float);
    let grad = Tensor::run_backward(&[loss], &[&embedded], false, false)
        .into_iter()
        .next()?;
    Some((logits.detach(), grad))
}

/// Output of a batch-first RNN at each example's last real step: `[B, T, H]` to `[B, H]`.
pub(crate) fn last_step(outputs: &Tensor, lengths: &[i64]) -> Tensor {
    let (b, _, h) = outputs.size3().unwrap_or((0, 0, 0));
    let idx = Tensor::from_slice(lengths)
        .to_device(outputs.device())
        .clamp_min(1)
        .g_sub_scalar(1)
        .view([-1, 1, 1])
        .expand([b, 1, h], false);
    outputs.gather(1, &idx, false).squeeze_dim(1)
}

/// Dropout that is the identity outside training.
pub(crate) fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if train && p > 0.0 {
        x.dropout(p, true)
    } else {
        x.shallow_clone()
    }
}

/// Casts lengths for mask arithmetic.
pub(crate) fn lengths_tensor(lengths: &[i64], like: &Tensor) -> Tensor {
    Tensor::from_slice(lengths)
        .to_device(like.device())
        .to_kind(Kind::Int64)
}
