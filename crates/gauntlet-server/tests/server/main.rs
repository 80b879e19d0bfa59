//! Integration tests of the attack server: the real server on an ephemeral loopback port,
//! driven over HTTP with a blocking client; every exchange is checked against
//! `openapi.yaml`.
#![allow(clippy::unwrap_used, missing_docs)]

mod api;
mod audits;
mod batching;
mod browser;
mod common;
mod onnx;
mod openapi;
mod process;
mod schemathesis;
mod spec;
mod storage;
mod wordnet;
