//! ONNX graphs evaluated on libtorch (tch) with autograd: white-box gradients for ONNX
//! bundles.
//!
//! [`OnnxGraph`] checks a graph at load (every operator supported, nodes in topological
//! order) and evaluates it on tch tensors, with *overrides* that replace any value by a
//! caller's tensor. [`OnnxWhiteBox`] wraps an ONNX bundle as a
//! [`gauntlet_core::Classifier`] and [`gauntlet_core::WhiteBox`]: gradients are taken at the
//! output of the word-embedding `Gather`, which is overridden by a leaf tensor. Forward-only
//! inference of arbitrary graphs is ONNX Runtime's job (`gauntlet-ort`); this crate covers
//! the operators `torch.onnx.export` writes for text classifiers ([`ops::SUPPORTED`]).

pub mod error;
mod fuse;
pub mod graph;
pub mod ops;
pub mod profile;
pub mod whitebox;

pub use error::GraphError;
pub use gauntlet_tch::device::resolve_device;
pub use graph::OnnxGraph;
pub use profile::{OperatorProfile, OperatorTime};
pub use whitebox::{find_embedding_site, EmbeddingSite, OnnxWhiteBox};
