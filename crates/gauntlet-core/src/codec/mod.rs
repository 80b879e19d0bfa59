//! Text to ids and back, through a HuggingFace `tokenizers` pipeline saved as
//! `tokenizer.json` in the bundle.
//!
//! Word models use a `WordLevel` model behind a `Whitespace` pre-tokenizer. Character models
//! use a `WordLevel` model over the alphabet behind `WhitespaceSplit` then a one-character
//! `Split`, so every character is a token; words are recovered from the byte offsets
//! (characters of one word are contiguous, words are separated by whitespace).
//! Invariants: id 0 is the padding token and id 1 the unknown token in both kinds; every
//! [`Encoded`] keeps, for each word it holds, the byte span of that word in the original text
//! so attacks can splice edits back into the user's own wording.
//!
//! Subword models (`scheme = "subword"` in the manifest) use any HuggingFace tokenizer
//! instead (see `subword`): they read word-kind ids, one per token, special tokens included;
//! padding and unknown ids come from the tokenizer, and each token carries a [`TokenRole`]
//! (special, whole word, or piece of a word) and its own byte span.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Tokenizer,
};

use crate::classifier::{InputKind, TokenIds};
use crate::error::CoreError;
use crate::manifest::{TokenScheme, Tokenization};

mod subword;
mod wordpiece;

pub use wordpiece::bert_wordpiece;

/// Id of the padding token in every vocabulary and alphabet.
pub const PAD_ID: u32 = 0;
/// Id of the unknown token in every vocabulary and alphabet.
pub const UNK_ID: u32 = 1;
/// Padding token string.
pub const PAD_TOKEN: &str = "[PAD]";
/// Unknown token string.
pub const UNK_TOKEN: &str = "[UNK]";

/// One text encoded for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The ids the model reads.
    pub ids: TokenIds,
    /// Byte span in the original text of each word in `ids` (one per word token for word
    /// models, one per word for character models, one per token for subword models, where
    /// special tokens have the tokenizer's empty span).
    pub spans: Vec<(usize, usize)>,
    /// Whether words (or characters of a word) were dropped to fit the model's limits.
    pub truncated: bool,
    /// Role of each id of word-kind encodings (every token of a native word model is a
    /// whole word); empty for character models.
    pub roles: Vec<TokenRole>,
}

/// What one token of a word-kind encoding stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRole {
    /// A token the post-processor added (`[CLS]`, `</s>`), or another special token: never
    /// edited.
    Special,
    /// A whole word: the only token of word `word` (0-based, in text order).
    Word {
        /// Index of the word in the text.
        word: usize,
    },
    /// One of several pieces of word `word` (or the rest of a word cut by truncation).
    Piece {
        /// Index of the word in the text.
        word: usize,
    },
}

impl TokenRole {
    /// The word the token belongs to (`None` for special tokens).
    pub fn word(self) -> Option<usize> {
        match self {
            Self::Special => None,
            Self::Word { word } | Self::Piece { word } => Some(word),
        }
    }
}

/// The kind of a vocabulary token, by the tokenizer's word-boundary markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenForm {
    /// Padding, unknown, or a token a post-processor adds: never a replacement.
    Special,
    /// A token that starts a word (`good`, `Ġgood`, `▁good`); every non-special token of a
    /// native vocabulary.
    WordStart,
    /// A token that continues a word (`##ing`; byte-level BPE tokens without `Ġ`).
    Continuation,
}

/// Every id's readable spelling and form, in id order ([`TextCodec::spellings`]).
#[derive(Debug, Clone)]
pub struct Spellings {
    /// [`TextCodec::display_token`] of every id; empty where an id has none.
    pub tokens: Arc<[String]>,
    /// Whether an id's spelling is one non-empty word without whitespace: a spelling that
    /// can be shown and spliced into a text as one word.
    pub one_word: Vec<bool>,
    /// [`TextCodec::token_form`] of every id.
    pub forms: Vec<TokenForm>,
}

/// [`Spellings::one_word`] of one spelling.
fn one_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// Options for building a vocabulary or alphabet from training texts.
#[derive(Debug, Clone)]
pub struct VocabularyOptions {
    /// Word or character model.
    pub kind: InputKind,
    /// Lowercase before tokenizing.
    pub lowercase: bool,
    /// Keep only tokens seen at least this often.
    pub min_count: usize,
    /// Keep at most this many tokens (most frequent first), specials excluded.
    pub max_size: usize,
}

/// Encodes text for one bundle and maps ids back to strings.
#[derive(Debug, Clone)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    kind: InputKind,
    max_words: usize,
    max_word_chars: usize,
    id_to_token: Vec<String>,
    token_to_id: HashMap<String, u32>,
    word_vocabulary: HashSet<String>,
    subword: Option<subword::Subword>,
    /// [`Self::spellings`], built on first use: a server attacks one sentence per request,
    /// and rebuilding these per run cost more than a millisecond on a 15k-word vocabulary.
    spellings: OnceLock<Spellings>,
}

impl TextCodec {
    /// Builds a codec from a loaded tokenizer and the manifest's tokenization settings.
    /// `words` is the word vocabulary of a character model (empty for word models, whose
    /// vocabulary is the tokenizer's).
    pub fn new(
        tokenizer: Tokenizer,
        tokenization: &Tokenization,
        words: impl IntoIterator<Item = String>,
    ) -> Result<Self, CoreError> {
        if tokenization.scheme == TokenScheme::Subword {
            return Self::new_subword(tokenizer, tokenization);
        }
        let vocab = tokenizer.get_vocab(false);
        let mut id_to_token = vec![String::new(); vocab.len()];
        for (token, &id) in &vocab {
            let slot = id_to_token
                .get_mut(id as usize)
                .ok_or_else(|| CoreError::Tokenizer {
                    path: None,
                    message: format!("token ids are not contiguous: {token:?} has id {id}"),
                })?;
            *slot = token.clone();
        }
        if id_to_token.get(PAD_ID as usize).map(String::as_str) != Some(PAD_TOKEN)
            || id_to_token.get(UNK_ID as usize).map(String::as_str) != Some(UNK_TOKEN)
        {
            return Err(CoreError::Tokenizer {
                path: None,
                message: format!("ids 0 and 1 must be {PAD_TOKEN} and {UNK_TOKEN}"),
            });
        }
        let mut word_vocabulary: HashSet<String> = words.into_iter().collect();
        if tokenization.kind == InputKind::Word {
            word_vocabulary = id_to_token.iter().skip(2).cloned().collect();
        }
        Ok(Self {
            tokenizer,
            kind: tokenization.kind,
            max_words: tokenization.max_length,
            max_word_chars: tokenization.max_word_length,
            token_to_id: vocab.into_iter().collect(),
            id_to_token,
            word_vocabulary,
            subword: None,
            spellings: OnceLock::new(),
        })
    }

    fn new_subword(
        mut tokenizer: Tokenizer,
        tokenization: &Tokenization,
    ) -> Result<Self, CoreError> {
        if tokenization.kind != InputKind::Word {
            return Err(CoreError::Tokenizer {
                path: None,
                message: "subword tokenizers need kind = \"word\"".into(),
            });
        }
        // Added tokens may sit outside the model's vocabulary; ids may leave gaps.
        let vocab = tokenizer.get_vocab(true);
        let rows = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut id_to_token = vec![String::new(); rows];
        for (token, &id) in &vocab {
            id_to_token[id as usize] = token.clone();
        }
        let info = subword::Subword::new(&mut tokenizer, tokenization, &id_to_token)?;
        let word_vocabulary = info
            .forms
            .iter()
            .zip(&info.display)
            .filter(|(form, _)| **form == TokenForm::WordStart)
            .map(|(_, shown)| shown.clone())
            .collect();
        Ok(Self {
            tokenizer,
            kind: InputKind::Word,
            max_words: tokenization.max_length,
            max_word_chars: tokenization.max_word_length,
            token_to_id: vocab.into_iter().collect(),
            id_to_token,
            word_vocabulary,
            subword: Some(info),
            spellings: OnceLock::new(),
        })
    }

    /// Loads `tokenizer.json` (and nothing else) for the given settings.
    pub fn load(
        tokenizer_path: &Path,
        tokenization: &Tokenization,
        words: impl IntoIterator<Item = String>,
    ) -> Result<Self, CoreError> {
        let tokenizer = Tokenizer::from_file(tokenizer_path).map_err(|e| CoreError::Tokenizer {
            path: Some(tokenizer_path.to_owned()),
            message: e.to_string(),
        })?;
        Self::new(tokenizer, tokenization, words).map_err(|e| match e {
            CoreError::Tokenizer { message, .. } => CoreError::Tokenizer {
                path: Some(tokenizer_path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), CoreError> {
        self.tokenizer
            .save(path, true)
            .map_err(|e| CoreError::Tokenizer {
                path: Some(path.to_owned()),
                message: e.to_string(),
            })
    }

    /// Builds a vocabulary (word models) or alphabet (character models) from training
    /// texts. Returns the tokenizer and, for character models, the word vocabulary the
    /// attacks' out-of-vocabulary constraint checks against.
    pub fn build(
        texts: &[&str],
        options: &VocabularyOptions,
    ) -> Result<(Tokenizer, Vec<String>), CoreError> {
        let probe = tokenizer_from_vocab(options.kind, options.lowercase, &[])?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut word_counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for (piece, _) in pre_tokenize(&probe, text)? {
                match options.kind {
                    InputKind::Word => *counts.entry(piece).or_default() += 1,
                    InputKind::Char => {
                        for ch in piece.chars() {
                            *counts.entry(ch.to_string()).or_default() += 1;
                        }
                        *word_counts.entry(piece).or_default() += 1;
                    }
                }
            }
        }
        let tokens = most_frequent(counts, options.min_count, options.max_size);
        let words = match options.kind {
            InputKind::Word => Vec::new(),
            InputKind::Char => most_frequent(word_counts, 1, usize::MAX),
        };
        Ok((
            tokenizer_from_vocab(options.kind, options.lowercase, &tokens)?,
            words,
        ))
    }

    /// Encodes one text. An empty (or all-whitespace) text is an error; a text longer than
    /// the model's limits is truncated and flagged.
    pub fn encode(&self, text: &str) -> Result<Encoded, CoreError> {
        if text.trim().is_empty() {
            return Err(CoreError::InvalidText("the text is empty".into()));
        }
        if let Some(info) = &self.subword {
            return info.encode(&self.tokenizer, text);
        }
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| CoreError::Tokenizer {
                path: None,
                message: e.to_string(),
            })?;
        let ids = encoding.get_ids();
        let offsets = encoding.get_offsets();
        let mut truncated = false;
        let encoded = match self.kind {
            InputKind::Word => {
                truncated = ids.len() > self.max_words;
                let n = ids.len().min(self.max_words);
                Encoded {
                    ids: TokenIds::Words(ids[..n].to_vec()),
                    spans: offsets[..n].to_vec(),
                    truncated,
                    roles: (0..n).map(|word| TokenRole::Word { word }).collect(),
                }
            }
            InputKind::Char => {
                let mut words: Vec<Vec<u32>> = Vec::new();
                let mut spans: Vec<(usize, usize)> = Vec::new();
                for (&id, &(start, end)) in ids.iter().zip(offsets) {
                    match spans.last_mut() {
                        Some(span) if span.1 == start => {
                            span.1 = end;
                            if let Some(word) = words.last_mut() {
                                if word.len() < self.max_word_chars {
                                    word.push(id);
                                } else {
                                    truncated = true;
                                }
                            }
                        }
                        _ => {
                            spans.push((start, end));
                            words.push(vec![id]);
                        }
                    }
                }
                if words.len() > self.max_words {
                    truncated = true;
                    words.truncate(self.max_words);
                    spans.truncate(self.max_words);
                }
                Encoded {
                    ids: TokenIds::Chars(words),
                    spans,
                    truncated,
                    roles: Vec::new(),
                }
            }
        };
        if encoded.ids.is_empty() {
            return Err(CoreError::InvalidText(
                "the text has no tokens the model can read".into(),
            ));
        }
        Ok(encoded)
    }

    /// Whether the model reads words or characters.
    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// Whether this is a HuggingFace subword tokenizer (`scheme = "subword"`).
    pub fn is_subword(&self) -> bool {
        self.subword.is_some()
    }

    /// Id of the padding token ([`PAD_ID`] for native vocabularies).
    pub fn pad_id(&self) -> u32 {
        self.subword.as_ref().map_or(PAD_ID, |s| s.pad_id)
    }

    /// Id of the unknown token ([`UNK_ID`] for native vocabularies).
    pub fn unk_id(&self) -> u32 {
        self.subword.as_ref().map_or(UNK_ID, |s| s.unk_id)
    }

    /// The form of a vocabulary id: special (never an edit's replacement), word start, or
    /// continuation piece. Native vocabularies: PAD and UNK are special, the rest word starts.
    pub fn token_form(&self, id: u32) -> TokenForm {
        match &self.subword {
            Some(info) => info
                .forms
                .get(id as usize)
                .copied()
                .unwrap_or(TokenForm::Special),
            None if id == PAD_ID || id == UNK_ID || id as usize >= self.size() => {
                TokenForm::Special
            }
            None => TokenForm::WordStart,
        }
    }

    /// The readable spelling of a token: without `##`, `Ġ` or `▁` markers, byte-level
    /// tokens decoded (the token itself for native vocabularies).
    pub fn display_token(&self, id: u32) -> Option<&str> {
        match &self.subword {
            Some(info) => info.display.get(id as usize).map(String::as_str),
            None => self.token(id),
        }
    }

    /// Every id's readable spelling and form; built once per codec and shared.
    pub fn spellings(&self) -> &Spellings {
        self.spellings.get_or_init(|| {
            let tokens: Arc<[String]> = (0..self.size() as u32)
                .map(|id| self.display_token(id).unwrap_or_default().to_owned())
                .collect();
            Spellings {
                one_word: tokens.iter().map(|t| one_word(t)).collect(),
                forms: (0..self.size() as u32)
                    .map(|id| self.token_form(id))
                    .collect(),
                tokens,
            }
        })
    }

    /// Number of ids (vocabulary or alphabet size, specials included).
    pub fn size(&self) -> usize {
        self.id_to_token.len()
    }

    /// The token (word, or character, or subword piece as the vocabulary spells it) of an
    /// id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.id_to_token.get(id as usize).map(String::as_str)
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// Whether a (normalized) word is in the model's word vocabulary. For character models
    /// this is the training vocabulary shipped as `words.txt`.
    pub fn knows_word(&self, word: &str) -> bool {
        self.word_vocabulary.contains(word)
    }

    /// The word vocabulary (for character models, the training words; for word models, the
    /// tokenizer's vocabulary without specials; for subword models, the readable spellings
    /// of word-start tokens), sorted.
    pub fn word_vocabulary(&self) -> Vec<String> {
        let mut words: Vec<String> = self.word_vocabulary.iter().cloned().collect();
        words.sort();
        words
    }

    /// Maximum number of words read (tokens, specials included, for subword models).
    pub fn max_words(&self) -> usize {
        self.max_words
    }

    /// Maximum number of characters read per word (character models).
    pub fn max_word_chars(&self) -> usize {
        self.max_word_chars
    }

    /// Applies the tokenizer's normalizer (e.g. lowercasing) to a word.
    pub fn normalize(&self, word: &str) -> String {
        let mut normalized = NormalizedString::from(word);
        if let Some(normalizer) = self.tokenizer.get_normalizer() {
            if normalizer.normalize(&mut normalized).is_err() {
                return word.to_owned();
            }
        }
        normalized.get().to_owned()
    }
}

fn most_frequent(counts: HashMap<String, usize>, min_count: usize, max: usize) -> Vec<String> {
    // Sort by count, then lexicographically, so equal data gives equal ids on every run.
    let mut entries: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= min_count.max(1))
        .collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    entries.truncate(max);
    entries.into_iter().map(|(t, _)| t).collect()
}

/// A pre-tokenized piece and its byte span in the original text.
type Piece = (String, (usize, usize));

fn pre_tokenize(tokenizer: &Tokenizer, text: &str) -> Result<Vec<Piece>, CoreError> {
    let err = |e: tokenizers::Error| CoreError::Tokenizer {
        path: None,
        message: e.to_string(),
    };
    let mut normalized = NormalizedString::from(text);
    if let Some(normalizer) = tokenizer.get_normalizer() {
        normalizer.normalize(&mut normalized).map_err(err)?;
    }
    let mut pre = PreTokenizedString::from(normalized);
    if let Some(pre_tokenizer) = tokenizer.get_pre_tokenizer() {
        // Only the word split matters for counting; characters are counted from the words.
        let whitespace = tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
        match tokenizer.get_pre_tokenizer() {
            Some(tokenizers::PreTokenizerWrapper::Sequence(_)) => {
                whitespace.pre_tokenize(&mut pre).map_err(err)?
            }
            _ => pre_tokenizer.pre_tokenize(&mut pre).map_err(err)?,
        }
    }
    Ok(pre
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(s, offsets, _)| (s.to_owned(), offsets))
        .collect())
}

/// Builds the tokenizer pipeline for a vocabulary (specials are prepended).
fn tokenizer_from_vocab(
    kind: InputKind,
    lowercase: bool,
    tokens: &[String],
) -> Result<Tokenizer, CoreError> {
    let mut vocab = BTreeMap::new();
    vocab.insert(PAD_TOKEN.to_owned(), PAD_ID);
    vocab.insert(UNK_TOKEN.to_owned(), UNK_ID);
    for token in tokens {
        let next = vocab.len() as u32;
        vocab.entry(token.clone()).or_insert(next);
    }
    let pre_tokenizer = match kind {
        InputKind::Word => json!({"type": "Whitespace"}),
        InputKind::Char => json!({
            "type": "Sequence",
            "pretokenizers": [
                {"type": "WhitespaceSplit"},
                {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false}
            ]
        }),
    };
    let normalizer = if lowercase {
        json!({"type": "Lowercase"})
    } else {
        serde_json::Value::Null
    };
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK_TOKEN}
    });
    spec.to_string()
        .parse::<Tokenizer>()
        .map_err(|e| CoreError::Tokenizer {
            path: None,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
