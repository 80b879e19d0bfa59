//! LSTM and GRU with `sequence_lens` against a reference: each example run alone,
//! truncated to its length, without `sequence_lens`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use gauntlet_onnx::{Attr, GraphBuilder, OnnxModel};
use gauntlet_onnx_tch::OnnxGraph;
use tch::{Device, Kind, Tensor};

const HIDDEN: i64 = 3;
const INPUT: i64 = 2;

fn values(n: i64, seed: i64) -> Vec<f32> {
    (0..n)
        .map(|k| (((k * 37 + seed * 11) % 17) as f32 - 8.0) / 10.0)
        .collect()
}

/// A bidirectional `op` graph over `[T, B, INPUT]`; returns it with the names of Y and Y_h.
fn rnn_graph(op: &str, with_lens: bool, extra: &[(&str, Attr)]) -> (OnnxGraph, String, String) {
    let gates = if op == "LSTM" { 4 } else { 3 };
    let mut g = GraphBuilder::new("t");
    g.input_float("x", &["seq", "batch", "2"]);
    let w = g.float_initializer(
        "w",
        &[2, gates * HIDDEN, INPUT],
        &values(2 * gates * HIDDEN * INPUT, 1),
    );
    let r = g.float_initializer(
        "r",
        &[2, gates * HIDDEN, HIDDEN],
        &values(2 * gates * HIDDEN * HIDDEN, 2),
    );
    let b = g.float_initializer(
        "b",
        &[2, 2 * gates * HIDDEN],
        &values(4 * gates * HIDDEN, 3),
    );
    let mut inputs = vec!["x".to_owned(), w, r, b];
    if with_lens {
        g.input_int64("lens", &["batch"]);
        inputs.push("lens".into());
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut attrs = vec![
        ("hidden_size", Attr::Int(HIDDEN)),
        ("direction", Attr::Str("bidirectional".into())),
    ];
    attrs.extend(extra.iter().cloned());
    let outs = g.node_multi(op, &refs, &attrs, 2);
    g.output_float(&outs[0], &["seq", "2", "batch", "3"]);
    g.output_float(&outs[1], &["2", "batch", "3"]);
    let graph = OnnxGraph::new(&OnnxModel::from_proto(g.finish(17)), Device::Cpu).unwrap();
    (graph, outs[0].clone(), outs[1].clone())
}

fn check(op: &str, extra: &[(&str, Attr)]) {
    let lens = [4i64, 2, 1];
    let (steps, batch) = (4, lens.len() as i64);
    let x = Tensor::from_slice(&values(steps * batch * INPUT, 5)).reshape([steps, batch, INPUT]);
    let (graph, y, y_h) = rnn_graph(op, true, extra);
    let feeds = HashMap::from([
        ("x".to_owned(), x.shallow_clone()),
        ("lens".to_owned(), Tensor::from_slice(&lens)),
    ]);
    let out = graph
        .evaluate(&feeds, &HashMap::new(), &[&y, &y_h])
        .unwrap();
    let (plain, y1, y_h1) = rnn_graph(op, false, extra);
    for (i, &len) in lens.iter().enumerate() {
        let alone = x.narrow(0, 0, len).narrow(1, i as i64, 1);
        let feeds = HashMap::from([("x".to_owned(), alone)]);
        let reference = plain
            .evaluate(&feeds, &HashMap::new(), &[&y1, &y_h1])
            .unwrap();
        let got_h = out[1].narrow(1, i as i64, 1);
        let diff = (&got_h - &reference[1]).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{op}: Y_h of example {i} differs by {diff}");
        let got_y = out[0].narrow(2, i as i64, 1);
        let diff = (got_y.narrow(0, 0, len) - &reference[0])
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "{op}: Y of example {i} differs by {diff}");
        if len < steps {
            let tail = got_y
                .narrow(0, len, steps - len)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]);
            assert_eq!(
                tail, 0.0,
                "{op}: Y beyond the length of example {i} must be zero"
            );
        }
    }
}

#[test]
fn lstm_sequence_lens_match_truncated_sequences() {
    check("LSTM", &[]);
}

#[test]
fn gru_sequence_lens_match_truncated_sequences() {
    check("GRU", &[]);
    check("GRU", &[("linear_before_reset", Attr::Int(1))]);
}

#[test]
fn one_lstm_step_matches_the_gate_equations() {
    // A single forward step from zero state: c = i * g, h = o * tanh(c), gates in i, o, f, c
    // order with biases Wb + Rb.
    let mut g = GraphBuilder::new("t");
    g.input_float("x", &["1", "1", "1"]);
    let w = g.float_initializer("w", &[1, 4, 1], &[0.5, -1.0, 2.0, 1.5]);
    let r = g.float_initializer("r", &[1, 4, 1], &[0.0; 4]);
    let b = g.float_initializer("b", &[1, 8], &[0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0, 0.1]);
    let outs = g.node_multi(
        "LSTM",
        &["x", &w, &r, &b],
        &[("hidden_size", Attr::Int(1))],
        3,
    );
    g.output_float(&outs[1], &["1", "1", "1"]);
    let graph = OnnxGraph::new(&OnnxModel::from_proto(g.finish(17)), Device::Cpu).unwrap();
    let feeds = HashMap::from([(
        "x".to_owned(),
        Tensor::from_slice(&[1.0f32]).reshape([1, 1, 1]),
    )]);
    let out = graph
        .evaluate(&feeds, &HashMap::new(), &[&outs[1], &outs[2]])
        .unwrap();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (i, o, cand) = (sig(0.5 + 0.1), sig(-1.0 + 0.2), (1.5f64 + 0.5).tanh());
    let c = i * cand;
    assert!((out[1].double_value(&[0, 0, 0]) - c).abs() < 1e-6);
    assert!((out[0].double_value(&[0, 0, 0]) - o * c.tanh()).abs() < 1e-6);
}
