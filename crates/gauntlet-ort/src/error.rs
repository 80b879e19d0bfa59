//! Errors of the ONNX Runtime backend.

use std::path::PathBuf;

/// Everything that can go wrong loading or running an ONNX bundle on ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    /// The ONNX Runtime shared library is missing or does not load.
    #[error("ONNX Runtime library {path}: {message}")]
    Runtime {
        /// The library tried.
        path: PathBuf,
        /// What went wrong and how to fix it.
        message: String,
    },
    /// The bundle's manifest or tokenizer is invalid.
    #[error(transparent)]
    Bundle(#[from] gauntlet_core::CoreError),
    /// The bundle is not an ONNX bundle, or its manifest does not fit its graph.
    #[error("{path}: {message}")]
    Spec {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// ONNX Runtime refused the graph.
    #[error("{path}: ONNX Runtime cannot load the graph: {message}")]
    Session {
        /// The graph file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
}
