//! Native models exported with `gauntlet_models::export` give the same probabilities under
//! ONNX Runtime (`gauntlet-ort`) as under libtorch, for every architecture, on batches that
//! mix lengths (so padding is exercised), including texts shorter than the widest filter
//! and models with frequency-normalized embeddings; and the bundle is what the manifest
//! says it is. The tch interpreter of the exported graph gives the native model's loss
//! gradients with respect to the input embeddings (what the white-box attacks read).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use gauntlet_core::manifest::{ONNX_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WORDS_FILE};
use gauntlet_core::{Classifier, DeviceChoice, Manifest, OnnxOutput, TokenIds, WhiteBox};
use gauntlet_models::export::{export_bundle, ATTENTION_MASK, INPUT_IDS, LOGITS};
use gauntlet_models::{Architecture, NativeModel};
use gauntlet_onnx::OnnxModel;
use gauntlet_onnx_tch::OnnxWhiteBox;
use gauntlet_ort::{OrtModel, OrtOptions};
use gauntlet_train::testing::{tiny_config, train_toy_bundle};

/// Texts of 1 to 9 words; the short ones are narrower than word-cnn's widest filter and
/// hold words shorter than char-cnn-lstm's.
const TEXTS: [&str; 6] = [
    "good",
    "the plot was awful",
    "a fine movie",
    "really boring plot , the movie was a dull and ugly mess",
    "superb",
    "ok",
];

fn train(arch: Architecture, overrides: &[(&str, serde_json::Value)], dir: &Path) {
    let mut config = tiny_config(arch);
    config.epochs = 2;
    for (key, value) in overrides {
        config.hyper.insert((*key).into(), value.clone());
    }
    train_toy_bundle(&config, dir).unwrap();
}

/// Exports a freshly trained bundle and checks ONNX Runtime against libtorch.
fn round_trip(arch: Architecture, overrides: &[(&str, serde_json::Value)]) {
    let root = tempfile::tempdir().unwrap();
    let native_dir = root.path().join("native");
    let onnx_dir = root.path().join("onnx");
    train(arch, overrides, &native_dir);
    assert_same_probabilities(arch, &native_dir, &onnx_dir);
    assert_same_gradients(arch, &native_dir, &onnx_dir);
    check_bundle_files(arch, &native_dir, &onnx_dir);
}

/// The interpreter of the exported graph against libtorch: embedding tables, losses and
/// input-embedding gradients of every text in one padded batch.
fn assert_same_gradients(arch: Architecture, native_dir: &Path, onnx_dir: &Path) {
    let native = NativeModel::load(native_dir, DeviceChoice::Cpu).unwrap();
    let interpreter = OnnxWhiteBox::load(onnx_dir, DeviceChoice::Cpu).unwrap();
    assert_eq!(interpreter.embedding_table(), native.embedding_table());
    let ids: Vec<TokenIds> = TEXTS
        .iter()
        .map(|t| native.codec().encode(t).unwrap().ids)
        .collect();
    let labels: Vec<usize> = (0..ids.len()).map(|i| i % native.labels().len()).collect();
    let expected = native.loss_gradients(&ids, &labels).unwrap();
    let got = interpreter.loss_gradients(&ids, &labels).unwrap();
    assert_eq!(got.dim, expected.dim);
    for (i, (a, b)) in expected.gradients.iter().zip(&got.gradients).enumerate() {
        assert!((a.loss - b.loss).abs() <= 1e-5, "{arch}: loss of text {i}");
        assert_eq!(
            a.values.len(),
            b.values.len(),
            "{arch}: positions of text {i}"
        );
        let scale = a.values.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let diff = a
            .values
            .iter()
            .zip(&b.values)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{arch}: text {i}: max |native - interpreter| gradient = {diff:e} (scale {scale:e})"
        );
    }
}

/// Exports `native_dir` to `onnx_dir` and compares the two on [`TEXTS`] in several batchings.
fn assert_same_probabilities(arch: Architecture, native_dir: &Path, onnx_dir: &Path) {
    let exported = export_bundle(native_dir, onnx_dir).unwrap();
    assert!(exported.nodes > 0);
    assert!(exported.files.iter().all(|f| f.is_file()), "{exported:?}");

    let native = NativeModel::load(native_dir, DeviceChoice::Cpu).unwrap();
    let onnx = OrtModel::load(onnx_dir, &OrtOptions::default()).unwrap();
    assert_eq!(onnx.labels(), native.labels());

    let ids: Vec<TokenIds> = TEXTS
        .iter()
        .map(|t| native.codec().encode(t).unwrap().ids)
        .collect();
    // The whole batch (padded to the longest text), each text alone (no padding), and a
    // pair where the short text is padded by the long one.
    let mut batches: Vec<Vec<TokenIds>> = vec![ids.clone()];
    batches.extend(ids.iter().map(|i| vec![i.clone()]));
    batches.push(vec![ids[0].clone(), ids[3].clone()]);
    for batch in &batches {
        let expected = native.predict(batch).unwrap();
        let got = onnx.predict(batch).unwrap();
        assert_eq!(got.classes, expected.classes);
        let diff = expected
            .values
            .iter()
            .zip(&got.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff <= 1e-5,
            "{arch}: max |native - onnx| = {diff:e} on a batch of {}\nnative {:?}\nonnx   {:?}",
            batch.len(),
            expected.values,
            got.values
        );
    }
}

fn check_bundle_files(arch: Architecture, native_dir: &Path, onnx_dir: &Path) {
    let native = Manifest::load(native_dir).unwrap();
    let manifest = Manifest::load(onnx_dir).unwrap();
    let spec = manifest.onnx.clone().unwrap();
    assert_eq!(spec.file, ONNX_FILE);
    assert_eq!(spec.input_ids, INPUT_IDS);
    assert_eq!(spec.attention_mask.as_deref(), Some(ATTENTION_MASK));
    assert_eq!(spec.output, LOGITS);
    assert_eq!(spec.output_kind, OnnxOutput::Logits);
    assert_eq!(spec.pad_id, 0);
    assert_eq!(
        Manifest {
            onnx: None,
            ..manifest
        },
        native,
        "everything but the [onnx] section is kept"
    );
    assert!(!onnx_dir.join(WEIGHTS_FILE).exists());
    assert_eq!(
        std::fs::read(onnx_dir.join(TOKENIZER_FILE)).unwrap(),
        std::fs::read(native_dir.join(TOKENIZER_FILE)).unwrap()
    );
    let has_words = arch == Architecture::CharCnnLstm;
    assert_eq!(onnx_dir.join(WORDS_FILE).is_file(), has_words);

    // The embedding lookup reads the `input_ids` input directly.
    let model = OnnxModel::load(&onnx_dir.join(ONNX_FILE)).unwrap();
    assert_eq!(model.opset(), Some(17));
    let gathers: Vec<_> = model
        .graph()
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.input.get(1).map(String::as_str) == Some(INPUT_IDS))
        .collect();
    assert_eq!(gathers.len(), 1);
    assert!(model
        .initializers()
        .unwrap()
        .contains_key(&gathers[0].input[0]));
}

#[test]
fn demo_bundle_exports_exactly() {
    let root = tempfile::tempdir().unwrap();
    let onnx_dir = root.path().join("sst2-word-cnn-onnx");
    assert_same_probabilities(
        Architecture::WordCnn,
        &gauntlet_tests::demo_bundle(),
        &onnx_dir,
    );
    check_bundle_files(
        Architecture::WordCnn,
        &gauntlet_tests::demo_bundle(),
        &onnx_dir,
    );
}

#[test]
fn word_cnn_exports_exactly() {
    round_trip(Architecture::WordCnn, &[]);
}

#[test]
fn normalized_word_cnn_exports_exactly() {
    round_trip(
        Architecture::WordCnn,
        &[("normalize_embeddings", serde_json::json!(true))],
    );
}

#[test]
fn birnn_lstm_exports_exactly() {
    round_trip(Architecture::BiRnn, &[]);
}

#[test]
fn normalized_birnn_gru_exports_exactly() {
    round_trip(
        Architecture::BiRnn,
        &[
            ("cell", serde_json::json!("gru")),
            ("normalize_embeddings", serde_json::json!(true)),
        ],
    );
}

#[test]
fn char_cnn_lstm_exports_exactly() {
    round_trip(Architecture::CharCnnLstm, &[]);
}

#[test]
fn export_refuses_foreign_directories_and_replaces_earlier_bundles() {
    let root = tempfile::tempdir().unwrap();
    let native_dir = root.path().join("native");
    train(Architecture::WordCnn, &[], &native_dir);

    let foreign = root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let err = export_bundle(&native_dir, &foreign)
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert!(foreign.join("notes.txt").is_file());

    let err = export_bundle(&native_dir, &native_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the bundle being exported"), "{err}");
    assert!(native_dir.join(WEIGHTS_FILE).is_file());

    let out = root.path().join("onnx");
    export_bundle(&native_dir, &out).unwrap();
    export_bundle(&native_dir, &out).unwrap();
    assert!(Manifest::load(&out).unwrap().onnx.is_some());
    let err = export_bundle(&out, &root.path().join("again"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already an ONNX bundle"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
