//! ONNX operators on tch tensors (opset 14 to 18 semantics, as `torch.onnx.export` writes
//! them, plus opset 20's `Gelu`, which the graph also fuses erf-GELU patterns into).
//!
//! [`SUPPORTED`] is the single list of operators the interpreter implements; the graph
//! checks every node against it at load time, so [`run`] only meets unknown operators when
//! called directly. Every operator is written with libtorch's differentiable primitives, so
//! gradients flow from the outputs back to any float input. Integer shape arithmetic stays
//! in int64 tensors; operators that need static integers (shapes, axes, slice bounds) read
//! them to the host with [`to_ints`].

mod conv;
pub(crate) mod math;
mod rnn;
mod shape;

use gauntlet_onnx::proto::NodeProto;
use gauntlet_onnx::{attribute, describe, HostTensor, TensorData};
use tch::{Device, Kind, Tensor};

use crate::error::GraphError;

/// Every operator type (default domain) the interpreter evaluates.
pub const SUPPORTED: &[&str] = &[
    // math.rs
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Erf",
    "Gelu",
    "Tanh",
    "Relu",
    "Sigmoid",
    "Exp",
    "Log",
    "Abs",
    "Neg",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Not",
    "IsNaN",
    "And",
    "Or",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Where",
    "Cast",
    "Identity",
    "Dropout",
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "MatMul",
    "Gemm",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceSum",
    "Clip",
    "Min",
    "Max",
    "Sum",
    "CumSum",
    "ArgMax",
    // shape.rs
    "Shape",
    "Reshape",
    "Transpose",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Gather",
    "GatherElements",
    "Expand",
    "Tile",
    "Flatten",
    "Range",
    "Constant",
    "ConstantOfShape",
    "Split",
    // conv.rs
    "Conv",
    "MaxPool",
    "GlobalMaxPool",
    "GlobalAveragePool",
    // rnn.rs
    "LSTM",
    "GRU",
];

/// Whether `node` is an operator [`run`] implements.
pub fn is_supported(node: &NodeProto) -> bool {
    (node.domain.is_empty() || node.domain == "ai.onnx")
        && SUPPORTED.contains(&node.op_type.as_str())
}

/// One node's inputs (absent optional inputs are `None`) and attribute access.
pub(crate) struct Args<'a> {
    pub node: &'a NodeProto,
    pub inputs: Vec<Option<Tensor>>,
    pub device: Device,
}

impl Args<'_> {
    /// An error about this node.
    pub fn err(&self, message: impl Into<String>) -> GraphError {
        GraphError::Node {
            node: describe(self.node),
            message: message.into(),
        }
    }

    /// Input `k`, which the operator requires.
    pub fn req(&self, k: usize) -> Result<&Tensor, GraphError> {
        self.opt(k)
            .ok_or_else(|| self.err(format!("input {k} is required but missing")))
    }

    /// Input `k` if given.
    pub fn opt(&self, k: usize) -> Option<&Tensor> {
        self.inputs.get(k).and_then(Option::as_ref)
    }

    /// Integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        attribute(self.node, name)
            .and_then(|a| a.i)
            .unwrap_or(default)
    }

    /// Float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        attribute(self.node, name)
            .and_then(|a| a.f)
            .unwrap_or(default)
    }

    /// Integer-list attribute, if present.
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        attribute(self.node, name).map(|a| a.ints.clone())
    }

    /// String attribute, if present.
    pub fn string(&self, name: &str) -> Option<String> {
        attribute(self.node, name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// Static integers of input `k` (shapes, axes, bounds).
    pub fn req_ints(&self, k: usize) -> Result<Vec<i64>, GraphError> {
        to_ints(self.req(k)?)
    }

    /// Normalises a possibly negative axis against `rank`.
    pub fn axis(&self, axis: i64, rank: i64) -> Result<i64, GraphError> {
        let a = if axis < 0 { axis + rank } else { axis };
        if (0..rank.max(1)).contains(&a) {
            Ok(a)
        } else {
            Err(self.err(format!("axis {axis} is out of range for rank {rank}")))
        }
    }

    /// Number of outputs the node declares (trailing empty names excluded).
    pub fn outputs(&self) -> usize {
        let mut n = self.node.output.len();
        while n > 0 && self.node.output[n - 1].is_empty() {
            n -= 1;
        }
        n
    }
}

/// Reads an integer (or integral float) tensor to the host, flattened.
pub(crate) fn to_ints(t: &Tensor) -> Result<Vec<i64>, GraphError> {
    let host = t.f_to_kind(Kind::Int64)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<i64>::try_from(host.f_flatten(0, -1)?)?)
}

/// Reads a tensor to the host as `f64`, flattened.
pub(crate) fn to_floats(t: &Tensor) -> Result<Vec<f64>, GraphError> {
    let host = t.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?;
    Ok(Vec::<f64>::try_from(host.f_flatten(0, -1)?)?)
}

/// A decoded constant as a tensor on `device`: floats as `f32`, booleans as `Bool`, other
/// integers as `i64` (every integer computation here is done in int64).
pub(crate) fn host_to_tensor(h: &HostTensor, device: Device) -> Result<Tensor, GraphError> {
    let t = match &h.data {
        TensorData::Float(v) => Tensor::f_from_slice(v)?,
        TensorData::Int(v) => Tensor::f_from_slice(v)?,
    };
    let t = t.f_reshape(h.dims.as_slice())?;
    let t = if h.data_type == gauntlet_onnx::DataType::Bool {
        t.f_to_kind(Kind::Bool)?
    } else {
        t
    };
    Ok(t.f_to_device(device)?)
}

/// Whether a tensor holds floating-point values.
pub(crate) fn is_float(t: &Tensor) -> bool {
    matches!(
        t.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    )
}

/// Evaluates one node.
pub(crate) fn run(args: &Args<'_>) -> Result<Vec<Tensor>, GraphError> {
    let op = args.node.op_type.as_str();
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        "Conv" => one(conv::conv(args)?),
        "MaxPool" => one(conv::max_pool(args)?),
        "GlobalMaxPool" | "GlobalAveragePool" => one(conv::global_pool(args)?),
        "LSTM" => rnn::lstm(args),
        "GRU" => rnn::gru(args),
        "Shape" | "Reshape" | "Transpose" | "Unsqueeze" | "Squeeze" | "Concat" | "Slice"
        | "Gather" | "GatherElements" | "Expand" | "Tile" | "Flatten" | "Range" | "Constant"
        | "ConstantOfShape" | "Split" => shape::run(args),
        _ if is_supported(args.node) => math::run(args),
        _ => Err(GraphError::Unsupported {
            op: op.to_owned(),
            node: describe(args.node),
        }),
    }
}

/// A float attribute if present (for operators whose old opsets used attributes).
pub(crate) fn attribute_float(args: &Args<'_>, name: &str) -> Option<f64> {
    attribute(args.node, name).and_then(|a| a.f).map(f64::from)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs single operators on hand-made inputs.
    use super::*;
    use gauntlet_onnx::builder::Attr;
    use gauntlet_onnx::proto::NodeProto;

    /// Evaluates `op` on `inputs` with `attrs` on the CPU.
    pub fn eval(
        op: &str,
        inputs: Vec<Option<Tensor>>,
        attrs: &[(&str, Attr)],
        outputs: usize,
    ) -> Result<Vec<Tensor>, GraphError> {
        let mut b = gauntlet_onnx::GraphBuilder::new("t");
        let names: Vec<String> = (0..inputs.len()).map(|k| format!("x{k}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        b.node_multi(op, &refs, attrs, outputs);
        let proto = b.finish(17);
        let node: NodeProto = proto.graph.map(|g| g.node[0].clone()).unwrap_or_default();
        run(&Args {
            node: &node,
            inputs,
            device: Device::Cpu,
        })
    }

    /// An int64 tensor of the given shape.
    pub fn ints(values: &[i64], shape: &[i64]) -> Option<Tensor> {
        Some(Tensor::from_slice(values).reshape(shape))
    }

    /// A float tensor of the given shape.
    pub fn floats(values: &[f32], shape: &[i64]) -> Option<Tensor> {
        Some(Tensor::from_slice(values).reshape(shape))
    }
}
