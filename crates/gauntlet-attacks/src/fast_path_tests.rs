//! The fast candidate paths against the reference path: for fixed seeds, the same
//! adversarial texts, operations, outcomes, probabilities and pass counts, for every
//! gradient attack on word, character and subword models.
//!
//! The test models have a different gradient at every position and a nonzero PAD row, so
//! an offset or padding bug in one path shows up as a different report.

#![allow(clippy::unwrap_used)]

use gauntlet_core::codec::{PAD_ID, UNK_ID};
use gauntlet_core::{Example, InputKind, TextCodec, WhiteBox};

use crate::candidates::{EditSpace, Rules, TopK};
use crate::estimate::score_matrix;
use crate::state::{Edit, Space, State};
use crate::testing::{codec, LinearBag};
use crate::tests::{self_labelled, without_times, word_model, CHAR_TEXTS, WORD_TEXTS};
use crate::*;

const SCALES: [f32; 5] = [1.0, -0.5, 2.0, 0.75, -1.25];

fn positional_word_model() -> (TextCodec, LinearBag) {
    let (codec, model) = word_model();
    let mut model = model
        .with_position_scales(SCALES.to_vec())
        .with_zero_padding();
    model.set_row(PAD_ID as usize, &[0.7, -0.4, 0.2]);
    (codec, model)
}

fn positional_char_model(seed: u64, zero_padding: bool) -> (TextCodec, LinearBag) {
    let codec = codec(InputKind::Char, CHAR_TEXTS, 32, 5);
    let mut model = LinearBag::random(InputKind::Char, codec.size(), 4, 2, 1.0, seed)
        .with_position_scales(SCALES.to_vec());
    if zero_padding {
        model = model.with_zero_padding();
    }
    model.set_row(PAD_ID as usize, &[0.9, -1.1, 0.3, 0.5]);
    (codec, model)
}

/// Parts of speech for the toy vocabulary (the `sem` attack's lexicon in tests).
pub(crate) fn lexicon() -> MemoryLexicon {
    let mut lexicon = MemoryLexicon::new();
    for w in [
        "good", "great", "nice", "fine", "bad", "awful", "poor", "terrible",
    ] {
        lexicon.insert(w, &[Pos::Adjective], w);
    }
    for w in ["movie", "film", "plot", "story", "acting"] {
        lexicon.insert(w, &[Pos::Noun], w);
    }
    lexicon
}

/// Runs `config` on both paths and asserts equal reports; returns the fast one.
fn same_on_both_paths(
    model: &LinearBag,
    codec: &TextCodec,
    config: AttackConfig,
    examples: &[Example],
) -> AttackReport {
    let lexicon = lexicon();
    let attacker = |reference: bool| {
        let a = Attacker::new(ModelRef::WhiteBox(model), codec, config.clone())
            .unwrap()
            .with_lexicon(&lexicon);
        let a = if reference {
            a.with_reference_scoring()
        } else {
            a
        };
        a.run_examples(examples, &RunControl::default()).unwrap()
    };
    let fast = without_times(attacker(false));
    let reference = without_times(attacker(true));
    assert_eq!(
        fast, reference,
        "{:?} beam {} target {:?}",
        config.kind, config.beam_width, config.target_label
    );
    fast
}

#[test]
fn word_attacks_give_the_reference_reports() {
    let (codec, model) = positional_word_model();
    let examples = self_labelled(&model, &codec, WORD_TEXTS);
    let mut changed = 0;
    for kind in [
        AttackKind::HotflipWord,
        AttackKind::Sem,
        AttackKind::Unk,
        AttackKind::RandomGradient,
    ] {
        for beam in [1, 3, 10] {
            for target in [None, Some(2)] {
                let config = AttackConfig {
                    beam_width: beam,
                    target_label: target,
                    cosine_threshold: 0.3,
                    budget: Some(Budget::Changes(3)),
                    batch_size: 7,
                    seed: 11,
                    ..AttackConfig::new(kind)
                };
                let report = same_on_both_paths(&model, &codec, config, &examples);
                changed += report.examples.iter().map(|e| e.changes).sum::<usize>();
            }
        }
    }
    assert!(changed > 0, "the attacks must change something to compare");
}

#[test]
fn char_attacks_give_the_reference_reports() {
    for zero_padding in [false, true] {
        let (codec, model) = positional_char_model(3, zero_padding);
        let examples = self_labelled(&model, &codec, CHAR_TEXTS);
        for kind in [AttackKind::HotflipChar, AttackKind::RandomGradient] {
            for beam in [1, 4] {
                for require_oov in [false, true] {
                    let config = AttackConfig {
                        beam_width: beam,
                        require_oov,
                        budget: Some(Budget::Changes(3)),
                        batch_size: 5,
                        seed: 5,
                        ..AttackConfig::new(kind)
                    };
                    let report = same_on_both_paths(&model, &codec, config, &examples);
                    assert!(report.examples.iter().any(|e| e.changes > 0));
                }
            }
        }
    }
}

#[test]
fn subword_attacks_give_the_reference_reports() {
    let codec = crate::subword_tests::wordpiece_codec();
    let model = crate::subword_tests::sentiment_model().with_position_scales(SCALES.to_vec());
    let examples = [Example {
        text: crate::subword_tests::TEXT.into(),
        label: 0,
    }];
    for kind in [
        AttackKind::HotflipWord,
        AttackKind::Unk,
        AttackKind::RandomGradient,
    ] {
        for pieces in [false, true] {
            for beam in [1, 5] {
                let config = AttackConfig {
                    beam_width: beam,
                    allow_subword_pieces: pieces && kind != AttackKind::Unk,
                    budget: Some(Budget::Changes(2)),
                    ..AttackConfig::new(kind)
                };
                same_on_both_paths(&model, &codec, config, &examples);
            }
        }
    }
}

/// The character candidates of one state on the reference path, by edit.
fn reference_char_estimates(
    model: &LinearBag,
    codec: &TextCodec,
    text: &str,
) -> (Vec<(f32, Edit)>, Vec<f32>) {
    let enc = codec.encode(text).unwrap();
    let g = model
        .loss_gradients(std::slice::from_ref(&enc.ids), &[0])
        .unwrap()
        .gradients[0]
        .values
        .clone();
    let state = State::initial(text, &enc, codec);
    let tokens: Vec<String> = (0..codec.size() as u32)
        .map(|i| codec.token(i).unwrap().to_owned())
        .collect();
    let space = Space {
        kind: InputKind::Char,
        max_chars: 5,
        tokens: tokens.clone().into(),
        unk_spellings: vec![],
        editable: vec![],
        unk_id: UNK_ID,
        retokenize: None,
    };
    let s = score_matrix(
        &g,
        enc.ids.positions(),
        model.embedding_table(),
        model.padding_is_zero(),
    )
    .unwrap();
    let mut rules = Rules {
        space: EditSpace::Chars,
        one_change_per_word: true,
        require_oov: false,
        codec,
        ids: 2..codec.size() as u32,
        targets: crate::candidates::WordTargets::new(codec, codec.size()),
        sem: None,
    };
    let mut top = TopK::new(usize::MAX);
    rules.enumerate(&state, &space, Some(&s.view()), &mut top);
    let (fast, _) = rules.best_char_edits(&state, &space, &s.view(), usize::MAX);
    let all = top.finish(&mut false);
    assert_eq!(
        fast, all,
        "prefix sums must reproduce the reference estimates"
    );
    (all, g)
}

/// `g_k · e_v` for a 4-wide gradient, summed plainly (independent of the engine's `dot`).
fn row_dot(g: &[f32], table: &gauntlet_core::EmbeddingTable, k: usize, v: u32) -> f32 {
    g[k * 4..k * 4 + 4]
        .iter()
        .zip(table.row(v as usize))
        .map(|(a, b)| a * b)
        .sum()
}

#[test]
fn a_delete_frees_its_last_slot_to_the_vector_the_model_feeds_at_padding() {
    // "box": positions 0..3, gradient rows differ (scales 1, −0.5, 2).
    for zero_padding in [false, true] {
        let (codec, model) = positional_char_model(9, zero_padding);
        let (all, g) = reference_char_estimates(&model, &codec, "box");
        let table = model.embedding_table();
        let id = |c: &str| codec.id(c).unwrap();
        let gd = |k: usize, v: u32| row_dot(&g, table, k, v);
        let pad = |k: usize| if zero_padding { 0.0 } else { gd(k, PAD_ID) };
        // Delete 'b': positions 0, 1, 2 become o, x, PAD; N = 3.
        let hand = ((gd(0, id("o")) - gd(0, id("b")))
            + (gd(1, id("x")) - gd(1, id("o")))
            + (pad(2) - gd(2, id("x"))))
            / 3.0;
        let got = all
            .iter()
            .find(|(_, e)| *e == Edit::Delete { word: 0, pos: 0 })
            .unwrap()
            .0;
        assert!(
            (got - hand).abs() < 1e-5,
            "{got} vs {hand}, zero {zero_padding}"
        );
    }
    // A word longer than the model reads: the freed slot takes the first hidden character.
    let (codec, model) = positional_char_model(9, true);
    let (all, g) = reference_char_estimates(&model, &codec, "quickly");
    let table = model.embedding_table();
    let id = |c: &str| codec.id(c).unwrap();
    let gd = |k: usize, v: u32| row_dot(&g, table, k, v);
    // Visible "quick" (5 of 7); delete 'k' (j = 4): position 4 becomes 'l'.
    let hand = gd(4, id("l")) - gd(4, id("k"));
    let got = all
        .iter()
        .find(|(_, e)| *e == Edit::Delete { word: 0, pos: 4 })
        .unwrap()
        .0;
    assert!((got - hand).abs() < 1e-6);
}
