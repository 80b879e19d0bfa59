//! Word flips scored on the backend's device (`WhiteBox::top_word_flips` and
//! `WhiteBox::score_word_flips` of the native models and of the ONNX interpreter) against
//! the host reference, and the attack
//! engine's fast path against its reference path on real libtorch models: the same
//! adversarial texts, operations, outcomes and probabilities.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use gauntlet_attacks::{
    AttackConfig, AttackKind, AttackReport, Attacker, Budget, ModelRef, RunControl,
};
use gauntlet_core::scoring::reference_top_flips;
use gauntlet_core::{DeviceChoice, Example, FlipQuery, TargetMask, TextCodec, TokenIds, WhiteBox};
use gauntlet_models::export::export_bundle;
use gauntlet_models::{Architecture, NativeModel};
use gauntlet_onnx_tch::OnnxWhiteBox;
use gauntlet_train::testing::{tiny_config, toy_rows, train_toy_bundle};

const TEXTS: [&str; 5] = [
    "a wonderful , moving and beautifully acted film",
    "a boring , stupid and painfully bad movie",
    "the plot is thin but the acting is superb",
    "an ugly mess",
    "it is a fine , funny and clever comedy that never drags",
];

fn train(arch: Architecture, dir: &Path) {
    let mut config = tiny_config(arch);
    config.epochs = 3;
    train_toy_bundle(&config, dir).unwrap();
}

/// Queries that exercise both signs, blocked positions and two masks.
fn queries(batch: &[TokenIds]) -> Vec<FlipQuery> {
    batch
        .iter()
        .enumerate()
        .map(|(i, ids)| FlipQuery {
            label: i % 2,
            sign: if i % 3 == 2 { -1.0 } else { 1.0 },
            targets: (0..ids.positions())
                .map(|p| match (p + i) % 4 {
                    0 => None,
                    1 => Some(1),
                    _ => Some(0),
                })
                .collect(),
        })
        .collect()
}

/// The backend's flips equal the host reference's: same positions and ids in the same
/// order, estimates equal up to the matrix product's rounding.
fn assert_backend_flips_match(model: &dyn WhiteBox, codec: &TextCodec, texts: &[&str]) {
    let rows = model.embedding_table().rows;
    let masks = [
        TargetMask::from_ids(rows, 2..rows as u32),
        TargetMask::from_ids(rows, (2..rows as u32).filter(|id| id % 3 == 0)),
    ];
    let batch: Vec<TokenIds> = texts.iter().map(|t| codec.encode(t).unwrap().ids).collect();
    let queries = queries(&batch);
    let labels: Vec<usize> = queries.iter().map(|q| q.label).collect();
    for k in [1, 7, 40] {
        let fast = model.top_word_flips(&batch, &queries, &masks, k).unwrap();
        let pass = model.loss_gradients(&batch, &labels).unwrap();
        // Given gradients (what random-gradient draws) scored on the device.
        let given: Vec<Vec<f32>> = pass.gradients.iter().map(|g| g.values.clone()).collect();
        let scored = model
            .score_word_flips(&batch, &given, &queries, &masks, k)
            .unwrap();
        for (i, (ids, got)) in batch.iter().zip(&scored).enumerate() {
            let TokenIds::Words(words) = ids else {
                unreachable!()
            };
            let want = gauntlet_core::scoring::reference_state_flips(
                words,
                &given[i],
                model.embedding_table(),
                &queries[i],
                &masks,
                k,
            )
            .unwrap();
            assert_eq!(got.len(), want.len(), "given gradients, state {i}, k {k}");
            for (a, b) in got.iter().zip(&want) {
                let scale = want.iter().map(|x| x.estimate.abs()).fold(1e-3, f32::max);
                assert!(
                    (a.estimate - b.estimate).abs() <= 1e-4 * scale,
                    "{a:?} vs {b:?}"
                );
            }
        }
        let reference =
            reference_top_flips(pass, &batch, model.embedding_table(), &queries, &masks, k)
                .unwrap();
        assert_eq!(fast.probabilities, reference.probabilities);
        assert_eq!(fast.losses, reference.losses);
        for (i, (f, r)) in fast.flips.iter().zip(&reference.flips).enumerate() {
            assert_eq!(f.len(), r.len(), "state {i}, k {k}");
            let scale = r.iter().map(|x| x.estimate.abs()).fold(1e-3, f32::max);
            for (a, b) in f.iter().zip(r) {
                assert!(
                    (a.estimate - b.estimate).abs() <= 1e-4 * scale,
                    "state {i}: {a:?} vs {b:?}"
                );
            }
            // Order may differ only where estimates tie to rounding.
            let ids = |l: &[gauntlet_core::ScoredFlip]| {
                let mut v: Vec<(usize, u32)> = l.iter().map(|x| (x.position, x.id)).collect();
                v.sort_unstable();
                v
            };
            if f.len() > 1 {
                assert_eq!(ids(&f[..f.len() - 1]), ids(&r[..r.len() - 1]), "state {i}");
            }
            for flip in f {
                let target = queries[i].targets[flip.position].unwrap();
                assert!(masks[target].allows(flip.id));
            }
        }
    }
}

#[test]
fn native_and_interpreter_flips_equal_the_host_reference() {
    let demo = NativeModel::load(&gauntlet_tests::demo_bundle(), DeviceChoice::Cpu).unwrap();
    assert_backend_flips_match(&demo, demo.codec(), &TEXTS);

    let root = tempfile::tempdir().unwrap();
    for arch in [Architecture::WordCnn, Architecture::BiRnn] {
        let native_dir = root.path().join(arch.name());
        let onnx_dir = root.path().join(format!("{}-onnx", arch.name()));
        train(arch, &native_dir);
        let native = NativeModel::load(&native_dir, DeviceChoice::Cpu).unwrap();
        let texts: Vec<String> = toy_rows(6, 3).into_iter().map(|r| r.text).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_backend_flips_match(&native, native.codec(), &texts);
        export_bundle(&native_dir, &onnx_dir).unwrap();
        let interpreter = OnnxWhiteBox::load(&onnx_dir, DeviceChoice::Cpu).unwrap();
        assert_backend_flips_match(&interpreter, native.codec(), &texts);
    }
}

fn without_times(mut report: AttackReport) -> AttackReport {
    report.summary.wall_time_ms = 0.0;
    report.summary.examples_per_second = 0.0;
    report
        .examples
        .iter_mut()
        .for_each(|e| e.wall_time_ms = 0.0);
    report
}

fn both_paths(model: &NativeModel, config: AttackConfig, examples: &[Example]) -> AttackReport {
    let run = |reference: bool| {
        let attacker =
            Attacker::new(ModelRef::WhiteBox(model), model.codec(), config.clone()).unwrap();
        let attacker = if reference {
            attacker.with_reference_scoring()
        } else {
            attacker
        };
        without_times(
            attacker
                .run_examples(examples, &RunControl::default())
                .unwrap(),
        )
    };
    let fast = run(false);
    assert_eq!(
        fast,
        run(true),
        "{:?} beam {}",
        config.kind,
        config.beam_width
    );
    fast
}

#[test]
fn fast_path_reports_equal_reference_reports_on_native_models() {
    let demo = NativeModel::load(&gauntlet_tests::demo_bundle(), DeviceChoice::Cpu).unwrap();
    let examples: Vec<Example> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            label: usize::from(i != 1 && i != 3),
            text: (*t).into(),
        })
        .collect();
    let mut changes = 0;
    for (kind, beam) in [
        (AttackKind::HotflipWord, 1),
        (AttackKind::HotflipWord, 10),
        (AttackKind::Unk, 3),
    ] {
        for target in [None, Some(0)] {
            let config = AttackConfig {
                beam_width: beam,
                target_label: target,
                budget: Some(Budget::Changes(3)),
                confidence: 0.9,
                ..AttackConfig::new(kind)
            };
            let report = both_paths(&demo, config, &examples);
            changes += report.examples.iter().map(|e| e.changes).sum::<usize>();
        }
    }
    assert!(changes > 0);

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("char");
    train(Architecture::CharCnnLstm, &dir);
    let chars = NativeModel::load(&dir, DeviceChoice::Cpu).unwrap();
    let examples: Vec<Example> = toy_rows(6, 1)
        .into_iter()
        .map(|r| Example {
            label: r.label.parse().unwrap(),
            text: r.text,
        })
        .collect();
    for beam in [1, 4] {
        let config = AttackConfig {
            beam_width: beam,
            budget: Some(Budget::Changes(3)),
            ..AttackConfig::new(AttackKind::HotflipChar)
        };
        both_paths(&chars, config, &examples);
    }
}
