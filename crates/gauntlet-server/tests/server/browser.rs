//! Headless Chromium (Debian's, driven by playwright-core; `scripts/browser.sh` installs
//! both) on the report page, from disk and from the server, on a comparison page, and on the
//! UI: the example rows, the curve's points against the JSON, the outcome filter, no network
//! request, hostile dataset texts that execute nothing, the API key never in a URL.
//! Screenshots go to `<target>/tmp/browser/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{cache_dir, config, examples, run_tool, start, Api};

const KEY: &str = "ui-key-5";

/// Texts that would run script if any page put them in as markup.
const HOSTILE: [&str; 4] = [
    "<img src=x onerror=\"window.__xss=1\"> a good movie",
    "</script><script>window.__xss=1</script> a bad movie",
    "the plot \"><svg onload=window.__xss=1>",
    "<b onmouseover=window.__xss=1>bold</b> & fun",
];

/// The Chromium executable and playwright-core's node_modules, as `scripts/browser.sh`
/// installed them.
fn tools() -> (PathBuf, PathBuf) {
    let modules = cache_dir().join("browser/node_modules");
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    match (chromium, modules.join("playwright-core").is_dir()) {
        (Some(c), true) => (c, modules),
        _ => panic!(
            "Chromium or playwright-core is missing: run scripts/browser.sh (make test does)"
        ),
    }
}

fn hostile_examples() -> Vec<Value> {
    let mut all = examples(30).as_array().unwrap().clone();
    for (i, t) in HOSTILE.iter().enumerate() {
        all.push(json!({"text": t, "label": i % 2}));
    }
    all
}

/// What the page must show for `report`: the first page of attack 0 (50 rows at most),
/// every curve point, and the rows of each outcome filter.
fn expectations(report: &Value) -> Value {
    let attacks = report["attacks"].as_array().unwrap();
    let first = attacks[0]["report"]["examples"].as_array().unwrap();
    let count = |o: &str| first.iter().filter(|e| e["outcome"] == o).count().min(50);
    let points: Vec<Value> = attacks
        .iter()
        .flat_map(|a| {
            a["report"]["summary"]["curve"].as_array().unwrap().iter().map(move |p| {
                json!({"series": a["name"], "confidence": p["confidence"], "rate": p["success_rate"]})
            })
        })
        .collect();
    json!({
        "rows": first.len().min(50),
        "points": points,
        "by_outcome": {"success": count("success"), "failure": count("failure"), "skipped": count("skipped")},
        "texts": ["<img src=x onerror=", "</script><script>"],
    })
}

fn node(modules: &Path, cases: &Value, dir: &Path) -> String {
    let file = dir.join("cases.json");
    std::fs::write(&file, serde_json::to_vec_pretty(cases).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check.mjs");
    let (ok, text) = run_tool(Command::new("node").arg(script).arg(modules).arg(&file));
    assert!(ok, "browser checks failed:\n{text}");
    text
}

#[test]
fn reports_and_the_ui_in_headless_chromium() {
    let (chromium, modules) = tools();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.server.api_key = Some(KEY.into());
    let datasets = data.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let tsv: String = std::iter::once("label\ttext\n".to_owned())
        .chain(hostile_examples().iter().map(|e| {
            let label = match &e["label"] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            format!("{label}\t{}\n", e["text"].as_str().unwrap())
        }))
        .collect();
    std::fs::write(datasets.join("hostile.tsv"), tsv).unwrap();
    let server = start(c);
    let api = Api::new(&server).with_key(KEY);
    let plan = json!({
        "attacks": [{"kind": "hotflip-word", "beam_width": 2}, {"kind": "unk"}],
        "dataset": {"examples": hostile_examples()},
        "seed": 1,
    });
    let id = api.post("/v1/audits", &plan).ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(api.wait_finished(&id)["state"], "succeeded");
    let report = api.get(&format!("/v1/audits/{id}/report")).ok(200).clone();

    // The page from the server carries the page's policy as a header, and needs the key.
    let url = format!("{}/v1/audits/{id}/report.html", server.url());
    let http = reqwest::blocking::Client::new();
    let page = http.get(&url).bearer_auth(KEY).send().unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(http.get(&url).send().unwrap().status(), 401);
    let ui = http.get(format!("{}/ui", server.url())).send().unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("connect-src 'self'"));

    // The same page from disk, and a comparison page.
    let parsed: gauntlet_attacks::audit::AuditReport =
        serde_json::from_value(report.clone()).unwrap();
    let disk = artifacts.join("report.html");
    std::fs::write(&disk, gauntlet_report::audit_page(&parsed).html).unwrap();
    let comparison = gauntlet_report::compare(&parsed, "baseline", &parsed, "again").unwrap();
    let compared = artifacts.join("comparison.html");
    std::fs::write(
        &compared,
        gauntlet_report::comparison_page(&comparison).html,
    )
    .unwrap();
    let mut compare_points = Vec::new();
    for a in report["attacks"].as_array().unwrap() {
        for side in ["A", "B"] {
            for p in a["report"]["summary"]["curve"].as_array().unwrap() {
                compare_points.push(json!({"series": format!("{} ({side})", a["name"].as_str().unwrap()), "confidence": p["confidence"], "rate": p["success_rate"]}));
            }
        }
    }
    // Points of a comparison come per attack, A then B.
    let expect = expectations(&report);
    let cases = json!({
        "executable": chromium,
        "cases": [
            {"name": "report from disk", "mode": "report", "url": format!("file://{}", disk.display()),
             "expect": expect, "screenshot": artifacts.join("report.png")},
            {"name": "report from the server", "mode": "report", "url": url, "key": KEY,
             "expect": expect, "screenshot": artifacts.join("report-server.png")},
            {"name": "comparison from disk", "mode": "report", "url": format!("file://{}", compared.display()),
             "expect": {"rows": 0, "points": compare_points, "texts": []}, "screenshot": artifacts.join("comparison.png")},
            {"name": "ui", "mode": "ui", "url": format!("{}/ui", server.url()), "key": KEY,
             "expect": {"min_audits": 1, "dataset": "hostile.tsv", "attack": "unk"}, "screenshot": artifacts.join("ui.png")},
        ]
    });
    let out = node(&modules, &cases, &artifacts);
    eprintln!("{out}");
    assert!(artifacts.join("report.png").is_file());
    // The UI's audit on the named dataset ran too.
    let audits = api.get("/v1/audits").ok(200)["audits"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(audits, 2);
}
