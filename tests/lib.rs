//! Cross-crate integration tests live beside this file; the library itself only locates
//! repository resources for them.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bundled demo model.
pub fn demo_bundle() -> PathBuf {
    repo_root().join("models").join("sst2-word-cnn")
}
