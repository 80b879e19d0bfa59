//! Load-time checks of hand-built graphs: unsupported operators, node order, and bundles
//! without a word-embedding lookup.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use gauntlet_core::manifest::FORMAT_VERSION;
use gauntlet_core::{Classifier, DeviceChoice, Manifest, TokenIds, WhiteBox};
use gauntlet_onnx::{Attr, GraphBuilder, OnnxModel};
use gauntlet_onnx_tch::whitebox::BACKWARD;
use gauntlet_onnx_tch::{GraphError, OnnxGraph, OnnxWhiteBox};
use tch::{Device, Tensor};

#[test]
fn an_unsupported_operator_fails_at_load_naming_op_and_node() {
    let mut g = GraphBuilder::new("t");
    g.input_float("boxes", &["1", "4", "4"]);
    g.input_float("scores", &["1", "1", "4"]);
    let out = g.node("NonMaxSuppression", &["boxes", "scores"], &[]);
    g.output_float(&out, &["n", "3"]);
    let model = OnnxModel::from_proto(g.finish(17));
    let err = OnnxGraph::new(&model, Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, GraphError::Unsupported { op, node } if op == "NonMaxSuppression" && node.contains("NonMaxSuppression_1")),
        "{err}"
    );
    assert!(err.to_string().contains("NonMaxSuppression"), "{err}");
}

#[test]
fn a_node_reading_a_later_value_is_refused() {
    let mut g = GraphBuilder::new("t");
    g.input_float("x", &["2"]);
    let y = g.node("Relu", &["later"], &[]);
    let later = g.node("Neg", &["x"], &[]);
    g.rename(&later, "later");
    g.output_float(&y, &["2"]);
    let err = OnnxGraph::new(&OnnxModel::from_proto(g.finish(17)), Device::Cpu).unwrap_err();
    assert!(
        matches!(err, GraphError::NotTopological { ref value, .. } if value == "later"),
        "{err}"
    );
}

#[test]
fn overrides_replace_node_outputs_and_skip_their_producers() {
    let mut g = GraphBuilder::new("t");
    g.input_float("x", &["2"]);
    let a = g.node("Neg", &["x"], &[]);
    let b = g.node("Mul", &[&a, &a], &[]);
    g.output_float(&b, &["2"]);
    let graph = OnnxGraph::new(&OnnxModel::from_proto(g.finish(17)), Device::Cpu).unwrap();
    let leaf = Tensor::from_slice(&[3.0f32, -1.0]).set_requires_grad(true);
    let overrides = HashMap::from([(a.clone(), leaf.shallow_clone())]);
    // `x` is not fed: with `a` overridden nothing needs it.
    let out = graph
        .evaluate(&HashMap::new(), &overrides, &[&b])
        .unwrap()
        .remove(0);
    let grad = Tensor::run_backward(&[out.sum(tch::Kind::Float)], &[&leaf], false, false);
    assert_eq!(Vec::<f32>::try_from(&grad[0]).unwrap(), [6.0, -2.0]);
    let err = graph
        .evaluate(&HashMap::new(), &HashMap::new(), &[&b])
        .unwrap_err();
    assert!(err.to_string().contains("\"x\" was not fed"), "{err}");
}

/// A two-label word manifest with a default `[onnx]` section (built from JSON so fields
/// other crates add with defaults do not break it).
fn manifest() -> Manifest {
    serde_json::from_value(serde_json::json!({
        "format_version": FORMAT_VERSION,
        "architecture": "onnx",
        "hyper_parameters": {},
        "labels": [
            {"id": 0, "key": "0", "name": "0"},
            {"id": 1, "key": "1", "name": "1"},
        ],
        "tokenization": {
            "kind": "word", "lowercase": true, "max_length": 8, "max_word_length": 8,
            "pad_token": "[PAD]", "unk_token": "[UNK]",
        },
        "onnx": {},
    }))
    .unwrap()
}

#[test]
fn a_graph_without_an_embedding_gather_cannot_be_a_white_box() {
    let mut g = GraphBuilder::new("t");
    g.input_int64("input_ids", &["batch", "seq"]);
    let f = g.node("Cast", &["input_ids"], &[("to", Attr::Int(1))]);
    let logits = g.node("ReduceMean", &[&f], &[("axes", Attr::Ints(vec![1]))]);
    g.rename(&logits, "logits");
    g.output_float("logits", &["batch", "1"]);
    let model = OnnxModel::from_proto(g.finish(17));
    let err = OnnxWhiteBox::from_parts(manifest(), &model, DeviceChoice::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("no word-embedding Gather"),
        "{err}"
    );
}

#[test]
fn the_embedding_gather_may_read_ids_through_a_cast() {
    let mut g = GraphBuilder::new("t");
    g.input_int64("input_ids", &["batch", "seq"]);
    let table: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let w = g.float_initializer("emb", &[4, 2], &table);
    let ids32 = g.node("Cast", &["input_ids"], &[("to", Attr::Int(6))]);
    let e = g.node("Gather", &[&w, &ids32], &[]);
    let axes = g.int64_initializer("axes", &[1], &[1]);
    let logits = g.node("ReduceSum", &[&e, &axes], &[("keepdims", Attr::Int(0))]);
    g.rename(&logits, "logits");
    g.output_float("logits", &["batch", "2"]);
    let model = OnnxModel::from_proto(g.finish(17));
    let wb = OnnxWhiteBox::from_parts(manifest(), &model, DeviceChoice::Cpu).unwrap();
    assert_eq!(wb.embedding_site().table, w);
    assert_eq!(gauntlet_core::WhiteBox::embedding_table(&wb).rows, 4);
    // Sum of rows 1 and 3: [2 + 6, 3 + 7]; the gradient is 1 at every real position.
    let batch = [TokenIds::Words(vec![1, 3])];
    let grads = wb.loss_gradients(&batch, &[0]).unwrap();
    let p = wb.predict(&batch).unwrap();
    assert!((p.row(0)[1] - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
    assert_eq!(grads.gradients[0].values.len(), 4);

    // Both passes ran the ReduceSum; the gradient pass skipped the embedding Gather (its
    // output is the leaf) and the Cast only it reads, and added the autograd backward pass.
    let calls: Vec<(String, u64)> = wb
        .operator_profile()
        .unwrap()
        .into_iter()
        .map(|t| (t.op, t.calls))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let expected = [(BACKWARD, 1), ("Cast", 1), ("Gather", 1), ("ReduceSum", 2)];
    let expected: Vec<(String, u64)> = expected.iter().map(|&(o, c)| (o.into(), c)).collect();
    assert_eq!(calls, expected);
    assert!(wb.operator_profile().unwrap().is_empty(), "taking restarts");
}
