//! The HotFlip character-level classifier (after Kim et al. 2016): character embeddings
//! per word, convolutions over each word's characters with max-over-time pooling, highway
//! layers, a multi-layer LSTM over the words, and a linear layer on the last real state.
//!
//! Character pooling reads only windows inside the word, and the classifier reads the LSTM
//! at each text's last real word, so padding changes no logit.

use gauntlet_core::InputKind;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::RNN, Tensor};

use crate::batch::{conv_valid, masked_max, PaddedBatch};
use crate::embedding::InputEmbedding;
use crate::error::ModelsError;
use crate::network::{dropout, last_step, Network};

/// Hyper-parameters of [`CharCnnLstm`]. The paper uses 500 LSTM units; the defaults are
/// smaller so the model trains on a CPU in minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CharCnnLstmConfig {
    /// Character embedding width (paper: 25).
    pub char_dim: i64,
    /// Convolution widths in characters.
    pub filter_widths: Vec<i64>,
    /// Feature maps per unit of width (a width-w filter bank has `w * maps_per_width` maps).
    pub maps_per_width: i64,
    /// Highway layers after pooling.
    pub highway_layers: i64,
    /// LSTM hidden units.
    pub hidden: i64,
    /// LSTM layers.
    pub lstm_layers: i64,
    /// Dropout before the output layer.
    pub dropout: f64,
    /// Frequency-weighted embedding normalization (Miyato et al. 2017); the trainer turns
    /// it on for `l2` and `vat` adversarial training.
    pub normalize_embeddings: bool,
}

impl Default for CharCnnLstmConfig {
    fn default() -> Self {
        Self {
            char_dim: 25,
            filter_widths: vec![1, 2, 3, 4, 5],
            maps_per_width: 20,
            highway_layers: 2,
            hidden: 128,
            lstm_layers: 2,
            dropout: 0.5,
            normalize_embeddings: false,
        }
    }
}

#[derive(Debug)]
struct Highway {
    transform: nn::Linear,
    gate: nn::Linear,
}

/// The character CNN-LSTM classifier.
#[derive(Debug)]
pub struct CharCnnLstm {
    embedding: InputEmbedding,
    convs: Vec<(i64, nn::Conv1D)>,
    highways: Vec<Highway>,
    lstm: nn::LSTM,
    output: nn::Linear,
    config: CharCnnLstmConfig,
}

impl CharCnnLstm {
    /// Creates the variables under `path`.
    pub fn new(
        path: &nn::Path,
        config: CharCnnLstmConfig,
        rows: i64,
        classes: i64,
    ) -> Result<Self, ModelsError> {
        let c = &config;
        if c.filter_widths.is_empty()
            || c.filter_widths.iter().any(|&w| w < 1)
            || c.maps_per_width < 1
            || c.hidden < 1
            || c.lstm_layers < 1
            || c.char_dim < 1
            || c.highway_layers < 0
        {
            return Err(ModelsError::Config(
                "char-cnn-lstm: sizes must be positive".into(),
            ));
        }
        let embedding = InputEmbedding::new(path, rows, c.char_dim, c.normalize_embeddings);
        let convs = c
            .filter_widths
            .iter()
            .map(|&w| {
                (
                    w,
                    nn::conv1d(
                        path / format!("conv{w}"),
                        c.char_dim,
                        w * c.maps_per_width,
                        w,
                        Default::default(),
                    ),
                )
            })
            .collect();
        let features: i64 = c.filter_widths.iter().map(|w| w * c.maps_per_width).sum();
        let highways = (0..c.highway_layers)
            .map(|i| Highway {
                transform: nn::linear(
                    path / format!("highway{i}_transform"),
                    features,
                    features,
                    Default::default(),
                ),
                // A negative gate bias starts the layer close to the identity (Srivastava et al.).
                gate: nn::linear(
                    path / format!("highway{i}_gate"),
                    features,
                    features,
                    nn::LinearConfig {
                        bs_init: Some(nn::Init::Const(-2.0)),
                        ..Default::default()
                    },
                ),
            })
            .collect();
        // Dropout between LSTM layers stays 0 and `train` true: the cuDNN kernel refuses
        // backward passes in eval mode, and white-box attacks need them.
        let rnn_config = nn::RNNConfig {
            num_layers: c.lstm_layers,
            batch_first: true,
            train: true,
            ..Default::default()
        };
        let lstm = nn::lstm(path / "lstm", features, c.hidden, rnn_config);
        let output = nn::linear(path / "output", c.hidden, classes, Default::default());
        Ok(Self {
            embedding,
            convs,
            highways,
            lstm,
            output,
            config,
        })
    }
}

impl Network for CharCnnLstm {
    fn input_kind(&self) -> InputKind {
        InputKind::Char
    }

    fn min_len(&self) -> usize {
        self.config.filter_widths.iter().copied().max().unwrap_or(1) as usize
    }

    fn input_embedding(&self) -> &InputEmbedding {
        &self.embedding
    }

    fn logits(&self, embedded: &Tensor, batch: &PaddedBatch, train: bool) -> Tensor {
        let (b, w, c, d) = embedded.size4().unwrap_or((0, 0, 0, 0));
        let x = embedded.reshape([b * w, c, d]).transpose(1, 2); // [B*W, D, C]
        let char_lengths: Vec<i64> = batch
            .char_lengths
            .iter()
            .flat_map(|words| (0..w as usize).map(move |j| words.get(j).copied().unwrap_or(0)))
            .collect();
        let char_lengths = Tensor::from_slice(&char_lengths).to_device(embedded.device());
        let pooled: Vec<Tensor> = self
            .convs
            .iter()
            .map(|(width, conv)| {
                let h = conv.forward(&x).tanh();
                let valid = conv_valid(&char_lengths, h.size()[2], *width).unsqueeze(1);
                masked_max(&h, &valid, 2)
            })
            .collect();
        let mut words = Tensor::cat(&pooled, 1); // [B*W, F]
        for highway in &self.highways {
            let gate = highway.gate.forward(&words).sigmoid();
            let transformed = highway.transform.forward(&words).relu();
            words = &gate * transformed + (1.0 - &gate) * &words;
        }
        let features = words.size()[1];
        let (outputs, _) = self.lstm.seq(&words.reshape([b, w, features]));
        let last = last_step(&outputs, &batch.word_lengths);
        self.output
            .forward(&dropout(&last, self.config.dropout, train))
    }
}
