//! The word CNN's inference passes for frozen weights: the forward pass by table lookup and
//! the input gradient in closed form.
//!
//! A width-`w` bank's pre-activation at window `t` is `b + Σ_{j<w} W_j·x[t + j]`, where
//! `W_j = W[:, :, j]` is `[F, D]` and `x[t]` is the embedding of the word at `t`. With the
//! weights frozen, `W_j·e_v` is a fixed `F`-vector for every vocabulary id `v`, so a loaded
//! model precomputes one joint table `P[v, j, c] = W_{b(c), j}[f(c)]·e_v` over the columns
//! `c` of all banks (offsets past a bank's width hold zeros) and a forward pass becomes one
//! gather and `max w` adds: `max w · Σ F` additions per position instead of the
//! `Σ w·F·D` multiply-adds of the product, in a handful of operations whatever the number of
//! banks. Attack children and served texts are short and many, so this is most of what a
//! `predict` call costs.
//!
//! The gradient of the cross-entropy with respect to the inputs needs no autograd: past the
//! pooling the network is linear, so `∂L/∂m = (softmax(z) − onehot(y))·W_out` masked by
//! `m > 0` (ReLU), pooling routes it to the maximal windows (split evenly among ties, as
//! libtorch's `amax` does), and each window sends `W_jᵀ·∂L/∂h[t]` to position `t + j`: one
//! product with the stacked weights and `max w` shifted adds.
//!
//! Invariants:
//! - Padded positions contribute zero (they index an appended zero row), as the zero
//!   vectors of [`crate::Network::embed`] do, whatever row 0 of the table holds.
//! - Pooling reads the windows [`crate::batch::conv_valid`] allows for each bank, as
//!   [`crate::convolution`] does, so padding never changes an example's logits.
//! - Logits and gradients equal the network's forward pass and its autograd gradient, at
//!   every padded position, up to the summation order (tested to 1e-5). A window whose
//!   value ties the maximum only up to rounding may be ranked differently by the two sums,
//!   as any two summation orders may.
//! - Only a model whose weights never change may hold one: [`crate::NativeModel`] builds it
//!   when it loads, training never does.

use tch::{nn, Kind, Tensor};

use crate::batch::PaddedBatch;
use crate::network::lengths_tensor;

/// Largest lookup table a model builds (bytes); a bigger vocabulary or bank keeps the
/// product-based forward pass.
pub const MAX_TABLE_BYTES: i64 = 512 << 20;

/// A frozen network's passes that replace [`crate::Network::forward`] and autograd at
/// inference.
pub trait FrozenForward: Send + std::fmt::Debug {
    /// Logits `[B, classes]` of a padded batch, without dropout or autograd.
    fn logits(&self, batch: &PaddedBatch) -> Tensor;

    /// Logits and, for every example, the gradient of the cross-entropy of `targets[i]`
    /// (`[B]`, int64) with respect to its embedded inputs, in the batch's padded shape
    /// `+ [D]`; `None` when the architecture has no closed form.
    fn loss_gradients(&self, _batch: &PaddedBatch, _targets: &Tensor) -> Option<(Tensor, Tensor)> {
        None
    }
}

/// The word CNN's [`FrozenForward`]: one lookup table over all banks and the output layer.
#[derive(Debug)]
pub struct LookupWordCnn {
    /// `[V + 1, max w, C]` over the `C` columns of all banks; the last row is zero
    /// (padding) and offsets past a column's width are zero.
    table: Tensor,
    /// `[C]`: every bank's bias (zeros for a bank without one).
    bias: Tensor,
    /// `[C]`, int64: the width of each column's bank.
    column_widths: Tensor,
    /// `[C, max w · D]`: column `c`'s filter at offset `j` in `j·D .. (j + 1)·D`.
    filters: Tensor,
    max_width: i64,
    min_width: i64,
    /// Id of the zero row (the vocabulary size).
    padding_row: i64,
    output: (Tensor, Option<Tensor>),
}

/// A forward pass kept for the gradient.
struct Pooled {
    /// Pre-activations of every window, invalid ones at `-1e9`: `[B, L − min w + 1, C]`.
    windows: Tensor,
    /// Max-pooled pre-activations `[B, C]`.
    maxima: Tensor,
    logits: Tensor,
}

impl LookupWordCnn {
    /// Builds the table from the effective embedding matrix `[V, D]`, the banks and the
    /// output layer; `None` when it would exceed `max_bytes`.
    pub(crate) fn new(
        embedding: &Tensor,
        banks: &[(i64, nn::Conv1D)],
        output: &nn::Linear,
        max_bytes: i64,
    ) -> Option<Self> {
        let (rows, dim) = embedding.size2().ok()?;
        let max_width = banks.iter().map(|(w, _)| *w).max()?;
        let min_width = banks.iter().map(|(w, _)| *w).min()?;
        let columns: i64 = banks.iter().map(|(_, c)| c.ws.size()[0]).sum();
        let bytes = (rows + 1)
            .checked_mul(max_width)?
            .checked_mul(columns)?
            .checked_mul(4)?;
        if bytes > max_bytes {
            return None;
        }
        tch::no_grad(|| {
            let device = embedding.device();
            let embedding = embedding.to_kind(Kind::Float);
            // [C, D, max w]: every bank's filters, zero past its width.
            let stacked = Tensor::cat(
                &banks
                    .iter()
                    .map(|(w, conv)| {
                        conv.ws
                            .to_kind(Kind::Float)
                            .constant_pad_nd([0, max_width - w])
                    })
                    .collect::<Vec<_>>(),
                0,
            );
            // [D, max w · C]: column j·C + c holds the filter of column c at offset j.
            let by_offset = stacked
                .permute([1, 2, 0])
                .reshape([dim, max_width * columns]);
            let table = embedding.matmul(&by_offset);
            let zero = table.zeros_like().narrow(0, 0, 1);
            let table = Tensor::cat(&[table, zero], 0).reshape([rows + 1, max_width, columns]);
            let per_bank = |f: &dyn Fn(i64, &nn::Conv1D, i64) -> Tensor| {
                Tensor::cat(
                    &banks
                        .iter()
                        .map(|(w, conv)| f(*w, conv, conv.ws.size()[0]))
                        .collect::<Vec<_>>(),
                    0,
                )
            };
            let bias = per_bank(&|_, conv, maps| match &conv.bs {
                Some(b) => b.detach().to_kind(Kind::Float),
                None => Tensor::zeros([maps], (Kind::Float, device)),
            });
            let column_widths =
                per_bank(&|w, _, maps| Tensor::full([maps], w, (Kind::Int64, device)));
            Some(Self {
                table,
                bias,
                column_widths,
                filters: stacked
                    .permute([0, 2, 1])
                    .reshape([columns, max_width * dim]),
                max_width,
                min_width,
                padding_row: rows,
                output: (
                    output.ws.detach().to_kind(Kind::Float),
                    output.bs.as_ref().map(|b| b.detach().to_kind(Kind::Float)),
                ),
            })
        })
    }

    /// The forward pass up to the logits, keeping the windows and their maxima.
    fn pool(&self, batch: &PaddedBatch) -> Pooled {
        let ids = batch.ids.masked_fill(&batch.mask.eq(0.0), self.padding_row);
        let (n, l) = ids.size2().unwrap_or((0, 0));
        let device = ids.device();
        // Padding on the right, so the narrower banks' windows near the end can read every
        // offset of the joint table (the offsets past their width are zero).
        let extra = self.max_width - self.min_width;
        let ids = if extra > 0 {
            let pad = Tensor::full([n, extra], self.padding_row, (Kind::Int64, device));
            Tensor::cat(&[ids, pad], 1)
        } else {
            ids
        };
        let columns = self.bias.size()[0];
        let out_len = l - self.min_width + 1;
        let rows = self.table.index_select(0, &ids.flatten(0, -1)).reshape([
            n,
            l + extra,
            self.max_width,
            columns,
        ]);
        // A fresh tensor, so the in-place sums below never write into `rows`.
        let mut h = rows.narrow(1, 0, out_len).select(2, 0) + &self.bias;
        for j in 1..self.max_width {
            h += rows.narrow(1, j, out_len).select(2, j);
        }
        // Window t of a width-w column is valid when t < max(len − w + 1, 1), as in
        // `conv_valid`.
        let lengths = lengths_tensor(&batch.word_lengths, &ids);
        let limit = (lengths.unsqueeze(1) - self.column_widths.unsqueeze(0) + 1).clamp_min(1);
        let positions = Tensor::arange(out_len, (Kind::Int64, device)).view([1, -1, 1]);
        let valid = positions.lt_tensor(&limit.unsqueeze(1));
        let windows = h.masked_fill(&valid.logical_not(), -1e9);
        let maxima = windows.amax([1].as_slice(), false);
        let (weight, bias) = &self.output;
        let logits = maxima.relu().linear(weight, bias.as_ref());
        Pooled {
            windows,
            maxima,
            logits,
        }
    }
}

impl FrozenForward for LookupWordCnn {
    fn logits(&self, batch: &PaddedBatch) -> Tensor {
        tch::no_grad(|| self.pool(batch).logits)
    }

    fn loss_gradients(&self, batch: &PaddedBatch, targets: &Tensor) -> Option<(Tensor, Tensor)> {
        tch::no_grad(|| {
            let Pooled {
                windows,
                maxima,
                logits,
            } = self.pool(batch);
            let (n, out_len, columns) = windows.size3().ok()?;
            let (_, l) = batch.ids.size2().ok()?;
            let classes = logits.size2().ok()?.1;
            let dim = self.filters.size2().ok()?.1 / self.max_width;
            let d_logits =
                logits.softmax(-1, Kind::Float) - targets.one_hot(classes).to_kind(Kind::Float);
            let d_maxima = d_logits.matmul(&self.output.0) * maxima.gt(0.0).to_kind(Kind::Float);
            // `amax` splits the gradient evenly among the windows that reach the maximum;
            // invalid windows hold -1e9 and never do.
            let ties = windows.eq_tensor(&maxima.unsqueeze(1)).to_kind(Kind::Float);
            let share = d_maxima / ties.sum_dim_intlist([1].as_slice(), false, Kind::Float);
            let d_windows = ties * share.unsqueeze(1);
            // [B, windows, max w, D]: what window t sends to position t + j.
            let spread = d_windows
                .reshape([n * out_len, columns])
                .matmul(&self.filters)
                .reshape([n, out_len, self.max_width, dim]);
            let grad = Tensor::zeros(
                [n, out_len + self.max_width - 1, dim],
                (Kind::Float, windows.device()),
            );
            for j in 0..self.max_width {
                let mut at = grad.narrow(1, j, out_len);
                at += spread.select(2, j);
            }
            Some((logits, grad.narrow(1, 0, l)))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::network::{autograd_loss_gradients, Network};
    use crate::word_cnn::{WordCnn, WordCnnConfig};
    use gauntlet_core::TokenIds;
    use tch::Device;

    fn net(vs: &nn::VarStore, normalize: bool) -> WordCnn {
        let config = WordCnnConfig {
            embedding_dim: 8,
            filter_widths: vec![1, 3, 5],
            feature_maps: 6,
            normalize_embeddings: normalize,
            ..WordCnnConfig::default()
        };
        WordCnn::new(&vs.root(), config, 20, 3).unwrap()
    }

    fn words(ids: &[u32]) -> TokenIds {
        TokenIds::Words(ids.to_vec())
    }

    /// Texts shorter than the widest filter, of one word, and long; one holds id 0, whose
    /// row is not zero, at a real position.
    fn batch() -> Vec<TokenIds> {
        vec![
            words(&[4, 9]),
            words(&[7]),
            words(&[3, 0, 11, 19, 2, 5, 8, 13]),
            words(&[6, 6, 1, 17, 12]),
        ]
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn lookups_equal_the_networks_forward_pass_whatever_the_padding_row_holds() {
        for normalize in [false, true] {
            tch::manual_seed(5);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = net(&vs, normalize);
            let row0 = net
                .embedding()
                .get(0)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]);
            assert!(row0 > 0.1, "the test needs a nonzero row 0");
            let frozen = net.frozen_forward().unwrap();
            let batch = batch();
            let padded = PaddedBatch::new(&batch, net.min_len(), Device::Cpu).unwrap();
            let reference = tch::no_grad(|| net.forward(&padded, false));
            let fast = frozen.logits(&padded);
            assert_eq!(fast.size(), vec![4, 3]);
            let diff = max_diff(&fast, &reference);
            assert!(
                diff < 1e-5,
                "normalize {normalize}: logits differ by {diff}"
            );
            // Alone, each example gets the logits it gets in the batch.
            for (i, ids) in batch.iter().enumerate() {
                let alone = PaddedBatch::new(std::slice::from_ref(ids), 5, Device::Cpu).unwrap();
                let diff = max_diff(&frozen.logits(&alone).get(0), &fast.get(i as i64));
                assert!(diff < 1e-6, "example {i} depends on its batch by {diff}");
            }
        }
    }

    #[test]
    fn closed_form_gradients_equal_autograd_at_every_position_with_ties_and_padding() {
        for normalize in [false, true] {
            tch::manual_seed(11);
            let vs = nn::VarStore::new(Device::Cpu);
            let net = net(&vs, normalize);
            let frozen = net.frozen_forward().unwrap();
            let mut texts = batch();
            // Every window of this text is the same, so each filter's maximum ties across
            // all of them: autograd splits the gradient evenly among the windows.
            texts.push(words(&[9, 9, 9, 9, 9, 9]));
            let padded = PaddedBatch::new(&texts, net.min_len(), Device::Cpu).unwrap();
            for labels in [[0i64, 1, 2, 0, 1], [2, 2, 1, 1, 0]] {
                let targets = Tensor::from_slice(&labels);
                let (logits, grad) = autograd_loss_gradients(&net, &padded, &targets).unwrap();
                let (fast_logits, fast_grad) = frozen.loss_gradients(&padded, &targets).unwrap();
                assert_eq!(fast_grad.size(), grad.size());
                assert!(max_diff(&fast_logits, &logits) < 1e-5);
                let scale = grad.abs().max().double_value(&[]);
                assert!(scale > 1e-3, "the test needs nonzero gradients");
                let diff = max_diff(&fast_grad, &grad);
                assert!(
                    diff < 1e-5 * scale.max(1.0),
                    "normalize {normalize}, labels {labels:?}: gradients differ by {diff}"
                );
            }
        }
    }

    #[test]
    fn gradients_differ_from_position_to_position() {
        // Guards the test above: a gradient constant over positions would hide offset bugs.
        tch::manual_seed(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = net(&vs, false);
        let texts = [words(&[3, 0, 11, 19, 2, 5, 8, 13])];
        let padded = PaddedBatch::new(&texts, net.min_len(), Device::Cpu).unwrap();
        let targets = Tensor::from_slice(&[1i64]);
        let (_, grad) = net
            .frozen_forward()
            .unwrap()
            .loss_gradients(&padded, &targets)
            .unwrap();
        let grad = grad.get(0);
        for p in 1..8 {
            assert!(max_diff(&grad.get(p), &grad.get(0)) > 1e-4, "position {p}");
        }
    }

    #[test]
    fn a_table_over_the_limit_is_not_built() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = net(&vs, false);
        let embedding = net.embedding();
        // 21 rows (with the zero row) x 5 offsets (the widest bank) x 18 columns x 4 bytes.
        let built = |limit| LookupWordCnn::new(&embedding, net.banks(), net.output(), limit);
        assert!(built(7_560).is_some());
        assert!(built(7_559).is_none());
    }
}
