//! schemathesis (PyPI, pinned in `scripts/schemathesis.sh`) against the real server, with and
//! without an API key, `--checks all`: any failure fails the test.
//!
//! Configuration of the checks (written next to the run, see [`CHECKS`]): a schema-valid
//! request may also be answered 422, the status this API gives a request that fits the
//! schema but not the model it names (a label the model lacks, a character attack on a word
//! model); and a schema-violating one may be answered 413, the documented status of
//! over-long texts and lists; `/readyz` may answer 503 (not ready), as documented, once the
//! run has unloaded the model. Without an API key the server requires none, so that run uses
//! the spec with `security: []` (what the spec says of a server without a key).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::{audit, cache_dir, config, nz, run_tool, start, Api};

/// The checks' settings shared by both runs.
const CHECKS: &str = r#"
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# Readiness answers 503 by design while no model is loaded (the run may unload it).
[[operations]]
include-path = "/readyz"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"#;

fn schemathesis() -> PathBuf {
    let bin = cache_dir().join("schemathesis-venv/bin/schemathesis");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/schemathesis.sh (make test does) to install schemathesis",
        bin.display()
    );
    bin
}

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.yaml")
}

/// Runs schemathesis on `server_url` with `spec`, returning (success, output).
fn run(spec: &Path, url: &str, settings: &str, dir: &Path) -> (bool, String) {
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, settings).unwrap();
    run_tool(
        Command::new(schemathesis())
            .arg("--no-color")
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(spec)
            .args(["--url", url, "--checks", "all", "--seed", "7"])
            .args(["--max-examples", "25", "--max-time", "75"])
            .args(["--request-timeout", "30", "--workers", "1"])
            .current_dir(dir),
    )
}

#[test]
fn schemathesis_finds_nothing_with_and_without_an_api_key() {
    let bin = schemathesis();
    assert!(bin.is_file());
    for key in [Some("schemathesis-key-7"), None] {
        let data = tempfile::tempdir().unwrap();
        let mut c = config(data.path());
        c.server.api_key = key.map(str::to_owned);
        c.scheduler.queue_capacity = nz(8);
        let server = start(c);
        let api = match key {
            Some(k) => Api::new(&server).with_key(k),
            None => Api::new(&server),
        };
        // One finished audit, so the routes under /v1/audits/{id} get a real id.
        let id = api.post("/v1/audits", &audit(4, json!({"kind": "hotflip-word"})));
        let id = id.ok(202)["id"].as_str().unwrap().to_owned();
        api.wait_finished(&id);
        let mut settings = format!("{CHECKS}\n[parameters]\nid = \"{id}\"\n");
        let spec = match key {
            Some(k) => {
                settings.push_str(&format!("\n[auth.openapi.bearer]\nbearer = \"{k}\"\n"));
                spec_path()
            }
            None => {
                let text = std::fs::read_to_string(spec_path()).unwrap();
                let open = text.replacen("security:\n  - bearer: []\n", "security: []\n", 1);
                assert_ne!(open, text, "openapi.yaml's top-level security moved");
                let path = data.path().join("openapi-no-key.yaml");
                std::fs::write(&path, open).unwrap();
                path
            }
        };
        let (ok, output) = run(&spec, &server.url(), &settings, data.path());
        let summary: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("failures") || l.contains("passed") || l.contains("Test cases"))
            .collect();
        eprintln!(
            "schemathesis, {}: {}",
            if key.is_some() {
                "API key"
            } else {
                "no API key"
            },
            summary.join(" | ")
        );
        assert!(
            ok,
            "schemathesis failed (API key: {}):\n{output}",
            key.is_some()
        );
        server.stop();
    }
}
