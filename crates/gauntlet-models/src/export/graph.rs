//! Graph-writing helpers shared by the architecture exporters: weights copied out of
//! libtorch, typed constants, and the two blocks every architecture repeats — the masked
//! input embedding and convolution with masked max-over-time pooling.
//!
//! Every helper mirrors a native (tch) operation exactly, so an exported graph computes the
//! same logits as the network it came from; comments name the native code each one mirrors.

use std::collections::HashMap;

use gauntlet_onnx::{Attr, DataType, GraphBuilder};
use tch::{Device, Kind, Tensor};

use crate::error::ModelsError;

/// Value masked-out convolution positions get before the max, as in `batch::masked_max`.
const MASKED_OUT: f32 = -1e9;

/// A float tensor copied to the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param {
    /// Dimensions.
    pub dims: Vec<i64>,
    /// Values.
    pub values: Vec<f32>,
}

impl Param {
    /// Copies a libtorch tensor (any device, any float kind) to the host as f32.
    pub(crate) fn from_tensor(name: &str, tensor: &Tensor) -> Result<Self, ModelsError> {
        let host = tensor
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let values = Vec::<f32>::try_from(host.flatten(0, -1))
            .map_err(|e| ModelsError::Config(format!("cannot read tensor {name:?}: {e}")))?;
        Ok(Self {
            dims: host.size(),
            values,
        })
    }
}

/// The named variables of a network, read on demand with errors that name the tensor.
pub(crate) struct Weights {
    variables: HashMap<String, Tensor>,
}

impl Weights {
    /// Wraps a var store's variables.
    pub(crate) fn new(variables: HashMap<String, Tensor>) -> Self {
        Self { variables }
    }

    /// The variable `name` on the host.
    pub(crate) fn get(&self, name: &str) -> Result<Param, ModelsError> {
        let tensor = self.variables.get(name).ok_or_else(|| {
            ModelsError::Config(format!(
                "the network has no variable {name:?}; cannot export it"
            ))
        })?;
        Param::from_tensor(name, tensor)
    }
}

/// A [`GraphBuilder`] with the typed helpers the exporters need.
pub(crate) struct Graph {
    builder: GraphBuilder,
}

impl Graph {
    /// An empty graph named `name`.
    pub(crate) fn new(name: &str) -> Self {
        Self {
            builder: GraphBuilder::new(name),
        }
    }

    /// The underlying builder (inputs, outputs, finishing).
    pub(crate) fn builder(&mut self) -> &mut GraphBuilder {
        &mut self.builder
    }

    /// Gives the graph back.
    pub(crate) fn into_builder(self) -> GraphBuilder {
        self.builder
    }

    /// Adds a node with one output.
    pub(crate) fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.builder.node(op, inputs, attrs)
    }

    /// A float initializer holding `param`.
    pub(crate) fn param(&mut self, stem: &str, param: &Param) -> String {
        self.builder
            .float_initializer(stem, &param.dims, &param.values)
    }

    /// A 1-D int64 constant.
    pub(crate) fn ints(&mut self, stem: &str, values: &[i64]) -> String {
        self.builder
            .int64_initializer(stem, &[values.len() as i64], values)
    }

    /// A scalar int64 constant.
    pub(crate) fn int_scalar(&mut self, stem: &str, value: i64) -> String {
        self.builder.int64_initializer(stem, &[], &[value])
    }

    /// A scalar float constant.
    pub(crate) fn float_scalar(&mut self, stem: &str, value: f32) -> String {
        self.builder.float_initializer(stem, &[], &[value])
    }

    /// `Unsqueeze` at `axes` (opset 13+: axes are an input).
    pub(crate) fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        let axes = self.ints("axes", axes);
        self.node("Unsqueeze", &[x, &axes], &[])
    }

    /// `Squeeze` at `axes`.
    pub(crate) fn squeeze(&mut self, x: &str, axes: &[i64]) -> String {
        let axes = self.ints("axes", axes);
        self.node("Squeeze", &[x, &axes], &[])
    }

    /// `Cast` to `to`.
    pub(crate) fn cast(&mut self, x: &str, to: DataType) -> String {
        self.node("Cast", &[x], &[("to", Attr::Int(i64::from(to.code())))])
    }

    /// `ReduceSum` over `axes` without keeping them.
    pub(crate) fn reduce_sum(&mut self, x: &str, axes: &[i64]) -> String {
        let axes = self.ints("axes", axes);
        self.node("ReduceSum", &[x, &axes], &[("keepdims", Attr::Int(0))])
    }

    /// `ReduceMax` over `axes` without keeping them (opset 17: axes are an attribute).
    pub(crate) fn reduce_max(&mut self, x: &str, axes: &[i64]) -> String {
        self.node(
            "ReduceMax",
            &[x],
            &[
                ("axes", Attr::Ints(axes.to_vec())),
                ("keepdims", Attr::Int(0)),
            ],
        )
    }

    /// Dimensions `start..end` of `x`'s shape, as a 1-D int64 tensor.
    pub(crate) fn shape(&mut self, x: &str, start: i64, end: i64) -> String {
        self.node(
            "Shape",
            &[x],
            &[("start", Attr::Int(start)), ("end", Attr::Int(end))],
        )
    }

    /// `x @ weight.T + bias`: a tch `nn::Linear` (weight `[out, in]`) as one `Gemm`.
    pub(crate) fn linear(
        &mut self,
        x: &str,
        weights: &Weights,
        prefix: &str,
    ) -> Result<String, ModelsError> {
        let w = weights.get(&format!("{prefix}.weight"))?;
        let b = weights.get(&format!("{prefix}.bias"))?;
        let w = self.param(&format!("{prefix}.weight"), &w);
        let b = self.param(&format!("{prefix}.bias"), &b);
        Ok(self.node("Gemm", &[x, &w, &b], &[("transB", Attr::Int(1))]))
    }

    /// `Network::embed`: gathers rows of `table` at `ids` (the graph input itself, so a
    /// white-box reader finds the embedding lookup) and zeroes padded positions. Returns
    /// the embedded values and the float mask.
    pub(crate) fn masked_embedding(&mut self, table: &Param, ids: &str, mask: &str) -> String {
        let table = self.param("embedding", table);
        let embedded = self.node("Gather", &[&table, ids], &[("axis", Attr::Int(0))]);
        let mask = self.cast(mask, DataType::Float);
        let mask = self.unsqueeze(&mask, &[-1]);
        self.node("Mul", &[&embedded, &mask], &[])
    }

    /// `[1, L]` positions `0..L` of axis `axis` of `x`, for comparing with lengths.
    pub(crate) fn positions(&mut self, x: &str, axis: i64) -> String {
        let len = self.shape(x, axis, axis + 1);
        let len = self.squeeze(&len, &[0]);
        let zero = self.int_scalar("zero", 0);
        let one = self.int_scalar("one", 1);
        let range = self.node("Range", &[&zero, &len, &one], &[]);
        self.unsqueeze(&range, &[0])
    }

    /// Convolution of `x` (`[N, D, L]`) with the tch `nn::Conv1D` under `prefix` (weight
    /// `[F, D, width]`), the max over valid windows only, then `activation` (increasing, so
    /// this equals pooling the activations): `[N, F]`. Mirrors `batch::conv_valid` +
    /// `batch::masked_max`.
    ///
    /// The native batch pads `L` to at least the widest filter; here the convolution pads
    /// `width - 1` zeros at the end instead, which adds only windows that are never valid,
    /// so the result is the same and any `L >= 1` works. `lengths` is `[N, 1]` int64 and
    /// `positions` `[1, L]` from [`Graph::positions`].
    fn conv_max_pool(
        &mut self,
        x: &str,
        weights: &Weights,
        width: i64,
        activation: &str,
        (lengths, positions): (&str, &str),
    ) -> Result<String, ModelsError> {
        let prefix = format!("conv{width}");
        let w = weights.get(&format!("{prefix}.weight"))?;
        let b = weights.get(&format!("{prefix}.bias"))?;
        if w.dims.len() != 3 || w.dims[2] != width {
            return Err(ModelsError::Config(format!(
                "{prefix}.weight has shape {:?}, expected [maps, dim, {width}]",
                w.dims
            )));
        }
        let w = self.param(&format!("{prefix}.weight"), &w);
        let b = self.param(&format!("{prefix}.bias"), &b);
        let conv = self.node(
            "Conv",
            &[x, &w, &b],
            &[
                ("kernel_shape", Attr::Ints(vec![width])),
                ("pads", Attr::Ints(vec![0, width - 1])),
            ],
        );
        // A window starting at t is valid when t < max(length - width + 1, 1).
        let shift = self.int_scalar("shift", width - 1);
        let one = self.int_scalar("one", 1);
        let limit = self.node("Sub", &[lengths, &shift], &[]);
        let limit = self.node("Max", &[&limit, &one], &[]);
        let valid = self.node("Less", &[positions, &limit], &[]);
        let valid = self.unsqueeze(&valid, &[1]);
        let floor = self.float_scalar("masked_out", MASKED_OUT);
        let masked = self.node("Where", &[&valid, &conv, &floor], &[]);
        // The activation is increasing: pooling first is the native networks' order.
        let pooled = self.reduce_max(&masked, &[2]);
        Ok(self.node(activation, &[&pooled], &[]))
    }

    /// The filter bank of a CNN: [`Self::conv_max_pool`] for every width (weights under
    /// `conv{width}`), concatenated: `[N, sum of maps]`. `lengths` is `[N, 1]` int64.
    pub(crate) fn conv_bank(
        &mut self,
        x: &str,
        weights: &Weights,
        widths: &[i64],
        activation: &str,
        lengths: &str,
    ) -> Result<String, ModelsError> {
        let positions = self.positions(x, 2);
        let pooled = widths
            .iter()
            .map(|&w| self.conv_max_pool(x, weights, w, activation, (lengths, &positions)))
            .collect::<Result<Vec<_>, _>>()?;
        let pooled: Vec<&str> = pooled.iter().map(String::as_str).collect();
        Ok(self.node("Concat", &pooled, &[("axis", Attr::Int(1))]))
    }
}
