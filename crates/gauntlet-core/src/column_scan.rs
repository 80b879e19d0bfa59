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
pub(crate) struct Worst(pub(crate) ScoredFlip);

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
    let mut scan = ColumnScan::new(rows, masks, states, k)?;
    scan.feed(scores)?;
    Ok(scan.finish())
}

/// [`best_flips_in_columns`] fed in consecutive blocks of ids, so that a backend can
/// compute the product a block at a time into one buffer that stays in cache: feeding
/// `scores` in any split into whole lines gives exactly what one call gives.
pub struct ColumnScan<'a> {
    rows: &'a [FlipRow],
    masks: &'a [TargetMask],
    k: usize,
    /// Per state: its contiguous range of columns.
    ranges: Vec<std::ops::Range<usize>>,
    base: Vec<f32>,
    heaps: Vec<BinaryHeap<Worst>>,
    /// Per column: its state's k-th best estimate once k flips are kept, −∞ before.
    threshold: Vec<f32>,
    /// The id of the next line fed.
    next_id: usize,
}

impl<'a> ColumnScan<'a> {
    /// A scan for `states` states over columns `rows` (each state's rows contiguous).
    /// Returns an error message when a state's rows are not contiguous or a row's state is
    /// not below `states`.
    pub fn new(
        rows: &'a [FlipRow],
        masks: &'a [TargetMask],
        states: usize,
        k: usize,
    ) -> Result<Self, String> {
        let width = rows.len();
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
        Ok(Self {
            rows,
            masks,
            k,
            ranges,
            base: rows.iter().map(|r| r.base).collect(),
            heaps: (0..states).map(|_| BinaryHeap::new()).collect(),
            threshold: vec![f32::NEG_INFINITY; width],
            next_id: 0,
        })
    }

    /// Scans the next whole lines of scores (`[n, rows.len()]` row-major, ids
    /// `next_id..next_id + n`). Returns an error message when `scores` is not whole lines.
    pub fn feed(&mut self, scores: &[f32]) -> Result<(), String> {
        let width = self.rows.len();
        if width == 0 || self.k == 0 {
            return Ok(());
        }
        if !scores.len().is_multiple_of(width) {
            return Err(format!(
                "{} scores are not whole rows of {width} gradient rows",
                scores.len()
            ));
        }
        let first = self.next_id;
        self.next_id += scores.len() / width;
        let (rows, masks, k) = (self.rows, self.masks, self.k);
        for (line_at, line) in scores.chunks_exact(width).enumerate() {
            let id = (first + line_at) as u32;
            let chunks = line.chunks(LANES).zip(self.base.chunks(LANES));
            for (c, (chunk, bases)) in chunks.enumerate() {
                let at = c * LANES;
                // One vectorizable test per chunk; NaN goes on to the full order.
                let mut any = false;
                for ((&s, &b), &t) in chunk.iter().zip(bases).zip(&self.threshold[at..]) {
                    let estimate = s - b;
                    any |= (estimate >= t) | estimate.is_nan();
                }
                if !any {
                    continue;
                }
                for (j, (&s, &b)) in chunk.iter().zip(bases).enumerate() {
                    let column = at + j;
                    let estimate = s - b;
                    if estimate < self.threshold[column] {
                        continue;
                    }
                    let row = &rows[column];
                    let flip = ScoredFlip {
                        position: row.position,
                        id,
                        estimate,
                    };
                    let heap = &mut self.heaps[row.state];
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
                        self.threshold[self.ranges[row.state].clone()].fill(kth);
                    }
                }
            }
        }
        Ok(())
    }

    /// Each state's `k` best flips of the lines fed, in [`flip_order`].
    pub fn finish(self) -> Vec<Vec<ScoredFlip>> {
        let k = self.k;
        self.heaps
            .into_iter()
            .map(|heap| keep_best(heap.into_vec().into_iter().map(|w| w.0).collect(), k))
            .collect()
    }
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
    fn feeding_blocks_of_lines_equals_one_scan() {
        let (vocab, width) = (29, 4);
        let rows: Vec<FlipRow> = (0..width)
            .map(|c| FlipRow {
                state: c / 2,
                position: c % 2,
                current: c as u32,
                mask: 0,
                base: c as f32 * 0.25,
            })
            .collect();
        let scores: Vec<f32> = (0..vocab * width)
            .map(|i| ((i * 11 % 9) as f32) * 0.5)
            .collect();
        let masks = vec![TargetMask::from_ids(vocab, 1..vocab as u32)];
        for k in [1, 3, 40] {
            let whole = best_flips_in_columns(&scores, &rows, &masks, 2, k).unwrap();
            for block in [1, 2, 7, vocab] {
                let mut scan = ColumnScan::new(&rows, &masks, 2, k).unwrap();
                for lines in scores.chunks(block * width) {
                    scan.feed(lines).unwrap();
                }
                assert_eq!(scan.finish(), whole, "k = {k}, blocks of {block} ids");
            }
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
