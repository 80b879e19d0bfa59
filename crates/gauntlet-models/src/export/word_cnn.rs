//! [`WordCnn`](crate::WordCnn) as an ONNX graph: masked embedding, one convolution per
//! filter width with ReLU and max over the windows that start inside the text, concatenation,
//! and the output layer — `WordCnn::logits` in eval mode (dropout is the identity).

use gauntlet_onnx::Attr;

use super::graph::{Graph, Param, Weights};
use super::{ATTENTION_MASK, INPUT_IDS};
use crate::error::ModelsError;
use crate::word_cnn::WordCnnConfig;

/// Adds the network to `graph` (inputs already declared) and returns the logits' name.
pub(crate) fn build(
    graph: &mut Graph,
    config: &WordCnnConfig,
    weights: &Weights,
    table: &Param,
) -> Result<String, ModelsError> {
    let x = graph.masked_embedding(table, INPUT_IDS, ATTENTION_MASK); // [B, T, D]
    let x = graph.node("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 2, 1]))]); // [B, D, T]
    let lengths = graph.reduce_sum(ATTENTION_MASK, &[1]);
    let lengths = graph.unsqueeze(&lengths, &[1]); // [B, 1]
    let features = graph.conv_bank(&x, weights, &config.filter_widths, "Relu", &lengths)?;
    graph.linear(&features, weights, "output")
}
