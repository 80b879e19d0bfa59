//! Cross-crate integration tests live beside this file; the library itself locates
//! repository resources for them, generates the ONNX fixtures (with the bootstrap's Python
//! venv) that several crates' tests share, and compares JSON reports the way the server's
//! and the CLI's tests both need (times removed, fp32 rounding allowed).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

/// A JSON report with what may differ between runs of one plan zeroed or removed: wall times,
/// throughput and merge provenance (`merged_from`), at any depth.
pub fn without_times(mut report: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if k == "wall_time_ms" || k == "examples_per_second" {
                        *x = Value::from(0);
                    } else {
                        walk(x);
                    }
                }
                map.remove("merged_from");
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut report);
    report
}

/// Asserts two JSON reports (times removed) agree: every text, operation, count and outcome
/// exactly, every fractional number to 1e-6. A resumed job or a shard attacks its examples in
/// batches of another composition, and fp32 matmuls over other shapes may round the last
/// bit of a probability differently (a CI run saw 0.99...45869446 against 0.99...469446).
pub fn assert_same_report(left: &Value, right: &Value, at: &str) {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{at}: {a} != {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_report(x, y, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{at}: keys"
            );
            for (k, x) in a {
                assert_same_report(x, &b[k], &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(left, right, "{at}"),
    }
}
