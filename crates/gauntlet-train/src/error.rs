//! Errors of the training layer.

use gauntlet_core::{CoreError, ModelError};
use gauntlet_models::ModelsError;

/// Errors raised while preparing data, training or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Invalid settings or data (with a message that says how to fix it).
    #[error("{0}")]
    Invalid(String),
    /// Dataset, manifest or tokenizer error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Model construction, bundle or libtorch error.
    #[error(transparent)]
    Models(#[from] ModelsError),
    /// Error from a model behind the core traits.
    #[error(transparent)]
    Model(#[from] ModelError),
}
