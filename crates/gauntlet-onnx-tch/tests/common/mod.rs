//! Test helper: generates the ONNX fixtures once per test binary with the venv's Python
//! (`tools/fixtures/make_onnx_fixtures.py`) into a temporary directory.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The fixture models the script writes.
pub const FIXTURES: [&str; 4] = ["bert", "cnn", "bilstm", "gru"];

/// Directory holding one bundle per fixture (generated on first use).
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        gauntlet_tests::make_onnx_fixtures(dir.path(), 120);
        dir
    })
    .path()
}

/// The bundle directory of one fixture.
pub fn bundle(name: &str) -> PathBuf {
    fixture_dir().join(name)
}

/// The recorded batches of a fixture: input name -> nested int lists, plus `logits`.
pub fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(bundle(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
