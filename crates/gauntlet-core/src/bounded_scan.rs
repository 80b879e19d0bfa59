//! Exact word-flip selection from approximate scores whose error is bounded.
//!
//! A backend may compute the `[V, R]` product `sign · E·Gᵀ` of a beam step in a narrow
//! format (bf16 on CPUs with bf16 dot-product instructions: about 3× the fp32 product on
//! the shapes of a word-cnn beam step), getting scores `a[v, r]` with
//! `|a[v, r] − s[v, r]| ≤ slack_r` for the exact scores `s`. [`exact_best_flips`] returns
//! what the exact scan ([`crate::column_scan`]) returns — per state, the `k` best allowed
//! flips in [`flip_order`] with estimates `exact(r, v) − base_r` — while computing exact
//! scores only for the few entries that could be among them. In one pass over the
//! product it keeps, per state:
//! * the `k` best lower bounds `a − slack − base` of allowed flips seen so far; the `k`-th
//!   of them, `t_s` (−∞ before `k`), never exceeds the state's true `k`-th best estimate;
//! * every allowed entry whose upper bound `a + slack − base` reaches the current `t_s`.
//!
//! At the end only candidates whose upper bound reaches the final `T_s` are rescored
//! exactly. An entry whose upper bound is below `T_s` is strictly worse than `k` flips whose
//! exact estimates are at least `T_s`, so it cannot be among the `k` best; and since `t_s`
//! only grows, every entry at or above `T_s` was kept. So the answer is the exact one, ties
//! included, as long as the bound holds. Almost every entry costs one comparison against a
//! per-column cut `t_s + base_r − slack_r`, in lanes.
//!
//! The bound is checked on every rescored candidate, and a NaN score is refused: either
//! means the product broke its contract, and the call returns `None` so that the caller
//! takes its exact path rather than risk a wrong answer.

use std::collections::BinaryHeap;

use crate::column_scan::{FlipRow, Worst};
use crate::scoring::{flip_order, keep_best, ScoredFlip, TargetMask};

/// The `f32` a bf16 bit pattern stands for (exact: bf16 is the top half of an `f32`).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Columns tested together; a product whose line stride is a multiple of this is read in
/// whole lanes.
pub const LANES: usize = 16;

/// Per state, exactly the `k` best allowed flips (see the module docs). `approx` is the
/// approximate product as bf16 bit patterns, `V` lines of `stride ≥ rows.len()` values (row
/// major, in the query's sign; columns past `rows.len()` are ignored); `slack[r]` bounds
/// the error of column `r`; `rows[r].base` is the exact `sign · g_r · e_current`;
/// `exact(r, v)` is the exact `sign · g_r · e_v`. Returns `Ok(None)` when a rescored entry
/// breaks its bound or a score is NaN, and an error message when the shapes disagree.
#[allow(clippy::too_many_arguments)]
pub fn exact_best_flips(
    approx: &[u16],
    stride: usize,
    slack: &[f32],
    rows: &[FlipRow],
    masks: &[TargetMask],
    states: usize,
    k: usize,
    mut exact: impl FnMut(usize, u32) -> f32,
) -> Result<Option<Vec<Vec<ScoredFlip>>>, String> {
    let width = rows.len();
    if width == 0 || k == 0 {
        return Ok(Some(vec![Vec::new(); states]));
    }
    if slack.len() != width || stride < width || !approx.len().is_multiple_of(stride) {
        return Err(format!(
            "{} approximate scores in lines of {stride} and {} slacks for {width} gradient rows",
            approx.len(),
            slack.len()
        ));
    }
    if let Some(row) = rows.iter().find(|r| r.state >= states) {
        return Err(format!("row of state {} in a batch of {states}", row.state));
    }
    let mut scan = Scan {
        rows,
        slack,
        k,
        heaps: (0..states).map(|_| BinaryHeap::new()).collect(),
        threshold: vec![f32::NEG_INFINITY; states],
        // Padding columns never pass.
        cut: (0..stride)
            .map(|c| {
                if c < width {
                    f32::NEG_INFINITY
                } else {
                    f32::INFINITY
                }
            })
            .collect(),
        columns_of: (0..states)
            .map(|s| (0..width).filter(|&c| rows[c].state == s).collect())
            .collect(),
        candidates: vec![Vec::new(); states],
    };
    let whole = stride - stride % LANES;
    let mut hits = Vec::with_capacity(whole / LANES);
    for (v, line) in approx.chunks_exact(stride).enumerate() {
        let id = v as u32;
        // First the lanes with a score at or above its cut, then those lanes column by
        // column: a cut raised by an earlier lane of the line only makes the test stricter,
        // and the column test reads the current cut.
        hits.clear();
        lanes_reaching(&line[..whole], &scan.cut[..whole], &mut hits);
        for &at in &hits {
            if !scan.columns(line, at..at + LANES, id, masks) {
                return Ok(None);
            }
        }
        if whole < stride && !scan.columns(line, whole..stride, id, masks) {
            return Ok(None);
        }
    }
    scan.rescore(approx, stride, &mut exact)
}

/// Pushes onto `hits` the first column of every lane of `line` (whole lanes) with a score at
/// or above its column's cut, or a NaN: the test almost every entry stops at, over
/// fixed-size lanes so that it vectorizes.
fn lanes_reaching(line: &[u16], cut: &[f32], hits: &mut Vec<usize>) {
    let lanes = line.chunks_exact(LANES).zip(cut.chunks_exact(LANES));
    for (lane, (chunk, cuts)) in lanes.enumerate() {
        let mut any = false;
        for (&bits, &cut) in chunk.iter().zip(cuts) {
            let a = bf16_to_f32(bits);
            any |= (a >= cut) | a.is_nan();
        }
        if any {
            hits.push(lane * LANES);
        }
    }
}

/// The one pass of [`exact_best_flips`].
struct Scan<'a> {
    rows: &'a [FlipRow],
    slack: &'a [f32],
    k: usize,
    /// Per state: its `k` best lower bounds so far.
    heaps: Vec<BinaryHeap<Worst>>,
    /// Per state: its `k`-th best lower bound once it has `k`, −∞ before.
    threshold: Vec<f32>,
    /// Per column: the smallest score whose upper bound reaches its state's threshold.
    cut: Vec<f32>,
    /// Per state: (column, id) of the allowed entries that reached the cut.
    candidates: Vec<Vec<(usize, u32)>>,
    /// Per state: its columns.
    columns_of: Vec<Vec<usize>>,
}

impl Scan<'_> {
    /// Looks at `columns` of line `id` one by one; `false` on a NaN.
    fn columns(
        &mut self,
        line: &[u16],
        columns: std::ops::Range<usize>,
        id: u32,
        masks: &[TargetMask],
    ) -> bool {
        for column in columns {
            let a = bf16_to_f32(line[column]);
            if a.is_nan() {
                return false;
            }
            let Some(row) = self.rows.get(column) else {
                continue;
            };
            if a < self.cut[column]
                || id == row.current
                || !masks.get(row.mask).is_some_and(|m| m.allows(id))
            {
                continue;
            }
            self.candidates[row.state].push((column, id));
            let lower = ScoredFlip {
                position: row.position,
                id,
                estimate: a - row.base - self.slack[column],
            };
            let heap = &mut self.heaps[row.state];
            let enters = heap.len() < self.k
                || heap
                    .peek()
                    .is_some_and(|w| flip_order(&lower, &w.0) == std::cmp::Ordering::Less);
            if !enters {
                continue;
            }
            heap.push(Worst(lower));
            if heap.len() > self.k {
                heap.pop();
            }
            if heap.len() >= self.k {
                let kth = heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.estimate);
                if kth > self.threshold[row.state] {
                    self.threshold[row.state] = kth;
                    self.raise_cuts(row.state);
                }
            }
        }
        true
    }

    /// Recomputes the cuts of `state`'s columns from its threshold.
    fn raise_cuts(&mut self, state: usize) {
        let t = self.threshold[state];
        for &column in &self.columns_of[state] {
            self.cut[column] = t + self.rows[column].base - self.slack[column];
        }
    }

    /// The exact `k` best of each state from its candidates that reach the final cut.
    fn rescore(
        self,
        approx: &[u16],
        stride: usize,
        exact: &mut impl FnMut(usize, u32) -> f32,
    ) -> Result<Option<Vec<Vec<ScoredFlip>>>, String> {
        let mut best = Vec::with_capacity(self.candidates.len());
        for kept in &self.candidates {
            let mut flips = Vec::new();
            for &(column, id) in kept {
                let a = bf16_to_f32(approx[id as usize * stride + column]);
                if a < self.cut[column] {
                    continue;
                }
                let score = exact(column, id);
                let within = (score - a).abs() <= self.slack[column];
                if !within {
                    return Ok(None);
                }
                let row = &self.rows[column];
                flips.push(ScoredFlip {
                    position: row.position,
                    id,
                    estimate: score - row.base,
                });
            }
            best.push(keep_best(flips, self.k));
        }
        Ok(Some(best))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::column_scan::best_flips_in_columns;

    /// A deterministic stream of values in [-1, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Each score plus up to `err / 4` of noise, rounded to the nearest bf16: wrong by at
    /// most `err` for scores below 2 in magnitude (checked).
    fn approximate(exact: &[f32], err: f32, rng: &mut Lcg) -> Vec<u16> {
        exact
            .iter()
            .map(|&s| {
                let noisy = (s + err * 0.25 * rng.next()).to_bits();
                let bits = ((noisy + 0x7fff + ((noisy >> 16) & 1)) >> 16) as u16;
                assert!((bf16_to_f32(bits) - s).abs() <= err);
                bits
            })
            .collect()
    }

    fn rows_and_masks(vocab: usize) -> (Vec<FlipRow>, Vec<TargetMask>) {
        let rows = [
            (0, 0, 3, 0),
            (0, 1, 5, 1),
            (1, 0, 7, 0),
            (2, 0, 1, 1),
            (2, 2, 2, 0),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (state, position, current, mask))| FlipRow {
            state,
            position,
            current,
            mask,
            base: i as f32 * 0.125 - 0.25,
        })
        .collect();
        let masks = vec![
            TargetMask::from_ids(vocab, (0..vocab as u32).filter(|v| v % 3 != 0)),
            TargetMask::from_ids(vocab - 5, 2..vocab as u32),
        ];
        (rows, masks)
    }

    #[test]
    fn equals_the_exact_scan_when_the_bound_holds() {
        let vocab = 61;
        let (rows, masks) = rows_and_masks(vocab);
        let width = rows.len();
        let mut rng = Lcg(7);
        for (trial, spread) in [1.0f32, 0.01, 0.0].into_iter().enumerate() {
            // spread 0.01: scores crowd within the error; 0: exact ties everywhere.
            let exact: Vec<f32> = (0..vocab * width)
                .map(|i| 0.25 + spread * (0.5 * rng.next() + 0.25 * (i % 3) as f32))
                .collect();
            let slack: Vec<f32> = (0..width).map(|c| 0.02 + 0.01 * c as f32).collect();
            let err = 0.02;
            let approx = approximate(&exact, err, &mut rng);
            for k in [1, 2, 6, 40, 1000] {
                let want = best_flips_in_columns(&exact, &rows, &masks, 4, k).unwrap();
                let got = exact_best_flips(&approx, width, &slack, &rows, &masks, 4, k, |r, v| {
                    exact[v as usize * width + r]
                })
                .unwrap()
                .unwrap();
                assert_eq!(got, want, "trial {trial}, k = {k}");
                // Lines padded to a whole lane, the padding holding large scores.
                let padded: Vec<u16> = approx
                    .chunks(width)
                    .flat_map(|line| line.iter().copied().chain([0x7f00; LANES - 5]))
                    .collect();
                let got = exact_best_flips(&padded, LANES, &slack, &rows, &masks, 4, k, |r, v| {
                    exact[v as usize * width + r]
                })
                .unwrap()
                .unwrap();
                assert_eq!(got, want, "trial {trial}, k = {k}, padded lines");
                assert!(got[3].is_empty(), "a state without rows gets no flips");
            }
        }
    }

    #[test]
    fn rescores_only_a_few_candidates_when_scores_are_spread() {
        let vocab = 400;
        let (rows, masks) = rows_and_masks(vocab);
        let width = rows.len();
        let exact: Vec<f32> = (0..vocab * width)
            .map(|i| (i as f32 * 0.618).fract())
            .collect();
        let approx = approximate(&exact, 0.008, &mut Lcg(3));
        let mut rescored = 0;
        let got = exact_best_flips(&approx, width, &[0.008; 5], &rows, &masks, 3, 2, |r, v| {
            rescored += 1;
            exact[v as usize * width + r]
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            best_flips_in_columns(&exact, &rows, &masks, 3, 2).unwrap()
        );
        assert!(
            rescored < 100,
            "{rescored} of {} entries rescored",
            vocab * width
        );
    }

    #[test]
    fn a_broken_bound_or_a_nan_hands_back_to_the_exact_path() {
        let vocab = 20;
        let (rows, masks) = rows_and_masks(vocab);
        let width = rows.len();
        let exact: Vec<f32> = (0..vocab * width).map(|i| i as f32 * 0.01).collect();
        let approx = approximate(&exact, 0.01, &mut Lcg(1));
        // Claimed slack far below the real error of the scores the callback returns.
        let lie = exact_best_flips(&approx, width, &[0.01; 5], &rows, &masks, 3, 2, |r, v| {
            exact[v as usize * width + r] + 0.5
        })
        .unwrap();
        assert_eq!(lie, None);
        let mut nan = approx.clone();
        nan[7] = 0x7fc0;
        let got = exact_best_flips(&nan, width, &[0.01; 5], &rows, &masks, 3, 2, |r, v| {
            exact[v as usize * width + r]
        })
        .unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn ragged_input_is_refused() {
        let (rows, masks) = rows_and_masks(20);
        let scan = |approx: &[u16], stride, slack: &[f32], states| {
            exact_best_flips(approx, stride, slack, &rows, &masks, states, 1, |_, _| 0.0)
        };
        assert!(scan(&[0; 7], 5, &[0.0; 5], 3).is_err(), "ragged lines");
        assert!(
            scan(&[0; 8], 4, &[0.0; 5], 3).is_err(),
            "lines narrower than the rows"
        );
        assert!(scan(&[0; 10], 5, &[0.0; 4], 3).is_err(), "a slack missing");
        assert!(
            scan(&[0; 10], 5, &[0.0; 5], 2).is_err(),
            "a row of a state beyond the batch"
        );
    }
}
