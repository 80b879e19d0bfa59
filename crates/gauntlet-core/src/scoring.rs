//! Word-flip scoring: the `k` best HotFlip word flips of many states in one call.
//!
//! For a state with word ids `x_0 … x_{T−1}`, gradient `g_p` of the loss of its objective
//! label at position `p`, and input-embedding table `E`, the first-order estimate of
//! replacing `x_p` by `v` is `sign · (g_p · e_v − g_p · e_{x_p})` — one entry of
//! `sign · (G·Eᵀ − rowsum(G ∘ E[x]))`. `sign` is `+1` when the search maximizes the loss
//! (untargeted) and `−1` when it minimizes the loss of a target label.
//!
//! A [`FlipQuery`] says, per position, which [`TargetMask`] the replacement must come from,
//! or that the position may not change at all. The current id is never a candidate. The
//! answer lists the `k` best flips of each state in one total, deterministic order:
//! estimate descending, then position ascending, then id ascending (ties at the `k`-th
//! place are cut by that order only on the reference path; a device path may return a
//! different member of an exact tie).
//!
//! [`reference_top_flips`] is the host implementation over a [`GradientBatch`]; backends
//! that can run the product on their device (libtorch, the GPU when there is one) override
//! [`crate::WhiteBox::top_word_flips`] so that full-vocabulary matrices never reach the
//! host.

use std::cmp::Ordering;

use crate::classifier::{EmbeddingTable, GradientBatch, Probabilities, TokenIds};
use crate::error::ModelError;

/// A set of ids a word flip may introduce, as a bitmap over the embedding table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMask {
    allowed: Vec<bool>,
}

impl TargetMask {
    /// A mask of `rows` ids allowing exactly `ids` (ids outside `0..rows` are ignored).
    pub fn from_ids(rows: usize, ids: impl IntoIterator<Item = u32>) -> Self {
        let mut allowed = vec![false; rows];
        for id in ids {
            if let Some(slot) = allowed.get_mut(id as usize) {
                *slot = true;
            }
        }
        Self { allowed }
    }

    /// Whether `id` is allowed.
    pub fn allows(&self, id: u32) -> bool {
        self.allowed.get(id as usize).copied().unwrap_or(false)
    }

    /// One flag per id.
    pub fn as_slice(&self) -> &[bool] {
        &self.allowed
    }

    /// Number of ids the mask covers (allowed or not).
    pub fn rows(&self) -> usize {
        self.allowed.len()
    }
}

/// What one state of a [`crate::WhiteBox::top_word_flips`] call asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct FlipQuery {
    /// The label whose cross-entropy is differentiated.
    pub label: usize,
    /// `+1.0` to maximize that loss, `−1.0` to minimize it (targeted attacks).
    pub sign: f32,
    /// Per position: the index of the [`TargetMask`] replacements come from, or `None`
    /// when the position may not change.
    pub targets: Vec<Option<usize>>,
}

/// One scored flip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredFlip {
    /// Position in the state's ids.
    pub position: usize,
    /// Replacement id.
    pub id: u32,
    /// First-order estimate of the objective's change (larger is better for the search).
    pub estimate: f32,
}

/// The answer of [`crate::WhiteBox::top_word_flips`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlipBatch {
    /// Class probabilities of every state.
    pub probabilities: Probabilities,
    /// Cross-entropy of each state's query label.
    pub losses: Vec<f32>,
    /// Per state, its best flips in the module's order (at most `k`).
    pub flips: Vec<Vec<ScoredFlip>>,
}

/// `a · b` with eight independent accumulators: vectorizable, and the one summation order
/// every host estimate uses, so host paths agree bit for bit.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (xs, ys) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .fold(0.0, |s, (x, y)| s + x * y);
    let mut acc = [0f32; 8];
    for (x, y) in xs.zip(ys) {
        for ((lane, x), y) in acc.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The total order of flips: estimate descending, then position, then id.
pub fn flip_order(a: &ScoredFlip, b: &ScoredFlip) -> Ordering {
    b.estimate
        .total_cmp(&a.estimate)
        .then_with(|| a.position.cmp(&b.position))
        .then_with(|| a.id.cmp(&b.id))
}

/// Checks queries against their batch: one per state, positions and masks that exist.
pub fn check_queries(
    batch: &[TokenIds],
    queries: &[FlipQuery],
    masks: &[TargetMask],
    classes: usize,
) -> Result<(), ModelError> {
    if queries.len() != batch.len() {
        return Err(ModelError::InvalidInput(format!(
            "{} flip queries for {} states",
            queries.len(),
            batch.len()
        )));
    }
    for (i, (ids, q)) in batch.iter().zip(queries).enumerate() {
        let TokenIds::Words(words) = ids else {
            return Err(ModelError::InvalidInput(
                "word flips need word ids, not character ids".into(),
            ));
        };
        if q.targets.len() != words.len() {
            return Err(ModelError::InvalidInput(format!(
                "state {i}: {} target entries for {} positions",
                q.targets.len(),
                words.len()
            )));
        }
        if q.label >= classes {
            return Err(ModelError::InvalidInput(format!(
                "state {i}: label {} is outside the model's {classes} classes",
                q.label
            )));
        }
        if let Some(bad) = q.targets.iter().flatten().find(|&&m| m >= masks.len()) {
            return Err(ModelError::InvalidInput(format!(
                "state {i}: target mask {bad} of {} masks",
                masks.len()
            )));
        }
    }
    Ok(())
}

/// Checks given gradients against their batch: one per state.
pub fn check_gradients(batch: &[TokenIds], gradients: &[Vec<f32>]) -> Result<(), ModelError> {
    if gradients.len() == batch.len() {
        Ok(())
    } else {
        Err(ModelError::InvalidInput(format!(
            "{} gradients for {} states",
            gradients.len(),
            batch.len()
        )))
    }
}

/// Keeps the `k` best flips in [`flip_order`].
pub fn keep_best(mut flips: Vec<ScoredFlip>, k: usize) -> Vec<ScoredFlip> {
    if flips.len() > k && k > 0 {
        flips.select_nth_unstable_by(k - 1, flip_order);
        flips.truncate(k);
    }
    flips.truncate(k);
    flips.sort_by(flip_order);
    flips
}

/// The best `k` flips of one state from its gradient `[positions, dim]` (already in the
/// query's sign convention: `sign` is applied here), on the host.
pub fn reference_state_flips(
    ids: &[u32],
    gradient: &[f32],
    table: &EmbeddingTable,
    query: &FlipQuery,
    masks: &[TargetMask],
    k: usize,
) -> Result<Vec<ScoredFlip>, ModelError> {
    let dim = table.dim;
    if gradient.len() != ids.len() * dim {
        return Err(ModelError::Backend(format!(
            "gradient has {} values, expected {} positions × {dim} dims",
            gradient.len(),
            ids.len()
        )));
    }
    let row = |id: u32| -> Result<&[f32], ModelError> {
        if (id as usize) < table.rows {
            Ok(table.row(id as usize))
        } else {
            Err(ModelError::InvalidInput(format!(
                "id {id} is outside the embedding table's {} rows",
                table.rows
            )))
        }
    };
    let mut all = Vec::new();
    for (p, (&current, target)) in ids.iter().zip(&query.targets).enumerate() {
        let Some(mask) = target.map(|m| &masks[m]) else {
            continue;
        };
        let g = &gradient[p * dim..(p + 1) * dim];
        let base = dot(g, row(current)?);
        for v in 0..table.rows.min(mask.rows()) as u32 {
            if v != current && mask.allows(v) {
                let estimate = query.sign * (dot(g, table.row(v as usize)) - base);
                all.push(ScoredFlip {
                    position: p,
                    id: v,
                    estimate,
                });
            }
        }
    }
    Ok(keep_best(all, k))
}

/// [`crate::WhiteBox::top_word_flips`] from a gradient pass, on the host: the reference
/// path, and the default for backends without a device implementation.
pub fn reference_top_flips(
    pass: GradientBatch,
    batch: &[TokenIds],
    table: &EmbeddingTable,
    queries: &[FlipQuery],
    masks: &[TargetMask],
    k: usize,
) -> Result<FlipBatch, ModelError> {
    if pass.gradients.len() != batch.len() {
        return Err(ModelError::Backend(format!(
            "{} gradients for {} states",
            pass.gradients.len(),
            batch.len()
        )));
    }
    let mut flips = Vec::with_capacity(batch.len());
    let mut losses = Vec::with_capacity(batch.len());
    for ((ids, grad), query) in batch.iter().zip(&pass.gradients).zip(queries) {
        let TokenIds::Words(words) = ids else {
            return Err(ModelError::InvalidInput("word flips need word ids".into()));
        };
        flips.push(reference_state_flips(
            words,
            &grad.values,
            table,
            query,
            masks,
            k,
        )?);
        losses.push(grad.loss);
    }
    Ok(FlipBatch {
        probabilities: pass.probabilities,
        losses,
        flips,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table() -> EmbeddingTable {
        // 4 ids × 2 dims, row 0 nonzero on purpose.
        EmbeddingTable {
            rows: 4,
            dim: 2,
            values: vec![1.0, 1.0, 2.0, 0.0, 0.0, 3.0, -1.0, 1.0],
        }
    }

    #[test]
    fn reference_flips_are_sign_times_gradient_dot_difference_in_total_order() {
        let t = table();
        let masks = [TargetMask::from_ids(4, 1..4), TargetMask::from_ids(4, [3])];
        // Position 0 holds id 1, gradient (1, 2); position 1 holds id 2, gradient (0, -1).
        let ids = [1u32, 2];
        let gradient = [1.0, 2.0, 0.0, -1.0];
        let q = FlipQuery {
            label: 0,
            sign: 1.0,
            targets: vec![Some(0), Some(1)],
        };
        let flips = reference_state_flips(&ids, &gradient, &t, &q, &masks, 10).unwrap();
        // Hand-computed: pos 0 base g·e1 = 2; to 2: 6−2 = 4; to 3: 1−2 = −1.
        // pos 1 base g·e2 = −3; to 3 (only mask 1): −1+3 = 2.
        let got: Vec<(usize, u32, f32)> = flips
            .iter()
            .map(|f| (f.position, f.id, f.estimate))
            .collect();
        assert_eq!(got, vec![(0, 2, 4.0), (1, 3, 2.0), (0, 3, -1.0)]);
        let neg = FlipQuery { sign: -1.0, ..q };
        let best = reference_state_flips(&ids, &gradient, &t, &neg, &masks, 1).unwrap();
        assert_eq!(
            (best[0].position, best[0].id, best[0].estimate),
            (0, 3, 1.0)
        );
    }

    #[test]
    fn blocked_positions_and_the_current_id_are_never_candidates() {
        let t = table();
        let masks = [TargetMask::from_ids(4, 0..4)];
        let q = FlipQuery {
            label: 0,
            sign: 1.0,
            targets: vec![None, Some(0)],
        };
        let flips = reference_state_flips(&[1, 2], &[5.0; 4], &t, &q, &masks, 10).unwrap();
        assert!(flips.iter().all(|f| f.position == 1 && f.id != 2));
        assert_eq!(flips.len(), 3);
    }

    #[test]
    fn dot_matches_the_plain_sum_on_exact_values() {
        let a: Vec<f32> = (0..19).map(|k| k as f32 - 9.0).collect();
        let b: Vec<f32> = (0..19).map(|k| (k % 5) as f32 * 0.5).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), plain);
        assert_eq!(dot(&[], &[]), 0.0);
    }

    #[test]
    fn ties_break_by_position_then_id() {
        let flips = vec![
            ScoredFlip {
                position: 1,
                id: 0,
                estimate: 1.0,
            },
            ScoredFlip {
                position: 0,
                id: 5,
                estimate: 1.0,
            },
            ScoredFlip {
                position: 0,
                id: 3,
                estimate: 1.0,
            },
        ];
        let kept = keep_best(flips, 2);
        assert_eq!(
            kept.iter().map(|f| (f.position, f.id)).collect::<Vec<_>>(),
            vec![(0, 3), (0, 5)]
        );
    }

    #[test]
    fn malformed_queries_are_refused() {
        let masks = [TargetMask::from_ids(4, 0..4)];
        let batch = [TokenIds::Words(vec![1, 2])];
        let q = |targets: Vec<Option<usize>>, label| FlipQuery {
            label,
            sign: 1.0,
            targets,
        };
        assert!(check_queries(&batch, &[q(vec![Some(0), None], 0)], &masks, 2).is_ok());
        assert!(check_queries(&batch, &[q(vec![Some(0)], 0)], &masks, 2).is_err());
        assert!(check_queries(&batch, &[q(vec![Some(1), None], 0)], &masks, 2).is_err());
        assert!(check_queries(&batch, &[q(vec![None, None], 2)], &masks, 2).is_err());
        assert!(check_queries(&batch, &[], &masks, 2).is_err());
        assert!(check_gradients(&batch, &[]).is_err());
        assert!(check_gradients(&batch, &[vec![0.0; 4]]).is_ok());
        let chars = [TokenIds::Chars(vec![vec![1]])];
        assert!(check_queries(&chars, &[q(vec![None], 0)], &masks, 2).is_err());
    }
}
