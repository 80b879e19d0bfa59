//! First-order estimates of the loss change of atomic edits (HotFlip, section 3.2).
//!
//! Everything starts from the score matrix `S = G · Eᵀ` (ndarray matrix product): `G` is the
//! gradient of the objective with respect to the embedded inputs, `[positions, dim]` in
//! [`gauntlet_core::TokenIds::flat`] order, and `E` the input-embedding table
//! `[ids, dim]`. `S[k, v] = g_k · e_v`, so the directional derivative of replacing id `a` by
//! id `b` at position `k` is `S[k, b] − S[k, a] = g_k · (e_b − e_a)`. The objective is
//! `J = CE(true label)` untargeted and `J = −CE(target)` targeted; the caller passes the
//! gradient of `J`, and larger estimates are better for the adversary.
//!
//! Exact definitions (word `i` has `L` visible characters `c_0 … c_{L−1}` at flat positions
//! `o … o+L−1`; `n` is the model's `max_word_chars`):
//! * **flip** `(i, j, a→b)`: `S[o+j, b] − S[o+j, a]` (one flip, N = 1);
//! * **insert** `b` before `c_j` (`0 ≤ j < L`): the new visible word is
//!   `c_0 … c_{j−1} b c_j … c_{L−2}` plus `c_{L−1}` when `L < n` (when `L = n` the last
//!   character is pushed out and dropped). The estimate sums the flips at positions
//!   `k = j … L−1` (position `j` becomes `b`, position `k > j` becomes `c_{k−1}`) and divides
//!   by `N = L − j`, the number of positions rewritten. Position `L` (padding before the
//!   insert) has no gradient — backends return gradients of unpadded positions only — so
//!   the term for the character shifted into it is omitted, and appending after the last
//!   character is not an operation;
//! * **delete** `c_j` (`0 ≤ j < L`, `L ≥ 2`): positions `k = j … L−2` become `c_{k+1}` and
//!   position `L−1` becomes PAD (id 0) — or, for a word longer than `n` whose tail the model
//!   does not see, the first hidden character, which is what re-encoding the edited text
//!   gives; summed over `k = j … L−1` and divided by `N = L − j`. PAD's column is the
//!   score of the vector the model feeds at padding: the zero vector on native models
//!   (their lookup is masked), so `S[k, PAD] = 0` there, and the pad id's embedding row on
//!   models that look padding up ([`gauntlet_core::WhiteBox::padding_is_zero`]).
//!
//! A position whose id does not change contributes 0 but still counts in `N`.
//!
//! Summation order: every entry of `S` is [`gauntlet_core::scoring::dot`], and shift sums
//! run from the word's last position down to `start`, so the prefix-sum path of the search
//! (`candidates::CharScores`) reproduces these estimates bit for bit.

use gauntlet_core::codec::PAD_ID;
use gauntlet_core::scoring::dot;
use gauntlet_core::EmbeddingTable;
use ndarray::{Array2, ArrayView2};

use crate::error::AttackError;

/// `S = G · Eᵀ` for a gradient of `positions` rows and an embedding table; with
/// `zero_padding`, PAD's column is 0 (the model feeds the zero vector at padding).
pub fn score_matrix(
    gradient: &[f32],
    positions: usize,
    table: &EmbeddingTable,
    zero_padding: bool,
) -> Result<Array2<f32>, AttackError> {
    let dim = table.dim;
    if gradient.len() != positions * dim {
        return Err(AttackError::model_output(format!(
            "gradient has {} values, expected {positions} positions × {dim} dims",
            gradient.len(),
        )));
    }
    table_view(table)?;
    Ok(Array2::from_shape_fn((positions, table.rows), |(k, v)| {
        if zero_padding && v == PAD_ID as usize {
            0.0
        } else {
            dot(&gradient[k * dim..(k + 1) * dim], table.row(v))
        }
    }))
}

/// The embedding table as an `[ids, dim]` matrix view.
pub fn table_view(table: &EmbeddingTable) -> Result<ArrayView2<'_, f32>, AttackError> {
    ArrayView2::from_shape((table.rows, table.dim), &table.values).map_err(|_| {
        AttackError::model_output(format!(
            "embedding table has {} values, expected {} rows × {} dims",
            table.values.len(),
            table.rows,
            table.dim
        ))
    })
}

fn at(scores: &ArrayView2<'_, f32>, k: usize, id: u32) -> f32 {
    scores.get((k, id as usize)).copied().unwrap_or(0.0)
}

/// Estimate of replacing id `from` by `to` at flat position `position`.
pub fn flip_estimate(scores: &ArrayView2<'_, f32>, position: usize, from: u32, to: u32) -> f32 {
    at(scores, position, to) - at(scores, position, from)
}

/// Estimate of rewriting the visible word `old` (starting at flat position `offset`) into
/// `new` by shifting from character `start` on: the flips at positions `start … L−1`
/// (`L = old.len()`, a missing `new` character reads as PAD) summed and divided by
/// `N = L − start`. Used for inserts and deletes.
pub fn shift_estimate(
    scores: &ArrayView2<'_, f32>,
    offset: usize,
    old: &[u32],
    new: &[u32],
    start: usize,
) -> f32 {
    let len = old.len();
    if start >= len {
        return 0.0;
    }
    let term = |k: usize| {
        let to = new.get(k).copied().unwrap_or(PAD_ID);
        at(scores, offset + k, to) - at(scores, offset + k, old[k])
    };
    // From the last position down, the order the search's suffix sums use.
    let mut sum = term(len - 1);
    for k in (start..len - 1).rev() {
        sum += term(k);
    }
    sum / (len - start) as f32
}

/// The visible ids after inserting `ch` before character `pos` of a visible word, for a
/// model reading at most `max_chars` characters per word.
pub fn insert_ids(word: &[u32], pos: usize, ch: u32, max_chars: usize) -> Vec<u32> {
    let mut out = word.to_vec();
    out.insert(pos.min(out.len()), ch);
    out.truncate(max_chars.max(1));
    out
}

/// The visible ids after deleting character `pos` of a word with no hidden tail.
pub fn delete_ids(word: &[u32], pos: usize) -> Vec<u32> {
    let mut out = word.to_vec();
    if pos < out.len() {
        out.remove(pos);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A 4-position, 5-id score matrix with distinct entries: S[k, v] = 10k + v.
    fn scores() -> Array2<f32> {
        Array2::from_shape_fn((4, 5), |(k, v)| {
            (10 * k + v) as f32 * if v % 2 == 0 { 1.0 } else { -1.0 }
        })
    }

    #[test]
    fn score_matrix_is_the_gradient_times_the_table_transposed() {
        let table = EmbeddingTable {
            rows: 3,
            dim: 2,
            values: vec![0.0, 0.0, 1.0, 2.0, -1.0, 0.5],
        };
        let s = score_matrix(&[1.0, 1.0, 2.0, -1.0], 2, &table, false).unwrap();
        assert_eq!(s, ndarray::arr2(&[[0.0, 3.0, -0.5], [0.0, 0.0, -2.5]]));
        assert!(score_matrix(&[1.0], 2, &table, false).is_err());
        // A nonzero PAD row scores as itself, unless the model feeds zeros at padding.
        let padded = EmbeddingTable {
            rows: 2,
            dim: 1,
            values: vec![5.0, 1.0],
        };
        let s = score_matrix(&[2.0], 1, &padded, false).unwrap();
        assert_eq!(s, ndarray::arr2(&[[10.0, 2.0]]));
        let s = score_matrix(&[2.0], 1, &padded, true).unwrap();
        assert_eq!(s, ndarray::arr2(&[[0.0, 2.0]]));
    }

    #[test]
    fn insert_and_delete_match_hand_computed_sums() {
        let s = scores();
        let v = s.view();
        let f = |k: usize, x: u32| v[(k, x as usize)];
        // Word [2, 3, 4] at offset 1 with max 3 chars: insert 1 before position 1 gives
        // [2, 1, 3] (4 is pushed out). Flips: pos 1: 3→1, pos 2: 4→3; N = 2.
        let old = [2, 3, 4];
        let new = insert_ids(&old, 1, 1, 3);
        assert_eq!(new, vec![2, 1, 3]);
        let hand = ((f(2, 1) - f(2, 3)) + (f(3, 3) - f(3, 4))) / 2.0;
        assert_eq!(shift_estimate(&v, 1, &old, &new, 1), hand);
        // With room for 4 chars the word grows; the new 4th position has no gradient.
        assert_eq!(insert_ids(&old, 1, 1, 4), vec![2, 1, 3, 4]);
        assert_eq!(
            shift_estimate(&v, 1, &old, &insert_ids(&old, 1, 1, 4), 1),
            hand
        );
        // Delete position 0: pos 0: 2→3, pos 1: 3→4, pos 2: 4→PAD; N = 3.
        let del = delete_ids(&old, 0);
        assert_eq!(del, vec![3, 4]);
        let hand = ((f(1, 3) - f(1, 2)) + (f(2, 4) - f(2, 3)) + (f(3, 0) - f(3, 4))) / 3.0;
        assert_eq!(shift_estimate(&v, 1, &old, &del, 0), hand);
        // Delete of the last character: one flip to PAD.
        assert_eq!(
            shift_estimate(&v, 1, &old, &delete_ids(&old, 2), 2),
            f(3, 0) - f(3, 4)
        );
        assert_eq!(flip_estimate(&v, 2, 3, 1), f(2, 1) - f(2, 3));
    }
}
