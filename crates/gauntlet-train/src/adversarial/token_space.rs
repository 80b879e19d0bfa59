//! Regularizers that edit the tokens: character HotFlip with top-r simultaneous flips
//! (Ebrahimi et al. 2018, section 6), and the word-level UNK and SEM regularizers (Table 7).
//!
//! Each uses the gradient of the clean loss at the embedded input (from the clean pass that
//! also accumulates `αJ(x)`, [`super::clean_pass`]), scores edits with the HotFlip estimate
//! `g·(e_new − e_old)`, applies the chosen edits to the ids, and trains on
//! `αJ(x) + (1−α)J(x_adv)`. The inner adversary need not fool the
//! model. HotFlip and UNK stay on the model's device; SEM checks the attack engine's `sem`
//! constraints ([`gauntlet_attacks::SemFilter`]) on the host.

use std::collections::HashMap;

use gauntlet_attacks::{Lexicon, SemFilter};
use gauntlet_core::codec::{PAD_ID, UNK_ID};
use gauntlet_core::{EmbeddingTable, TextCodec, TokenIds};
use gauntlet_models::{Network, PaddedBatch};
use tch::{Device, Kind, Tensor};

use super::clean_pass::{clean_pass, CleanPass};
use super::{Batch, Pending, StepLoss};

const NEG: f64 = -1e30;

fn with_ids(padded: &PaddedBatch, ids: Tensor) -> PaddedBatch {
    PaddedBatch {
        ids,
        mask: padded.mask.shallow_clone(),
        word_lengths: padded.word_lengths.clone(),
        char_lengths: padded.char_lengths.clone(),
        positions: padded.positions.clone(),
    }
}

/// The step of a token-space regularizer: the clean pass, the adversarial batch `edit`
/// builds from it, and `αJ(x) + (1−α)J(x_adv)`.
pub(super) fn edited(
    net: &dyn Network,
    batch: &Batch<'_>,
    alpha: f64,
    edit: impl FnOnce(&CleanPass) -> PaddedBatch,
) -> Pending {
    let pass = clean_pass(net, batch, alpha);
    let adversarial = edit(&pass);
    combine(net, batch, pass, &adversarial, alpha)
}

/// `αJ(x) + (1−α)J(x_adv)`, the clean term already back-propagated by `pass`.
fn combine(
    net: &dyn Network,
    batch: &Batch<'_>,
    pass: CleanPass,
    adversarial: &PaddedBatch,
    alpha: f64,
) -> Pending {
    let adv = net
        .forward(adversarial, true)
        .cross_entropy_for_logits(batch.targets);
    Pending {
        rest: &adv * (1.0 - alpha) + pass.upstream,
        loss: StepLoss {
            clean: pass.loss,
            adversarial: Some(adv.detach()),
        },
    }
}

/// Number of flips for an example of `chars` characters: `max(1, round(ratio·chars))`.
pub(crate) fn flips_for(chars: usize, ratio: f64) -> i64 {
    ((chars as f64 * ratio).round() as i64).clamp(1, chars.max(1) as i64)
}

/// The character batch after the top-r flips of every example, chosen by the clean pass's
/// input gradient.
pub(crate) fn hotflip_batch(
    net: &dyn Network,
    batch: &Batch<'_>,
    pass: &CleanPass,
    ratio: f64,
) -> PaddedBatch {
    let (g, embedded) = (&pass.gradient, pass.embedded.detach());
    let device = g.device();
    // The character table [A, D]; scores[b,w,c,a] = g·e_a − g·e_current, the estimated
    // loss change of each flip.
    let table = net.embedding().detach();
    let scores =
        g.matmul(&table.tr()) - (g * &embedded).sum_dim_intlist([-1].as_slice(), true, Kind::Float);
    let alphabet = table.size()[0];
    let mut forbidden = Tensor::zeros([alphabet], (Kind::Bool, device));
    let _ = forbidden.index_fill_(
        0,
        &Tensor::from_slice(&[i64::from(PAD_ID), i64::from(UNK_ID)]).to_device(device),
        1,
    );
    let current = batch.padded.ids.unsqueeze(-1);
    let same = Tensor::arange(alphabet, (Kind::Int64, device)).eq_tensor(&current);
    let invalid = same
        .logical_or(&forbidden)
        .logical_or(&batch.padded.mask.eq(0.0).unsqueeze(-1));
    let (best, best_char) = scores.masked_fill(&invalid, NEG).max_dim(-1, false);
    let b = best.size()[0];
    let counts: Vec<i64> = batch
        .ids
        .iter()
        .map(|ids| flips_for(ids.positions(), ratio))
        .collect();
    let k = counts.iter().copied().max().unwrap_or(1);
    let (values, positions) = best.reshape([b, -1]).topk(k, -1, true, true);
    let wanted = Tensor::arange(k, (Kind::Int64, device))
        .unsqueeze(0)
        .lt_tensor(&Tensor::from_slice(&counts).to_device(device).unsqueeze(1));
    let keep = wanted.logical_and(&values.gt(NEG / 2.0));
    let ids = batch.padded.ids.reshape([b, -1]);
    let chosen = best_char.reshape([b, -1]).gather(1, &positions, false);
    let new_values = chosen.where_self(&keep, &ids.gather(1, &positions, false));
    let flipped = ids
        .scatter(1, &positions, &new_values)
        .reshape(batch.padded.ids.size());
    with_ids(batch.padded, flipped)
}

/// The word batch with words replaced by UNK: one per example, or the `words` best.
///
/// With `words` 1, the word is the best by the estimate `g·(e_unk − e_i)` when `candidates`
/// is 1; otherwise the model is run (evaluation mode, no gradient) on the `candidates`
/// best-estimated replacements of every example and the one with the highest loss is kept.
/// With `words` > 1 (and `candidates` 1), the `words` best-estimated words are replaced
/// together, or every word of a shorter text. Words with no real estimate (padding, UNK
/// already) are never replaced, so an example with none is left unchanged.
pub(crate) fn unk_batch(
    net: &dyn Network,
    batch: &Batch<'_>,
    pass: &CleanPass,
    candidates: usize,
    words: usize,
) -> PaddedBatch {
    let (g, embedded) = (&pass.gradient, pass.embedded.detach());
    let unk = net.embedding().detach().get(i64::from(UNK_ID));
    let scores = (g * (unk - &embedded)).sum_dim_intlist([-1].as_slice(), false, Kind::Float);
    let ids = &batch.padded.ids;
    let invalid = batch
        .padded
        .mask
        .eq(0.0)
        .logical_or(&ids.eq(i64::from(UNK_ID)));
    let scores = scores.masked_fill(&invalid, NEG);
    let width = ids.size()[1].max(1);
    let k = (candidates as i64).clamp(1, width);
    let (best, position) = if words > 1 {
        scores.topk((words as i64).min(width), -1, true, true)
    } else if k == 1 {
        scores.max_dim(-1, true)
    } else {
        let (estimates, positions) = scores.topk(k, -1, true, true);
        let pick = worst_unk_candidate(net, batch, &estimates, &positions);
        (
            estimates.gather(1, &pick, false),
            positions.gather(1, &pick, false),
        )
    };
    with_ids(batch.padded, unk_at(ids, &position, &best))
}

/// `ids` with UNK at `position` (`[B, n]`) wherever the candidate's estimate is real.
fn unk_at(ids: &Tensor, position: &Tensor, estimate: &Tensor) -> Tensor {
    let replacement = Tensor::full_like(position, i64::from(UNK_ID))
        .where_self(&estimate.gt(NEG / 2.0), &ids.gather(1, position, false));
    ids.scatter(1, position, &replacement)
}

/// For every example, the index (`[B, 1]`, into the `k` candidates) of the UNK
/// replacement with the highest true loss; candidates without a real estimate never win
/// unless none has one.
fn worst_unk_candidate(
    net: &dyn Network,
    batch: &Batch<'_>,
    estimates: &Tensor,
    positions: &Tensor,
) -> Tensor {
    let padded = batch.padded;
    let k = positions.size()[1];
    let variants: Vec<Tensor> = (0..k)
        .map(|c| {
            unk_at(
                &padded.ids,
                &positions.narrow(1, c, 1),
                &estimates.narrow(1, c, 1),
            )
        })
        .collect();
    let copies = k as usize;
    let flat = padded.ids.numel();
    let stacked = PaddedBatch {
        ids: Tensor::cat(&variants, 0),
        mask: padded.mask.repeat([k, 1]),
        word_lengths: padded.word_lengths.repeat(copies),
        char_lengths: (0..copies)
            .flat_map(|_| padded.char_lengths.iter().cloned())
            .collect(),
        positions: (0..copies)
            .flat_map(|c| {
                padded
                    .positions
                    .iter()
                    .map(move |p| p.iter().map(|o| o + c * flat).collect())
            })
            .collect(),
    };
    let losses = tch::no_grad(|| {
        net.forward(&stacked, false).cross_entropy_loss::<Tensor>(
            &batch.targets.repeat([k]),
            None,
            tch::Reduction::None,
            -100,
            0.0,
        )
    });
    let b = padded.ids.size()[0];
    losses
        .reshape([k, b])
        .tr()
        .masked_fill(&estimates.le(NEG / 2.0), f64::NEG_INFINITY)
        .argmax(1, true)
}

/// Host-side state of the SEM regularizer: the vocabulary, the lexicon, a snapshot of the
/// embedding table and the allowed replacements found so far.
pub(crate) struct SemContext {
    tokens: Vec<String>,
    lexicon: Box<dyn Lexicon>,
    table: Option<EmbeddingTable>,
    allowed: HashMap<u32, Vec<u32>>,
}

impl SemContext {
    pub(crate) fn new(codec: TextCodec, lexicon: Box<dyn Lexicon>) -> Self {
        let tokens = (0..codec.size() as u32)
            .map(|id| codec.token(id).unwrap_or_default().to_owned())
            .collect();
        Self {
            tokens,
            lexicon,
            table: None,
            allowed: HashMap::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.table = None;
        self.allowed.clear();
    }

    fn allowed(&mut self, word: u32, threshold: f64) -> &[u32] {
        let (table, lexicon, tokens) = (&self.table, &self.lexicon, &self.tokens);
        self.allowed.entry(word).or_insert_with(|| match table {
            Some(table) => SemFilter::new(table, threshold, lexicon.as_ref())
                .allowed(word, 2..tokens.len() as u32, tokens)
                .to_vec(),
            None => Vec::new(),
        })
    }
}

fn host(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
        .unwrap_or_default()
}

/// The word batch with one semantic flip per example where the constraints allow one.
pub(crate) fn sem_batch(
    net: &dyn Network,
    batch: &Batch<'_>,
    pass: &CleanPass,
    threshold: f64,
    sem: &mut SemContext,
) -> PaddedBatch {
    let g = &pass.gradient;
    if sem.table.is_none() {
        let matrix = net
            .embedding()
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float);
        let (rows, dim) = matrix.size2().unwrap_or((0, 0));
        sem.table = Some(EmbeddingTable {
            rows: rows as usize,
            dim: dim as usize,
            values: host(&matrix),
        });
    }
    let (t, d) = (g.size()[1] as usize, g.size()[2] as usize);
    let grads = host(g);
    let mut ids = Vec::<i64>::try_from(batch.padded.ids.to_device(Device::Cpu).flatten(0, -1))
        .unwrap_or_default();
    for (i, example) in batch.ids.iter().enumerate() {
        let TokenIds::Words(words) = example else {
            continue;
        };
        let mut best: Option<(f32, usize, u32)> = None;
        for (j, &word) in words.iter().enumerate() {
            let gj = &grads[(i * t + j) * d..(i * t + j + 1) * d];
            let candidates = sem.allowed(word, threshold).to_vec();
            let Some(table) = &sem.table else { continue };
            let current: f32 = gj
                .iter()
                .zip(table.row(word as usize))
                .map(|(a, b)| a * b)
                .sum();
            for to in candidates {
                let score = gj
                    .iter()
                    .zip(table.row(to as usize))
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    - current;
                if best.is_none_or(|(s, _, _)| score > s) {
                    best = Some((score, j, to));
                }
            }
        }
        if let Some((_, j, to)) = best {
            ids[i * t + j] = i64::from(to);
        }
    }
    let flipped = Tensor::from_slice(&ids)
        .reshape(batch.padded.ids.size())
        .to_device(batch.padded.ids.device());
    with_ids(batch.padded, flipped)
}
