//! BERT-style WordPiece tokenizers from a plain vocabulary (BERT's `vocab.txt`, one token a
//! line, the line number being the id), for bundles whose model came without a
//! `tokenizer.json`, and for tests that need a real subword tokenizer.
//!
//! The pipeline is BERT's: `BertNormalizer` (optionally lowercasing), `BertPreTokenizer`,
//! greedy longest-match WordPiece with `##` continuations, `[CLS] $A [SEP]` (pairs
//! `[CLS] $A [SEP] $B [SEP]`) post-processing and the WordPiece decoder. `[PAD]`, `[UNK]`,
//! `[CLS]` and `[SEP]` must be in the vocabulary; they and `[MASK]`, when present, are
//! registered as special tokens.

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
// WordPiece's own `Vocab` alias is private; BPE exports the same map type.
use tokenizers::models::bpe::Vocab;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::CoreError;

/// BERT's special tokens, the first four required.
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

fn error(message: impl std::fmt::Display) -> CoreError {
    CoreError::Tokenizer {
        path: None,
        message: message.to_string(),
    }
}

/// A BERT-style WordPiece tokenizer whose token `tokens[i]` has id `i`.
pub fn bert_wordpiece(tokens: &[String], lowercase: bool) -> Result<Tokenizer, CoreError> {
    let id = |token: &str| {
        tokens
            .iter()
            .position(|t| t == token)
            .and_then(|i| u32::try_from(i).ok())
    };
    for required in &SPECIALS[..4] {
        if id(required).is_none() {
            return Err(error(format!(
                "the WordPiece vocabulary has no {required} token; BERT-style tokenizers need [PAD], [UNK], [CLS] and [SEP]"
            )));
        }
    }
    if let Some(i) = (1..tokens.len()).find(|&i| tokens[..i].contains(&tokens[i])) {
        return Err(error(format!(
            "the WordPiece vocabulary lists {:?} twice (ids {} and {i})",
            tokens[i],
            tokens[..i]
                .iter()
                .position(|t| *t == tokens[i])
                .unwrap_or(0)
        )));
    }
    let vocab: Vocab = tokens.iter().cloned().zip(0..).collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(error)?;
    let (cls, sep) = (id("[CLS]").unwrap_or(0), id("[SEP]").unwrap_or(0));
    let post_processor = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(error)?
        .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
        .map_err(error)?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(error)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(error)?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(post_processor));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    let specials: Vec<AddedToken> = SPECIALS
        .iter()
        .filter(|t| id(t).is_some())
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(specials).map_err(error)?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(extra: &[&str]) -> Vec<String> {
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "play", "##ing", "good"]
            .iter()
            .chain(extra)
            .map(|t| (*t).to_owned())
            .collect()
    }

    #[test]
    fn encodes_like_bert_with_specials_and_continuations() {
        let tokenizer = bert_wordpiece(&vocab(&[]), true).unwrap();
        let enc = tokenizer.encode("Good PLAYING", true).unwrap();
        assert_eq!(enc.get_ids(), [2, 6, 4, 5, 3]);
        let enc = tokenizer.encode("good xyz", true).unwrap();
        assert_eq!(enc.get_ids(), [2, 6, 1, 3]);
    }

    #[test]
    fn cased_tokenizers_keep_case() {
        let tokenizer = bert_wordpiece(&vocab(&["Good"]), false).unwrap();
        let enc = tokenizer.encode("Good good", true).unwrap();
        assert_eq!(enc.get_ids(), [2, 7, 6, 3]);
    }

    #[test]
    fn missing_specials_and_duplicates_are_refused() {
        let mut no_sep = vocab(&[]);
        no_sep.retain(|t| t != "[SEP]");
        let err = bert_wordpiece(&no_sep, true).unwrap_err().to_string();
        assert!(err.contains("[SEP]"), "{err}");
        let err = bert_wordpiece(&vocab(&["good"]), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
