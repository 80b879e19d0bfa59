//! A BERT-style ONNX graph behind a WordPiece tokenizer, end to end: loaded through
//! `gauntlet-backends` (ONNX Runtime + the tch interpreter), attacked at word level with
//! gradients from the interpreter and at character level by exact loss, and every
//! adversarial text re-checked on ONNX Runtime.
#![allow(clippy::unwrap_used, missing_docs)]

use gauntlet_attacks::{AttackConfig, AttackKind, Attacker, ModelRef, Outcome, RunControl};
use gauntlet_backends::{LoadOptions, LoadedBundle, Runtime};
use gauntlet_core::codec::bert_wordpiece;
use gauntlet_core::{Example, TokenIds};

const VOCAB_SIZE: usize = 120;
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDS: [&str; 36] = [
    "the", "a", "film", "movie", "plot", "was", "is", "good", "great", "bad", "awful", "dull",
    "fine", "story", "acting", "really", "not", "very", "and", "but", "fun", "boring", "play",
    "love", "hate", "best", "worst", "cast", "music", "long", "short", "funny", "sad", "nice",
    "poor", "superb",
];
const SUFFIXES: [&str; 5] = ["##s", "##ing", "##ed", "##ly", "##ful"];

/// `[PAD] [UNK] [CLS] [SEP] [MASK]`, the words, suffixes, `a..z`, `##a..##z`, then filler
/// pieces up to the fixture's vocabulary size.
fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = SPECIALS.iter().map(|s| (*s).to_owned()).collect();
    v.extend(WORDS.iter().map(|w| (*w).to_owned()));
    v.extend(SUFFIXES.iter().map(|w| (*w).to_owned()));
    for letter in ('a'..='z').map(String::from) {
        if !v.contains(&letter) {
            v.push(letter);
        }
    }
    for piece in ('a'..='z').map(|c| format!("##{c}")) {
        if !v.contains(&piece) {
            v.push(piece);
        }
    }
    let mut filler = 0;
    while v.len() < VOCAB_SIZE {
        v.push(format!("##x{filler}"));
        filler += 1;
    }
    v
}

fn write_tokenizer(path: &std::path::Path) {
    bert_wordpiece(&vocabulary(), true)
        .unwrap()
        .save(path, false)
        .unwrap();
}

/// The fixture's BERT-style graph as a subword bundle.
fn bert_bundle(root: &std::path::Path) -> std::path::PathBuf {
    gauntlet_tests::make_onnx_fixtures(root, VOCAB_SIZE);
    let dir = root.join("bert");
    write_tokenizer(&dir.join("tokenizer.json"));
    let manifest = std::fs::read_to_string(dir.join("gauntlet.toml")).unwrap();
    let manifest = manifest.replace(
        "kind = \"word\"\n",
        "kind = \"word\"\nscheme = \"subword\"\n",
    );
    std::fs::write(dir.join("gauntlet.toml"), manifest).unwrap();
    dir
}

const TEXTS: [&str; 8] = [
    "the film was good",
    "a really dull plot",
    "great acting and fun music",
    "the worst movie",
    "not very funny but nice",
    "awful story , poor cast",
    "superb ! the best film",
    "boring and long",
];

#[test]
fn a_bert_style_onnx_subword_bundle_is_attacked_white_box() {
    let root = tempfile::tempdir().unwrap();
    let dir = bert_bundle(root.path());
    let bundle = LoadedBundle::load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(bundle.runtime(), Runtime::Onnx);
    assert!(bundle.codec().is_subword());
    let white_box = bundle
        .white_box()
        .unwrap_or_else(|| panic!("no white box: {:?}", bundle.white_box_unavailable()));

    // Label every text with the model's own prediction so that all are attacked.
    let ids: Vec<TokenIds> = TEXTS
        .iter()
        .map(|t| bundle.codec().encode(t).unwrap().ids)
        .collect();
    let clean = bundle.classifier().predict(&ids).unwrap();
    let examples: Vec<Example> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            text: (*t).to_owned(),
            label: clean.argmax(i).0,
        })
        .collect();

    let check_on_ort = |report: &gauntlet_attacks::AttackReport| {
        for e in &report.examples {
            let ids = bundle.codec().encode(&e.adversarial_text).unwrap().ids;
            let p = bundle.classifier().predict(&[ids]).unwrap();
            let (label, probability) = p.argmax(0);
            assert_eq!(label, e.after.label, "{:?}", e.adversarial_text);
            assert!((f64::from(probability) - e.after.probability).abs() < 1e-4);
        }
    };

    let mut config = AttackConfig::new(AttackKind::HotflipWord);
    config.beam_width = 2;
    let attacker = Attacker::new(ModelRef::WhiteBox(white_box), bundle.codec(), config).unwrap();
    let report = attacker
        .run_examples(&examples, &RunControl::default())
        .unwrap();
    assert_eq!(report.summary.attacked, TEXTS.len());
    assert!(report.examples.iter().all(|e| e.backward_passes > 0));
    assert!(report.summary.successes > 0, "HotFlip fooled nothing");
    for e in &report.examples {
        let adversarial = bundle
            .codec()
            .encode(&e.adversarial_text)
            .unwrap()
            .ids
            .flat();
        // Specials stay where they were: [CLS] first, [SEP] last, and no [PAD], [CLS],
        // [SEP] or [MASK] in between ([UNK] may be there: the vocabulary has no punctuation).
        assert_eq!(adversarial.first(), Some(&2));
        assert_eq!(adversarial.last(), Some(&3));
        let inner = &adversarial[1..adversarial.len() - 1];
        assert!(
            inner.iter().all(|id| ![0, 2, 3, 4].contains(id)),
            "{:?} -> {inner:?}",
            e.adversarial_text
        );
        if e.outcome == Outcome::Success {
            assert_ne!(e.adversarial_text, e.original_text);
        }
    }
    check_on_ort(&report);

    // Character edits on a subword model: text edits re-tokenized, exact loss, no gradients.
    let mut config = AttackConfig::new(AttackKind::HotflipChar);
    config.beam_width = 2;
    config.candidates_cap = Some(64);
    let attacker = Attacker::new(
        ModelRef::Classifier(bundle.classifier()),
        bundle.codec(),
        config,
    )
    .unwrap();
    let report = attacker
        .run_examples(&examples, &RunControl::default())
        .unwrap();
    assert!(!report.notes.is_empty());
    assert!(report.examples.iter().all(|e| e.backward_passes == 0));
    check_on_ort(&report);
}
