//! Candidate edits of a beam state: which atomic changes are allowed, and their estimates.
//!
//! [`Rules`] enumerate the allowed edits of one [`State`] for a search space (character
//! edits, word flips, `sem` word flips, `unk` respellings), applying the constraints:
//! at most one change per word (if configured); for character edits, the resulting word
//! must be out of the model's word vocabulary (if configured), characters come from the
//! alphabet (ids ≥ 2, never PAD/UNK), and a one-character word is never deleted from; word
//! flips touch only the words the example's [`Space`] marks editable and go to the
//! [`WordTargets`] of the current token other than itself (native vocabularies: ids ≥ 2;
//! subword vocabularies: non-special tokens of the same form, word start or continuation,
//! with a readable spelling); `sem` flips additionally satisfy [`SemFilter`]; `unk` needs a
//! legible spelling. Character edits of subword models (the example's [`Space`] re-encodes
//! text) may also append a character to a word, and their alphabet is the space's tokens.
//! When a score matrix is given
//! (see [`crate::estimate`]) each edit carries its estimate, otherwise 0.
//! [`TopK`] keeps the `k` best edits by estimate with a total, deterministic order
//! (estimate descending, then edit ascending).

use std::collections::BTreeMap;
use std::ops::Range;

use gauntlet_core::{EmbeddingTable, TextCodec, TokenForm};
use ndarray::ArrayView2;

use crate::best_first::{better, edited_norm_into};
use crate::estimate::{flip_estimate, shift_estimate};
use crate::lexicon::{is_stop_word, Lexicon};
use crate::state::{visible_ids, Edit, Space, State, Unit};

/// The kind of edits a search makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EditSpace {
    /// Character flips, inserts and deletes.
    Chars,
    /// Word flips to any vocabulary word.
    WordFlips,
    /// Word flips allowed by the `sem` constraints.
    Sem,
    /// Respelling words out of vocabulary.
    Unk,
}

/// Keeps the best `k` (edit, estimate) pairs.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    items: Vec<(f32, Edit)>,
    dropped: bool,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::new(),
            dropped: false,
        }
    }

    pub(crate) fn push(&mut self, estimate: f32, edit: Edit) {
        self.items.push((estimate, edit));
        if self.k > 0 && self.items.len() >= self.k.saturating_mul(2).max(64) {
            self.items.select_nth_unstable_by(self.k - 1, better);
            self.items.truncate(self.k);
            self.dropped = true;
        }
    }

    /// The kept items, best first, and whether any was dropped.
    pub(crate) fn finish(mut self, dropped: &mut bool) -> Vec<(f32, Edit)> {
        self.items.sort_by(better);
        if self.items.len() > self.k {
            self.dropped = true;
            self.items.truncate(self.k);
        }
        *dropped |= self.dropped;
        self.items
    }
}

/// The `sem` constraints (paper, section 5): cosine similarity of the two words'
/// embeddings ≥ threshold, a shared part of speech, the replaced word is not a stop word,
/// and the two words share no lemma. Allowed replacements are cached per word id.
pub struct SemFilter<'a> {
    table: &'a EmbeddingTable,
    norms: Vec<f32>,
    threshold: f64,
    lexicon: &'a dyn Lexicon,
    cache: BTreeMap<u32, Vec<u32>>,
}

impl<'a> SemFilter<'a> {
    /// A filter over `table`'s rows with the given cosine threshold and lexicon.
    pub fn new(table: &'a EmbeddingTable, threshold: f64, lexicon: &'a dyn Lexicon) -> Self {
        let norms = (0..table.rows)
            .map(|r| table.row(r).iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();
        Self {
            table,
            norms,
            threshold,
            lexicon,
            cache: BTreeMap::new(),
        }
    }

    fn cosine(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize, b as usize);
        if a >= self.table.rows || b >= self.table.rows {
            return -1.0;
        }
        let dot: f32 = self
            .table
            .row(a)
            .iter()
            .zip(self.table.row(b))
            .map(|(x, y)| x * y)
            .sum();
        let den = self.norms[a] * self.norms[b];
        if den == 0.0 {
            -1.0
        } else {
            f64::from(dot / den)
        }
    }

    /// Ids the word `from` may be flipped to, ascending.
    pub fn allowed(&mut self, from: u32, vocab: Range<u32>, tokens: &[String]) -> &[u32] {
        if !self.cache.contains_key(&from) {
            let word = tokens
                .get(from as usize)
                .map(String::as_str)
                .unwrap_or_default();
            let list = if is_stop_word(word) {
                Vec::new()
            } else {
                let pos = self.lexicon.pos(word);
                let lemmas = self.lexicon.lemmas(word);
                vocab
                    .filter(|&to| to != from && self.cosine(from, to) >= self.threshold)
                    .filter(|&to| {
                        let other = tokens
                            .get(to as usize)
                            .map(String::as_str)
                            .unwrap_or_default();
                        !self.lexicon.pos(other).is_disjoint(&pos)
                            && self.lexicon.lemmas(other).is_disjoint(&lemmas)
                    })
                    .collect()
            };
            self.cache.insert(from, list);
        }
        self.cache.get(&from).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The replacement tokens of word flips, by the form of the token replaced.
#[derive(Debug, Clone)]
pub(crate) struct WordTargets {
    /// Form of every id below the table's rows.
    forms: Vec<TokenForm>,
    /// Word-start tokens with a readable spelling, ascending.
    word_start: Vec<u32>,
    /// Continuation tokens with a readable spelling, ascending.
    continuation: Vec<u32>,
    /// Every id of `2..rows` is a target (native vocabularies), so random flips may draw
    /// from that range directly.
    pub native: bool,
}

impl WordTargets {
    /// Targets among the first `rows` ids of `codec`: ids of each form whose spelling is one
    /// word ([`gauntlet_core::Spellings`]).
    pub(crate) fn new(codec: &TextCodec, rows: usize) -> Self {
        let spellings = codec.spellings();
        let rows = rows.min(codec.size());
        let forms = spellings.forms[..rows].to_vec();
        let of = |form: TokenForm| -> Vec<u32> {
            (0..rows)
                .filter(|&id| forms[id] == form && spellings.one_word[id])
                .map(|id| id as u32)
                .collect()
        };
        Self {
            word_start: of(TokenForm::WordStart),
            continuation: of(TokenForm::Continuation),
            native: !codec.is_subword(),
            forms,
        }
    }

    /// The tokens `current` may become (it included, if it is a target itself).
    pub(crate) fn of(&self, current: u32) -> &[u32] {
        match self.forms.get(current as usize) {
            Some(TokenForm::Continuation) => &self.continuation,
            // Word starts, and the unknown token, which stands for a whole word.
            _ => &self.word_start,
        }
    }

    /// Word-start targets, ascending.
    pub(crate) fn word_starts(&self) -> &[u32] {
        &self.word_start
    }

    /// Continuation targets, ascending.
    pub(crate) fn continuations(&self) -> &[u32] {
        &self.continuation
    }

    /// Whether `current`'s flips go to continuation tokens (see [`Self::of`]).
    pub(crate) fn is_continuation(&self, current: u32) -> bool {
        self.forms.get(current as usize) == Some(&TokenForm::Continuation)
    }

    /// Whether `current` may become `to`.
    pub(crate) fn allows(&self, current: u32, to: u32) -> bool {
        to != current && self.of(current).binary_search(&to).is_ok()
    }
}

/// The constraints of a search.
pub(crate) struct Rules<'a> {
    pub space: EditSpace,
    pub one_change_per_word: bool,
    pub require_oov: bool,
    pub codec: &'a TextCodec,
    /// Ids character edits may introduce: the alphabet, `2..rows`.
    pub ids: Range<u32>,
    /// Ids word flips may introduce.
    pub targets: WordTargets,
    pub sem: Option<SemFilter<'a>>,
}

impl Rules<'_> {
    /// Pushes every allowed edit of `state` with its estimate (0 without `scores`) into
    /// `out`.
    pub(crate) fn enumerate(
        &mut self,
        state: &State,
        space: &Space<'_>,
        scores: Option<&ArrayView2<'_, f32>>,
        out: &mut TopK,
    ) {
        let mut offset = 0;
        for (i, word) in state.words.iter().enumerate() {
            let ids = visible_ids(word, space.max_chars);
            let len = match self.space {
                EditSpace::Chars => ids.len(),
                _ => 1,
            };
            if !(self.one_change_per_word && state.changed[i]) && space.editable(i) {
                match self.space {
                    EditSpace::Chars => self.char_edits(i, word, &ids, offset, space, scores, out),
                    EditSpace::WordFlips | EditSpace::Sem | EditSpace::Unk => {
                        self.word_edits(i, ids[0], space, scores, out)
                    }
                }
            }
            offset += len;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn char_edits(
        &self,
        i: usize,
        word: &[Unit],
        ids: &[u32],
        offset: usize,
        space: &Space<'_>,
        scores: Option<&ArrayView2<'_, f32>>,
        out: &mut TopK,
    ) {
        let mut buffer = String::new();
        let mut allowed = |edit: &Edit| {
            if !self.require_oov {
                return true;
            }
            edited_norm_into(word, edit, &space.tokens, &mut buffer);
            !self.codec.knows_word(&buffer)
        };
        for j in 0..ids.len() {
            for b in self.ids.clone() {
                if b == ids[j] {
                    continue;
                }
                let edit = Edit::Flip {
                    word: i,
                    pos: j,
                    to: b,
                };
                if allowed(&edit) {
                    let est = scores.map_or(0.0, |s| flip_estimate(s, offset + j, ids[j], b));
                    out.push(est, edit);
                }
            }
            for b in self.ids.clone() {
                let edit = Edit::Insert {
                    word: i,
                    pos: j,
                    ch: b,
                };
                if allowed(&edit) {
                    let est = scores.map_or(0.0, |s| {
                        let mut new: Vec<u32> = word.iter().map(|u| u.id).collect();
                        new.insert(j, b);
                        new.truncate(space.max_chars.max(1));
                        shift_estimate(s, offset, ids, &new, j)
                    });
                    out.push(est, edit);
                }
            }
            if word.len() >= 2 {
                let edit = Edit::Delete { word: i, pos: j };
                if allowed(&edit) {
                    let est = scores.map_or(0.0, |s| {
                        let mut new: Vec<u32> = word.iter().map(|u| u.id).collect();
                        new.remove(j);
                        new.truncate(space.max_chars.max(1));
                        shift_estimate(s, offset, ids, &new, j)
                    });
                    out.push(est, edit);
                }
            }
        }
        // Text edits may also append to a word (`good` → `goods`); character models keep
        // HotFlip's inserts before a character.
        if space.retokenize.is_some() {
            for b in self.ids.clone() {
                let edit = Edit::Insert {
                    word: i,
                    pos: word.len(),
                    ch: b,
                };
                if allowed(&edit) {
                    out.push(0.0, edit);
                }
            }
        }
    }

    fn word_edits(
        &mut self,
        i: usize,
        current: u32,
        space: &Space<'_>,
        scores: Option<&ArrayView2<'_, f32>>,
        out: &mut TopK,
    ) {
        let est = |to: u32| scores.map_or(0.0, |s| flip_estimate(s, i, current, to));
        match self.space {
            EditSpace::WordFlips => {
                for &to in self.targets.of(current).iter().filter(|&&to| to != current) {
                    out.push(est(to), Edit::WordFlip { word: i, to });
                }
            }
            EditSpace::Sem => {
                let ids = self.ids.clone();
                if let Some(sem) = self.sem.as_mut() {
                    for &to in sem.allowed(current, ids, &space.tokens) {
                        if self.targets.allows(current, to) {
                            out.push(est(to), Edit::WordFlip { word: i, to });
                        }
                    }
                }
            }
            EditSpace::Unk => {
                let spelled = space.unk_spellings.get(i).is_some_and(Option::is_some);
                let (pad, unk) = (self.codec.pad_id(), space.unk_id);
                if current != pad && current != unk && spelled {
                    out.push(est(unk), Edit::Unk { word: i });
                }
            }
            EditSpace::Chars => {}
        }
    }
}
