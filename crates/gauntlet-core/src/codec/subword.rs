//! HuggingFace subword tokenizers (WordPiece, BPE, Unigram) behind [`super::TextCodec`].
//!
//! A subword codec reads any `tokenizer.json` the `tokenizers` library saves. It encodes like
//! a HuggingFace pipeline does for one sequence: the text is tokenized without special
//! tokens, truncated on the right to `max_length` minus the tokens the post-processor adds,
//! then post-processed (`[CLS] … [SEP]`, `<s> … </s>`). The tokenizer's own truncation and
//! padding settings are cleared, since the backends pad.
//!
//! Every vocabulary id gets a [`TokenForm`]: special (added special tokens, the
//! post-processor's tokens, padding and unknown), word-start, or continuation. Word-start is
//! read from the model's markers: WordPiece's `continuing_subword_prefix` (`##`) marks
//! continuations; byte-level BPE's `Ġ` and Metaspace's `▁` mark word starts. Every token of
//! an encoding gets a [`TokenRole`]: special, a whole word (its word is this one token, not
//! cut by truncation), or a piece. Invariants: spans are byte spans of the original text
//! with surrounding whitespace trimmed (specials keep the tokenizer's empty span); the
//! display form of a token has its markers removed, so splicing display forms of a word's
//! pieces over their spans gives readable text.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::{Decoder, PostProcessor, PostProcessorWrapper, Tokenizer, TruncationDirection};

use super::{Encoded, TokenForm, TokenRole};
use crate::classifier::TokenIds;
use crate::error::CoreError;
use crate::manifest::Tokenization;

/// How a subword vocabulary marks where words start.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    /// Continuation pieces start with this prefix (WordPiece `##`).
    ContinuationPrefix(String),
    /// Word-start pieces start with this character (byte-level BPE `Ġ`, Metaspace `▁`).
    WordStart { mark: char, byte_level: bool },
    /// Every non-special token is a word (WordLevel vocabularies).
    None,
}

/// What a subword codec knows beyond the tokenizer itself.
#[derive(Debug, Clone)]
pub(super) struct Subword {
    pub pad_id: u32,
    pub unk_id: u32,
    pub forms: Vec<TokenForm>,
    pub display: Vec<String>,
    /// Tokens of the text kept before the post-processor adds its own.
    room: usize,
    /// The tokenizer without its post-processor: some post-processors (RoBERTa's offset
    /// trimming) are not idempotent, so the text is tokenized by this one and post-processed
    /// exactly once by the real one.
    plain: Tokenizer,
}

fn tokenizer_error(e: impl std::fmt::Display) -> CoreError {
    CoreError::Tokenizer {
        path: None,
        message: e.to_string(),
    }
}

impl Subword {
    /// Reads markers and specials from `tokenizer` (whose truncation and padding are
    /// cleared) for a vocabulary `id_to_token`.
    pub(super) fn new(
        tokenizer: &mut Tokenizer,
        tokenization: &Tokenization,
        id_to_token: &[String],
    ) -> Result<Self, CoreError> {
        tokenizer.with_truncation(None).map_err(tokenizer_error)?;
        tokenizer.with_padding(None);
        let lookup = |token: &str, role: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                tokenizer_error(format!(
                    "the {role} token {token:?} named in the manifest is not in the vocabulary"
                ))
            })
        };
        let pad_id = lookup(&tokenization.pad_token, "padding")?;
        let unk_id = lookup(&tokenization.unk_token, "unknown")?;
        let spec: Value =
            serde_json::from_str(&tokenizer.to_string(false).map_err(tokenizer_error)?)
                .map_err(tokenizer_error)?;
        let marker = marker(&spec);
        let mut specials: HashSet<u32> = HashSet::from([pad_id, unk_id]);
        specials.extend(
            tokenizer
                .get_added_tokens_decoder()
                .into_iter()
                .filter(|(_, t)| t.special)
                .map(|(id, _)| id),
        );
        collect_post_processor_ids(&spec["post_processor"], &mut specials);
        let mut forms = Vec::with_capacity(id_to_token.len());
        let mut display = Vec::with_capacity(id_to_token.len());
        for (id, token) in id_to_token.iter().enumerate() {
            let special = u32::try_from(id).is_ok_and(|id| specials.contains(&id));
            let (form, shown) = classify(token, special, &marker);
            forms.push(form);
            display.push(shown);
        }
        let added = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let room = tokenization.max_length.saturating_sub(added);
        if room == 0 {
            return Err(tokenizer_error(format!(
                "max_length {} leaves no room for text after the {added} special tokens",
                tokenization.max_length
            )));
        }
        let mut plain = tokenizer.clone();
        plain.with_post_processor(None::<PostProcessorWrapper>);
        Ok(Self {
            pad_id,
            unk_id,
            forms,
            display,
            room,
            plain,
        })
    }

    /// Encodes `text` with special tokens, truncated to the model's length.
    pub(super) fn encode(&self, tokenizer: &Tokenizer, text: &str) -> Result<Encoded, CoreError> {
        let mut encoding = self.plain.encode(text, false).map_err(tokenizer_error)?;
        // Pieces per word in the whole text, so a word cut by truncation is not "whole".
        let mut pieces: BTreeMap<u32, usize> = BTreeMap::new();
        for w in encoding.get_word_ids().iter().flatten() {
            *pieces.entry(*w).or_default() += 1;
        }
        let truncated = encoding.len() > self.room;
        encoding.truncate(self.room, 0, TruncationDirection::Right);
        let encoding = tokenizer
            .post_process(encoding, None, true)
            .map_err(tokenizer_error)?;
        let ids = encoding.get_ids().to_vec();
        let mask = encoding.get_special_tokens_mask();
        let mut words: BTreeMap<u32, usize> = BTreeMap::new();
        let mut roles = Vec::with_capacity(ids.len());
        let mut spans = Vec::with_capacity(ids.len());
        for (k, (&id, &(start, end))) in ids.iter().zip(encoding.get_offsets()).enumerate() {
            // The unknown token stands for a word of the text; other specials do not.
            let readable = id == self.unk_id
                || matches!(
                    self.forms.get(id as usize),
                    Some(TokenForm::WordStart | TokenForm::Continuation)
                );
            let special = !readable || mask.get(k).is_some_and(|&m| m == 1);
            if special {
                roles.push(TokenRole::Special);
                spans.push((start, end));
                continue;
            }
            let source = encoding.get_word_ids().get(k).copied().flatten();
            let next = words.len();
            // A token without a word (no pre-tokenizer) is its own piece.
            let word = match source {
                Some(w) => *words.entry(w).or_insert(next),
                None => *words.entry(u32::MAX - k as u32).or_insert(next),
            };
            // A whole word is the word's only token and spells something (not a lone space).
            let blank = self
                .display
                .get(id as usize)
                .is_some_and(|shown| shown.trim().is_empty());
            let whole = !blank && source.is_some_and(|w| pieces.get(&w) == Some(&1));
            roles.push(if whole {
                TokenRole::Word { word }
            } else {
                TokenRole::Piece { word }
            });
            spans.push(trim_span(text, start, end));
        }
        if words.is_empty() {
            return Err(CoreError::InvalidText(
                "the text has no tokens the model can read".into(),
            ));
        }
        Ok(Encoded {
            ids: TokenIds::Words(ids),
            spans,
            truncated,
            roles,
        })
    }
}

/// The span without leading or trailing whitespace (byte-level tokens carry their space).
fn trim_span(text: &str, start: usize, end: usize) -> (usize, usize) {
    let Some(slice) = text.get(start..end) else {
        return (start, end);
    };
    let lead = slice.len() - slice.trim_start().len();
    let kept = slice.trim().len();
    (start + lead, start + lead + kept)
}

/// The form and readable spelling of one vocabulary token.
fn classify(token: &str, special: bool, marker: &Marker) -> (TokenForm, String) {
    if special || token.is_empty() {
        return (TokenForm::Special, token.to_owned());
    }
    match marker {
        Marker::ContinuationPrefix(prefix) => match token.strip_prefix(prefix.as_str()) {
            Some(rest) if !rest.is_empty() => (TokenForm::Continuation, rest.to_owned()),
            _ => (TokenForm::WordStart, token.to_owned()),
        },
        Marker::WordStart { mark, byte_level } => {
            let (form, rest) = match token.strip_prefix(*mark) {
                Some(rest) => (TokenForm::WordStart, rest),
                None => (TokenForm::Continuation, token),
            };
            let shown = if *byte_level {
                ByteLevel::default()
                    .decode(vec![rest.to_owned()])
                    .unwrap_or_else(|_| rest.to_owned())
            } else {
                rest.replace(*mark, " ")
            };
            (form, shown)
        }
        Marker::None => (TokenForm::WordStart, token.to_owned()),
    }
}

/// The marker convention of a serialized tokenizer.
fn marker(spec: &Value) -> Marker {
    if let Some(prefix) = spec["model"]["continuing_subword_prefix"].as_str() {
        if !prefix.is_empty() {
            return Marker::ContinuationPrefix(prefix.to_owned());
        }
    }
    if spec["model"]["type"].as_str() == Some("WordPiece") {
        return Marker::ContinuationPrefix("##".into());
    }
    let mut found = Marker::None;
    for part in [&spec["pre_tokenizer"], &spec["decoder"]] {
        visit_components(part, &mut |component| {
            if found != Marker::None {
                return;
            }
            match component["type"].as_str() {
                Some("ByteLevel") => {
                    found = Marker::WordStart {
                        mark: 'Ġ',
                        byte_level: true,
                    }
                }
                Some("Metaspace") => {
                    let mark = component["replacement"]
                        .as_str()
                        .and_then(|r| r.chars().next())
                        .unwrap_or('▁');
                    found = Marker::WordStart {
                        mark,
                        byte_level: false,
                    }
                }
                _ => {}
            }
        });
    }
    found
}

/// Calls `f` on a pipeline component and, for `Sequence`s, on each member.
fn visit_components(component: &Value, f: &mut dyn FnMut(&Value)) {
    f(component);
    for key in ["pretokenizers", "decoders", "processors"] {
        if let Some(members) = component[key].as_array() {
            for member in members {
                visit_components(member, f);
            }
        }
    }
}

/// Ids the post-processor inserts (`TemplateProcessing`, `BertProcessing`,
/// `RobertaProcessing`, and sequences of them).
fn collect_post_processor_ids(post_processor: &Value, out: &mut HashSet<u32>) {
    visit_components(post_processor, &mut |component| {
        if let Some(tokens) = component["special_tokens"].as_object() {
            for token in tokens.values() {
                let ids = token["ids"].as_array().into_iter().flatten();
                out.extend(ids.filter_map(Value::as_u64).filter_map(to_u32));
            }
        }
        for key in ["sep", "cls"] {
            if let Some(id) = component[key][1].as_u64().and_then(to_u32) {
                out.insert(id);
            }
        }
    });
}

fn to_u32(v: u64) -> Option<u32> {
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests;
