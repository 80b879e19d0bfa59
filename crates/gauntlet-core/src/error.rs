//! Errors of the core layer. Every variant names the file (and line, where there is one)
//! so a user can fix the input without reading code.

use std::path::PathBuf;

/// Errors raised while reading datasets, manifests and tokenizers.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A word-vector file is malformed (the message names the file and line).
    #[error("{0}")]
    Vectors(String),
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A row of a dataset file is malformed.
    #[error("{path}:{line}: {message}")]
    MalformedRow {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A dataset holds no examples.
    #[error("{path}: dataset is empty (no examples after the header)")]
    EmptyDataset {
        /// The dataset file.
        path: PathBuf,
    },
    /// A dataset names a label the model does not know.
    #[error("{path}:{line}: label {label:?} is not one of the model's labels ({known})")]
    UnknownLabel {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label as written.
        label: String,
        /// The labels the model knows, comma-separated.
        known: String,
    },
    /// The dataset format cannot be inferred from the file name.
    #[error("{path}: unknown dataset format; use a .tsv, .csv or .jsonl file")]
    UnknownFormat {
        /// The dataset file.
        path: PathBuf,
    },
    /// A bundle manifest is invalid.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tokenizer could not be built, loaded or saved.
    #[error("tokenizer{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Tokenizer {
        /// The tokenizer file, when one is involved.
        path: Option<PathBuf>,
        /// What went wrong.
        message: String,
    },
    /// A text cannot be classified (for example it is empty).
    #[error("invalid text: {0}")]
    InvalidText(String),
}

/// Errors a model backend reports through the [`crate::Classifier`] traits.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The input does not fit the model (wrong kind of ids, id out of range, empty batch).
    #[error("invalid model input: {0}")]
    InvalidInput(String),
    /// The backend (libtorch, ONNX Runtime) failed.
    #[error("model backend error: {0}")]
    Backend(String),
}

impl CoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
