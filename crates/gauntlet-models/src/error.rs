//! Errors of the models layer.

use std::path::PathBuf;

use gauntlet_core::{CoreError, ModelError};

/// Errors raised while building, loading, saving or running native models.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// A bundle file is missing or does not fit the manifest.
    #[error("{path}: {message}")]
    Bundle {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An architecture name or hyper-parameter is invalid.
    #[error("{0}")]
    Config(String),
    /// The requested device is not available.
    #[error(transparent)]
    Device(#[from] gauntlet_tch::device::NoCuda),
    /// An error from the core layer (manifest, tokenizer, dataset).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl From<ModelsError> for ModelError {
    fn from(e: ModelsError) -> Self {
        ModelError::Backend(e.to_string())
    }
}
