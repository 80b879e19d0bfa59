//! tch (PyTorch-layout) LSTM/GRU weights as ONNX `LSTM`/`GRU` nodes.
//!
//! PyTorch stacks an LSTM's gates as `i, f, g, o` and a GRU's as `r, z, n`; ONNX expects
//! `i, o, f, c` and `z, r, h`. Input and recurrent biases stay separate (ONNX `B` is
//! `[Wb, Rb]`), which a GRU needs: PyTorch applies the reset gate after the recurrent
//! bias, ONNX's `linear_before_reset = 1`. Nodes get `sequence_lens`, so `Y_h` is each
//! example's state at its own last real step and the reverse direction starts there —
//! what the native `last_step` and per-length reversal compute.

use gauntlet_onnx::Attr;

use super::graph::{Graph, Param, Weights};
use crate::error::ModelsError;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellKind {
    /// LSTM (4 gates).
    Lstm,
    /// GRU (3 gates).
    Gru,
}

impl CellKind {
    /// ONNX operator name.
    fn op(self) -> &'static str {
        match self {
            Self::Lstm => "LSTM",
            Self::Gru => "GRU",
        }
    }

    /// For each ONNX gate block, the PyTorch block it comes from.
    pub(crate) fn onnx_gate_order(self) -> &'static [usize] {
        match self {
            // ONNX i, o, f, c  <-  PyTorch i(0), f(1), g(2), o(3).
            Self::Lstm => &[0, 3, 1, 2],
            // ONNX z, r, h  <-  PyTorch r(0), z(1), n(2).
            Self::Gru => &[1, 0, 2],
        }
    }
}

/// Reorders the gate blocks of a PyTorch weight or bias whose first axis stacks
/// `order.len()` equal gate blocks (`[gates * hidden, ...]`, row-major).
pub(crate) fn reorder_gates(values: &[f32], order: &[usize]) -> Vec<f32> {
    let block = values.len() / order.len().max(1);
    order
        .iter()
        .flat_map(|&g| values[g * block..(g + 1) * block].iter().copied())
        .collect()
}

/// One direction's PyTorch weights: `weight_ih [G*H, D]`, `weight_hh [G*H, H]`,
/// `bias_ih [G*H]`, `bias_hh [G*H]`.
pub(crate) struct Direction {
    weight_ih: Param,
    weight_hh: Param,
    bias_ih: Param,
    bias_hh: Param,
}

impl Direction {
    /// Reads layer `layer` of the tch RNN under `prefix`.
    pub(crate) fn read(weights: &Weights, prefix: &str, layer: usize) -> Result<Self, ModelsError> {
        let get = |kind: &str| weights.get(&format!("{prefix}.{kind}_l{layer}"));
        Ok(Self {
            weight_ih: get("weight_ih")?,
            weight_hh: get("weight_hh")?,
            bias_ih: get("bias_ih")?,
            bias_hh: get("bias_hh")?,
        })
    }
}

/// ONNX `W`, `R`, `B` for `directions` (forward first), with dimensions.
pub(crate) fn onnx_weights(
    cell: CellKind,
    directions: &[Direction],
) -> Result<(Param, Param, Param, i64), ModelsError> {
    let order = cell.onnx_gate_order();
    let gates = order.len() as i64;
    let first = directions
        .first()
        .ok_or_else(|| ModelsError::Config("an RNN needs at least one direction".into()))?;
    let (rows, input) = match first.weight_ih.dims.as_slice() {
        &[r, i] => (r, i),
        other => {
            return Err(ModelsError::Config(format!(
                "RNN input weight has shape {other:?}, expected 2 dimensions"
            )))
        }
    };
    let hidden = rows / gates;
    let n = directions.len() as i64;
    let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for d in directions {
        let shapes_fit = d.weight_ih.dims == [rows, input]
            && d.weight_hh.dims == [rows, hidden]
            && d.bias_ih.dims == [rows]
            && d.bias_hh.dims == [rows]
            && hidden * gates == rows;
        if !shapes_fit {
            return Err(ModelsError::Config(format!(
                "RNN weights do not fit {gates} gates of {hidden} units over {input} inputs"
            )));
        }
        w.extend(reorder_gates(&d.weight_ih.values, order));
        r.extend(reorder_gates(&d.weight_hh.values, order));
        b.extend(reorder_gates(&d.bias_ih.values, order));
        b.extend(reorder_gates(&d.bias_hh.values, order));
    }
    let param = |dims: Vec<i64>, values| Param { dims, values };
    Ok((
        param(vec![n, rows, input], w),
        param(vec![n, rows, hidden], r),
        param(vec![n, 2 * rows], b),
        hidden,
    ))
}

/// Adds an RNN node over `x` (`[T, B, D]`) with `sequence_lens` (`[B]` int32). Returns
/// `Y` (`[T, dirs, B, H]`) and `Y_h` (`[dirs, B, H]`).
pub(crate) fn rnn_node(
    graph: &mut Graph,
    cell: CellKind,
    directions: &[Direction],
    x: &str,
    sequence_lens: &str,
    stem: &str,
) -> Result<(String, String), ModelsError> {
    let (w, r, b, hidden) = onnx_weights(cell, directions)?;
    let w = graph.param(&format!("{stem}.W"), &w);
    let r = graph.param(&format!("{stem}.R"), &r);
    let b = graph.param(&format!("{stem}.B"), &b);
    let direction = if directions.len() == 2 {
        "bidirectional"
    } else {
        "forward"
    };
    let mut attrs = vec![
        ("hidden_size", Attr::Int(hidden)),
        ("direction", Attr::Str(direction.into())),
    ];
    if cell == CellKind::Gru {
        attrs.push(("linear_before_reset", Attr::Int(1)));
    }
    let mut outputs =
        graph
            .builder()
            .node_multi(cell.op(), &[x, &w, &r, &b, sequence_lens], &attrs, 2);
    let y_h = outputs.pop().unwrap_or_default();
    let y = outputs.pop().unwrap_or_default();
    Ok((y, y_h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(dims: Vec<i64>, values: Vec<f32>) -> Param {
        Param { dims, values }
    }

    #[test]
    fn lstm_gates_go_from_ifgo_to_iofc() {
        // Hidden 1, input 2: row k of gate block g holds (10g + k, 10g + k + 0.5).
        let rows: Vec<f32> = (0..4)
            .flat_map(|g| [10.0 * g as f32, 10.0 * g as f32 + 0.5])
            .collect();
        let out = reorder_gates(&rows, CellKind::Lstm.onnx_gate_order());
        // i (0), o (30), f (10), g/c (20).
        assert_eq!(out, [0.0, 0.5, 30.0, 30.5, 10.0, 10.5, 20.0, 20.5]);
    }

    #[test]
    fn gru_gates_go_from_rzn_to_zrh() {
        // Hidden 2: blocks r = [1, 2], z = [3, 4], n = [5, 6].
        let bias = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            reorder_gates(&bias, CellKind::Gru.onnx_gate_order()),
            [3.0, 4.0, 1.0, 2.0, 5.0, 6.0]
        );
    }

    #[test]
    fn bidirectional_weights_stack_directions_and_concatenate_biases() {
        let dir = |base: f32| Direction {
            // GRU, hidden 1, input 1: gates r, z, n.
            weight_ih: param(vec![3, 1], vec![base, base + 1.0, base + 2.0]),
            weight_hh: param(vec![3, 1], vec![base + 3.0, base + 4.0, base + 5.0]),
            bias_ih: param(vec![3], vec![base + 6.0, base + 7.0, base + 8.0]),
            bias_hh: param(vec![3], vec![base + 9.0, base + 10.0, base + 11.0]),
        };
        let (w, r, b, hidden) = onnx_weights(CellKind::Gru, &[dir(0.0), dir(100.0)]).unwrap();
        assert_eq!(hidden, 1);
        assert_eq!(w.dims, [2, 3, 1]);
        assert_eq!(w.values, [1.0, 0.0, 2.0, 101.0, 100.0, 102.0]);
        assert_eq!(r.dims, [2, 3, 1]);
        assert_eq!(r.values, [4.0, 3.0, 5.0, 104.0, 103.0, 105.0]);
        assert_eq!(b.dims, [2, 6]);
        assert_eq!(
            b.values,
            [7.0, 6.0, 8.0, 10.0, 9.0, 11.0, 107.0, 106.0, 108.0, 110.0, 109.0, 111.0]
        );
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let bad = Direction {
            weight_ih: param(vec![8, 2], vec![0.0; 16]),
            weight_hh: param(vec![8, 3], vec![0.0; 24]),
            bias_ih: param(vec![8], vec![0.0; 8]),
            bias_hh: param(vec![8], vec![0.0; 8]),
        };
        assert!(onnx_weights(CellKind::Lstm, &[bad]).is_err());
    }
}
