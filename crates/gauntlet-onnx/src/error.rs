//! Errors of reading and interpreting ONNX files.

use std::path::PathBuf;

/// Everything that can go wrong reading, checking or writing an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX `ModelProto`.
    #[error("{path}: not an ONNX model ({message})")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// The model is valid protobuf but not something Gauntlet can use.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
    /// A tensor's type or contents do not fit the use.
    #[error("tensor `{name}`: {message}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        message: String,
    },
}
