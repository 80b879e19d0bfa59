//! Beam states: an example's text as editable units, the edits the search applies, and the
//! splice of an edited state back into the user's original text.
//!
//! A [`State`] holds, for every word of the encoded example, its units: one unit per word
//! for word models, one unit per character for character models, one unit per token for
//! subword models (a "word" of the state is then a token, with its own byte span; new units
//! carry the token's readable spelling, so splicing a word's pieces gives readable text). A character word keeps
//! *all* its characters, including those beyond the model's `max_word_chars` (the hidden
//! tail), so that the ids of a state always equal what the codec would produce from the
//! spliced text: the ids of a word are the ids of its first `max_word_chars` units.
//! Each unit carries its id, its display text (the user's own character or word for
//! unchanged units, the alphabet's or vocabulary's token for new ones) and, for characters,
//! its normalized form (used to test words against the word vocabulary).
//! Character edits of subword models (see `retokenize`) use character units of the
//! text's words instead, and their ids are those of the re-encoded spliced text.
//! Invariants: a word never becomes empty (a one-character word cannot be deleted from);
//! `changed[i]` is true iff an edit touched word `i`; `ops` lists the edits in the order
//! applied, with character indices relative to the word *at the time of the edit*.

use std::sync::Arc;

use gauntlet_core::{Encoded, InputKind, TextCodec, TokenIds};

use crate::error::AttackError;
use crate::report::Operation;
use crate::retokenize::Retokenize;

/// One editable unit: a character (character models) or a word (word models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub id: u32,
    pub text: String,
    pub norm: String,
}

/// One atomic edit, addressed in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Edit {
    /// Character `pos` of word `word` becomes alphabet id `to`.
    Flip { word: usize, pos: usize, to: u32 },
    /// Alphabet id `ch` is inserted before character `pos` of word `word`.
    Insert { word: usize, pos: usize, ch: u32 },
    /// Character `pos` of word `word` is removed.
    Delete { word: usize, pos: usize },
    /// Word `word` becomes vocabulary id `to`.
    WordFlip { word: usize, to: u32 },
    /// Word `word` is respelled out of vocabulary (the model reads `[UNK]`).
    Unk { word: usize },
}

impl Edit {
    pub(crate) fn word(&self) -> usize {
        match *self {
            Self::Flip { word, .. }
            | Self::Insert { word, .. }
            | Self::Delete { word, .. }
            | Self::WordFlip { word, .. }
            | Self::Unk { word } => word,
        }
    }
}

/// What a search needs to know about the example and the model to apply edits.
#[derive(Debug, Clone)]
pub(crate) struct Space<'a> {
    pub kind: InputKind,
    /// Characters per word the model reads (character models).
    pub max_chars: usize,
    /// Token string of every id (alphabet or vocabulary).
    pub tokens: Arc<[String]>,
    /// Legible out-of-vocabulary spelling of each word (the `unk` attack), if one exists.
    pub unk_spellings: Vec<Option<String>>,
    /// Which words (tokens, for subword models) edits may touch; empty: every word.
    pub editable: Vec<bool>,
    /// The id the model reads for a word respelled out of vocabulary.
    pub unk_id: u32,
    /// Character edits of a subword model: units are the text's characters, `tokens` the
    /// alphabet, and ids come from re-encoding the spliced text.
    pub retokenize: Option<Retokenize<'a>>,
}

impl Space<'_> {
    /// Whether edits may touch word `i`.
    pub(crate) fn editable(&self, i: usize) -> bool {
        self.editable.get(i).copied().unwrap_or(true)
    }
}

/// A point of the search: the edited example and how it got there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    pub words: Vec<Vec<Unit>>,
    pub ops: Vec<Operation>,
    pub changed: Vec<bool>,
    /// Sum of the estimates along the path (gradient searches) or the exact objective
    /// (loss-based search).
    pub score: f64,
}

impl State {
    /// The unedited example. The ids of the result equal `encoded.ids`.
    pub(crate) fn initial(text: &str, encoded: &Encoded, codec: &TextCodec) -> Self {
        let words: Vec<Vec<Unit>> = match &encoded.ids {
            TokenIds::Words(ids) => ids
                .iter()
                .zip(&encoded.spans)
                .map(|(&id, &(s, e))| {
                    let text = text.get(s..e).unwrap_or_default().to_owned();
                    vec![Unit {
                        id,
                        norm: codec.normalize(&text),
                        text,
                    }]
                })
                .collect(),
            TokenIds::Chars(words) => words
                .iter()
                .zip(&encoded.spans)
                .map(|(ids, &(s, e))| {
                    let chars: Vec<char> = text.get(s..e).unwrap_or_default().chars().collect();
                    if chars.len() < ids.len() {
                        // The codec saw a different segmentation; fall back to tokens.
                        return ids
                            .iter()
                            .map(|&id| {
                                let t = codec.token(id).unwrap_or("?").to_owned();
                                Unit {
                                    id,
                                    text: t.clone(),
                                    norm: t,
                                }
                            })
                            .collect();
                    }
                    chars
                        .iter()
                        .enumerate()
                        .map(|(k, ch)| {
                            let text = ch.to_string();
                            let norm = codec.normalize(&text);
                            let id = match ids.get(k) {
                                Some(&id) => id,
                                None => codec.id(&norm).unwrap_or(codec.unk_id()),
                            };
                            Unit { id, text, norm }
                        })
                        .collect()
                })
                .collect(),
        };
        let n = words.len();
        Self {
            words,
            ops: Vec::new(),
            changed: vec![false; n],
            score: 0.0,
        }
    }

    /// The ids the model reads (re-encoding the edited text fails only if the codec does).
    pub(crate) fn ids(&self, space: &Space<'_>) -> Result<TokenIds, AttackError> {
        if let Some(retokenize) = &space.retokenize {
            return retokenize.encode(self);
        }
        Ok(match space.kind {
            InputKind::Word => TokenIds::Words(self.words.iter().map(|w| w[0].id).collect()),
            InputKind::Char => TokenIds::Chars(
                self.words
                    .iter()
                    .map(|w| visible_ids(w, space.max_chars))
                    .collect(),
            ),
        })
    }

    /// The units word `edit.word()` would have after `edit`.
    pub(crate) fn edited_word(&self, edit: &Edit, space: &Space<'_>) -> Vec<Unit> {
        let mut word = self.words[edit.word()].clone();
        let token = |id: u32| {
            let t = space.tokens.get(id as usize).cloned().unwrap_or_default();
            Unit {
                id,
                text: t.clone(),
                norm: t,
            }
        };
        match *edit {
            Edit::Flip { pos, to, .. } => word[pos] = token(to),
            Edit::Insert { pos, ch, .. } => word.insert(pos, token(ch)),
            Edit::Delete { pos, .. } => {
                word.remove(pos);
            }
            Edit::WordFlip { to, .. } => word = vec![token(to)],
            Edit::Unk { word: w } => {
                let text = space
                    .unk_spellings
                    .get(w)
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                word = vec![Unit {
                    id: space.unk_id,
                    norm: text.clone(),
                    text,
                }];
            }
        }
        word
    }

    /// The state after `edit`, with `estimate` added to the path score.
    pub(crate) fn apply(&self, edit: &Edit, space: &Space<'_>, estimate: f64) -> Self {
        let i = edit.word();
        let new_word = self.edited_word(edit, space);
        let old = &self.words[i];
        let op = match *edit {
            Edit::Flip { pos, .. } => Operation::Flip {
                word: i,
                char: pos,
                before: old[pos].text.clone(),
                after: new_word[pos].text.clone(),
            },
            Edit::Insert { pos, .. } => Operation::Insert {
                word: i,
                char: pos,
                after: new_word[pos].text.clone(),
            },
            Edit::Delete { pos, .. } => Operation::Delete {
                word: i,
                char: pos,
                before: old[pos].text.clone(),
            },
            Edit::WordFlip { .. } => Operation::WordFlip {
                word: i,
                before: old[0].text.clone(),
                after: new_word[0].text.clone(),
            },
            Edit::Unk { .. } => Operation::Unk {
                word: i,
                before: old[0].text.clone(),
                after: new_word[0].text.clone(),
            },
        };
        let mut next = self.clone();
        next.words[i] = new_word;
        next.changed[i] = true;
        next.ops.push(op);
        next.score += estimate;
        next
    }

    /// The original text with every changed word replaced by its edited spelling.
    /// Words marked in `separate` (whole words of subword models) get a space on a side
    /// where the new spelling would otherwise run into a neighbouring letter or digit
    /// (`great!` with `!` flipped to `awful` becomes `great awful`, not `greatawful`).
    /// With a `codec`, a lowercase spelling takes the original word's capitalisation
    /// (`The` → `Awful`) when the codec's normalizer makes the two the same, so the text
    /// reads naturally and still encodes to the same ids.
    pub(crate) fn splice(
        &self,
        text: &str,
        spans: &[(usize, usize)],
        separate: &[bool],
        codec: Option<&TextCodec>,
    ) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        let mut at = 0;
        let word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        for (i, &(s, e)) in spans.iter().enumerate() {
            if !self.changed.get(i).copied().unwrap_or(false) || s < at {
                continue;
            }
            out.push_str(text.get(at..s).unwrap_or_default());
            let new: String = self.words[i].iter().map(|u| u.text.as_str()).collect();
            let new = match (codec, text.get(s..e)) {
                (Some(codec), Some(original)) => restore_case(original, &new, codec),
                _ => new,
            };
            let spaced = separate.get(i).copied().unwrap_or(false);
            if spaced && word_char(out.chars().next_back()) && word_char(new.chars().next()) {
                out.push(' ');
            }
            out.push_str(&new);
            let next = text.get(e..).and_then(|rest| rest.chars().next());
            if spaced && word_char(new.chars().next_back()) && word_char(next) {
                out.push(' ');
            }
            at = e;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        out
    }
}

/// `new` capitalised like `original` (all capitals, or a capital first letter) when it is
/// all lowercase and the codec normalizes both spellings alike; `new` otherwise.
pub(crate) fn restore_case(original: &str, new: &str, codec: &TextCodec) -> String {
    let letters: Vec<char> = original.chars().filter(|c| c.is_alphabetic()).collect();
    if !letters.iter().any(|c| c.is_uppercase()) || new.chars().any(char::is_uppercase) {
        return new.to_owned();
    }
    let cased = if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        new.to_uppercase()
    } else if original.chars().next().is_some_and(char::is_uppercase) {
        let mut chars = new.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    } else {
        return new.to_owned();
    };
    if codec.normalize(&cased) == codec.normalize(new) {
        cased
    } else {
        new.to_owned()
    }
}

/// Ids of the first `max_chars` units (at least one).
pub(crate) fn visible_ids(word: &[Unit], max_chars: usize) -> Vec<u32> {
    word.iter().take(max_chars.max(1)).map(|u| u.id).collect()
}
