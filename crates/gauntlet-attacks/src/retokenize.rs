//! Character edits of subword (WordPiece, BPE) models: the *text* is edited, re-encoded by
//! the codec, and every candidate is scored by the exact loss of its re-encoded ids.
//!
//! A gradient over token embeddings cannot score a character edit, since the edit changes
//! the tokenization of the word; so this space is searched by the exact-loss beam search
//! (`loss-beam`, and `hotflip-char` on a subword model) and by `random`.
//!
//! Words are the tokenizer's pre-tokenized words the encoding holds (the words of
//! [`gauntlet_core::TokenRole`]), spanning the union of their tokens' byte spans; special
//! tokens belong to no word and are never edited. Units are the characters of the original
//! text. Only words with a letter or digit are edited (a lone `!` is a word of its own for
//! most pre-tokenizers). The alphabet, the characters edits introduce, is the ASCII letters
//! and digits the vocabulary spells as one-character tokens (word-start or continuation)
//! and that the tokenizer's normalizer leaves unchanged: an uncased (lowercasing) WordPiece
//! vocabulary gives `a–z` and `0–9`, a byte-level BPE vocabulary `A–Z`, `a–z` and `0–9`.
//! Punctuation is left out because most pre-tokenizers split words at it, and other
//! characters because they multiply the candidates for little gain; a vocabulary without
//! one-character tokens falls back to the `a–z`/`0–9` its normalizer keeps.
//! Invariants: an edit's character id indexes the sorted alphabet; a character of the
//! text outside the alphabet carries [`OUTSIDE`]; the ids of a state are exactly what the
//! codec gives for the spliced text, which is the adversarial text of the report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gauntlet_core::{Encoded, TextCodec, TokenForm, TokenIds};

use crate::error::AttackError;
use crate::state::{State, Unit};

/// Id of a character of the text that is not in the alphabet (no edit introduces it).
pub(crate) const OUTSIDE: u32 = u32::MAX;

/// What re-encoding an edited state needs: the codec, the example's text and word spans.
#[derive(Debug, Clone)]
pub(crate) struct Retokenize<'a> {
    pub codec: &'a TextCodec,
    pub text: Arc<str>,
    /// Byte span of every word of the state, as given by [`word_spans`].
    pub spans: Arc<[(usize, usize)]>,
    /// The example's index, for errors.
    pub index: usize,
}

impl Retokenize<'_> {
    /// The original text with the state's edited words spliced in.
    pub(crate) fn text_of(&self, state: &State) -> String {
        state.splice(&self.text, &self.spans, &[], Some(self.codec))
    }

    /// The ids the codec gives for the state's text.
    pub(crate) fn encode(&self, state: &State) -> Result<TokenIds, AttackError> {
        self.codec
            .encode(&self.text_of(state))
            .map(|encoded| encoded.ids)
            .map_err(|source| AttackError::Encode {
                index: self.index,
                source,
            })
    }
}

/// The characters edits may introduce, sorted (see the module documentation).
pub(crate) fn alphabet(codec: &TextCodec) -> Vec<String> {
    let keeps = |s: &str| codec.normalize(s) == s;
    let mut chars: BTreeSet<char> = BTreeSet::new();
    for id in 0..codec.size() as u32 {
        if !matches!(
            codec.token_form(id),
            TokenForm::WordStart | TokenForm::Continuation
        ) {
            continue;
        }
        let Some(shown) = codec.display_token(id) else {
            continue;
        };
        let mut it = shown.chars();
        if let (Some(c), None) = (it.next(), it.next()) {
            if c.is_ascii_alphanumeric() && keeps(shown) {
                chars.insert(c);
            }
        }
    }
    if chars.is_empty() {
        chars = ('a'..='z')
            .chain('0'..='9')
            .filter(|c| keeps(&c.to_string()))
            .collect();
    }
    chars.into_iter().map(String::from).collect()
}

/// Byte span of every word the encoding holds, in text order: the union of the spans of
/// its tokens. Special tokens and empty spans are ignored; a word overlapping the one
/// before it (which no pre-tokenizer produces) is dropped so splices stay well defined.
pub(crate) fn word_spans(encoded: &Encoded) -> Vec<(usize, usize)> {
    let mut by_word: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (role, &(s, e)) in encoded.roles.iter().zip(&encoded.spans) {
        let Some(word) = role.word() else { continue };
        if s >= e {
            continue;
        }
        by_word
            .entry(word)
            .and_modify(|span| *span = (span.0.min(s), span.1.max(e)))
            .or_insert((s, e));
    }
    let mut spans: Vec<(usize, usize)> = by_word.into_values().collect();
    spans.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for span in spans {
        if out.last().is_none_or(|last| span.0 >= last.1) {
            out.push(span);
        }
    }
    out
}

/// Characters of the words at `spans`: the units of a character attack on a subword model.
pub(crate) fn char_units(text: &str, spans: &[(usize, usize)]) -> usize {
    spans
        .iter()
        .map(|&(s, e)| text.get(s..e).map_or(0, |w| w.chars().count()))
        .sum()
}

/// The unedited example as character units of its words. `alphabet` is sorted.
pub(crate) fn initial_state(
    text: &str,
    spans: &[(usize, usize)],
    codec: &TextCodec,
    alphabet: &[String],
) -> State {
    let words: Vec<Vec<Unit>> = spans
        .iter()
        .map(|&(s, e)| {
            text.get(s..e)
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    let text = c.to_string();
                    let norm = codec.normalize(&text);
                    let id = alphabet.binary_search(&norm).map_or(OUTSIDE, |i| i as u32);
                    Unit { id, text, norm }
                })
                .collect()
        })
        .collect();
    let n = words.len();
    State {
        words,
        ops: Vec::new(),
        changed: vec![false; n],
        score: 0.0,
    }
}

/// Which words of a state edits may touch: those with a letter or digit.
pub(crate) fn editable_words(state: &State) -> Vec<bool> {
    state
        .words
        .iter()
        .map(|w| w.iter().any(|u| u.text.chars().any(char::is_alphanumeric)))
        .collect()
}
