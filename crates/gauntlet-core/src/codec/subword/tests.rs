use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::codec::{TextCodec, TokenForm, TokenRole};
use crate::manifest::{TokenScheme, Tokenization};
use crate::{CoreError, InputKind, TokenIds};

/// PAD and UNK deliberately sit away from ids 0 and 1.
const WORDPIECE_VOCAB: [&str; 21] = [
    "the", "[CLS]", "[SEP]", "[PAD]", "movie", "[UNK]", "was", "good", "great", "bad", "play",
    "##ing", "##ed", "un", "##believ", "##able", "!", ",", "a", "film", "[MASK]",
];

fn tokenization(pad: &str, unk: &str, max_length: usize) -> Tokenization {
    Tokenization {
        kind: InputKind::Word,
        lowercase: true,
        max_length,
        max_word_length: 0,
        pad_token: pad.into(),
        unk_token: unk.into(),
        scheme: TokenScheme::Subword,
    }
}

/// A BERT-style uncased WordPiece tokenizer built with the `tokenizers` crate.
fn wordpiece() -> Tokenizer {
    let tokens: Vec<String> = WORDPIECE_VOCAB.iter().map(|t| (*t).to_owned()).collect();
    crate::codec::bert_wordpiece(&tokens, true).unwrap()
}

fn wordpiece_codec(max_length: usize) -> TextCodec {
    TextCodec::new(wordpiece(), &tokenization("[PAD]", "[UNK]", max_length), []).unwrap()
}

/// Merges that build each word left to right; earlier words take precedence.
fn chain_merges(words: &[&str]) -> Vec<(String, String)> {
    let mut merges: Vec<(String, String)> = Vec::new();
    for word in words {
        let chars: Vec<String> = word.chars().map(String::from).collect();
        let mut acc = chars[0].clone();
        for c in &chars[1..] {
            let merge = (acc.clone(), c.clone());
            if !merges.contains(&merge) {
                merges.push(merge);
            }
            acc.push_str(c);
        }
    }
    merges
}

/// A RoBERTa-style byte-level BPE tokenizer (no prefix space, offsets trimmed).
fn byte_level_bpe() -> Tokenizer {
    // "é" is the two byte-level symbols "Ã©".
    let words = ["Ġgood", "Ġmovie", "Ġbad", "ĠcafÃ©", "good"];
    let merges = chain_merges(&words);
    let mut vocab: Vec<String> = ["<s>", "<pad>", "</s>", "<unk>"].map(String::from).to_vec();
    for w in words {
        for c in w.chars() {
            if !vocab.contains(&c.to_string()) {
                vocab.push(c.to_string());
            }
        }
    }
    for (a, b) in &merges {
        vocab.push(format!("{a}{b}"));
    }
    let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().zip(0..).collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_post_processor(Some(RobertaProcessing::new(
        ("</s>".into(), 2),
        ("<s>".into(), 0),
    )));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials = ["<s>", "<pad>", "</s>", "<unk>"].map(|t| AddedToken::from(t, true));
    tokenizer.add_special_tokens(specials).unwrap();
    tokenizer
}

fn id(codec: &TextCodec, token: &str) -> u32 {
    codec.id(token).unwrap()
}

#[test]
fn wordpiece_encoding_has_specials_at_both_ends_and_marks_whole_words() {
    let c = wordpiece_codec(32);
    assert!(c.is_subword());
    assert_eq!((c.pad_id(), c.unk_id()), (3, 5));
    let text = "The movie was unbelievable!";
    let enc = c.encode(text).unwrap();
    let expected: Vec<u32> = [
        "[CLS]", "the", "movie", "was", "un", "##believ", "##able", "!", "[SEP]",
    ]
    .iter()
    .map(|t| id(&c, t))
    .collect();
    assert_eq!(enc.ids, TokenIds::Words(expected));
    use TokenRole::{Piece, Special, Word};
    assert_eq!(
        enc.roles,
        vec![
            Special,
            Word { word: 0 },
            Word { word: 1 },
            Word { word: 2 },
            Piece { word: 3 },
            Piece { word: 3 },
            Piece { word: 3 },
            Word { word: 4 },
            Special
        ]
    );
    let pieces: Vec<&str> = enc.spans[1..8].iter().map(|&(s, e)| &text[s..e]).collect();
    assert_eq!(pieces, ["The", "movie", "was", "un", "believ", "able", "!"]);
    assert!(!enc.truncated);
}

#[test]
fn wordpiece_forms_and_display_strip_the_continuation_prefix() {
    let c = wordpiece_codec(32);
    assert_eq!(c.token_form(id(&c, "play")), TokenForm::WordStart);
    assert_eq!(c.token_form(id(&c, "##ing")), TokenForm::Continuation);
    for special in ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"] {
        assert_eq!(
            c.token_form(id(&c, special)),
            TokenForm::Special,
            "{special}"
        );
    }
    assert_eq!(c.display_token(id(&c, "##ing")), Some("ing"));
    assert_eq!(c.display_token(id(&c, "good")), Some("good"));
    assert!(c.knows_word("good") && !c.knows_word("ing") && !c.knows_word("[CLS]"));
}

#[test]
fn truncation_keeps_room_for_the_specials_and_cuts_words_into_pieces() {
    let c = wordpiece_codec(6);
    let enc = c.encode("the movie was unbelievable").unwrap();
    assert!(enc.truncated);
    assert_eq!(enc.ids.positions(), 6);
    let TokenIds::Words(ids) = &enc.ids else {
        panic!("word ids expected")
    };
    assert_eq!(ids[4], id(&c, "un"));
    assert_eq!(ids[5], id(&c, "[SEP]"));
    // "un" is all that is left of its word, but it is not the whole word.
    assert_eq!(enc.roles[4], TokenRole::Piece { word: 3 });
    let err = TextCodec::new(wordpiece(), &tokenization("[PAD]", "[UNK]", 2), []).unwrap_err();
    assert!(err.to_string().contains("no room"), "{err}");
}

#[test]
fn unknown_words_are_words_and_unknown_tokens_names_are_rejected() {
    let c = wordpiece_codec(16);
    let enc = c.encode("zebra").unwrap();
    assert_eq!(
        enc.ids,
        TokenIds::Words(vec![id(&c, "[CLS]"), c.unk_id(), id(&c, "[SEP]")])
    );
    assert_eq!(enc.roles[1], TokenRole::Word { word: 0 });
    assert!(matches!(c.encode(" "), Err(CoreError::InvalidText(_))));
    let err = TextCodec::new(wordpiece(), &tokenization("<pad>", "[UNK]", 16), []).unwrap_err();
    assert!(err.to_string().contains("\"<pad>\""), "{err}");
}

#[test]
fn a_saved_subword_tokenizer_reloads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    wordpiece().save(&path, false).unwrap();
    let loaded = TextCodec::load(Path::new(&path), &tokenization("[PAD]", "[UNK]", 16), []);
    let text = "Great film, playing bad!";
    assert_eq!(
        loaded.unwrap().encode(text).unwrap(),
        wordpiece_codec(16).encode(text).unwrap()
    );
}

#[test]
fn byte_level_bpe_decodes_markers_and_bytes() {
    let c = TextCodec::new(byte_level_bpe(), &tokenization("<pad>", "<unk>", 16), []).unwrap();
    assert_eq!((c.pad_id(), c.unk_id()), (1, 3));
    let text = "good  movie café";
    let enc = c.encode(text).unwrap();
    let TokenIds::Words(ids) = &enc.ids else {
        panic!("word ids expected")
    };
    let tokens: Vec<&str> = ids.iter().map(|&i| c.token(i).unwrap()).collect();
    assert_eq!(tokens, ["<s>", "good", "Ġ", "Ġmovie", "ĠcafÃ©", "</s>"]);
    let shown: Vec<&str> = ids.iter().map(|&i| c.display_token(i).unwrap()).collect();
    assert_eq!(shown[1..5], ["good", "", "movie", "café"]);
    // The text-initial word has no space marker: a whole word all the same.
    assert_eq!(c.token_form(id(&c, "good")), TokenForm::Continuation);
    assert_eq!(c.token_form(id(&c, "Ġgood")), TokenForm::WordStart);
    use TokenRole::{Piece, Word};
    // The lone space token is no readable word.
    assert_eq!(
        enc.roles[1..5],
        [
            Word { word: 0 },
            Piece { word: 1 },
            Word { word: 2 },
            Word { word: 3 }
        ]
    );
    assert_eq!(&text[enc.spans[3].0..enc.spans[3].1], "movie");
    assert_eq!(&text[enc.spans[4].0..enc.spans[4].1], "café");
}

/// The manifest `tools/hf_to_gauntlet.py` writes (for a BERT classifier).
const HF_MANIFEST: &str = r#"# Written by tools/hf_to_gauntlet.py
format_version = 1
architecture = "bert"

[hyper_parameters]
source = "some/bert-sst2"
opset = 17
vocab_size = 21

[[labels]]
id = 0
key = "0"
name = "NEGATIVE"

[[labels]]
id = 1
key = "1"
name = "POSITIVE"

[tokenization]
kind = "word"
scheme = "subword"
lowercase = true
max_length = 16
max_word_length = 0
pad_token = "[PAD]"
unk_token = "[UNK]"

[training]
command = "python tools/hf_to_gauntlet.py some/bert-sst2 out"

[onnx]
file = "model.onnx"
input_ids = "input_ids"
attention_mask = "attention_mask"
token_type_ids = "token_type_ids"
output = "logits"
output_kind = "logits"
pad_id = 3
min_length = 1
"#;

#[test]
fn a_converted_huggingface_bundle_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gauntlet.toml"), HF_MANIFEST).unwrap();
    let tokenizer_path = dir.path().join("tokenizer.json");
    wordpiece().save(&tokenizer_path, true).unwrap();
    let manifest = crate::Manifest::load(dir.path()).unwrap();
    assert_eq!(manifest.tokenization.scheme, TokenScheme::Subword);
    let codec = TextCodec::load(&tokenizer_path, &manifest.tokenization, []).unwrap();
    assert_eq!(manifest.onnx.unwrap().pad_id, codec.pad_id());
    assert_eq!(codec.encode("a good film").unwrap().ids.positions(), 5);
}

#[test]
fn spellings_are_the_per_id_answers_built_once() {
    let codecs = [
        wordpiece_codec(32),
        TextCodec::new(byte_level_bpe(), &tokenization("<pad>", "<unk>", 16), []).unwrap(),
    ];
    for c in &codecs {
        let s = c.spellings();
        assert_eq!(s.tokens.len(), c.size());
        for id in 0..c.size() as u32 {
            let i = id as usize;
            let shown = c.display_token(id).unwrap_or_default();
            assert_eq!(s.tokens[i], shown, "id {id}");
            assert_eq!(s.forms[i], c.token_form(id), "id {id}");
            let one = !shown.is_empty() && !shown.chars().any(char::is_whitespace);
            assert_eq!(s.one_word[i], one, "id {id}: {shown:?}");
        }
        assert!(std::sync::Arc::ptr_eq(&s.tokens, &c.spellings().tokens));
    }
    // The word-boundary marker alone shows as nothing: never one word.
    let bpe = &codecs[1];
    let marker = bpe.id("Ġ").unwrap();
    assert_eq!(bpe.display_token(marker), Some(""));
    assert!(!bpe.spellings().one_word[marker as usize]);
    assert!(bpe.spellings().one_word[id(bpe, "Ġgood") as usize]);
}
