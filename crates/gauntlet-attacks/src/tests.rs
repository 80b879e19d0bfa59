//! End-to-end tests of the engine on the linear test model ([`crate::testing`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use gauntlet_core::codec::{PAD_ID, UNK_ID};
use gauntlet_core::{
    Classifier, EmbeddingTable, Example, InputKind, TextCodec, TokenIds, WhiteBox,
};
use rand::{Rng, SeedableRng};

use crate::candidates::{EditSpace, Rules, TopK};
use crate::estimate::score_matrix;
use crate::state::{Edit, Space, State};
use crate::testing::{codec, LinearBag};
use crate::*;

pub(crate) const WORD_TEXTS: &[&str] = &[
    "the movie was good and the plot was great",
    "a bad film with an awful story and poor acting",
    "nice fine terrible plot is story film acting movie",
];

fn sentiment(word: &str) -> (f32, f32) {
    match word {
        "good" | "great" | "nice" | "fine" => (1.0, 0.0),
        "bad" | "awful" | "poor" | "terrible" => (-1.0, 0.0),
        "plot" | "story" | "film" | "movie" | "acting" => (0.0, 1.0),
        _ => (0.0, 0.0),
    }
}

/// A word codec and a 3-class linear model: class 0 positive, 1 negative, 2 "topic".
pub(crate) fn word_model() -> (TextCodec, LinearBag) {
    let codec = codec(InputKind::Word, WORD_TEXTS, 64, 0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let dim = 3;
    let mut values = vec![0.0; codec.size() * dim];
    for id in 2..codec.size() {
        let (s, t) = sentiment(codec.token(id as u32).unwrap());
        values[id * dim] = s + rng.gen_range(-0.1..0.1);
        values[id * dim + 1] = t + rng.gen_range(-0.1..0.1);
        values[id * dim + 2] = rng.gen_range(-0.1..0.1);
    }
    // The unknown word leans slightly positive.
    values[UNK_ID as usize * dim] = 0.3;
    let table = EmbeddingTable {
        rows: codec.size(),
        dim,
        values,
    };
    let weights = vec![2.0, 0.0, 0.1, -2.0, 0.0, -0.1, 0.0, 2.5, 0.0];
    (
        codec,
        LinearBag::new(InputKind::Word, table, weights, vec![0.0, 0.0, -4.0]),
    )
}

pub(crate) const CHAR_TEXTS: &[&str] = &[
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "how vexingly quick daft zebras jump",
    "sphinx of black quartz judge my vow",
    "waltz bad nymph for quick jigs vex",
    "the five boxing wizards jump quickly",
];

fn char_model(seed: u64) -> (TextCodec, LinearBag) {
    let codec = codec(InputKind::Char, CHAR_TEXTS, 32, 6);
    let model = LinearBag::random(InputKind::Char, codec.size(), 4, 2, 1.0, seed);
    (codec, model)
}

/// Examples labelled with the model's own predictions (so all are attacked).
pub(crate) fn self_labelled(
    model: &dyn Classifier,
    codec: &TextCodec,
    texts: &[&str],
) -> Vec<Example> {
    texts
        .iter()
        .map(|t| {
            let ids = codec.encode(t).unwrap().ids;
            let label = model.predict(&[ids]).unwrap().argmax(0).0;
            Example {
                label,
                text: (*t).to_owned(),
            }
        })
        .collect()
}

fn run(
    model: &LinearBag,
    codec: &TextCodec,
    config: AttackConfig,
    examples: &[Example],
) -> AttackReport {
    Attacker::new(ModelRef::WhiteBox(model), codec, config)
        .unwrap()
        .run_examples(examples, &RunControl::default())
        .unwrap()
}

pub(crate) fn without_times(mut report: AttackReport) -> AttackReport {
    report.summary.wall_time_ms = 0.0;
    report.summary.examples_per_second = 0.0;
    report
        .examples
        .iter_mut()
        .for_each(|e| e.wall_time_ms = 0.0);
    report
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn flip_estimate_is_the_directional_derivative_and_first_order_exact() {
    let (codec, model) = word_model();
    let ids = codec.encode("the movie was good").unwrap().ids;
    let TokenIds::Words(words) = &ids else {
        panic!()
    };
    let label = 0;
    let grads = model
        .loss_gradients(std::slice::from_ref(&ids), &[label])
        .unwrap();
    let g = &grads.gradients[0].values;
    let table = model.embedding_table();
    let s = score_matrix(g, ids.positions(), table, false).unwrap();
    // Independent computation: g = Wᵀ(p − y), estimate = g · (e_b − e_a).
    let p = model
        .predict(std::slice::from_ref(&ids))
        .unwrap()
        .row(0)
        .to_vec();
    let w = model.weights();
    let dim = table.dim;
    let g_ref: Vec<f32> = (0..dim)
        .map(|d| {
            (0..3)
                .map(|c| (p[c] - f32::from(c == label)) * w[c * dim + d])
                .sum()
        })
        .collect();
    let (pos, a, b) = (3, words[3], codec.id("awful").unwrap());
    let diff: Vec<f32> = table
        .row(b as usize)
        .iter()
        .zip(table.row(a as usize))
        .map(|(x, y)| x - y)
        .collect();
    let est = crate::estimate::flip_estimate(&s.view(), pos, a, b);
    assert!(
        (est - dot(&g_ref, &diff)).abs() < 1e-5,
        "{est} vs {}",
        dot(&g_ref, &diff)
    );
    assert!(
        est > 0.0,
        "flipping good to awful must raise the loss of 'positive'"
    );

    // With tiny embeddings the loss is nearly linear: estimate ≈ exact change.
    let mut small = LinearBag::random(InputKind::Char, 30, 4, 2, 1e-3, 3);
    small = LinearBag::new(
        InputKind::Char,
        small.embedding_table().clone(),
        small.weights().to_vec(),
        vec![0.3, -0.2],
    );
    let ids = TokenIds::Chars(vec![vec![5, 6, 7], vec![8, 9]]);
    let g = small
        .loss_gradients(std::slice::from_ref(&ids), &[1])
        .unwrap()
        .gradients[0]
        .values
        .clone();
    let s = score_matrix(&g, 5, small.embedding_table(), false).unwrap();
    let est = crate::estimate::flip_estimate(&s.view(), 3, 8, 20);
    let flipped = TokenIds::Chars(vec![vec![5, 6, 7], vec![20, 9]]);
    let exact = small.loss(&flipped, 1) - small.loss(&ids, 1);
    assert!(est.abs() > 1e-6, "{est}");
    assert!(
        (exact - est).abs() <= 0.01 * est.abs() + 1e-7,
        "exact {exact} vs estimate {est}"
    );
}

#[test]
fn char_candidates_carry_the_documented_insert_and_delete_estimates() {
    let (codec, model) = char_model(1);
    let text = "box dozen";
    let enc = codec.encode(text).unwrap();
    let state = State::initial(text, &enc, &codec);
    let tokens: Vec<String> = (0..codec.size() as u32)
        .map(|i| codec.token(i).unwrap().to_owned())
        .collect();
    let space = Space {
        kind: InputKind::Char,
        max_chars: 6,
        tokens: tokens.clone().into(),
        unk_spellings: vec![],
        editable: vec![],
        unk_id: UNK_ID,
        retokenize: None,
    };
    let g = model
        .loss_gradients(std::slice::from_ref(&enc.ids), &[0])
        .unwrap()
        .gradients[0]
        .values
        .clone();
    let table = model.embedding_table();
    let s = score_matrix(&g, enc.ids.positions(), table, false).unwrap();
    let mut rules = Rules {
        space: EditSpace::Chars,
        one_change_per_word: true,
        require_oov: false,
        codec: &codec,
        ids: 2..codec.size() as u32,
        targets: crate::candidates::WordTargets::new(&codec, codec.size()),
        sem: None,
    };
    let mut top = TopK::new(usize::MAX);
    rules.enumerate(&state, &space, Some(&s.view()), &mut top);
    let all = top.finish(&mut false);
    let find = |e: Edit| all.iter().find(|(_, x)| *x == e).map(|(v, _)| *v).unwrap();
    let e = |id: u32| table.row(id as usize).to_vec();
    let gd = |k: usize, id: u32| dot(&g[k * 4..k * 4 + 4], &e(id));
    let id = |c: &str| codec.id(c).unwrap();
    // "dozen" occupies flat positions 3..8 (5 chars, room for 6).
    // Insert 'x' before 'z' (j = 2): positions 5,6,7 become x,z,e; N = 3.
    let hand = ((gd(5, id("x")) - gd(5, id("z")))
        + (gd(6, id("z")) - gd(6, id("e")))
        + (gd(7, id("e")) - gd(7, id("n"))))
        / 3.0;
    assert!(
        (find(Edit::Insert {
            word: 1,
            pos: 2,
            ch: id("x")
        }) - hand)
            .abs()
            < 1e-5
    );
    // Delete 'o' (j = 1): positions 4..7 become z,e,n,PAD; N = 4.
    let hand = ((gd(4, id("z")) - gd(4, id("o")))
        + (gd(5, id("e")) - gd(5, id("z")))
        + (gd(6, id("n")) - gd(6, id("e")))
        + (gd(7, PAD_ID) - gd(7, id("n"))))
        / 4.0;
    assert!((find(Edit::Delete { word: 1, pos: 1 }) - hand).abs() < 1e-5);
    // Flip 'b' → 'k' in "box": one flip.
    let hand = gd(0, id("k")) - gd(0, id("b"));
    assert!(
        (find(Edit::Flip {
            word: 0,
            pos: 0,
            to: id("k")
        }) - hand)
            .abs()
            < 1e-5
    );
    // No PAD/UNK characters are ever proposed.
    assert!(all.iter().all(|(_, e)| !matches!(
        e,
        Edit::Flip { to: 0 | 1, .. } | Edit::Insert { ch: 0 | 1, .. }
    )));
}

#[test]
fn greedy_word_search_equals_a_hand_written_greedy() {
    let (codec, model) = word_model();
    let texts = [
        "the movie was good and the plot was great",
        "a bad film with an awful story and poor acting",
    ];
    let examples = self_labelled(&model, &codec, &texts);
    let config = AttackConfig {
        beam_width: 1,
        budget: Some(Budget::Changes(3)),
        confidence: 0.9,
        curve: vec![],
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&model, &codec, config, &examples);
    let table = model.embedding_table();
    for (ex, got) in examples.iter().zip(&report.examples) {
        let TokenIds::Words(mut ids) = codec.encode(&ex.text).unwrap().ids else {
            panic!()
        };
        let mut changed = vec![false; ids.len()];
        let mut ops = Vec::new();
        for _ in 0..3 {
            let p = model.predict(&[TokenIds::Words(ids.clone())]).unwrap();
            let (l, q) = p.argmax(0);
            if l != ex.label && q >= 0.9 {
                break;
            }
            let g = model
                .loss_gradients(&[TokenIds::Words(ids.clone())], &[ex.label])
                .unwrap()
                .gradients[0]
                .values
                .clone();
            let mut best: Option<(f32, usize, u32)> = None;
            for i in (0..ids.len()).filter(|&i| !changed[i]) {
                for w in 2..table.rows as u32 {
                    if w == ids[i] {
                        continue;
                    }
                    let est = dot(&g[i * 3..i * 3 + 3], table.row(w as usize))
                        - dot(&g[i * 3..i * 3 + 3], table.row(ids[i] as usize));
                    if best.is_none_or(|b| est > b.0) {
                        best = Some((est, i, w));
                    }
                }
            }
            let (_, i, w) = best.unwrap();
            ops.push((i, codec.token(w).unwrap().to_owned()));
            ids[i] = w;
            changed[i] = true;
        }
        let got_ops: Vec<(usize, String)> = got
            .operations
            .iter()
            .map(|op| match op {
                Operation::WordFlip { word, after, .. } => (*word, after.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got_ops, ops, "example {}", got.index);
        assert!(!ops.is_empty());
    }
}

#[test]
fn char_attack_respects_budget_word_and_vocabulary_constraints() {
    for seed in [1, 2, 3] {
        let (codec, model) = char_model(seed);
        let examples = self_labelled(&model, &codec, CHAR_TEXTS);
        let config = AttackConfig {
            beam_width: 3,
            batch_size: 4,
            ..AttackConfig::new(AttackKind::HotflipChar)
        };
        let report = run(&model, &codec, config, &examples);
        for e in &report.examples {
            let budget = Budget::Fraction(0.1).resolve(e.units);
            assert!(e.changes <= budget, "{} > {budget}", e.changes);
            assert_eq!(e.changes, e.operations.len());
            let words: Vec<usize> = e
                .operations
                .iter()
                .map(|op| match op {
                    Operation::Flip { word, .. }
                    | Operation::Insert { word, .. }
                    | Operation::Delete { word, .. } => *word,
                    other => panic!("{other:?}"),
                })
                .collect();
            let distinct: BTreeSet<usize> = words.iter().copied().collect();
            assert_eq!(distinct.len(), words.len(), "one change per word");
            // The spliced text re-encodes to what the attack evaluated.
            let enc = codec.encode(&e.adversarial_text).unwrap();
            let after = model.predict(&[enc.ids]).unwrap();
            assert_eq!(after.argmax(0).0, e.after.label);
            assert!((f64::from(after.argmax(0).1) - e.after.probability).abs() < 1e-6);
            for &w in &distinct {
                let (s, t) = enc.spans[w];
                assert!(
                    !codec.knows_word(&codec.normalize(&e.adversarial_text[s..t])),
                    "{}",
                    e.adversarial_text
                );
            }
        }
        assert!(
            report.summary.successes > 0,
            "seed {seed}: the attack should fool the random model sometimes"
        );
    }
}

#[test]
fn one_run_yields_the_same_curve_as_separate_runs_per_confidence() {
    for (seed, kind) in [
        (2, AttackKind::HotflipChar),
        (4, AttackKind::HotflipChar),
        (5, AttackKind::LossBeam),
    ] {
        let (codec, model) = char_model(seed);
        let examples = self_labelled(&model, &codec, CHAR_TEXTS);
        let base = AttackConfig {
            beam_width: 2,
            batch_size: 3,
            budget: Some(Budget::Changes(4)),
            candidates_cap: Some(200),
            ..AttackConfig::new(kind)
        };
        let all = run(&model, &codec, base.clone(), &examples);
        let mut any_difference = false;
        for tau in [0.5, 0.6, 0.7, 0.8, 0.9] {
            let single = run(
                &model,
                &codec,
                AttackConfig {
                    confidence: tau,
                    curve: vec![tau],
                    ..base.clone()
                },
                &examples,
            );
            for (a, s) in all.examples.iter().zip(&single.examples) {
                let point = a.curve.iter().find(|t| t.confidence == tau).unwrap();
                assert_eq!(
                    point.success,
                    s.outcome == Outcome::Success,
                    "τ {tau} example {}",
                    a.index
                );
                if point.success {
                    assert_eq!(
                        point.changes,
                        Some(s.changes),
                        "τ {tau} example {}",
                        a.index
                    );
                }
            }
            let rate = all
                .summary
                .curve
                .iter()
                .find(|p| p.confidence == tau)
                .unwrap()
                .success_rate;
            assert_eq!(rate, single.summary.success_rate);
            any_difference |= rate != all.summary.curve[0].success_rate
                || all
                    .examples
                    .iter()
                    .any(|e| e.curve[0].changes != e.curve.last().unwrap().changes);
        }
        assert!(
            any_difference || all.summary.successes > 0,
            "the curve test must exercise something"
        );
    }
}

#[test]
fn runs_are_deterministic_for_a_seed() {
    let (codec, model) = char_model(3);
    let examples = self_labelled(&model, &codec, CHAR_TEXTS);
    for kind in [
        AttackKind::HotflipChar,
        AttackKind::RandomGradient,
        AttackKind::Random,
        AttackKind::LossBeam,
    ] {
        let config = AttackConfig {
            seed: 11,
            beam_width: 2,
            candidates_cap: Some(50),
            ..AttackConfig::new(kind)
        };
        let a = without_times(run(&model, &codec, config.clone(), &examples));
        let b = without_times(run(
            &model,
            &codec,
            AttackConfig {
                batch_size: 5,
                ..config.clone()
            },
            &examples,
        ));
        assert_eq!(
            a.examples
                .iter()
                .map(|e| (&e.operations, e.outcome))
                .collect::<Vec<_>>(),
            b.examples
                .iter()
                .map(|e| (&e.operations, e.outcome))
                .collect::<Vec<_>>(),
            "{kind}: batching must not change results"
        );
        assert_eq!(
            a,
            without_times(run(&model, &codec, config, &examples)),
            "{kind}"
        );
    }
}

#[test]
fn targeted_mode_reaches_the_target() {
    let (codec, model) = word_model();
    let examples = self_labelled(
        &model,
        &codec,
        &[
            "the movie was good and the plot was great",
            "a bad film with an awful story and poor acting",
        ],
    );
    assert_eq!(
        examples.iter().map(|e| e.label).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let config = AttackConfig {
        target_label: Some(2),
        budget: Some(Budget::Changes(4)),
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&model, &codec, config, &examples);
    for e in &report.examples {
        assert_eq!(e.outcome, Outcome::Success, "{e:?}");
        assert_eq!(e.after.label, 2);
        assert_eq!(e.target_label, Some(2));
    }
    // An example whose true label is the target is skipped.
    let config = AttackConfig {
        target_label: Some(0),
        budget: Some(Budget::Changes(4)),
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&model, &codec, config, &examples);
    assert_eq!(
        report.examples[0].skip_reason,
        Some(SkipReason::AlreadyTarget)
    );
    assert_eq!(report.examples[1].outcome, Outcome::Success);
    assert_eq!(report.examples[1].after.label, 0);
}

#[test]
fn loss_beam_finds_at_least_what_the_gradient_beam_finds() {
    for seed in [1, 2, 3, 4] {
        let (codec, model) = char_model(seed);
        let examples = self_labelled(&model, &codec, CHAR_TEXTS);
        let one = Some(Budget::Changes(1));
        let grad = run(
            &model,
            &codec,
            AttackConfig {
                budget: one,
                ..AttackConfig::new(AttackKind::HotflipChar)
            },
            &examples,
        );
        // Black-box access suffices for the loss-based search.
        let loss = Attacker::new(
            ModelRef::Classifier(&model),
            &codec,
            AttackConfig {
                budget: one,
                ..AttackConfig::new(AttackKind::LossBeam)
            },
        )
        .unwrap()
        .run_examples(&examples, &RunControl::default())
        .unwrap();
        for (g, l) in grad.examples.iter().zip(&loss.examples) {
            for (tg, tl) in g.curve.iter().zip(&l.curve) {
                assert!(
                    !tg.success || tl.success,
                    "seed {seed} example {} τ {}",
                    g.index,
                    tg.confidence
                );
            }
            assert_eq!(l.backward_passes, 0);
        }
    }
}

#[test]
fn misclassified_examples_are_skipped_and_counted() {
    let (codec, model) = word_model();
    let examples = vec![
        Example {
            label: 0,
            text: "the movie was good".into(),
        },
        Example {
            label: 1,
            text: "the movie was great".into(),
        },
    ];
    let report = run(
        &model,
        &codec,
        AttackConfig::new(AttackKind::HotflipWord),
        &examples,
    );
    assert_eq!(report.summary.skipped, 1);
    assert_eq!(report.summary.attacked, 1);
    assert_eq!(report.summary.clean_accuracy, 0.5);
    let skipped = &report.examples[1];
    assert_eq!(
        (skipped.outcome, skipped.skip_reason),
        (Outcome::Skipped, Some(SkipReason::Misclassified))
    );
    assert_eq!((skipped.forward_passes, skipped.backward_passes), (1, 0));
    assert_eq!(skipped.adversarial_text, skipped.original_text);
}

#[test]
fn passes_are_counted_per_example_in_batched_calls() {
    let (codec, model) = word_model();
    let examples = self_labelled(
        &model,
        &codec,
        &["the movie was good", "the film was nice", "an awful plot"],
    );
    let config = AttackConfig {
        beam_width: 1,
        budget: Some(Budget::Changes(2)),
        curve: vec![],
        ..AttackConfig::new(AttackKind::HotflipWord)
    };
    let report = run(&model, &codec, config, &examples);
    for e in &report.examples {
        assert_eq!(e.outcome, Outcome::Success);
        // Clean pass; the original gets a gradient pass (forward + backward); every later
        // state is classified first (forward) and gets its gradient pass only when the
        // search goes on, so the state that succeeds costs one forward pass.
        let c = e.changes as u64;
        assert!(c >= 1);
        assert_eq!(
            (e.forward_passes, e.backward_passes),
            (2 * c + 1, c),
            "{e:?}"
        );
    }
}

#[test]
fn unk_on_a_black_box_chooses_by_exact_loss_and_says_so() {
    let (codec, model) = word_model();
    let examples = self_labelled(
        &model,
        &codec,
        &["the movie was good and great", "a bad film"],
    );
    let black_box = Attacker::new(
        ModelRef::Classifier(&model),
        &codec,
        AttackConfig::new(AttackKind::Unk),
    )
    .unwrap()
    .run_examples(&examples, &RunControl::default())
    .unwrap();
    assert_eq!(black_box.notes.len(), 1);
    assert!(black_box.examples.iter().all(|e| e.backward_passes == 0));
    let white_box = run(
        &model,
        &codec,
        AttackConfig::new(AttackKind::Unk),
        &examples,
    );
    assert!(white_box.notes.is_empty());
    // Exact loss can only do at least as well as the estimate over the same candidates.
    assert!(black_box.summary.successes >= white_box.summary.successes);
    for e in &black_box.examples {
        assert!(e.changes <= 1);
        let enc = codec.encode(&e.adversarial_text).unwrap();
        let p = model.predict(&[enc.ids]).unwrap();
        assert_eq!(p.argmax(0).0, e.after.label);
    }
}

#[test]
fn unk_attack_shows_a_legible_out_of_vocabulary_spelling() {
    let (codec, model) = word_model();
    let examples = self_labelled(
        &model,
        &codec,
        &["the movie was good and great", "a bad film"],
    );
    let report = run(
        &model,
        &codec,
        AttackConfig::new(AttackKind::Unk),
        &examples,
    );
    let mut succeeded = 0;
    for e in &report.examples {
        assert!(e.changes <= 1);
        for op in &e.operations {
            let Operation::Unk {
                word,
                before,
                after,
            } = op
            else {
                panic!("{op:?}")
            };
            assert_ne!(before, after);
            assert!(!after.contains("[UNK]"));
            let enc = codec.encode(&e.adversarial_text).unwrap();
            let TokenIds::Words(ids) = enc.ids else {
                panic!()
            };
            assert_eq!(ids[*word], UNK_ID, "{}", e.adversarial_text);
            assert_eq!(ids.iter().filter(|&&i| i == UNK_ID).count(), 1);
        }
        succeeded += usize::from(e.outcome == Outcome::Success);
    }
    assert!(
        succeeded > 0,
        "respelling the only sentiment word flips 'a bad film'"
    );
}

#[test]
fn sem_flips_satisfy_every_constraint() {
    let (codec, model) = word_model();
    let mut lexicon = MemoryLexicon::new();
    for w in [
        "good", "great", "nice", "fine", "bad", "awful", "poor", "terrible",
    ] {
        lexicon.insert(w, &[Pos::Adjective], w);
    }
    lexicon.insert("better", &[Pos::Adjective], "good");
    for w in ["movie", "film", "plot", "story", "acting"] {
        lexicon.insert(w, &[Pos::Noun], w);
    }
    let examples = self_labelled(
        &model,
        &codec,
        &[
            "the movie was good and the plot was great",
            "a bad film with an awful story",
        ],
    );
    let config = AttackConfig {
        cosine_threshold: 0.5,
        budget: Some(Budget::Changes(3)),
        ..AttackConfig::new(AttackKind::Sem)
    };
    let attacker = Attacker::new(ModelRef::WhiteBox(&model), &codec, config.clone()).unwrap();
    assert!(matches!(
        attacker.run_examples(&examples, &RunControl::default()),
        Err(AttackError::MissingLexicon)
    ));
    let report = attacker
        .with_lexicon(&lexicon)
        .run_examples(&examples, &RunControl::default())
        .unwrap();
    let table = model.embedding_table();
    let cos = |a: &str, b: &str| {
        let (x, y) = (
            table.row(codec.id(a).unwrap() as usize),
            table.row(codec.id(b).unwrap() as usize),
        );
        dot(x, y) / (dot(x, x).sqrt() * dot(y, y).sqrt())
    };
    let mut flips = 0;
    for e in &report.examples {
        for op in &e.operations {
            let Operation::WordFlip { before, after, .. } = op else {
                panic!()
            };
            assert!(!is_stop_word(before));
            assert!(f64::from(cos(before, after)) >= 0.5);
            assert!(!lexicon.pos(before).is_disjoint(&lexicon.pos(after)));
            assert!(lexicon.lemmas(before).is_disjoint(&lexicon.lemmas(after)));
            flips += 1;
        }
    }
    assert!(flips > 0);
}

#[test]
fn sem_takes_its_similarity_from_given_vectors() {
    let (codec, model) = word_model();
    let mut lexicon = MemoryLexicon::new();
    for w in ["good", "great", "nice", "fine", "bad", "awful", "poor"] {
        lexicon.insert(w, &[Pos::Adjective], w);
    }
    let examples = self_labelled(
        &model,
        &codec,
        &["the movie was good and the plot was great", "a bad film"],
    );
    // Only good ~ nice and bad ~ poor are similar; every other word has the zero vector,
    // hence no neighbour at all.
    let rows = codec.size();
    let mut values = vec![0f32; rows * 2];
    for (word, v) in [
        ("good", [1.0, 0.0]),
        ("nice", [1.0, 0.0]),
        ("bad", [0.0, 1.0]),
        ("poor", [0.0, 1.0]),
    ] {
        let id = codec.id(word).unwrap() as usize;
        values[id * 2..id * 2 + 2].copy_from_slice(&v);
    }
    let similarity = EmbeddingTable {
        rows,
        dim: 2,
        values,
    };
    let config = AttackConfig {
        cosine_threshold: 0.9,
        confidence: 1.0,
        curve: vec![],
        budget: Some(Budget::Changes(2)),
        ..AttackConfig::new(AttackKind::Sem)
    };
    let report = Attacker::new(ModelRef::WhiteBox(&model), &codec, config.clone())
        .unwrap()
        .with_lexicon(&lexicon)
        .with_similarity_table(&similarity, "test vectors")
        .run_examples(&examples, &RunControl::default())
        .unwrap();
    let mut pairs = Vec::new();
    for e in &report.examples {
        for op in &e.operations {
            let Operation::WordFlip { before, after, .. } = op else {
                panic!("{op:?}")
            };
            pairs.push((before.clone(), after.clone()));
        }
    }
    pairs.sort();
    let want = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        pairs,
        [want("bad", "poor"), want("good", "nice")],
        "only the given neighbours"
    );
    assert!(
        report.notes.iter().any(|n| n.contains("test vectors")),
        "{:?}",
        report.notes
    );
    let short = EmbeddingTable {
        rows: rows - 1,
        dim: 2,
        values: vec![0.0; (rows - 1) * 2],
    };
    let err = Attacker::new(ModelRef::WhiteBox(&model), &codec, config)
        .unwrap()
        .with_lexicon(&lexicon)
        .with_similarity_table(&short, "short")
        .run_examples(&examples, &RunControl::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("similarity"), "{err}");
}

#[test]
fn random_baseline_makes_the_given_number_of_changes() {
    let (codec, model) = char_model(2);
    let examples = self_labelled(&model, &codec, CHAR_TEXTS);
    let counts = vec![1, 2, 3, 1, 2, 3];
    let config = AttackConfig {
        confidence: 1.0,
        curve: vec![],
        random_change_counts: Some(counts.clone()),
        ..AttackConfig::new(AttackKind::Random)
    };
    let report = run(&model, &codec, config, &examples);
    for e in &report.examples {
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.changes, counts[e.index]);
        assert_eq!(e.backward_passes, 0);
    }
    assert_eq!(report.change_counts(), counts);
}

#[test]
fn configuration_and_input_errors_are_clear() {
    let (wcodec, wmodel) = word_model();
    let (ccodec, cmodel) = char_model(1);
    let err = Attacker::new(
        ModelRef::WhiteBox(&wmodel),
        &wcodec,
        AttackConfig::new(AttackKind::HotflipChar),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            AttackError::Incompatible {
                attack: AttackKind::HotflipChar,
                model: InputKind::Word,
                ..
            }
        ),
        "{err}"
    );
    let err = Attacker::new(
        ModelRef::WhiteBox(&cmodel),
        &ccodec,
        AttackConfig::new(AttackKind::Sem),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("word-level"), "{err}");
    let err = Attacker::new(
        ModelRef::Classifier(&wmodel),
        &wcodec,
        AttackConfig::new(AttackKind::HotflipWord),
    )
    .err()
    .unwrap();
    assert!(matches!(
        err,
        AttackError::NeedsGradients(AttackKind::HotflipWord)
    ));
    let err = Attacker::new(
        ModelRef::WhiteBox(&wmodel),
        &ccodec,
        AttackConfig::new(AttackKind::LossBeam),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("codec"), "{err}");
    let attacker = Attacker::new(
        ModelRef::WhiteBox(&wmodel),
        &wcodec,
        AttackConfig::new(AttackKind::HotflipWord),
    )
    .unwrap();
    let err = attacker
        .run_examples(
            &[
                Example {
                    label: 0,
                    text: "good".into(),
                },
                Example {
                    label: 0,
                    text: "  ".into(),
                },
            ],
            &RunControl::default(),
        )
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("example 1") && err.to_string().contains("empty"),
        "{err}"
    );
    let err = attacker
        .run_examples(
            &[Example {
                label: 5,
                text: "good".into(),
            }],
            &RunControl::default(),
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("label 5"), "{err}");
}

#[test]
fn cancellation_and_progress() {
    let (codec, model) = char_model(1);
    let examples = self_labelled(&model, &codec, CHAR_TEXTS);
    let attacker = Attacker::new(
        ModelRef::WhiteBox(&model),
        &codec,
        AttackConfig::new(AttackKind::HotflipChar),
    )
    .unwrap();
    let seen = Mutex::new(Vec::new());
    let progress = |p: Progress| seen.lock().unwrap().push(p);
    let report = attacker
        .run_examples(
            &examples,
            &RunControl {
                cancel: None,
                progress: Some(&progress),
                ..RunControl::default()
            },
        )
        .unwrap();
    let seen = seen.into_inner().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(
        (last.done, last.total, last.successes),
        (6, 6, report.summary.successes)
    );
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    let cancel = AtomicBool::new(true);
    let report = attacker
        .run_examples(
            &examples,
            &RunControl {
                cancel: Some(&cancel),
                progress: None,
                ..RunControl::default()
            },
        )
        .unwrap();
    assert!(report.cancelled);
    assert!(report.examples.is_empty());
}

#[test]
fn renderers_produce_valid_output() {
    let (codec, model) = word_model();
    let examples = vec![
        Example {
            label: 0,
            text: "the movie was good & <great>".into(),
        },
        Example {
            label: 1,
            text: "the movie was great".into(),
        },
        Example {
            label: 1,
            text: "a bad film".into(),
        },
    ];
    let report = run(
        &model,
        &codec,
        AttackConfig::new(AttackKind::HotflipWord),
        &examples,
    )
    .clone();
    let report = AttackReport {
        model: "sha256:abc".into(),
        ..report
    };
    let json = render::to_json(&report).unwrap();
    assert_eq!(render::from_json(&json).unwrap(), report);
    assert!(
        json.contains("\"kind\": \"word_flip\"") && json.contains("\"outcome\": \"skipped\""),
        "{json}"
    );
    let junit = render::to_junit(&report);
    assert_eq!(junit.matches("<testcase ").count(), 3);
    assert_eq!(junit.matches("<failure ").count(), report.summary.successes);
    assert_eq!(junit.matches("<skipped/>").count(), 1);
    assert!(junit.contains("&lt;great&gt;") && !junit.contains("<great>"));
    let md = render::to_markdown(&report);
    assert!(
        md.contains("| success rate |") && md.contains("sha256:abc") && md.contains("| 0.9 |"),
        "{md}"
    );
    let s = &report.summary;
    assert_eq!(s.examples, 3);
    assert_eq!(
        s.changes_histogram.one + s.changes_histogram.two + s.changes_histogram.three_or_more,
        s.successes
    );
    assert_eq!(
        s.operation_mix.get("word_flip").copied().unwrap_or(0),
        report
            .examples
            .iter()
            .filter(|e| e.outcome == Outcome::Success)
            .map(|e| e.changes)
            .sum::<usize>()
    );
    let _ = (PAD_ID, UNK_ID);
}

#[test]
fn loss_beam_samples_a_default_cap_on_large_vocabularies() {
    let words: Vec<String> = (0..crate::engine::LARGE_VOCABULARY + 100)
        .map(|i| format!("w{i}"))
        .collect();
    let texts: Vec<String> = words.chunks(10).map(|c| c.join(" ")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let codec = codec(InputKind::Word, &refs, 16, 0);
    assert!(codec.size() > crate::engine::LARGE_VOCABULARY);
    let model = LinearBag::random(InputKind::Word, codec.size(), 3, 2, 1.0, 9);
    let examples = self_labelled(&model, &codec, &refs[..2]);
    let run = |cap: Option<usize>| {
        let config = AttackConfig {
            beam_width: 1,
            budget: Some(Budget::Changes(1)),
            candidates_cap: cap,
            ..AttackConfig::new(AttackKind::LossBeam)
        };
        Attacker::new(ModelRef::Classifier(&model), &codec, config)
            .unwrap()
            .run_examples(&examples, &RunControl::default())
            .unwrap()
    };
    let defaulted = run(None);
    assert!(
        defaulted
            .notes
            .iter()
            .any(|n| n.contains("sample of 1000 candidate flips")),
        "{:?}",
        defaulted.notes
    );
    assert_eq!(
        defaulted.config.candidates_cap, None,
        "the report keeps what was asked"
    );
    // The default is exactly the explicit cap of the same size.
    let explicit = run(Some(crate::engine::DEFAULT_LARGE_VOCABULARY_CAP));
    assert!(explicit.notes.is_empty());
    let examples_of = |r: &AttackReport| without_times(r.clone()).examples;
    assert_eq!(examples_of(&defaulted), examples_of(&explicit));
}

/// Counts the texts a classifier is asked about.
struct Counting<'m> {
    inner: &'m LinearBag,
    texts: std::sync::atomic::AtomicU64,
}

impl Classifier for Counting<'_> {
    fn labels(&self) -> &[gauntlet_core::Label] {
        self.inner.labels()
    }
    fn input_kind(&self) -> InputKind {
        self.inner.input_kind()
    }
    fn max_len(&self) -> usize {
        self.inner.max_len()
    }
    fn predict(
        &self,
        batch: &[TokenIds],
    ) -> Result<gauntlet_core::Probabilities, gauntlet_core::ModelError> {
        self.texts
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::SeqCst);
        self.inner.predict(batch)
    }
}

#[test]
fn progress_counts_every_text_the_model_evaluates() {
    let (codec, model) = word_model();
    let counting = Counting {
        inner: &model,
        texts: 0.into(),
    };
    let examples = self_labelled(&model, &codec, WORD_TEXTS);
    let seen = std::sync::Mutex::new(Vec::new());
    let on_progress = |p: Progress| seen.lock().unwrap().push(p);
    let control = RunControl {
        cancel: None,
        progress: Some(&on_progress),
        ..RunControl::default()
    };
    let config = AttackConfig {
        beam_width: 2,
        batch_size: 3,
        ..AttackConfig::new(AttackKind::LossBeam)
    };
    Attacker::new(ModelRef::Classifier(&counting), &codec, config)
        .unwrap()
        .run_examples(&examples, &control)
        .unwrap();
    let seen = seen.into_inner().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.done, examples.len());
    assert_eq!(
        last.evaluated,
        counting.texts.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(seen
        .windows(2)
        .all(|w| w[0].evaluated <= w[1].evaluated && w[0].done <= w[1].done));
}
