//! The crate's one error type, [`AttackError`].
//!
//! Every variant says what the user can change: the attack and the model it does not fit,
//! the configuration field out of range, or the example (by index) that cannot be attacked.

use std::path::PathBuf;

use gauntlet_core::{CoreError, InputKind, ModelError};

use crate::config::AttackKind;

/// Errors raised while configuring or running an attack.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The attack cannot run against this kind of model.
    #[error("attack `{attack}` needs a {needs} model, but this model reads {}", kind_words(*model))]
    Incompatible {
        /// The attack.
        attack: AttackKind,
        /// What the attack needs, in words (e.g. "character-level").
        needs: &'static str,
        /// What the model reads.
        model: InputKind,
    },
    /// A gradient-based attack was given a model without gradients.
    #[error(
        "attack `{0}` needs gradients (a white-box model); this model only answers predictions"
    )]
    NeedsGradients(AttackKind),
    /// A gradient-based attack on a bundle whose runtime cannot give gradients.
    #[error(
        "attack `{attack}` needs gradients, which this bundle cannot give ({reason}); forward-only attacks (loss-beam, random, unk) still run"
    )]
    GradientsUnavailable {
        /// The attack.
        attack: AttackKind,
        /// Why the bundle has no white box.
        reason: String,
    },
    /// The `sem` attack was started without a lexicon.
    #[error(
        "attack `sem` needs a lexicon for parts of speech and lemmas (e.g. a WordNet directory)"
    )]
    MissingLexicon,
    /// A configuration value is out of range.
    #[error("invalid attack configuration: {field}: {message}")]
    InvalidConfig {
        /// The offending field, as spelled in the serialized configuration.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// One example cannot be attacked (empty text, label out of range).
    #[error("example {index}: {message}")]
    InvalidExample {
        /// 0-based index of the example in the input.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An example could not be encoded.
    #[error("example {index}: {source}")]
    Encode {
        /// 0-based index of the example in the input.
        index: usize,
        /// The codec's error.
        source: CoreError,
    },
    /// The model failed or answered something inconsistent.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A lexicon file could not be read.
    #[error("{path}: {message}")]
    Lexicon {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A report could not be rendered.
    #[error("could not render the report: {0}")]
    Render(String),
}

fn kind_words(kind: InputKind) -> &'static str {
    match kind {
        InputKind::Word => "words",
        InputKind::Char => "characters",
    }
}

impl AttackError {
    pub(crate) fn config(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn model_output(message: impl Into<String>) -> Self {
        Self::Model(ModelError::Backend(message.into()))
    }
}
