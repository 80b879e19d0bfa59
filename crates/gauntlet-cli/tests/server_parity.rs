//! One plan, two surfaces: `gauntlet run` with a spec file and `POST /v1/audits` on the
//! real server (same bundle, same dataset) write equal audit reports, field by field, wall
//! times aside; shards included.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::net::TcpListener;
use std::time::Duration;

use common::{assert_code, data, gauntlet, word_model};
use gauntlet_server::{AppState, Config, RunningServer};
use gauntlet_tests::without_times;
use serde_json::{json, Value};

fn server(data_dir: &std::path::Path) -> RunningServer {
    let model = word_model();
    let mut c = Config::defaults().unwrap();
    c.server.bind = Some("127.0.0.1:0".parse().unwrap());
    c.server.http_workers = std::num::NonZeroUsize::MIN;
    c.models.dir = model.parent().unwrap().to_path_buf();
    c.models.default_model = Some(model.file_name().unwrap().to_string_lossy().into_owned());
    c.models.device = gauntlet_core::DeviceChoice::Cpu;
    c.data.dir = data_dir.to_path_buf();
    c.scheduler.workers = std::num::NonZeroUsize::MIN;
    c.attacks.wordnet = gauntlet_server::config::WordNetSetting::Off;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    RunningServer::spawn(AppState::new(c).unwrap(), listener).unwrap()
}

fn server_report(base: &str, plan: &Value) -> Value {
    let http = reqwest::blocking::Client::new();
    let job: Value = http
        .post(format!("{base}/v1/audits"))
        .json(plan)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = job["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{job}"))
        .to_owned();
    for _ in 0..30_000 {
        let job: Value = http
            .get(format!("{base}/v1/audits/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        match job["state"].as_str().unwrap() {
            "queued" | "running" => std::thread::sleep(Duration::from_millis(10)),
            "succeeded" => {
                return http
                    .get(format!("{base}/v1/audits/{id}/report"))
                    .send()
                    .unwrap()
                    .json()
                    .unwrap()
            }
            other => panic!("audit {other}: {job}"),
        }
    }
    panic!("the audit never finished");
}

#[test]
fn the_server_and_the_cli_write_one_report_for_one_plan() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = data(dir.path(), 12);
    let data_dir = dir.path().join("server-data");
    fs::create_dir_all(data_dir.join("datasets")).unwrap();
    fs::copy(&dataset, data_dir.join("datasets/test.tsv")).unwrap();
    let server = server(&data_dir);
    let model_name = word_model()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    for shard in [None, Some("1/2")] {
        let mut plan = json!({
            "model": model_name,
            "dataset": "test.tsv",
            "limit": 10,
            "seed": 4,
            "gate": {"max_success_rate": 0.9},
            "attacks": [
                {"kind": "hotflip-word", "beam": 3, "min_accuracy_under_attack": 0.1},
                {"kind": "random", "counts_from": "hotflip-word"},
                {"kind": "unk"}
            ]
        });
        let mut spec = format!(
            "model = \"{}\"\ndata = \"test.tsv\"\nlimit = 10\nseed = 4\ndevice = \"cpu\"\n\
             [gate]\nmax_success_rate = 0.9\n\
             [[attack]]\nkind = \"hotflip-word\"\nbeam = 3\nmin_accuracy_under_attack = 0.1\n\
             [[attack]]\nkind = \"random\"\ncounts_from = \"hotflip-word\"\n\
             [[attack]]\nkind = \"unk\"\n",
            word_model().display()
        );
        if let Some(s) = shard {
            plan["shard"] = json!(s);
            spec = format!("shard = \"{s}\"\n{spec}");
        }
        let from_server = server_report(&server.url(), &plan);
        let spec_path = dir.path().join("gauntlet-audit.toml");
        fs::write(&spec_path, spec).unwrap();
        let out = dir.path().join(format!("reports-{}", shard.is_some()));
        let run = gauntlet(&[
            &"run",
            &"--spec",
            &spec_path,
            &"--out-dir",
            &out,
            &"--no-gate",
        ]);
        assert_code(&run, 0);
        let from_cli: Value =
            serde_json::from_str(&fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
        assert_eq!(from_cli["model"], from_server["model"]);
        assert_eq!(from_cli["shard"], plan["shard"].clone());
        assert_eq!(
            without_times(from_cli),
            without_times(from_server),
            "shard {shard:?}"
        );
    }
}
