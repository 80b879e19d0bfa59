//! ONNX Runtime backend: any ONNX bundle as a batched, thread-safe [`gauntlet_core::Classifier`].
//!
//! This crate owns the process-wide ONNX Runtime environment ([`runtime`]: which library is
//! loaded, once) and [`OrtModel`] (session pool, padding, feeding the inputs the manifest
//! names, softmax of logits). It is forward-only: white-box gradients for ONNX graphs come
//! from the tch interpreter in `gauntlet-onnx-tch`.

pub mod error;
pub mod model;
pub mod runtime;

pub use error::OrtError;
pub use model::{Optimization, OrtModel, OrtOptions};
