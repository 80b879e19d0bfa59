//! The word CNN's inference forward pass for frozen weights, by table lookup.
//!
//! A width-`w` bank's pre-activation at window `t` is `b + Σ_{j<w} W_j·x[t + j]`, where
//! `W_j = W[:, :, j]` is `[F, D]` and `x[t]` is the embedding of the word at `t`. With the
//! weights frozen, `W_j·e_v` is a fixed `F`-vector for every vocabulary id `v`, so a loaded
//! model precomputes `P_w[v, j] = W_j·e_v` once (one product of the embedding table with
//! each bank) and a forward pass becomes `w` gathered rows added per window: `Σw·F` additions
//! per position instead of the `Σw·F·D` multiply-adds of the product. Attack children and
//! served texts are short and many, so this is most of what a `predict` call costs.
//!
//! Invariants:
//! - Padded positions contribute zero (they index an appended zero row), as the zero
//!   vectors of [`crate::Network::embed`] do, whatever row 0 of the table holds.
//! - Pooling reads the windows [`crate::batch::conv_valid`] allows, as
//!   [`crate::convolution`] does, so padding never changes an example's logits.
//! - Logits equal the network's forward pass up to the summation order (tested to 1e-5).
//! - Only a model whose weights never change may hold one: [`crate::NativeModel`] builds it
//!   when it loads, training never does.

use tch::{nn, Kind, Tensor};

use crate::batch::{conv_valid, masked_max, PaddedBatch};
use crate::network::lengths_tensor;

/// Largest lookup table a model builds (bytes over all banks); a bigger vocabulary or
/// bank keeps the product-based forward pass.
pub const MAX_TABLE_BYTES: i64 = 512 << 20;

/// A frozen network's forward pass that replaces [`crate::Network::forward`] at inference.
pub trait FrozenForward: Send + std::fmt::Debug {
    /// Logits `[B, classes]` of a padded batch, without dropout or autograd.
    fn logits(&self, batch: &PaddedBatch) -> Tensor;
}

/// One bank's table: `[V + 1, w, F]`, the last row zero (padding).
#[derive(Debug)]
struct BankTable {
    width: i64,
    table: Tensor,
    bias: Option<Tensor>,
}

/// The word CNN's [`FrozenForward`]: a lookup table per bank and the output layer.
#[derive(Debug)]
pub struct LookupWordCnn {
    banks: Vec<BankTable>,
    /// Id of the zero row (the vocabulary size).
    padding_row: i64,
    output: (Tensor, Option<Tensor>),
}

impl LookupWordCnn {
    /// Builds the tables from the effective embedding matrix `[V, D]`, the banks and the
    /// output layer; `None` when they would exceed `max_bytes`.
    pub(crate) fn new(
        embedding: &Tensor,
        banks: &[(i64, nn::Conv1D)],
        output: &nn::Linear,
        max_bytes: i64,
    ) -> Option<Self> {
        let (rows, dim) = embedding.size2().ok()?;
        let entries: i64 = banks.iter().map(|(w, c)| w * c.ws.size()[0]).sum();
        if (rows + 1).checked_mul(entries)?.checked_mul(4)? > max_bytes {
            return None;
        }
        tch::no_grad(|| {
            let embedding = embedding.to_kind(Kind::Float);
            let banks = banks
                .iter()
                .map(|(w, conv)| {
                    let maps = conv.ws.size()[0];
                    // [F, D, w] -> [D, w·F]: column j·F + f holds W[f, :, j].
                    let weights = conv
                        .ws
                        .to_kind(Kind::Float)
                        .permute([1, 2, 0])
                        .reshape([dim, w * maps]);
                    let table = embedding.matmul(&weights);
                    let zero = table.zeros_like().narrow(0, 0, 1);
                    BankTable {
                        width: *w,
                        table: Tensor::cat(&[table, zero], 0).reshape([rows + 1, *w, maps]),
                        bias: conv.bs.as_ref().map(|b| b.detach().to_kind(Kind::Float)),
                    }
                })
                .collect();
            Some(Self {
                banks,
                padding_row: rows,
                output: (
                    output.ws.detach().to_kind(Kind::Float),
                    output.bs.as_ref().map(|b| b.detach().to_kind(Kind::Float)),
                ),
            })
        })
    }
}

impl FrozenForward for LookupWordCnn {
    fn logits(&self, batch: &PaddedBatch) -> Tensor {
        tch::no_grad(|| {
            let ids = batch.ids.masked_fill(&batch.mask.eq(0.0), self.padding_row);
            let (n, l) = ids.size2().unwrap_or((0, 0));
            let flat = ids.flatten(0, -1);
            let lengths = lengths_tensor(&batch.word_lengths, &ids);
            let pooled: Vec<Tensor> = self
                .banks
                .iter()
                .map(|bank| {
                    let maps = bank.table.size()[2];
                    let out_len = l - bank.width + 1;
                    let rows = bank
                        .table
                        .index_select(0, &flat)
                        .reshape([n, l, bank.width, maps]);
                    // A fresh tensor, so the in-place sums below never write into `rows`.
                    let first = rows.narrow(1, 0, out_len).select(2, 0);
                    let mut h = match &bank.bias {
                        Some(bias) => first + bias,
                        None => first.copy(),
                    };
                    for j in 1..bank.width {
                        h += rows.narrow(1, j, out_len).select(2, j);
                    }
                    let valid = conv_valid(&lengths, out_len, bank.width).unsqueeze(-1);
                    masked_max(&h, &valid, 1).relu()
                })
                .collect();
            let features = Tensor::cat(&pooled, 1);
            let (weight, bias) = &self.output;
            features.linear(weight, bias.as_ref())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::network::Network;
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
    fn a_table_over_the_limit_is_not_built() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = net(&vs, false);
        let embedding = net.embedding();
        // 21 rows (with the zero row) x (1 + 3 + 5) offsets x 6 maps x 4 bytes = 4,536.
        let built = |limit| LookupWordCnn::new(&embedding, net.banks(), net.output(), limit);
        assert!(built(4_536).is_some());
        assert!(built(4_535).is_none());
    }
}
