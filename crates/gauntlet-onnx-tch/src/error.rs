//! The crate's one error type: loading, checking and evaluating graphs, and the white-box
//! wrapper's bundle errors. Messages name the node (`describe(node)`) or the file involved.

use std::path::PathBuf;

use gauntlet_core::{CoreError, ModelError};
use gauntlet_onnx::OnnxError;

/// Everything that can go wrong interpreting an ONNX graph on libtorch.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The model file or one of its tensors could not be read.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The bundle manifest could not be read.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The graph uses an operator the interpreter does not implement.
    #[error("unsupported ONNX operator {op:?} at {node}; the interpreter cannot compute gradients for this graph (ONNX Runtime can still run it forward-only)")]
    Unsupported {
        /// Operator type (with its domain when not the default one).
        op: String,
        /// The node, as `describe(node)` writes it.
        node: String,
    },
    /// A node reads a value no earlier node, input or initializer defines.
    #[error(
        "{node} reads {value:?} before anything defines it (the graph is not in topological order)"
    )]
    NotTopological {
        /// The node.
        node: String,
        /// The value it reads.
        value: String,
    },
    /// A node's attributes or inputs do not fit its operator.
    #[error("{node}: {message}")]
    Node {
        /// The node, as `describe(node)` writes it.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// An evaluation was asked for a value the graph does not have, or lacks a feed.
    #[error("{0}")]
    Evaluation(String),
    /// A bundle cannot be used as a white box.
    #[error("{path}: {message}")]
    Bundle {
        /// The bundle directory or model file.
        path: PathBuf,
        /// What is wrong and, where possible, what to do.
        message: String,
    },
    /// The requested device is not available.
    #[error(transparent)]
    Device(#[from] gauntlet_tch::device::NoCuda),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl From<GraphError> for ModelError {
    fn from(e: GraphError) -> Self {
        ModelError::Backend(e.to_string())
    }
}
