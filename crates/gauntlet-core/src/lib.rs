//! Gauntlet's core: the vocabulary every other crate speaks.
//!
//! This crate owns the types that cross crate boundaries — labelled examples and dataset
//! readers ([`dataset`]), the bundle manifest ([`manifest`]), text-to-id encoding
//! ([`codec`]), and the two traits through which attacks and adversarial training see a
//! model ([`classifier`]). It deliberately depends on neither `tch` nor `ort`, so the
//! attack engine and the server can be built and tested without a deep-learning runtime.

pub mod bounded_scan;
pub mod classifier;
pub mod codec;
pub mod column_scan;
pub mod dataset;
pub mod device;
pub mod error;
pub mod manifest;
pub mod padding;
pub mod scoring;
pub mod vectors;

pub use classifier::{
    BundleModel, Classifier, EmbeddingTable, ExampleGradient, GradientBatch, InputKind,
    Probabilities, TokenIds, WhiteBox,
};
pub use codec::{Encoded, Spellings, TextCodec, TokenForm, TokenRole};
pub use dataset::{Example, LabelSet};
pub use device::DeviceChoice;
pub use error::{CoreError, ModelError};
pub use manifest::{Label, Manifest, OnnxOutput, OnnxSpec, TokenScheme, Tokenization};
pub use padding::{gather_rows, scatter_rows, PadSpec, PaddedIds};
pub use scoring::{FlipBatch, FlipQuery, ScoredFlip, TargetMask};
