//! The fast candidate paths of gradient searches: best-first, lazily constrained.
//!
//! They return exactly what the reference path (`Rules::enumerate` over a full
//! [`crate::estimate::score_matrix`], every constraint checked for every edit) keeps for
//! the same `k`: the `k` best allowed edits in `TopK`'s total order, with the same `f32`
//! estimates bit for bit, because they compute each estimate with the same operations in
//! the same order. What they skip is work:
//! * word flips are scored by the model's backend ([`gauntlet_core::WhiteBox::top_word_flips`],
//!   on its device) from per-position [`TargetMask`]s — see [`WordMasks`];
//! * `sem` and `unk` need one dot product per candidate (the `sem` neighbours of a word are
//!   computed once per run and cached by `SemFilter`) and never a vocabulary product;
//! * character inserts and deletes take their estimates from suffix sums, O(1) each
//!   instead of O(word length), and the out-of-vocabulary test runs only on candidates in
//!   best-first order until `k` survive, into one reused buffer.
//!
//! The `dropped` flag they return is exact, as the reference's: whether more than `k`
//! allowed edits exist (the lazy path looks for one more), so both paths re-expand in the
//! same cases and consume their random generators alike.

use std::cmp::Ordering;

use gauntlet_core::codec::PAD_ID;
use gauntlet_core::scoring::dot;
use gauntlet_core::{EmbeddingTable, TargetMask};
use ndarray::ArrayView2;

use crate::candidates::{EditSpace, Rules, WordTargets};
use crate::state::{visible_ids, Edit, Space, State, Unit};

/// An edit and its estimate.
pub(crate) type Scored = (f32, Edit);

/// `TopK`'s order: estimate descending, then edit ascending.
pub(crate) fn better(a: &Scored, b: &Scored) -> Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1))
}

/// The best `k` of `cands` that pass `allowed`, examined best first; and whether more than
/// `k` pass (found by looking for one more).
pub(crate) fn lazy_best(
    mut cands: Vec<Scored>,
    k: usize,
    mut allowed: impl FnMut(&Edit) -> bool,
) -> (Vec<Scored>, bool) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chunk = k.saturating_mul(2).max(64);
    while start < cands.len() && out.len() < k {
        let rest = &mut cands[start..];
        let take = chunk.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable_by(take - 1, better);
        }
        rest[..take].sort_by(better);
        let mut examined = 0;
        for cand in &rest[..take] {
            examined += 1;
            if allowed(&cand.1) {
                out.push(*cand);
                if out.len() == k {
                    break;
                }
            }
        }
        start += examined;
        chunk = chunk.saturating_mul(2);
    }
    let more = out.len() == k && cands[start..].iter().any(|c| allowed(&c.1));
    (out, more)
}

/// Writes the normalized spelling of `word` after `edit` into `out` (the OOV test).
pub(crate) fn edited_norm_into(word: &[Unit], edit: &Edit, tokens: &[String], out: &mut String) {
    out.clear();
    let token = |id: u32| {
        tokens
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or_default()
    };
    for (k, unit) in word.iter().enumerate() {
        match *edit {
            Edit::Flip { pos, to, .. } if pos == k => out.push_str(token(to)),
            Edit::Insert { pos, ch, .. } if pos == k => {
                out.push_str(token(ch));
                out.push_str(&unit.norm);
            }
            Edit::Delete { pos, .. } if pos == k => {}
            _ => out.push_str(&unit.norm),
        }
    }
    if let Edit::Insert { pos, ch, .. } = *edit {
        if pos == word.len() {
            out.push_str(token(ch));
        }
    }
}

/// The target masks of word flips and the mask each token's flips come from.
#[derive(Debug, Clone)]
pub(crate) struct WordMasks {
    /// `[word starts, continuations]`.
    pub masks: Vec<TargetMask>,
}

impl WordMasks {
    pub(crate) fn new(targets: &WordTargets, rows: usize) -> Self {
        Self {
            masks: vec![
                TargetMask::from_ids(rows, targets.word_starts().iter().copied()),
                TargetMask::from_ids(rows, targets.continuations().iter().copied()),
            ],
        }
    }

    /// Per position of `state`: the mask its flips come from, or `None` when the position
    /// may not change (not editable, or already changed under one change per word).
    pub(crate) fn query_targets(
        rules: &Rules<'_>,
        state: &State,
        space: &Space<'_>,
    ) -> Vec<Option<usize>> {
        state
            .words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let blocked = (rules.one_change_per_word && state.changed[i]) || !space.editable(i);
                (!blocked).then(|| usize::from(rules.targets.is_continuation(word[0].id)))
            })
            .collect()
    }
}

impl Rules<'_> {
    /// The best `k` edits of `state` by the estimates of gradient `g` (`[positions, dim]`,
    /// in the search's sign) for `sem` and `unk`: one dot product per candidate.
    pub(crate) fn best_word_edits(
        &mut self,
        state: &State,
        space: &Space<'_>,
        g: &[f32],
        table: &EmbeddingTable,
        k: usize,
    ) -> (Vec<Scored>, bool) {
        let dim = table.dim;
        let score = |i: usize, id: u32| -> f32 {
            match (g.get(i * dim..(i + 1) * dim), (id as usize) < table.rows) {
                (Some(gi), true) => dot(gi, table.row(id as usize)),
                _ => 0.0,
            }
        };
        let mut all = Vec::new();
        for (i, word) in state.words.iter().enumerate() {
            if (self.one_change_per_word && state.changed[i]) || !space.editable(i) {
                continue;
            }
            let current = word[0].id;
            let base = score(i, current);
            match self.space {
                EditSpace::Sem => {
                    let ids = self.ids.clone();
                    if let Some(sem) = self.sem.as_mut() {
                        for &to in sem.allowed(current, ids, &space.tokens) {
                            if self.targets.allows(current, to) {
                                all.push((score(i, to) - base, Edit::WordFlip { word: i, to }));
                            }
                        }
                    }
                }
                EditSpace::Unk => {
                    let spelled = space.unk_spellings.get(i).is_some_and(Option::is_some);
                    let (pad, unk) = (self.codec.pad_id(), space.unk_id);
                    if current != pad && current != unk && spelled {
                        all.push((score(i, unk) - base, Edit::Unk { word: i }));
                    }
                }
                EditSpace::WordFlips | EditSpace::Chars => {}
            }
        }
        lazy_best(all, k, |_| true)
    }

    /// The best `k` character edits of `state` from its score matrix (PAD's column as the
    /// model feeds padding), with suffix-sum estimates and lazy OOV checks.
    pub(crate) fn best_char_edits(
        &self,
        state: &State,
        space: &Space<'_>,
        scores: &ArrayView2<'_, f32>,
        k: usize,
    ) -> (Vec<Scored>, bool) {
        let at = |k: usize, id: u32| scores.get((k, id as usize)).copied().unwrap_or(0.0);
        let mut all: Vec<Scored> = Vec::new();
        let mut offset = 0;
        let mut suffix: Vec<f32> = Vec::new();
        for (i, word) in state.words.iter().enumerate() {
            let ids = visible_ids(word, space.max_chars);
            let len = ids.len();
            let o = offset;
            offset += len;
            if (self.one_change_per_word && state.changed[i]) || !space.editable(i) {
                continue;
            }
            let base = |j: usize| at(o + j, ids[j]);
            // Inserts: suffix[j] = Σ_{m=L−1…j} (S[o+m, ids[m−1]] − S[o+m, ids[m]]), m ≥ 1,
            // accumulated from the end as `shift_estimate` does.
            suffix.clear();
            suffix.resize(len + 1, 0.0);
            for m in (1..len).rev() {
                let d = at(o + m, ids[m - 1]) - base(m);
                suffix[m] = if m == len - 1 { d } else { suffix[m + 1] + d };
            }
            for j in 0..len {
                let n = (len - j) as f32;
                for b in self.ids.clone() {
                    let t = at(o + j, b) - base(j);
                    if b != ids[j] {
                        all.push((
                            t,
                            Edit::Flip {
                                word: i,
                                pos: j,
                                to: b,
                            },
                        ));
                    }
                    let sum = if j == len - 1 { t } else { suffix[j + 1] + t };
                    all.push((
                        sum / n,
                        Edit::Insert {
                            word: i,
                            pos: j,
                            ch: b,
                        },
                    ));
                }
            }
            if word.len() >= 2 {
                // Deletes: the last visible slot takes the first hidden character, or PAD.
                let last = word.get(len).map_or(PAD_ID, |u| u.id);
                let mut sum = at(o + len - 1, last) - base(len - 1);
                let mut deletes = vec![0f32; len];
                deletes[len - 1] = sum;
                for j in (0..len - 1).rev() {
                    sum += at(o + j, ids[j + 1]) - base(j);
                    deletes[j] = sum;
                }
                for (j, total) in deletes.into_iter().enumerate() {
                    all.push((total / (len - j) as f32, Edit::Delete { word: i, pos: j }));
                }
            }
        }
        let mut buffer = String::new();
        lazy_best(all, k, |edit| {
            if !self.require_oov {
                return true;
            }
            edited_norm_into(&state.words[edit.word()], edit, &space.tokens, &mut buffer);
            !self.codec.knows_word(&buffer)
        })
    }
}
