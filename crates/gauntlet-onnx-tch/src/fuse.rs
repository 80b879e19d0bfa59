//! Load-time rewrites of operator patterns into one node that computes the same function
//! with fewer tensor operations, and fewer autograd nodes for the backward pass.
//!
//! [`fuse_gelu`] finds the exact GELU written out as `x · 0.5 · (1 + erf(x / √2))` (with the
//! `0.5` applied to `x` first or to the product last, as exports of hand-written GELUs and
//! of `nn.GELU` before opset 20 look) and replaces its five nodes by one ONNX `Gelu` node
//! (`approximate = "none"`). A pattern is fused only when its intermediate values are read by
//! nothing else and are not graph outputs; they then no longer exist, so they cannot be
//! asked for or overridden (asking names them in a clear error).

use std::collections::{HashMap, HashSet};

use gauntlet_onnx::proto::NodeProto;
use tch::Tensor;

/// How close a constant must be to the pattern's `√2`, `1` and `0.5`.
const TOLERANCE: f64 = 1e-5;

/// Rewrites every erf-GELU pattern of `nodes` (in topological order) into a `Gelu` node;
/// `constants` are the graph's initializers and folded constants, `outputs` its outputs.
pub(crate) fn fuse_gelu(
    nodes: Vec<NodeProto>,
    constants: &HashMap<String, Tensor>,
    outputs: &[String],
) -> Vec<NodeProto> {
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for input in node.input.iter().filter(|v| !v.is_empty()) {
            readers.entry(input.as_str()).or_default().push(i);
        }
        for output in &node.output {
            producer.insert(output.as_str(), i);
        }
    }
    let graph = Pattern {
        nodes: &nodes,
        readers: &readers,
        producer: &producer,
        constants,
        outputs,
    };
    let mut removed = HashSet::new();
    let mut fused: HashMap<usize, NodeProto> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if node.op_type != "Erf" {
            continue;
        }
        if let Some(found) = graph.gelu_at(i) {
            if found.nodes.iter().any(|n| removed.contains(n)) {
                continue;
            }
            let last = found.nodes.iter().copied().max().unwrap_or(i);
            removed.extend(found.nodes.iter().copied().filter(|&n| n != last));
            fused.insert(last, gelu_node(&nodes[i], found.input, found.output));
        }
    }
    nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(i, node)| fused.remove(&i).unwrap_or(node))
        .collect()
}

/// One matched pattern: its input, output and the indices of its nodes.
struct Found {
    input: String,
    output: String,
    nodes: Vec<usize>,
}

/// The graph as the matcher reads it.
struct Pattern<'a> {
    nodes: &'a [NodeProto],
    readers: &'a HashMap<&'a str, Vec<usize>>,
    producer: &'a HashMap<&'a str, usize>,
    constants: &'a HashMap<String, Tensor>,
    outputs: &'a [String],
}

impl Pattern<'_> {
    /// The node that is the only reader of `value`, when `value` is no graph output.
    fn sole_reader(&self, value: &str) -> Option<usize> {
        if self.outputs.iter().any(|o| o == value) {
            return None;
        }
        match self.readers.get(value).map(Vec::as_slice) {
            Some(&[only]) => Some(only),
            _ => None,
        }
    }

    /// Whether `name` is a one-element constant equal to `value`.
    fn is_scalar(&self, name: &str, value: f64) -> bool {
        self.constants.get(name).is_some_and(|t| {
            t.numel() == 1
                && t.f_double_value(&vec![0; t.dim()])
                    .is_ok_and(|v| (v - value).abs() < TOLERANCE)
        })
    }

    /// For a binary node, the input other than a scalar constant equal to `value`.
    fn other_than_scalar<'n>(&self, node: &'n NodeProto, value: f64) -> Option<&'n str> {
        match node.input.as_slice() {
            [a, b] if self.is_scalar(b, value) => Some(a),
            [a, b] if self.is_scalar(a, value) => Some(b),
            _ => None,
        }
    }

    fn op(&self, i: usize, op: &str) -> Option<&NodeProto> {
        let node = self.nodes.get(i)?;
        (node.op_type == op && (node.domain.is_empty() || node.domain == "ai.onnx")).then_some(node)
    }

    /// The GELU around the `Erf` at `erf`, if the nodes around it form one.
    fn gelu_at(&self, erf: usize) -> Option<Found> {
        let erf_node = self.op(erf, "Erf")?;
        let scaled = erf_node.input.first()?;
        let div = *self.producer.get(scaled.as_str())?;
        let div_node = self.op(div, "Div")?;
        let x = match div_node.input.as_slice() {
            [x, c] if self.is_scalar(c, std::f64::consts::SQRT_2) => x.as_str(),
            _ => return None,
        };
        if self.sole_reader(scaled)? != erf {
            return None;
        }
        let erf_out = erf_node.output.first()?;
        let add = self.sole_reader(erf_out)?;
        let add_node = self.op(add, "Add")?;
        if self.other_than_scalar(add_node, 1.0)? != erf_out {
            return None;
        }
        let add_out = add_node.output.first()?;
        let mul = self.sole_reader(add_out)?;
        let mul_node = self.op(mul, "Mul")?;
        let [a, b] = mul_node.input.as_slice() else {
            return None;
        };
        let other = if a == add_out { b } else { a };
        let mul_out = mul_node.output.first()?;
        if other == x {
            // x · (1 + erf) · 0.5: the half comes last.
            let half = self.sole_reader(mul_out)?;
            let half_node = self.op(half, "Mul")?;
            if self.other_than_scalar(half_node, 0.5)? != mul_out {
                return None;
            }
            let output = half_node.output.first()?.clone();
            return Some(Found {
                input: x.to_owned(),
                output,
                nodes: vec![div, erf, add, mul, half],
            });
        }
        // (x · 0.5) · (1 + erf): the half comes first.
        let half = *self.producer.get(other.as_str())?;
        let half_node = self.op(half, "Mul")?;
        if self.other_than_scalar(half_node, 0.5)? != x {
            return None;
        }
        if self.sole_reader(other)? != mul {
            return None;
        }
        Some(Found {
            input: x.to_owned(),
            output: mul_out.clone(),
            nodes: vec![half, div, erf, add, mul],
        })
    }
}

/// The fused node, named after the `Erf` it replaces (errors then point at the pattern).
fn gelu_node(erf: &NodeProto, input: String, output: String) -> NodeProto {
    NodeProto {
        op_type: "Gelu".into(),
        name: format!("{} (fused GELU)", erf.name),
        input: vec![input],
        output: vec![output],
        ..NodeProto::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use gauntlet_onnx::{GraphBuilder, OnnxModel};
    use tch::{Device, Kind, Tensor};

    use crate::graph::OnnxGraph;

    /// `x·0.5·(1 + erf(x/√2))` with the half first or last; `tap` also makes the `Erf`
    /// output a graph output (which forbids fusing).
    fn written_out_gelu(half_first: bool, tap: bool) -> OnnxGraph {
        let mut g = GraphBuilder::new("t");
        g.input_float("x", &["5"]);
        let root2 = g.float_initializer("root2", &[], &[std::f32::consts::SQRT_2]);
        let one = g.float_initializer("one", &[], &[1.0]);
        let half = g.float_initializer("half", &[], &[0.5]);
        let halved = half_first.then(|| g.node("Mul", &["x", &half], &[]));
        let scaled = g.node("Div", &["x", &root2], &[]);
        let erf = g.node("Erf", &[&scaled], &[]);
        let shifted = g.node("Add", &[&one, &erf], &[]);
        let y = match &halved {
            Some(h) => g.node("Mul", &[h, &shifted], &[]),
            None => {
                let product = g.node("Mul", &[&shifted, "x"], &[]);
                g.node("Mul", &[&product, &half], &[])
            }
        };
        g.rename(&y, "y");
        g.output_float("y", &["5"]);
        if tap {
            g.output_float(&erf, &["5"]);
        }
        let model = OnnxModel::from_proto(g.finish(17));
        OnnxGraph::new(&model, Device::Cpu).unwrap()
    }

    fn ops(graph: &OnnxGraph) -> Vec<&str> {
        graph.nodes().iter().map(|n| n.op_type.as_str()).collect()
    }

    /// Output and input gradient of `graph` at `x`.
    fn value_and_gradient(graph: &OnnxGraph, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let leaf = Tensor::from_slice(x).set_requires_grad(true);
        let feeds = HashMap::from([("x".to_owned(), leaf.shallow_clone())]);
        let y = graph
            .evaluate(&feeds, &HashMap::new(), &["y"])
            .unwrap()
            .remove(0);
        let grad = Tensor::run_backward(&[y.sum(Kind::Float)], &[&leaf], false, false);
        let values = Vec::<f32>::try_from(y.detach()).unwrap();
        (values, Vec::<f32>::try_from(&grad[0]).unwrap())
    }

    #[test]
    fn both_orders_fuse_into_one_gelu_with_the_same_values_and_gradients() {
        let x = [-3.0f32, -0.7, 0.0, 0.4, 2.5];
        // By hand: Φ(x) = (1 + erf(x/√2))/2; gelu = x·Φ(x), gelu' = Φ(x) + x·φ(x).
        let erf = |v: f64| Tensor::from(v).erf().double_value(&[]);
        let cdf = |v: f64| 0.5 * (1.0 + erf(v / std::f64::consts::SQRT_2));
        let pdf = |v: f64| (-v * v / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        for half_first in [true, false] {
            let graph = written_out_gelu(half_first, false);
            assert_eq!(ops(&graph), ["Gelu"], "half first: {half_first}");
            let (values, grads) = value_and_gradient(&graph, &x);
            for (k, &v) in x.iter().enumerate() {
                let v = f64::from(v);
                assert!((f64::from(values[k]) - v * cdf(v)).abs() < 1e-6, "{k}");
                let slope = cdf(v) + v * pdf(v);
                assert!((f64::from(grads[k]) - slope).abs() < 1e-5, "{k}");
            }
        }
    }

    #[test]
    fn a_pattern_whose_intermediate_is_read_elsewhere_stays_as_written() {
        for half_first in [true, false] {
            let graph = written_out_gelu(half_first, true);
            assert!(ops(&graph).contains(&"Erf"), "{:?}", ops(&graph));
            assert!(!ops(&graph).contains(&"Gelu"));
            let (values, _) = value_and_gradient(&graph, &[1.0]);
            assert!((values[0] - 0.841_344_7).abs() < 1e-6);
        }
    }

    #[test]
    fn other_constants_are_not_a_gelu() {
        let mut g = GraphBuilder::new("t");
        g.input_float("x", &["1"]);
        let two = g.float_initializer("two", &[], &[2.0]);
        let one = g.float_initializer("one", &[], &[1.0]);
        let half = g.float_initializer("half", &[], &[0.5]);
        let scaled = g.node("Div", &["x", &two], &[]);
        let erf = g.node("Erf", &[&scaled], &[]);
        let shifted = g.node("Add", &[&erf, &one], &[]);
        let product = g.node("Mul", &["x", &shifted], &[]);
        let y = g.node("Mul", &[&product, &half], &[]);
        g.rename(&y, "y");
        g.output_float("y", &["1"]);
        let graph = OnnxGraph::new(&OnnxModel::from_proto(g.finish(17)), Device::Cpu).unwrap();
        assert_eq!(ops(&graph), ["Div", "Erf", "Add", "Mul", "Mul"]);
    }
}
