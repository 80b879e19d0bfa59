//! An ONNX graph with an operator the interpreter lacks still loads: predictions and
//! forward-only attacks run on ONNX Runtime, and the reason there are no gradients names
//! the operator and its node.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use gauntlet_attacks::{AttackConfig, AttackKind, Attacker, ModelRef, RunControl};
use gauntlet_backends::{LoadOptions, LoadedBundle, Runtime};
use gauntlet_core::codec::VocabularyOptions;
use gauntlet_core::manifest::{Provenance, FORMAT_VERSION, TOKENIZER_FILE};
use gauntlet_core::{
    Example, InputKind, Label, Manifest, OnnxSpec, TextCodec, TokenScheme, Tokenization,
};
use gauntlet_onnx::{Attr, GraphBuilder, OnnxModel};

const TEXTS: [&str; 4] = [
    "a good film",
    "a bad film",
    "good good plot",
    "bad plot and bad film",
];

/// Gather → Sin (not interpreted) → masked sum over tokens → MatMul: logits.
fn write_bundle(dir: &Path) {
    let (tokenizer, _) = TextCodec::build(
        &TEXTS,
        &VocabularyOptions {
            kind: InputKind::Word,
            lowercase: true,
            min_count: 1,
            max_size: 100,
        },
    )
    .unwrap();
    tokenizer.save(dir.join(TOKENIZER_FILE), false).unwrap();
    let vocab = tokenizer.get_vocab_size(true);
    let table: Vec<f32> = (0..vocab * 2).map(|i| (i as f32 * 0.37).cos()).collect();

    let mut g = GraphBuilder::new("sin");
    g.input_int64("input_ids", &["batch", "tokens"]);
    g.input_int64("attention_mask", &["batch", "tokens"]);
    let table = g.float_initializer("embedding", &[vocab as i64, 2], &table);
    let w = g.float_initializer("w", &[2, 2], &[2.0, -2.0, -1.0, 1.0]);
    let axes = g.int64_initializer("axes", &[1], &[1]);
    let last = g.int64_initializer("last", &[1], &[-1]);
    let emb = g.node("Gather", &[&table, "input_ids"], &[]);
    let wavy = g.node("Sin", &[&emb], &[]);
    let mask = g.node("Cast", &["attention_mask"], &[("to", Attr::Int(1))]);
    let mask = g.node("Unsqueeze", &[&mask, &last], &[]);
    let masked = g.node("Mul", &[&wavy, &mask], &[]);
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
            max_length: 16,
            max_word_length: 0,
            pad_token: "[PAD]".into(),
            unk_token: "[UNK]".into(),
            scheme: TokenScheme::default(),
        },
        training: Provenance::default(),
        metrics: BTreeMap::new(),
        onnx: Some(OnnxSpec {
            attention_mask: Some("attention_mask".into()),
            ..OnnxSpec::default()
        }),
    }
    .save(dir)
    .unwrap();
}

#[test]
fn a_graph_the_interpreter_cannot_run_serves_forward_only_attacks() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = LoadedBundle::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!(bundle.runtime(), Runtime::Onnx);
    assert!(bundle.white_box().is_none());
    let why = bundle.white_box_unavailable().unwrap();
    assert!(why.contains("Sin") && why.contains("node"), "{why}");

    let examples: Vec<Example> = TEXTS
        .iter()
        .map(|t| {
            let ids = bundle.codec().encode(t).unwrap().ids;
            let label = bundle.classifier().predict(&[ids]).unwrap().argmax(0).0;
            Example {
                text: (*t).to_owned(),
                label,
            }
        })
        .collect();
    let mut config = AttackConfig::new(AttackKind::LossBeam);
    config.beam_width = 2;
    let report = Attacker::new(
        ModelRef::Classifier(bundle.classifier()),
        bundle.codec(),
        config,
    )
    .unwrap()
    .run_examples(&examples, &RunControl::default())
    .unwrap();
    assert_eq!(report.summary.attacked, TEXTS.len());
    assert!(report.examples.iter().all(|e| e.backward_passes == 0));

    // UNK picks its word by exact loss when there are no gradients.
    let unk = Attacker::new(
        ModelRef::Classifier(bundle.classifier()),
        bundle.codec(),
        AttackConfig::new(AttackKind::Unk),
    )
    .unwrap()
    .run_examples(&examples, &RunControl::default())
    .unwrap();
    assert_eq!(unk.notes.len(), 1);
    assert!(unk.examples.iter().all(|e| e.backward_passes == 0));

    // Gradient attacks are refused by the engine without a white box.
    let hotflip = AttackConfig::new(AttackKind::HotflipWord);
    assert!(Attacker::new(
        ModelRef::Classifier(bundle.classifier()),
        bundle.codec(),
        hotflip
    )
    .is_err());
}
