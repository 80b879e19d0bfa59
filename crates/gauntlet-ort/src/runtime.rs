//! The process-wide ONNX Runtime environment and where its library comes from.
//!
//! `ort` loads `libonnxruntime` dynamically, once per process. The library path is, in
//! order: the caller's explicit path (a config value), `$GAUNTLET_ORT_DYLIB`, then the
//! compile-time default the build script found in the bootstrap's venv. The first
//! successful load wins for the life of the process; asking later for another path is an
//! error rather than a silent switch.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::OrtError;

/// Environment variable that overrides the library path.
pub const ORT_DYLIB_ENV: &str = "GAUNTLET_ORT_DYLIB";

static ENVIRONMENT: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The library path to use: `explicit`, then `$GAUNTLET_ORT_DYLIB`, then the build-time
/// default from the bootstrap's cache.
pub fn library_path(explicit: Option<&Path>) -> Result<PathBuf, OrtError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    option_env!("GAUNTLET_ORT_DYLIB_DEFAULT")
        .map(PathBuf::from)
        .ok_or_else(|| OrtError::Runtime {
            path: PathBuf::from("libonnxruntime.so.1.31.1"),
            message: format!(
                "no ONNX Runtime library was found at build time; run scripts/bootstrap.sh and rebuild, or set {ORT_DYLIB_ENV} (or the config's ONNX Runtime library path)"
            ),
        })
}

/// The shared environment, loading the library on first use.
pub fn environment(explicit: Option<&Path>) -> Result<&'static Environment, OrtError> {
    let path = library_path(explicit)?;
    let _guard = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((loaded, env)) = ENVIRONMENT.get() {
        if explicit.is_some() && loaded != &path {
            return Err(OrtError::Runtime {
                path,
                message: format!(
                    "this process already loaded ONNX Runtime from {}; one library per process",
                    loaded.display()
                ),
            });
        }
        return Ok(env);
    }
    if !path.is_file() {
        return Err(OrtError::Runtime {
            path,
            message: format!(
                "file not found; run scripts/bootstrap.sh (it installs onnxruntime==1.31.1 into the cache) or set {ORT_DYLIB_ENV}"
            ),
        });
    }
    let runtime = |message: String| OrtError::Runtime {
        path: path.clone(),
        message,
    };
    let env = ort::init_from(&path)
        .map_err(|e| runtime(e.to_string()))?
        .with_name("gauntlet")
        .build()
        .map_err(|e| runtime(e.to_string()))?;
    Ok(&ENVIRONMENT.get_or_init(|| (path, env)).1)
}
