//! A small graph builder for writing ONNX models (used by `export-onnx` and by tests that
//! need hand-made graphs). Value names are generated uniquely; the builder checks nothing
//! about operator semantics — ONNX Runtime and the interpreter do that when they load it.

use crate::proto::{
    AttributeProto, AttributeType, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{float_tensor, int64_tensor, DataType};

/// ONNX IR version written (IR 8 is what opsets 14 to 18 pair with).
pub const IR_VERSION: i64 = 8;

/// An attribute value for [`GraphBuilder::node`].
#[derive(Debug, Clone)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING`.
    Str(String),
    /// `STRINGS`.
    Strs(Vec<String>),
    /// `TENSOR` (boxed: tensors dwarf the other variants).
    Tensor(Box<TensorProto>),
}

impl Attr {
    fn into_proto(self, name: &str) -> AttributeProto {
        let mut a = AttributeProto {
            name: name.to_owned(),
            ..Default::default()
        };
        let ty = match self {
            Self::Int(v) => {
                a.i = Some(v);
                AttributeType::Int
            }
            Self::Ints(v) => {
                a.ints = v;
                AttributeType::Ints
            }
            Self::Float(v) => {
                a.f = Some(v);
                AttributeType::Float
            }
            Self::Floats(v) => {
                a.floats = v;
                AttributeType::Floats
            }
            Self::Str(v) => {
                a.s = Some(v.into_bytes());
                AttributeType::String
            }
            Self::Strs(v) => {
                a.strings = v.into_iter().map(String::into_bytes).collect();
                AttributeType::Strings
            }
            Self::Tensor(t) => {
                a.t = Some(*t);
                AttributeType::Tensor
            }
        };
        a.r#type = Some(ty as i32);
        a
    }
}

/// Builds one graph, node by node.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
}

fn value_info(name: &str, elem: DataType, dims: &[&str]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(n) => DimensionValue::DimValue(n),
                Err(_) => DimensionValue::DimParam((*d).to_owned()),
            }),
            denotation: String::new(),
        })
        .collect();
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem.code(),
                shape: Some(TensorShapeProto { dim }),
            }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

impl GraphBuilder {
    /// A new, empty graph.
    pub fn new(name: &str) -> Self {
        Self {
            graph: GraphProto {
                name: name.to_owned(),
                ..Default::default()
            },
            counter: 0,
        }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    /// Declares an int64 graph input; dimensions are sizes (`"3"`) or symbols (`"batch"`).
    pub fn input_int64(&mut self, name: &str, dims: &[&str]) {
        self.graph
            .input
            .push(value_info(name, DataType::Int64, dims));
    }

    /// Declares a float graph input.
    pub fn input_float(&mut self, name: &str, dims: &[&str]) {
        self.graph
            .input
            .push(value_info(name, DataType::Float, dims));
    }

    /// Declares a float graph output.
    pub fn output_float(&mut self, name: &str, dims: &[&str]) {
        self.graph
            .output
            .push(value_info(name, DataType::Float, dims));
    }

    /// Adds a float initializer and returns its (unique) name.
    pub fn float_initializer(&mut self, stem: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(stem);
        self.graph
            .initializer
            .push(float_tensor(&name, dims, values));
        name
    }

    /// Adds an int64 initializer and returns its name.
    pub fn int64_initializer(&mut self, stem: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(stem);
        self.graph
            .initializer
            .push(int64_tensor(&name, dims, values));
        name
    }

    /// Adds a node with one output and returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node_multi(op, inputs, attrs, 1).remove(0)
    }

    /// Adds a node with `outputs` outputs and returns their names.
    pub fn node_multi(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
        outputs: usize,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let outs: Vec<String> = (0..outputs).map(|k| format!("{name}_out{k}")).collect();
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| (*s).to_owned()).collect(),
            output: outs.clone(),
            name,
            op_type: op.to_owned(),
            attribute: attrs.iter().map(|(n, a)| a.clone().into_proto(n)).collect(),
            ..Default::default()
        });
        outs
    }

    /// Renames the value `from` to `to` everywhere (to give a graph output a fixed name).
    pub fn rename(&mut self, from: &str, to: &str) {
        for node in &mut self.graph.node {
            for v in node.input.iter_mut().chain(node.output.iter_mut()) {
                if v == from {
                    *v = to.to_owned();
                }
            }
        }
    }

    /// The finished model for `opset` (default domain).
    pub fn finish(self, opset: i64) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "gauntlet".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}
