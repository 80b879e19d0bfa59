//! ONNX Runtime backend against a hand-built graph whose outputs are computed by hand:
//! logits = (sum over real tokens of E[id]) · W, so padding and the mask are exercised.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use gauntlet_core::manifest::{Provenance, FORMAT_VERSION};
use gauntlet_core::{
    Classifier, InputKind, Label, Manifest, OnnxOutput, OnnxSpec, TokenIds, Tokenization,
};
use gauntlet_onnx::{Attr, GraphBuilder, OnnxModel};
use gauntlet_ort::{OrtModel, OrtOptions};

const EMB: [f32; 8] = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, -1.0]; // 4 ids x 2 dims
const W: [f32; 4] = [1.0, -1.0, 0.5, 2.0]; // 2 dims x 2 classes

fn manifest(onnx: OnnxSpec) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        architecture: "hand-built".into(),
        hyper_parameters: BTreeMap::new(),
        labels: (0..2)
            .map(|id| Label {
                id,
                key: id.to_string(),
                name: format!("class{id}"),
            })
            .collect(),
        tokenization: Tokenization {
            kind: InputKind::Word,
            lowercase: true,
            max_length: 8,
            max_word_length: 0,
            pad_token: "[PAD]".into(),
            unk_token: "[UNK]".into(),
            scheme: Default::default(),
        },
        training: Provenance::default(),
        metrics: BTreeMap::new(),
        onnx: Some(onnx),
    }
}

/// Writes the bundle: Gather → Mul(mask) → ReduceSum(tokens) → MatMul(W).
fn write_bundle(dir: &Path) {
    let mut g = GraphBuilder::new("sum-of-embeddings");
    g.input_int64("input_ids", &["batch", "tokens"]);
    g.input_int64("attention_mask", &["batch", "tokens"]);
    let table = g.float_initializer("embedding", &[4, 2], &EMB);
    let w = g.float_initializer("w", &[2, 2], &W);
    let axes = g.int64_initializer("axes", &[1], &[1]);
    let last = g.int64_initializer("last", &[1], &[-1]);
    let emb = g.node("Gather", &[&table, "input_ids"], &[]);
    let mask = g.node("Cast", &["attention_mask"], &[("to", Attr::Int(1))]);
    let mask = g.node("Unsqueeze", &[&mask, &last], &[]);
    let masked = g.node("Mul", &[&emb, &mask], &[]);
    let pooled = g.node(
        "ReduceSum",
        &[&masked, &axes],
        &[("keepdims", Attr::Int(0))],
    );
    let logits = g.node("MatMul", &[&pooled, &w], &[]);
    g.rename(&logits, "logits");
    g.output_float("logits", &["batch", "2"]);
    OnnxModel::from_proto(g.finish(17))
        .save(&dir.join("model.onnx"))
        .unwrap();
    manifest(OnnxSpec {
        attention_mask: Some("attention_mask".into()),
        pad_id: 3, // a real id: only the mask keeps it out
        ..OnnxSpec::default()
    })
    .save(dir)
    .unwrap();
}

fn expected(ids: &[u32]) -> Vec<f32> {
    let mut pooled = [0.0f32; 2];
    for &id in ids {
        pooled[0] += EMB[id as usize * 2];
        pooled[1] += EMB[id as usize * 2 + 1];
    }
    let logits = [
        pooled[0] * W[0] + pooled[1] * W[2],
        pooled[0] * W[1] + pooled[1] * W[3],
    ];
    let max = logits[0].max(logits[1]);
    let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits.iter().map(|l| (l - max).exp() / z).collect()
}

#[test]
fn predictions_match_the_hand_computed_graph_with_padding() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let model = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap();
    let batch = [
        TokenIds::Words(vec![1, 2, 3]),
        TokenIds::Words(vec![2]),
        TokenIds::Words(vec![0, 3]),
    ];
    let probs = model.predict(&batch).unwrap();
    assert_eq!(probs.len(), 3);
    for (i, ids) in batch.iter().enumerate() {
        let want = expected(&ids.flat());
        for (got, want) in probs.row(i).iter().zip(&want) {
            assert!((got - want).abs() < 1e-6, "example {i}: {got} vs {want}");
        }
    }
}

#[test]
fn concurrent_predictions_share_the_session_pool() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let options = OrtOptions {
        sessions: 2,
        ..OrtOptions::default()
    };
    let model = OrtModel::load(dir.path(), &options).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let model = &model;
            s.spawn(move || {
                for _ in 0..20 {
                    let ids = vec![t % 4, (t + 1) % 4];
                    let p = model.predict(&[TokenIds::Words(ids.clone())]).unwrap();
                    assert!((p.row(0)[0] - expected(&ids)[0]).abs() < 1e-6);
                }
            });
        }
    });
}

#[test]
fn manifest_graph_mismatches_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let mut m = Manifest::load(dir.path()).unwrap();
    m.onnx = Some(OnnxSpec {
        attention_mask: Some("mask".into()),
        ..OnnxSpec::default()
    });
    m.save(dir.path()).unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"mask\""), "{err}");

    m.onnx = Some(OnnxSpec::default()); // the mask input left out
    m.save(dir.path()).unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("attention_mask"), "{err}");

    m.onnx = Some(OnnxSpec {
        attention_mask: Some("attention_mask".into()),
        output: "probs".into(),
        output_kind: OnnxOutput::Probabilities,
        ..OnnxSpec::default()
    });
    m.save(dir.path()).unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("\"probs\""), "{err}");

    m.onnx = None;
    m.save(dir.path()).unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("[onnx]"), "{err}");
}

#[test]
fn missing_or_corrupt_graphs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    std::fs::write(dir.path().join("model.onnx"), b"not a graph").unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("model.onnx"), "{err}");
    std::fs::remove_file(dir.path().join("model.onnx")).unwrap();
    let err = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap_err();
    assert!(err.to_string().contains("missing graph"), "{err}");
}

#[test]
fn wrong_kind_of_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let model = OrtModel::load(dir.path(), &OrtOptions::default()).unwrap();
    assert!(model.predict(&[TokenIds::Chars(vec![vec![1]])]).is_err());
    assert!(model.predict(&[]).is_err());
}
