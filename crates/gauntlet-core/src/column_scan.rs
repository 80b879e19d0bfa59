//! Best-first selection of word flips from a score matrix laid out by vocabulary id.
//!
//! A backend that multiplies the embedding table `E [V, D]` by the stacked gradient rows
//! `Gᵀ [D, R]` holds `scores[v · R + r] = sign · g_r · e_v`. [`best_flips_in_columns`]
//! reads it once and returns, per state, exactly what [`crate::scoring::keep_best`] keeps
//! of every allowed flip of that state: the `k` best in [`flip_order`], estimates
//! `scores[v · R + r] − base_r`. It keeps the state's `k` best so far in a heap and
//! rejects an entry with one comparison against the current `k`-th estimate; the mask
//! and the current id are checked only for entries that would enter the heap, so
//! constraints cost nothing for the vast majority of the vocabulary. This replaces a
//! masked fill, a per-row `topk` and a merge on the CPU, where the product's output is
//! host memory anyway (measured on the demo word-cnn in `bench/results/attack_speed.md`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::scoring::{flip_order, keep_best, ScoredFlip, TargetMask};

/// One gradient row of the product: a position of a state that may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlipRow {
    /// Index of the state in the batch; rows of one state are contiguous.
    pub state: usize,
    /// Position in the state's ids.
    pub position: usize,
    /// The current id (never a candidate).
    pub current: u32,
    /// Index of the [`TargetMask`] replacements come from.
    pub mask: usize,
    /// `sign · g_r · e_current`, subtracted from every score of the row.
    pub base: f32,
}

/// A flip ordered so that the heap's top is the worst kept flip.
struct Worst(ScoredFlip);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        flip_order(&self.0, &other.0)
    }
}

/// The `k` best allowed flips of each of `states` states (see the module docs).
/// `scores` is `[V, rows.len()]` row-major; ids at or beyond a mask's length are not
/// allowed by it. Returns an error message when `scores` is not `V` whole rows.
pub fn best_flips_in_columns(
    scores: &[f32],
    rows: &[FlipRow],
    masks: &[TargetMask],
    states: usize,
    k: usize,
) -> Result<Vec<Vec<ScoredFlip>>, String> {
    let width = rows.len();
    let mut out = vec![Vec::new(); states];
    if width == 0 || k == 0 {
        return Ok(out);
    }
    if !scores.len().is_multiple_of(width) {
        return Err(format!(
            "{} scores are not whole rows of {width} gradient rows",
            scores.len()
        ));
    }
    // Each state's rows are one contiguous range of columns.
    let mut ranges: Vec<std::ops::Range<usize>> = vec![0..0; states];
    let mut start = 0;
    while start < width {
        let state = rows[start].state;
        let end = start
            + rows[start..]
                .iter()
                .take_while(|r| r.state == state)
                .count();
        let range = ranges
            .get_mut(state)
            .ok_or_else(|| format!("row of state {state} in a batch of {states}"))?;
        if range.start != range.end {
            return Err(format!("the rows of state {state} are not contiguous"));
        }
        *range = start..end;
        start = end;
    }
    let base: Vec<f32> = rows.iter().map(|r| r.base).collect();
    let mut heaps: Vec<BinaryHeap<Worst>> = (0..states).map(|_| BinaryHeap::new()).collect();
    // Per column: its state's k-th best estimate once k flips are kept, −∞ before.
    let mut threshold = vec![f32::NEG_INFINITY; width];
    for (id, line) in scores.chunks_exact(width).enumerate() {
        let chunks = line.chunks(LANES).zip(base.chunks(LANES));
        for (c, (chunk, bases)) in chunks.enumerate() {
            let at = c * LANES;
            // One vectorizable test per chunk; NaN goes on to the full order.
            let mut any = false;
            for ((&s, &b), &t) in chunk.iter().zip(bases).zip(&threshold[at..]) {
                let estimate = s - b;
                any |= (estimate >= t) | estimate.is_nan();
            }
            if !any {
                continue;
            }
            for (j, (&s, &b)) in chunk.iter().zip(bases).enumerate() {
                let column = at + j;
                let estimate = s - b;
                if estimate < threshold[column] {
                    continue;
                }
                let row = &rows[column];
                let flip = ScoredFlip {
                    position: row.position,
                    id: id as u32,
                    estimate,
                };
                let heap = &mut heaps[row.state];
                if heap.len() >= k
                    && heap
                        .peek()
                        .is_some_and(|w| flip_order(&flip, &w.0) != Ordering::Less)
                {
                    continue;
                }
                let allowed = flip.id != row.current
                    && masks.get(row.mask).is_some_and(|m| m.allows(flip.id));
                if !allowed {
                    continue;
                }
                heap.push(Worst(flip));
                if heap.len() > k {
                    heap.pop();
                }
                if heap.len() >= k {
                    let kth = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.estimate);
                    threshold[ranges[row.state].clone()].fill(kth);
                }
            }
        }
    }
    for (slot, heap) in out.iter_mut().zip(heaps) {
        *slot = keep_best(heap.into_vec().into_iter().map(|w| w.0).collect(), k);
    }
    Ok(out)
}

/// Columns tested together (one AVX register of `f32`).
const LANES: usize = 8;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every allowed flip of every row, kept by `keep_best`: the definition.
    fn by_definition(
        scores: &[f32],
        rows: &[FlipRow],
        masks: &[TargetMask],
        states: usize,
        k: usize,
    ) -> Vec<Vec<ScoredFlip>> {
        let width = rows.len();
        let vocab = scores.len() / width;
        (0..states)
            .map(|s| {
                let all = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.state == s)
                    .flat_map(|(c, r)| {
                        (0..vocab as u32)
                            .filter(|&v| v != r.current && masks[r.mask].allows(v))
                            .map(move |v| ScoredFlip {
                                position: r.position,
                                id: v,
                                estimate: scores[v as usize * width + c] - r.base,
                            })
                    })
                    .collect();
                keep_best(all, k)
            })
            .collect()
    }

    #[test]
    fn equals_keep_best_of_every_allowed_flip_with_ties() {
        let vocab = 23;
        let rows: Vec<FlipRow> = [
            (0, 0, 3, 0),
            (0, 2, 5, 1),
            (1, 1, 7, 0),
            (2, 0, 1, 1),
            (2, 1, 2, 0),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (state, position, current, mask))| FlipRow {
            state,
            position,
            current,
            mask,
            base: (i as f32) * 0.5 - 1.0,
        })
        .collect();
        // Few distinct values, so ties at the k-th place are everywhere.
        let scores: Vec<f32> = (0..vocab * rows.len())
            .map(|i| ((i * 7 % 5) as f32) * 0.5)
            .collect();
        let masks = vec![
            TargetMask::from_ids(vocab, (0..vocab as u32).filter(|v| v % 3 != 0)),
            TargetMask::from_ids(vocab - 4, 2..vocab as u32),
        ];
        for k in [1, 2, 5, 17, 1000] {
            let got = best_flips_in_columns(&scores, &rows, &masks, 4, k).unwrap();
            assert_eq!(got, by_definition(&scores, &rows, &masks, 4, k), "k = {k}");
            assert!(got[3].is_empty(), "a state without rows gets no flips");
        }
    }

    #[test]
    fn ragged_scores_are_refused() {
        let row = FlipRow {
            state: 0,
            position: 0,
            current: 0,
            mask: 0,
            base: 0.0,
        };
        let masks = vec![TargetMask::from_ids(3, 0..3)];
        assert!(best_flips_in_columns(&[0.0; 5], &[row, row], &masks, 1, 2).is_err());
    }
}
