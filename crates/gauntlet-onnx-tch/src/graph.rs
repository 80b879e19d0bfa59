//! [`OnnxGraph`]: an ONNX graph checked at load time and evaluated node by node on tch
//! tensors with autograd.
//!
//! Invariants established by [`OnnxGraph::new`]: every node's operator is supported, every
//! node reads only values defined before it (graph inputs, initializers, `Constant` nodes or
//! earlier outputs), and initializers and `Constant` values already live on the graph's
//! device; erf-GELU patterns are fused into `Gelu` nodes (`fuse.rs`). Evaluation runs only
//! the nodes the requested outputs depend on; an *override* replaces a value (typically a
//! node output) with a caller's tensor, which is how white-box code splices a gradient leaf
//! into the graph. Each evaluated node's time goes to the graph's [`OperatorProfile`].

use std::collections::{HashMap, HashSet};

use gauntlet_onnx::proto::NodeProto;
use gauntlet_onnx::{describe, OnnxModel};
use tch::{Device, Tensor};

use crate::error::GraphError;
use crate::ops::{self, Args};
use crate::profile::OperatorProfile;

/// An ONNX graph ready to evaluate on one device.
#[derive(Debug)]
pub struct OnnxGraph {
    nodes: Vec<NodeProto>,
    /// Initializers and the outputs of `Constant` nodes.
    constants: HashMap<String, Tensor>,
    feeds: Vec<String>,
    outputs: Vec<String>,
    device: Device,
    profile: OperatorProfile,
}

impl OnnxGraph {
    /// Checks the graph (supported operators, topological order) and moves its constants
    /// to `device`.
    pub fn new(model: &OnnxModel, device: Device) -> Result<Self, GraphError> {
        let graph = model.graph();
        let mut constants = HashMap::new();
        for (name, host) in model.initializers()? {
            constants.insert(name, ops::host_to_tensor(&host, device)?);
        }
        let feeds: Vec<String> = model.feed_inputs().iter().map(|i| i.name.clone()).collect();
        let mut defined: HashSet<&str> = constants.keys().map(String::as_str).collect();
        defined.extend(feeds.iter().map(String::as_str));
        for node in &graph.node {
            if !ops::is_supported(node) {
                let op = if node.domain.is_empty() || node.domain == "ai.onnx" {
                    node.op_type.clone()
                } else {
                    format!("{}:{}", node.domain, node.op_type)
                };
                return Err(GraphError::Unsupported {
                    op,
                    node: describe(node),
                });
            }
            if let Some(missing) = node
                .input
                .iter()
                .find(|v| !v.is_empty() && !defined.contains(v.as_str()))
            {
                return Err(GraphError::NotTopological {
                    node: describe(node),
                    value: missing.clone(),
                });
            }
            defined.extend(node.output.iter().map(String::as_str));
        }
        let mut nodes = Vec::with_capacity(graph.node.len());
        for node in &graph.node {
            if node.op_type == "Constant" {
                let args = Args {
                    node,
                    inputs: Vec::new(),
                    device,
                };
                let value = ops::run(&args)?.into_iter().next();
                if let (Some(name), Some(value)) = (node.output.first(), value) {
                    constants.insert(name.clone(), value);
                }
            } else {
                nodes.push(node.clone());
            }
        }
        let outputs: Vec<String> = model
            .output_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let nodes = crate::fuse::fuse_gelu(nodes, &constants, &outputs);
        Ok(Self {
            nodes,
            constants,
            feeds,
            outputs,
            device,
            profile: OperatorProfile::default(),
        })
    }

    /// The device every tensor of the graph lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Names of the inputs a caller must feed (graph inputs that are not initializers).
    pub fn feeds(&self) -> &[String] {
        &self.feeds
    }

    /// Names of the graph outputs.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The nodes evaluated at run time, in order (`Constant` nodes were folded at load).
    pub fn nodes(&self) -> &[NodeProto] {
        &self.nodes
    }

    /// Time per operator type of the evaluations so far.
    pub fn profile(&self) -> &OperatorProfile {
        &self.profile
    }

    /// An initializer or folded constant by name.
    pub fn constant(&self, name: &str) -> Option<&Tensor> {
        self.constants.get(name)
    }

    /// Evaluates the values `wanted` from named `inputs`. A value named in `overrides` is
    /// taken from there instead of being computed (the node producing it, and anything only
    /// it needed, is skipped); gradients flow into override tensors that require them.
    pub fn evaluate(
        &self,
        inputs: &HashMap<String, Tensor>,
        overrides: &HashMap<String, Tensor>,
        wanted: &[&str],
    ) -> Result<Vec<Tensor>, GraphError> {
        let needed = self.needed(wanted, overrides);
        let mut env: HashMap<&str, Tensor> = HashMap::new();
        for (name, t) in overrides {
            env.insert(name.as_str(), t.shallow_clone());
        }
        for name in &self.feeds {
            if env.contains_key(name.as_str()) || !needed.contains(name.as_str()) {
                continue;
            }
            let t = inputs.get(name).ok_or_else(|| {
                GraphError::Evaluation(format!("graph input {name:?} was not fed"))
            })?;
            env.insert(name.as_str(), t.shallow_clone());
        }
        for node in &self.nodes {
            let runs = node
                .output
                .iter()
                .any(|o| needed.contains(o.as_str()) && !overrides.contains_key(o));
            if !runs {
                continue;
            }
            let values = node
                .input
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        return Ok(None);
                    }
                    env.get(name.as_str())
                        .or_else(|| self.constants.get(name))
                        .map(|t| Some(t.shallow_clone()))
                        .ok_or_else(|| {
                            GraphError::Evaluation(format!(
                                "{}: input {name:?} is undefined",
                                describe(node)
                            ))
                        })
                })
                .collect::<Result<Vec<_>, GraphError>>()?;
            let args = Args {
                node,
                inputs: values,
                device: self.device,
            };
            let started = std::time::Instant::now();
            let results = ops::run(&args)?;
            self.profile.record(&node.op_type, started.elapsed());
            for (name, value) in node.output.iter().zip(results) {
                if !name.is_empty() && !overrides.contains_key(name) {
                    env.insert(name.as_str(), value);
                }
            }
        }
        wanted
            .iter()
            .map(|&w| {
                env.get(w)
                    .or_else(|| self.constants.get(w))
                    .map(Tensor::shallow_clone)
                    .ok_or_else(|| {
                        GraphError::Evaluation(format!("the graph has no value named {w:?}"))
                    })
            })
            .collect()
    }

    /// Names of every value the wanted values depend on, stopping at overrides.
    fn needed<'a>(
        &'a self,
        wanted: &[&'a str],
        overrides: &HashMap<String, Tensor>,
    ) -> HashSet<&'a str> {
        let mut needed: HashSet<&str> = wanted.iter().copied().collect();
        for node in self.nodes.iter().rev() {
            let used = node
                .output
                .iter()
                .any(|o| needed.contains(o.as_str()) && !overrides.contains_key(o));
            if used {
                needed.extend(
                    node.input
                        .iter()
                        .filter(|i| !i.is_empty())
                        .map(String::as_str),
                );
            }
        }
        needed
    }
}
