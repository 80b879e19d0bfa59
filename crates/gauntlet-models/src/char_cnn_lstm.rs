//! The HotFlip character-level classifier (after Kim et al. 2016): character embeddings
//! per word, convolutions over each word's characters with max-over-time pooling, highway
//! layers, a multi-layer LSTM over the words, and a linear layer on the last real state.
//!
//! Character pooling reads only windows inside the word, and the classifier reads the LSTM
//! at each text's last real word, so padding changes no logit.
//!
//! The computation skips the padding the `[B, W, C]` batch carries, without changing the
//! function (tested against the plain per-bank convolutions over the whole grid):
//! - the character CNN runs on the real words only, grouped by length (`packing::LengthBuckets`),
//!   each group padded to its own longest word, with all filter banks in one product;
//! - it pools the pre-activations and applies `tanh` to the maxima (`tanh` is increasing);
//! - the LSTM runs on groups of texts of similar length (`packing::length_groups`).

use gauntlet_core::InputKind;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, nn::RNN, Kind, Tensor};

use crate::batch::{masked_max, PaddedBatch};
use crate::embedding::InputEmbedding;
use crate::error::ModelsError;
use crate::network::{dropout, last_step, Network};
use crate::packing::{length_groups, LengthBuckets};

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
        let flat = embedded.reshape([b * w, c, d]);
        let buckets = LengthBuckets::new(&batch.char_lengths, w, self.min_len() as i64, c);
        let words = self.word_features(&flat, &buckets);
        // Row of `words` holding each cell of the `[B·W]` grid.
        let mut rows = vec![-1i64; (b * w).max(0) as usize];
        for (row, cell) in buckets.order().into_iter().enumerate() {
            rows[cell as usize] = row as i64;
        }
        let last = self.last_states(&words, &rows, w as usize, &batch.word_lengths);
        self.output
            .forward(&dropout(&last, self.config.dropout, train))
    }
}

impl CharCnnLstm {
    /// Width of the word features (the filter banks' maps together).
    fn features(&self) -> i64 {
        self.convs.iter().map(|(_, conv)| conv.ws.size()[0]).sum()
    }

    /// Features `[N, F]` of the real words of `flat` (`[B·W, C, D]`), in bucket order:
    /// character CNN per bucket, then the highway layers on all of them at once.
    fn word_features(&self, flat: &Tensor, buckets: &LengthBuckets) -> Tensor {
        let device = flat.device();
        let bank = self.filter_bank();
        let pooled: Vec<Tensor> = buckets
            .buckets
            .iter()
            .map(|bucket| {
                let rows = Tensor::from_slice(&bucket.rows).to_device(device);
                let lengths = Tensor::from_slice(&bucket.lengths).to_device(device);
                let chars = flat.index_select(0, &rows).narrow(1, 0, bucket.chars);
                bank.pooled(&chars, &lengths)
            })
            .collect();
        if pooled.is_empty() {
            Tensor::zeros([0, self.features()], (flat.kind(), device))
        } else {
            self.highway(Tensor::cat(&pooled, 0))
        }
    }

    /// The LSTM's state at each text's last real word, `[B, H]`, from word features
    /// `words` (`rows[text * width + j]` is the row of word `j` of `text`). Texts run in
    /// [`length_groups`], each padded to its own longest text; padded words get zero
    /// features, which the LSTM reads only after the text's last real word.
    fn last_states(&self, words: &Tensor, rows: &[i64], width: usize, lengths: &[i64]) -> Tensor {
        let device = words.device();
        let features = self.features();
        let mut lasts = Vec::new();
        let mut order = Vec::new();
        for group in length_groups(lengths) {
            let group_lengths: Vec<i64> = group.iter().map(|&t| lengths[t]).collect();
            let steps = group_lengths.iter().copied().max().unwrap_or(0).max(1);
            let (mut cells, mut sources) = (Vec::new(), Vec::new());
            for (slot, (&text, &len)) in group.iter().zip(&group_lengths).enumerate() {
                for j in 0..len {
                    cells.push(slot as i64 * steps + j);
                    sources.push(rows[text * width + j as usize]);
                }
            }
            let texts = group.len() as i64;
            let inputs = Tensor::zeros([texts * steps, features], (words.kind(), device))
                .index_copy(
                    0,
                    &Tensor::from_slice(&cells).to_device(device),
                    &words.index_select(0, &Tensor::from_slice(&sources).to_device(device)),
                );
            let (outputs, _) = self.lstm.seq(&inputs.reshape([texts, steps, features]));
            lasts.push(last_step(&outputs, &group_lengths));
            order.extend(group);
        }
        let mut slots = vec![0i64; order.len()];
        for (slot, &text) in order.iter().enumerate() {
            slots[text] = slot as i64;
        }
        Tensor::cat(&lasts, 0).index_select(0, &Tensor::from_slice(&slots).to_device(device))
    }

    /// All filter banks as one [`FilterBank`].
    fn filter_bank(&self) -> FilterBank {
        let widest = self.convs.iter().map(|(w, _)| *w).max().unwrap_or(1);
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        let mut widths = Vec::new();
        for (w, conv) in &self.convs {
            let maps = conv.ws.size()[0];
            weights.push(conv.ws.constant_pad_nd([0, widest - w]));
            biases.push(match &conv.bs {
                Some(bias) => bias.shallow_clone(),
                None => Tensor::zeros([maps], (conv.ws.kind(), conv.ws.device())),
            });
            widths.extend(std::iter::repeat_n(*w, maps as usize));
        }
        let weights = Tensor::cat(&weights, 0);
        let device = weights.device();
        FilterBank {
            weights,
            bias: Tensor::cat(&biases, 0),
            widths: Tensor::from_slice(&widths).to_device(device),
            widest,
        }
    }

    /// The highway layers on word features `[N, F]`.
    fn highway(&self, mut words: Tensor) -> Tensor {
        for highway in &self.highways {
            let gate = highway.gate.forward(&words).sigmoid();
            let transformed = highway.transform.forward(&words).relu();
            words = &gate * transformed + (1.0 - &gate) * &words;
        }
        words
    }
}

/// Every filter bank of the character CNN as one: a width-`w` bank's weights `[maps, D, w]`
/// are padded with zero taps to the widest width, so one product over each word's windows
/// of that width computes every bank (zero taps add exact zeros). Banks of a few maps over
/// 25-dimensional characters made oneDNN convolutions slow, one small call per bank.
struct FilterBank {
    /// `[F, D, widest]`.
    weights: Tensor,
    /// `[F]`.
    bias: Tensor,
    /// Width of each map, `[F]` int64.
    widths: Tensor,
    widest: i64,
}

impl FilterBank {
    /// Features `[N, F]` of words `[N, C, D]` with `lengths` `[N]` real characters each
    /// (`C` at least the widest filter): each map max-pooled over its windows inside the
    /// word (see [`crate::batch::conv_valid`]), then `tanh`. `tanh` is increasing, so pooling the
    /// pre-activations first gives the same maxima, with the same ties, as pooling the
    /// activations, and applies `tanh` to `[N, F]` instead of to every window.
    fn pooled(&self, chars: &Tensor, lengths: &Tensor) -> Tensor {
        let (n, c, d) = chars.size3().unwrap_or((0, 0, 0));
        let windows = chars
            .constant_pad_nd([0, 0, 0, self.widest - 1])
            .unfold(1, self.widest, 1)
            .reshape([n * c, d * self.widest]);
        let kernel = self.weights.reshape([-1, d * self.widest]).tr();
        let h = self.bias.addmm(&windows, &kernel).reshape([n, c, -1]);
        let positions = Tensor::arange(c, (Kind::Int64, chars.device())).view([1, c, 1]);
        let limit = (lengths.unsqueeze(1) - (&self.widths - 1))
            .clamp_min(1)
            .unsqueeze(1); // [N, 1, F]
        masked_max(&h, &positions.lt_tensor(&limit), 1).tanh()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch::conv_valid;
    use gauntlet_core::TokenIds;
    use tch::{Device, Kind};

    /// The reference: every word of the `[B, W, C]` grid through the character CNN at the
    /// grid's full width, `tanh` on every window before pooling.
    fn grid_logits(net: &CharCnnLstm, embedded: &Tensor, batch: &PaddedBatch) -> Tensor {
        let (b, w, c, d) = embedded.size4().unwrap();
        let x = embedded.reshape([b * w, c, d]).transpose(1, 2);
        let lengths: Vec<i64> = batch
            .char_lengths
            .iter()
            .flat_map(|words| (0..w as usize).map(move |j| words.get(j).copied().unwrap_or(0)))
            .collect();
        let lengths = Tensor::from_slice(&lengths);
        let pooled: Vec<Tensor> = net
            .convs
            .iter()
            .map(|(width, conv)| {
                let h = conv.forward(&x).tanh();
                let valid = conv_valid(&lengths, h.size()[2], *width).unsqueeze(1);
                masked_max(&h, &valid, 2)
            })
            .collect();
        let mut words = Tensor::cat(&pooled, 1);
        for highway in &net.highways {
            let gate = highway.gate.forward(&words).sigmoid();
            let transformed = highway.transform.forward(&words).relu();
            words = &gate * transformed + (1.0 - &gate) * &words;
        }
        let (outputs, _) = net.lstm.seq(&words.reshape([b, w, -1]));
        net.output
            .forward(&last_step(&outputs, &batch.word_lengths))
    }

    /// Words of 1 to 19 characters (every bucket, and words narrower than the widest
    /// filter), texts of 1 to 7 words, and repeated letters, whose windows tie exactly.
    fn texts() -> Vec<TokenIds> {
        let word = |len: usize, seed: usize| -> Vec<u32> {
            (0..len)
                .map(|i| 2 + ((seed * 7 + i * (seed % 3)) % 11) as u32)
                .collect()
        };
        (0..9)
            .map(|t| {
                TokenIds::Chars(
                    (0..1 + t % 7)
                        .map(|j| word(1 + (t * 5 + j * 3) % 19, t + j))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn length_buckets_equal_the_padded_grid_in_logits_and_input_gradients() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = CharCnnLstm::new(&vs.root(), CharCnnLstmConfig::default(), 16, 3).unwrap();
        let batch = PaddedBatch::new(&texts(), net.min_len(), Device::Cpu).unwrap();
        let lengths: Vec<i64> = batch.char_lengths.iter().flatten().copied().collect();
        let widest = lengths.iter().max().copied().unwrap();
        let buckets = LengthBuckets::new(&batch.char_lengths, 7, net.min_len() as i64, widest);
        assert_eq!(buckets.buckets.len(), 5, "{buckets:?}");
        assert_eq!(buckets.order().len(), lengths.len());
        assert!(length_groups(&batch.word_lengths).len() > 1);

        // A nonzero padding region: a bucket must read exactly the cells the grid reads.
        let embedded = net.embed(&batch) + Tensor::randn([1], (Kind::Float, Device::Cpu));
        let weights = Tensor::randn([9, 3], (Kind::Float, Device::Cpu));
        let pass = |reference: bool| {
            let leaf = embedded.detach().set_requires_grad(true);
            let out = if reference {
                grid_logits(&net, &leaf, &batch)
            } else {
                net.logits(&leaf, &batch, false)
            };
            let loss = (&out * &weights).sum(Kind::Float);
            let grad = Tensor::run_backward(&[loss], &[&leaf], false, false);
            (out, grad[0].shallow_clone())
        };
        let ((grid_out, grid_grad), (out, grad)) = (pass(true), pass(false));
        // Tolerances relative to the values' scale: fp32 sums over another batch shape
        // round differently (a CI run saw 1.4e-6 on gradients of at most 0.11), while reading
        // a wrong cell moves results by a good fraction of that scale.
        let scale = |t: &Tensor| t.abs().max().double_value(&[]).max(1e-3);
        let diff = (&grid_out - &out).abs().max().double_value(&[]);
        assert!(diff <= 1e-4 * scale(&grid_out), "logits differ by {diff:e}");
        // Gradients read at real characters only (what attacks read).
        let real = batch.mask.unsqueeze(-1).to_kind(Kind::Bool);
        let grid_grad = grid_grad.masked_select(&real);
        let diff = (&grid_grad - grad.masked_select(&real))
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff <= 1e-4 * scale(&grid_grad),
            "input gradients differ by {diff:e} (scale {:e})",
            scale(&grid_grad)
        );
    }
}
