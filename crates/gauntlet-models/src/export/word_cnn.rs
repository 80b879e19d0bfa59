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
    let positions = graph.positions(&x, 2);
    let pooled = config
        .filter_widths
        .iter()
        .map(|&w| {
            graph.conv_max_pool(
                &x,
                weights,
                &format!("conv{w}"),
                w,
                "Relu",
                &lengths,
                &positions,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pooled: Vec<&str> = pooled.iter().map(String::as_str).collect();
    let features = graph.node("Concat", &pooled, &[("axis", Attr::Int(1))]);
    graph.linear(&features, weights, "output")
}
