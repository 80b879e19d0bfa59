//! [`CharCnnLstm`](crate::CharCnnLstm) as an ONNX graph: masked character embedding, every
//! word's characters convolved with tanh and max over the windows inside the word, highway
//! layers, one `LSTM` node per layer with `sequence_lens`, and the output layer on the last
//! real word's state — `CharCnnLstm::logits` in eval mode.
//!
//! Padded words have no real characters; like the native batch they still flow through the
//! convolutions (their first window counts as valid) but no LSTM step reads them.

use gauntlet_onnx::{Attr, DataType};

use super::graph::{Graph, Param, Weights};
use super::rnn::{rnn_node, CellKind, Direction};
use super::{ATTENTION_MASK, INPUT_IDS};
use crate::char_cnn_lstm::CharCnnLstmConfig;
use crate::error::ModelsError;

/// Adds the network to `graph` (inputs already declared) and returns the logits' name.
pub(crate) fn build(
    graph: &mut Graph,
    config: &CharCnnLstmConfig,
    weights: &Weights,
    table: &Param,
) -> Result<String, ModelsError> {
    let x = graph.masked_embedding(table, INPUT_IDS, ATTENTION_MASK); // [B, W, C, D]
    let char_and_dim = graph.shape(&x, 2, 4);
    let all_words = graph.ints("shape", &[-1]);
    let shape = graph.node(
        "Concat",
        &[&all_words, &char_and_dim],
        &[("axis", Attr::Int(0))],
    );
    let x = graph.node("Reshape", &[&x, &shape], &[]); // [B*W, C, D]
    let x = graph.node("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 2, 1]))]); // [B*W, D, C]
    let char_lengths = graph.reduce_sum(ATTENTION_MASK, &[2]); // [B, W]
    let column = graph.ints("shape", &[-1, 1]);
    let char_lengths = graph.node("Reshape", &[&char_lengths, &column], &[]); // [B*W, 1]
    let mut words = graph.conv_bank(&x, weights, &config.filter_widths, "Tanh", &char_lengths)?; // [B*W, F]
    for i in 0..config.highway_layers {
        let gate = graph.linear(&words, weights, &format!("highway{i}_gate"))?;
        let gate = graph.node("Sigmoid", &[&gate], &[]);
        let transformed = graph.linear(&words, weights, &format!("highway{i}_transform"))?;
        let transformed = graph.node("Relu", &[&transformed], &[]);
        let one = graph.float_scalar("one", 1.0);
        let carry = graph.node("Sub", &[&one, &gate], &[]);
        let through = graph.node("Mul", &[&gate, &transformed], &[]);
        let kept = graph.node("Mul", &[&carry, &words], &[]);
        words = graph.node("Add", &[&through, &kept], &[]);
    }
    let features: i64 = config
        .filter_widths
        .iter()
        .map(|w| w * config.maps_per_width)
        .sum();
    let batch_and_words = graph.shape(INPUT_IDS, 0, 2);
    let feature_dim = graph.ints("shape", &[features]);
    let shape = graph.node(
        "Concat",
        &[&batch_and_words, &feature_dim],
        &[("axis", Attr::Int(0))],
    );
    let words = graph.node("Reshape", &[&words, &shape], &[]); // [B, W, F]
    let mut sequence = graph.node(
        "Transpose",
        &[&words],
        &[("perm", Attr::Ints(vec![1, 0, 2]))],
    );
    // A word is real when any of its characters is.
    let real_words = graph.reduce_max(ATTENTION_MASK, &[2]);
    let word_lengths = graph.reduce_sum(&real_words, &[1]);
    let word_lengths = graph.cast(&word_lengths, DataType::Int32);
    let mut last = String::new();
    for layer in 0..config.lstm_layers.max(0) as usize {
        let direction = [Direction::read(weights, "lstm", layer)?];
        let (y, y_h) = rnn_node(
            graph,
            CellKind::Lstm,
            &direction,
            &sequence,
            &word_lengths,
            &format!("lstm{layer}"),
        )?;
        sequence = graph.squeeze(&y, &[1]); // [W, B, H]
        last = y_h;
    }
    if last.is_empty() {
        return Err(ModelsError::Config(
            "char-cnn-lstm: no LSTM layer to export".into(),
        ));
    }
    let last = graph.squeeze(&last, &[0]); // [B, H]
    graph.linear(&last, weights, "output")
}
