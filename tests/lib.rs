//! Cross-crate integration tests live beside this file; the library itself only locates
//! repository resources for them and generates the ONNX fixtures (with the bootstrap's
//! Python venv) that several crates' tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled demo model.
pub fn demo_bundle() -> PathBuf {
    repo_root().join("models").join("sst2-word-cnn")
}

/// The bootstrap venv's Python (`$GAUNTLET_CACHE/venv`, default `~/.cache/gauntlet/venv`);
/// panics with the fix when it is missing.
pub fn venv_python() -> PathBuf {
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

/// Writes the ONNX fixture bundles of `tools/fixtures/make_onnx_fixtures.py` (`bert`, `cnn`,
/// `bilstm`, `gru`) into `out`, with a word vocabulary of `vocab` ids.
pub fn make_onnx_fixtures(out: &Path, vocab: usize) {
    let script = repo_root().join("tools/fixtures/make_onnx_fixtures.py");
    let run = Command::new(venv_python())
        .arg(&script)
        .arg(out)
        .arg("--vocab-size")
        .arg(vocab.to_string())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}
