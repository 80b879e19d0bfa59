//! Test helper: generates the ONNX fixtures once per test binary with the venv's Python
//! (`tools/fixtures/make_onnx_fixtures.py`) into a temporary directory.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixture models the script writes.
pub const FIXTURES: [&str; 4] = ["bert", "cnn", "bilstm", "gru"];

fn venv_python() -> PathBuf {
    let cache = std::env::var_os("GAUNTLET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gauntlet")))
        .expect("neither GAUNTLET_CACHE nor HOME is set");
    let python = cache.join("venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/bootstrap.sh to provision the Python venv (torch, onnxruntime) the ONNX fixtures are generated with",
        python.display()
    );
    python
}

/// Directory holding one bundle per fixture (generated on first use).
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tools/fixtures/make_onnx_fixtures.py");
        let out = Command::new(venv_python())
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
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
