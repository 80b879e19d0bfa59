//! Bidirectional RNN classifier (Bělohlávek et al. 2018; Miyato et al. 2017): word
//! embeddings, a forward and a backward LSTM or GRU, their last states concatenated, a
//! one-hidden-layer MLP and a linear output.
//!
//! The backward direction runs a forward RNN over each text reversed *within its own
//! length*, so it starts at the last real word rather than at padding: batch invariant.

use gauntlet_core::InputKind;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::RNN, Kind, Tensor};

use crate::batch::PaddedBatch;
use crate::embedding::InputEmbedding;
use crate::error::ModelsError;
use crate::network::{dropout, last_step, Network};

/// Recurrent cell of [`BiRnn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
}

/// Hyper-parameters of [`BiRnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiRnnConfig {
    /// Word embedding width.
    pub embedding_dim: i64,
    /// Recurrent cell.
    pub cell: Cell,
    /// Hidden units per direction.
    pub hidden: i64,
    /// Hidden units of the MLP head.
    pub mlp_hidden: i64,
    /// Dropout before the MLP and before the output layer.
    pub dropout: f64,
    /// Frequency-weighted embedding normalization (Miyato et al. 2017); the trainer turns
    /// it on for `l2` and `vat` adversarial training.
    pub normalize_embeddings: bool,
}

impl Default for BiRnnConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 128,
            cell: Cell::Lstm,
            hidden: 128,
            mlp_hidden: 64,
            dropout: 0.5,
            normalize_embeddings: false,
        }
    }
}

#[derive(Debug)]
enum Recurrent {
    Lstm(nn::LSTM),
    Gru(nn::GRU),
}

impl Recurrent {
    fn new(path: nn::Path, cell: Cell, input: i64, hidden: i64) -> Self {
        let config = nn::RNNConfig {
            batch_first: true,
            train: true,
            ..Default::default()
        };
        match cell {
            Cell::Lstm => Self::Lstm(nn::lstm(path, input, hidden, config)),
            Cell::Gru => Self::Gru(nn::gru(path, input, hidden, config)),
        }
    }

    fn outputs(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Lstm(rnn) => rnn.seq(x).0,
            Self::Gru(rnn) => rnn.seq(x).0,
        }
    }
}

/// The bidirectional RNN classifier.
#[derive(Debug)]
pub struct BiRnn {
    embedding: InputEmbedding,
    forward_rnn: Recurrent,
    backward_rnn: Recurrent,
    hidden: nn::Linear,
    output: nn::Linear,
    config: BiRnnConfig,
}

impl BiRnn {
    /// Creates the variables under `path`.
    pub fn new(
        path: &nn::Path,
        config: BiRnnConfig,
        rows: i64,
        classes: i64,
    ) -> Result<Self, ModelsError> {
        if config.embedding_dim < 1 || config.hidden < 1 || config.mlp_hidden < 1 {
            return Err(ModelsError::Config("birnn: sizes must be positive".into()));
        }
        let embedding = InputEmbedding::new(
            path,
            rows,
            config.embedding_dim,
            config.normalize_embeddings,
        );
        let forward_rnn = Recurrent::new(
            path / "forward",
            config.cell,
            config.embedding_dim,
            config.hidden,
        );
        let backward_rnn = Recurrent::new(
            path / "backward",
            config.cell,
            config.embedding_dim,
            config.hidden,
        );
        let hidden = nn::linear(
            path / "mlp",
            2 * config.hidden,
            config.mlp_hidden,
            Default::default(),
        );
        let output = nn::linear(
            path / "output",
            config.mlp_hidden,
            classes,
            Default::default(),
        );
        Ok(Self {
            embedding,
            forward_rnn,
            backward_rnn,
            hidden,
            output,
            config,
        })
    }
}

/// Reverses each row of `[B, T, D]` within its first `lengths[b]` steps; padding stays put.
fn reverse_within_length(x: &Tensor, lengths: &[i64]) -> Tensor {
    let (b, t, d) = x.size3().unwrap_or((0, 0, 0));
    let index: Vec<i64> = lengths
        .iter()
        .flat_map(|&len| (0..t).map(move |i| if i < len { len - 1 - i } else { i }))
        .collect();
    let index = Tensor::from_slice(&index)
        .to_device(x.device())
        .to_kind(Kind::Int64)
        .view([b, t, 1])
        .expand([b, t, d], false);
    x.gather(1, &index, false)
}

impl Network for BiRnn {
    fn input_kind(&self) -> InputKind {
        InputKind::Word
    }

    fn min_len(&self) -> usize {
        1
    }

    fn input_embedding(&self) -> &InputEmbedding {
        &self.embedding
    }

    fn logits(&self, embedded: &Tensor, batch: &PaddedBatch, train: bool) -> Tensor {
        let lengths = &batch.word_lengths;
        let forward = last_step(&self.forward_rnn.outputs(embedded), lengths);
        let reversed = reverse_within_length(embedded, lengths);
        let backward = last_step(&self.backward_rnn.outputs(&reversed), lengths);
        let states = dropout(
            &Tensor::cat(&[forward, backward], 1),
            self.config.dropout,
            train,
        );
        let hidden = dropout(
            &self.hidden.forward(&states).tanh(),
            self.config.dropout,
            train,
        );
        self.output.forward(&hidden)
    }
}
