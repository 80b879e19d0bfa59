//! Build-script helper shared by every crate whose binaries or tests link libtorch.
//!
//! Cargo applies `rustc-link-arg` only to the targets of the package whose build script
//! printed it, so each such package calls [`link_libtorch`] from its own `build.rs`.
//! It embeds an rpath to `torch/lib` (so no `LD_LIBRARY_PATH` is needed at run time) and
//! forces `libtorch_cuda` into the binary's `DT_NEEDED` list: without `--no-as-needed` the
//! linker drops it, because no symbol is referenced directly, and CUDA then reads as absent.
//! It also records where the cached ONNX Runtime library lives, as the default that
//! `GAUNTLET_ORT_DYLIB` overrides at run time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// File name of the ONNX Runtime shared library the `ort` crate is built against.
pub const ORT_DYLIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// Emits the link arguments for libtorch and the compile-time default ORT path.
///
/// Call from `build.rs`. Silently does nothing beyond rerun hints when libtorch cannot be
/// located: `torch-sys` then fails with its own, more specific message.
pub fn link_libtorch() {
    for var in [
        "GAUNTLET_TORCH_LIB",
        "LIBTORCH",
        "LIBTORCH_USE_PYTORCH",
        "GAUNTLET_CACHE",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if let Some(lib) = torch_lib_dir() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
        if let Some(site) = lib.parent().and_then(Path::parent) {
            let ort = site.join("onnxruntime").join("capi").join(ORT_DYLIB_NAME);
            if ort.exists() {
                println!(
                    "cargo:rustc-env=GAUNTLET_ORT_DYLIB_DEFAULT={}",
                    ort.display()
                );
            }
        }
    }
}

/// Finds `torch/lib`: an explicit `GAUNTLET_TORCH_LIB`, then `LIBTORCH/lib`, then the
/// `torch` package of the Python on `PATH` (the bootstrap's venv comes first there).
pub fn torch_lib_dir() -> Option<PathBuf> {
    if let Ok(dir) = env::var("GAUNTLET_TORCH_LIB") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(dir) = env::var("LIBTORCH") {
        return Some(PathBuf::from(dir).join("lib"));
    }
    let python = env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(python)
        .args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}
