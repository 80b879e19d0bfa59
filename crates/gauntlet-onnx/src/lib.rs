//! ONNX model files for Gauntlet, without a runtime.
//!
//! This crate owns the protobuf messages of `onnx.proto` that Gauntlet uses ([`proto`],
//! hand-written `prost` structs, so building needs no `protoc`), decoding of constant tensors
//! ([`tensor`]), loading and saving whole models with errors that name the file ([`model`]),
//! and a graph builder for exporters ([`builder`]). Evaluation lives in the runtime crates:
//! `gauntlet-ort` (ONNX Runtime, forward only) and the tch interpreter (white-box).

pub mod builder;
pub mod error;
pub mod model;
pub mod proto;
pub mod tensor;

pub use builder::{Attr, GraphBuilder};
pub use error::OnnxError;
pub use model::{attribute, describe, OnnxModel};
pub use tensor::{decode, DataType, HostTensor, TensorData};
