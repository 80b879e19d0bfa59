//! Attacks on subword (WordPiece, byte-level BPE) models, with the linear test model over a
//! hand-written vocabulary whose gradient is exact.

#![allow(clippy::unwrap_used)]

use gauntlet_core::{
    Classifier, EmbeddingTable, Example, InputKind, TextCodec, TokenIds, TokenScheme, Tokenization,
};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::state::{Edit, Space, State};
use crate::testing::LinearBag;
use crate::*;

/// Token and its sentiment (first embedding coordinate; class 0 is positive). The specials
/// and `##ing` lean positive, so flipping them would pay most: the attacks must not.
const VOCAB: [(&str, f32); 24] = [
    ("the", 0.0),
    ("[CLS]", 1.5),
    ("[SEP]", 1.5),
    ("[PAD]", 0.0),
    ("film", 0.0),
    ("[UNK]", 0.0),
    ("was", 0.0),
    ("good", 1.0),
    ("great", 1.0),
    ("bad", -1.0),
    ("awful", -2.0),
    ("play", 0.0),
    ("##ing", 1.5),
    ("##ed", 0.0),
    ("##ful", -3.0),
    ("un", 0.0),
    ("##believ", 0.0),
    ("##able", 0.0),
    ("!", 0.0),
    ("movie", 0.0),
    ("[MASK]", 0.0),
    ("fine", 0.5),
    ("##s", 0.0),
    ("a", 0.0),
];

pub(crate) const TEXT: &str = "The film was good playing great!";

fn tokenization(pad: &str, unk: &str) -> Tokenization {
    Tokenization {
        kind: InputKind::Word,
        lowercase: true,
        max_length: 32,
        max_word_length: 0,
        pad_token: pad.into(),
        unk_token: unk.into(),
        scheme: TokenScheme::Subword,
    }
}

pub(crate) fn wordpiece_codec() -> TextCodec {
    let tokens: Vec<String> = VOCAB.iter().map(|(t, _)| (*t).to_owned()).collect();
    let tokenizer = gauntlet_core::codec::bert_wordpiece(&tokens, true).unwrap();
    TextCodec::new(tokenizer, &tokenization("[PAD]", "[UNK]"), []).unwrap()
}

/// Two classes: logit₀ = x, logit₁ = −x for the summed sentiment x.
pub(crate) fn sentiment_model() -> LinearBag {
    let values = VOCAB.iter().flat_map(|&(_, s)| [s, 0.0]).collect();
    let table = EmbeddingTable {
        rows: VOCAB.len(),
        dim: 2,
        values,
    };
    LinearBag::new(
        InputKind::Word,
        table,
        vec![1.0, 0.0, -1.0, 0.0],
        vec![0.0; 2],
    )
}

fn run(codec: &TextCodec, model: &LinearBag, config: AttackConfig) -> ExampleReport {
    let attacker = Attacker::new(ModelRef::WhiteBox(model), codec, config).unwrap();
    let examples = [Example {
        text: TEXT.into(),
        label: 0,
    }];
    let report = attacker
        .run_examples(&examples, &RunControl::default())
        .unwrap();
    report.examples.into_iter().next().unwrap()
}

/// Token positions of `TEXT`: [CLS] the film was good play ##ing great ! [SEP].
const SPECIALS: [usize; 2] = [0, 9];
const PIECES: [usize; 2] = [5, 6];

fn flipped(report: &ExampleReport) -> Vec<(usize, String)> {
    report
        .operations
        .iter()
        .map(|op| match op {
            Operation::WordFlip { word, after, .. } => (*word, after.clone()),
            other => panic!("unexpected operation {other:?}"),
        })
        .collect()
}

/// The adversarial text, re-encoded, gets the probabilities the report claims.
fn assert_faithful(codec: &TextCodec, model: &LinearBag, report: &ExampleReport) {
    let again = codec.encode(&report.adversarial_text).unwrap();
    let p = model.predict(std::slice::from_ref(&again.ids)).unwrap();
    assert_eq!(
        p.argmax(0).0,
        report.after.label,
        "{}",
        report.adversarial_text
    );
    assert!((f64::from(p.argmax(0).1) - report.after.probability).abs() < 1e-5);
}

#[test]
fn hotflip_flips_only_whole_words_to_whole_words_by_default() {
    let (codec, model) = (wordpiece_codec(), sentiment_model());
    let config = AttackConfig {
        budget: Some(Budget::Changes(3)),
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&codec, &model, config);
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.units, 8, "specials are not units");
    for (word, after) in flipped(&report) {
        assert!(
            !SPECIALS.contains(&word) && !PIECES.contains(&word),
            "{word}"
        );
        let id = codec.id(&after).unwrap();
        assert_eq!(codec.token_form(id), gauntlet_core::TokenForm::WordStart);
    }
    assert!(report.adversarial_text.contains("awful"));
    assert!(report.adversarial_text.contains("playing"));
    assert_faithful(&codec, &model, &report);
}

#[test]
fn the_option_lets_hotflip_flip_pieces_but_never_specials() {
    let (codec, model) = (wordpiece_codec(), sentiment_model());
    let config = AttackConfig {
        budget: Some(Budget::Changes(3)),
        beam_width: 1,
        allow_subword_pieces: true,
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&codec, &model, config);
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    let flips = flipped(&report);
    // ##ing → ##ful pays 4.5, the most of any allowed flip.
    assert_eq!(flips[0], (6, "ful".to_owned()));
    assert!(flips.iter().all(|(w, _)| !SPECIALS.contains(w)));
    assert!(
        report.adversarial_text.contains("playful"),
        "{}",
        report.adversarial_text
    );
    assert_faithful(&codec, &model, &report);
}

#[test]
fn exact_and_random_searches_respect_the_same_positions() {
    let (codec, model) = (wordpiece_codec(), sentiment_model());
    for kind in [
        AttackKind::LossBeam,
        AttackKind::Random,
        AttackKind::RandomGradient,
    ] {
        let config = AttackConfig {
            budget: Some(Budget::Changes(3)),
            ..AttackConfig::new(kind)
        };
        let report = run(&codec, &model, config);
        for (word, after) in flipped(&report) {
            assert!(
                !SPECIALS.contains(&word) && !PIECES.contains(&word),
                "{kind}"
            );
            assert!(
                !after.is_empty() && !after.starts_with('['),
                "{kind}: {after}"
            );
        }
        assert_faithful(&codec, &model, &report);
    }
}

#[test]
fn unk_respells_whole_words_into_the_tokenizers_unknown_token() {
    let (codec, model) = (wordpiece_codec(), sentiment_model());
    let report = run(&codec, &model, AttackConfig::new(AttackKind::Unk));
    let [Operation::Unk {
        word,
        before,
        after,
    }] = report.operations.as_slice()
    else {
        panic!("one unk operation expected: {report:?}")
    };
    assert!(!SPECIALS.contains(word) && !PIECES.contains(word));
    assert_ne!(before, after);
    let again = codec.encode(&report.adversarial_text).unwrap();
    let TokenIds::Words(ids) = again.ids else {
        panic!("word ids")
    };
    assert_eq!(ids[*word], codec.unk_id(), "{}", report.adversarial_text);
}

#[test]
fn byte_level_bpe_flips_render_readable_words() {
    let words = ["Ġgood", "Ġmovie", "ĠcafÃ©", "good"];
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut vocab: Vec<String> = ["<s>", "<pad>", "</s>", "<unk>"].map(String::from).to_vec();
    for word in words {
        let chars: Vec<String> = word.chars().map(String::from).collect();
        let mut acc = String::new();
        for c in chars {
            if !vocab.contains(&c) {
                vocab.push(c.clone());
            }
            if !acc.is_empty() && !merges.contains(&(acc.clone(), c.clone())) {
                merges.push((acc.clone(), c.clone()));
                vocab.push(format!("{acc}{c}"));
            }
            acc.push_str(&c);
        }
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
    let codec = TextCodec::new(tokenizer, &tokenization("<pad>", "<unk>"), []).unwrap();

    let text = "good movie";
    let enc = codec.encode(text).unwrap();
    let tokens: Vec<String> = (0..codec.size() as u32)
        .map(|id| codec.display_token(id).unwrap().to_owned())
        .collect();
    let space = Space {
        kind: InputKind::Word,
        max_chars: 1,
        tokens: tokens.into(),
        unk_spellings: vec![],
        editable: vec![],
        unk_id: codec.unk_id(),
        retokenize: None,
    };
    let state = State::initial(text, &enc, &codec);
    let to = codec.id("ĠcafÃ©").unwrap();
    let edited = state.apply(&Edit::WordFlip { word: 2, to }, &space, 0.0);
    let spliced = edited.splice(text, &enc.spans, &[], None);
    assert_eq!(spliced, "good café");
    assert_eq!(
        codec.encode(&spliced).unwrap().ids,
        edited.ids(&space).unwrap()
    );
}

#[test]
fn replacements_take_the_original_capitalisation_when_the_codec_lowercases() {
    let uncased = wordpiece_codec();
    let restore = |original, new| crate::state::restore_case(original, new, &uncased);
    assert_eq!(restore("The", "awful"), "Awful");
    assert_eq!(restore("GOOD", "bad"), "BAD");
    assert_eq!(restore("good", "bad"), "bad");
    assert_eq!(restore("iPhone", "bad"), "bad");
    assert_eq!(restore("A", "bad"), "Bad");
    // Without a lowercasing normalizer `Awful` is another token: the spelling stays as found.
    let vocab: [(String, u32); 24] = std::array::from_fn(|i| (VOCAB[i].0.to_owned(), i as u32));
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let cased = TextCodec::new(tokenizer, &tokenization("[PAD]", "[UNK]"), []).unwrap();
    assert_eq!(crate::state::restore_case("The", "awful", &cased), "awful");
}
