//! [`BiRnn`](crate::BiRnn) as an ONNX graph: masked embedding, one bidirectional `LSTM` or
//! `GRU` node with `sequence_lens` (its forward `Y_h` is the native forward RNN at the last
//! real word; its reverse direction starts at that word, as the native per-length reversal
//! does), the tanh MLP and the output layer — `BiRnn::logits` in eval mode.

use gauntlet_onnx::{Attr, DataType};

use super::graph::{Graph, Param, Weights};
use super::rnn::{rnn_node, CellKind, Direction};
use super::{ATTENTION_MASK, INPUT_IDS};
use crate::birnn::{BiRnnConfig, Cell};
use crate::error::ModelsError;

/// Adds the network to `graph` (inputs already declared) and returns the logits' name.
pub(crate) fn build(
    graph: &mut Graph,
    config: &BiRnnConfig,
    weights: &Weights,
    table: &Param,
) -> Result<String, ModelsError> {
    let x = graph.masked_embedding(table, INPUT_IDS, ATTENTION_MASK); // [B, T, D]
    let x = graph.node("Transpose", &[&x], &[("perm", Attr::Ints(vec![1, 0, 2]))]); // [T, B, D]
    let lengths = graph.reduce_sum(ATTENTION_MASK, &[1]);
    let lengths = graph.cast(&lengths, DataType::Int32);
    let cell = match config.cell {
        Cell::Lstm => CellKind::Lstm,
        Cell::Gru => CellKind::Gru,
    };
    let directions = [
        Direction::read(weights, "forward", 0)?,
        Direction::read(weights, "backward", 0)?,
    ];
    let (_, last) = rnn_node(graph, cell, &directions, &x, &lengths, "rnn")?; // [2, B, H]
    let last = graph.node(
        "Transpose",
        &[&last],
        &[("perm", Attr::Ints(vec![1, 0, 2]))],
    );
    let flat = graph.ints("shape", &[0, -1]);
    let states = graph.node("Reshape", &[&last, &flat], &[]); // [B, 2H]: forward, backward
    let hidden = graph.linear(&states, weights, "mlp")?;
    let hidden = graph.node("Tanh", &[&hidden], &[]);
    graph.linear(&hidden, weights, "output")
}
