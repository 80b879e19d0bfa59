//! Character attacks on a subword (WordPiece) model: text edits, re-tokenized and scored by
//! the exact loss, with the linear test model over a hand-written vocabulary.

#![allow(clippy::unwrap_used)]

use gauntlet_core::{
    Classifier, EmbeddingTable, Example, InputKind, TextCodec, TokenIds, TokenScheme, Tokenization,
};

use crate::testing::LinearBag;
use crate::*;

const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: [&str; 7] = ["the", "film", "was", "good", "##s", "##l", "##ly"];

/// Specials, words, then the letters `a`–`z` as word starts (continuations of single
/// letters are absent, so most misspellings read as `[UNK]`).
fn vocabulary() -> Vec<String> {
    let letters = ('a'..='z').map(String::from);
    SPECIALS
        .iter()
        .chain(&WORDS)
        .map(|t| (*t).to_owned())
        .chain(letters)
        .collect()
}

/// An uncased BERT-style WordPiece codec over [`vocabulary`].
fn codec() -> TextCodec {
    let tokenizer = gauntlet_core::codec::bert_wordpiece(&vocabulary(), true).unwrap();
    let tokenization = Tokenization {
        kind: InputKind::Word,
        lowercase: true,
        max_length: 32,
        max_word_length: 0,
        pad_token: "[PAD]".into(),
        unk_token: "[UNK]".into(),
        scheme: TokenScheme::Subword,
    };
    TextCodec::new(tokenizer, &tokenization, []).unwrap()
}

/// Two classes: logit₀ = x + bias, logit₁ = −x − bias for the summed sentiment x of the
/// tokens (listed ones; every other token, `[UNK]` included, is neutral).
fn model(sentiments: &[(&str, f32)], bias: f32) -> LinearBag {
    let vocab = vocabulary();
    let values = vocab
        .iter()
        .flat_map(|token| {
            let s = sentiments
                .iter()
                .find(|(t, _)| t == token)
                .map_or(0.0, |&(_, s)| s);
            [s, 0.0]
        })
        .collect();
    let table = EmbeddingTable {
        rows: vocab.len(),
        dim: 2,
        values,
    };
    LinearBag::new(
        InputKind::Word,
        table,
        vec![1.0, 0.0, -1.0, 0.0],
        vec![bias, -bias],
    )
}

/// `good` is positive, the suffix `##s` strongly negative: `goods` flips the prediction.
fn suffix_model() -> LinearBag {
    model(&[("good", 1.0), ("##s", -3.0)], 0.25)
}

fn examples(texts: &[&str]) -> Vec<Example> {
    texts
        .iter()
        .map(|t| Example {
            text: (*t).into(),
            label: 0,
        })
        .collect()
}

fn attack(
    model: ModelRef<'_>,
    codec: &TextCodec,
    config: AttackConfig,
    texts: &[&str],
) -> AttackReport {
    Attacker::new(model, codec, config)
        .unwrap()
        .run_examples(&examples(texts), &RunControl::default())
        .unwrap()
}

/// The adversarial text, re-encoded, gets the prediction the report claims.
fn assert_faithful(codec: &TextCodec, model: &LinearBag, report: &ExampleReport) {
    let again = codec.encode(&report.adversarial_text).unwrap();
    let p = model.predict(std::slice::from_ref(&again.ids)).unwrap();
    assert_eq!(
        p.argmax(0).0,
        report.after.label,
        "{}",
        report.adversarial_text
    );
    assert!(
        (f64::from(p.argmax(0).1) - report.after.probability).abs() < 1e-5,
        "{report:?}"
    );
}

fn char_ops_per_word(report: &ExampleReport) -> Vec<usize> {
    report
        .operations
        .iter()
        .map(|op| match op {
            Operation::Flip { word, .. }
            | Operation::Insert { word, .. }
            | Operation::Delete { word, .. } => *word,
            other => panic!("a character edit expected, got {other:?}"),
        })
        .collect()
}

fn without_times(mut report: AttackReport) -> AttackReport {
    report.summary.wall_time_ms = 0.0;
    report.summary.examples_per_second = 0.0;
    for e in &mut report.examples {
        e.wall_time_ms = 0.0;
        e.forward_passes = 0;
    }
    report
}

#[test]
fn the_alphabet_is_the_letters_the_uncased_vocabulary_spells() {
    let alphabet = crate::retokenize::alphabet(&codec());
    let letters: Vec<String> = ('a'..='z').map(String::from).collect();
    assert_eq!(alphabet, letters);
}

#[test]
fn hotflip_char_finds_a_suffix_by_exact_loss_with_forward_passes_only() {
    let (codec, model) = (codec(), suffix_model());
    // A black box is enough: no gradient is used.
    let report = attack(
        ModelRef::Classifier(&model),
        &codec,
        AttackConfig::new(AttackKind::HotflipChar),
        &["The film was good"],
    );
    assert!(report.config.char_edits && report.notes.len() == 1);
    assert!(report.notes[0].contains("exact loss"), "{:?}", report.notes);
    let e = &report.examples[0];
    assert_eq!(e.outcome, Outcome::Success, "{e:?}");
    assert_eq!(e.units, 14, "units are the characters of the words");
    assert_eq!(e.changes, 1, "10% of 14 characters allows one change");
    assert_eq!(e.backward_passes, 0);
    assert!(e.forward_passes >= 2, "{e:?}");
    assert_eq!(char_ops_per_word(e).len(), 1);
    assert_faithful(&codec, &model, e);
    // The successful edit works through re-tokenization: the text now holds `##s`.
    let again = codec.encode(&e.adversarial_text).unwrap();
    let suffix = codec.id("##s").unwrap();
    assert!(again.ids.flat().contains(&suffix), "{}", e.adversarial_text);
    // Edited words are not vocabulary words (require_oov).
    for word in e.adversarial_text.split_whitespace() {
        if !e.original_text.contains(word) {
            assert!(!codec.knows_word(&word.to_lowercase()), "{word}");
        }
    }
    let md = render::to_markdown(&report);
    assert!(md.contains("Note: hotflip-char on a subword model"), "{md}");
}

#[test]
fn operations_describe_char_edits_of_the_text_words() {
    let (codec, model) = (codec(), suffix_model());
    let config = AttackConfig {
        beam_width: 1,
        ..AttackConfig::new(AttackKind::HotflipChar)
    };
    let report = attack(ModelRef::WhiteBox(&model), &codec, config, &["good"]);
    let e = &report.examples[0];
    assert_eq!(e.outcome, Outcome::Success, "{e:?}");
    assert_eq!(
        e.operations,
        vec![Operation::Insert {
            word: 0,
            char: 4,
            after: "s".into()
        }]
    );
    assert_eq!(e.adversarial_text, "goods");
    assert_faithful(&codec, &model, e);
}

/// `goodl` reads `good ##l` (slightly negative, better than `[UNK]`); `goodly` reads
/// `good ##ly`, negative enough to flip. Two edits of one word.
fn two_step_model() -> LinearBag {
    model(&[("good", 1.0), ("##l", -1.1), ("##ly", -3.0)], 0.25)
}

#[test]
fn one_change_per_word_and_the_budget_bound_the_search() {
    let (codec, model) = (codec(), two_step_model());
    let base = AttackConfig {
        budget: Some(Budget::Changes(2)),
        ..AttackConfig::new(AttackKind::LossBeam)
    };
    let once = attack(
        ModelRef::Classifier(&model),
        &codec,
        AttackConfig {
            char_edits: true,
            ..base.clone()
        },
        &["good"],
    );
    let e = &once.examples[0];
    assert_eq!(e.outcome, Outcome::Failure, "{e:?}");
    assert_eq!(char_ops_per_word(e), vec![0], "one change of the one word");
    assert_eq!(e.adversarial_text, "goodl");
    assert_faithful(&codec, &model, e);

    let twice = attack(
        ModelRef::Classifier(&model),
        &codec,
        AttackConfig {
            char_edits: true,
            one_change_per_word: false,
            ..base.clone()
        },
        &["good"],
    );
    let e = &twice.examples[0];
    assert_eq!(e.outcome, Outcome::Success, "{e:?}");
    assert_eq!(char_ops_per_word(e), vec![0, 0]);
    assert_faithful(&codec, &model, e);

    let one = attack(
        ModelRef::Classifier(&model),
        &codec,
        AttackConfig {
            char_edits: true,
            one_change_per_word: false,
            budget: Some(Budget::Changes(1)),
            ..base
        },
        &["good"],
    );
    let e = &one.examples[0];
    assert_eq!(e.outcome, Outcome::Failure);
    assert_eq!(e.changes, 1);
}

#[test]
fn targeted_runs_drive_the_text_to_the_target() {
    let (codec, model) = (codec(), suffix_model());
    let config = AttackConfig {
        target_label: Some(1),
        curve: vec![0.5, 0.9],
        ..AttackConfig::new(AttackKind::HotflipChar)
    };
    let report = attack(
        ModelRef::WhiteBox(&model),
        &codec,
        config,
        &["The film was good", "good"],
    );
    for e in &report.examples {
        assert_eq!(e.outcome, Outcome::Success, "{e:?}");
        assert_eq!(e.after.label, 1);
        assert_eq!(e.backward_passes, 0);
        assert_faithful(&codec, &model, e);
    }
}

#[test]
fn reports_are_deterministic_and_independent_of_batch_size() {
    let (codec, model) = (codec(), two_step_model());
    let texts = [
        "The film was good",
        "good good film",
        "Was the film GOOD?",
        "good",
    ];
    let run = |batch_size: usize, seed: u64| {
        let config = AttackConfig {
            budget: Some(Budget::Changes(3)),
            beam_width: 3,
            candidates_cap: Some(40),
            batch_size,
            seed,
            one_change_per_word: false,
            ..AttackConfig::new(AttackKind::HotflipChar)
        };
        let report = attack(ModelRef::WhiteBox(&model), &codec, config, &texts);
        for e in &report.examples {
            assert_faithful(&codec, &model, e);
            assert!(e.changes <= 3);
        }
        let mut report = without_times(report);
        report.config.batch_size = 0;
        report.summary.mean_forward_passes = 0.0;
        report
    };
    let a = run(7, 11);
    assert_eq!(a, run(7, 11));
    assert_eq!(a, run(64, 11));
    assert_eq!(a, run(1, 11));
    assert!(a.examples.iter().any(|e| e.outcome == Outcome::Success));
}

#[test]
fn random_and_loss_beam_take_the_option_and_other_attacks_refuse_it() {
    let (codec, model) = (codec(), suffix_model());
    for kind in [AttackKind::Random, AttackKind::LossBeam] {
        let config = AttackConfig {
            char_edits: true,
            budget: Some(Budget::Changes(2)),
            ..AttackConfig::new(kind)
        };
        let report = attack(
            ModelRef::Classifier(&model),
            &codec,
            config,
            &["The film was good"],
        );
        let e = &report.examples[0];
        assert!(!char_ops_per_word(e).is_empty(), "{kind}: {e:?}");
        assert!(report.notes.is_empty());
        assert_eq!(e.backward_passes, 0);
        assert_faithful(&codec, &model, e);
    }
    for kind in [AttackKind::HotflipWord, AttackKind::Unk] {
        let config = AttackConfig {
            char_edits: true,
            ..AttackConfig::new(kind)
        };
        let err = Attacker::new(ModelRef::WhiteBox(&model), &codec, config)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("char_edits"), "{err}");
    }
    // A word-vocabulary model has no characters to edit.
    let native = crate::testing::codec(InputKind::Word, &["the film was good"], 8, 0);
    let bag = LinearBag::random(InputKind::Word, native.size(), 2, 2, 0.5, 0);
    let config = AttackConfig {
        char_edits: true,
        ..AttackConfig::new(AttackKind::LossBeam)
    };
    let err = Attacker::new(ModelRef::WhiteBox(&bag), &native, config)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("subword"), "{err}");
}

#[test]
fn specials_and_punctuation_are_never_edited() {
    let (codec, model) = (codec(), model(&[("the", 1.0), ("##s", -3.0)], 0.25));
    let config = AttackConfig {
        budget: Some(Budget::Changes(3)),
        ..AttackConfig::new(AttackKind::HotflipChar)
    };
    let report = attack(ModelRef::WhiteBox(&model), &codec, config, &["the !"]);
    let e = &report.examples[0];
    // Words: `the` (0) and `!` (1); only `the` has letters.
    assert!(char_ops_per_word(e).iter().all(|&w| w == 0), "{e:?}");
    assert!(e.adversarial_text.ends_with(" !"), "{}", e.adversarial_text);
    let TokenIds::Words(ids) = codec.encode(&e.adversarial_text).unwrap().ids else {
        panic!("word ids")
    };
    assert_eq!(ids.first(), Some(&2));
    assert_eq!(ids.last(), Some(&3));
    assert_faithful(&codec, &model, e);
}
