//! Test fixtures: a toy model trained once per test binary, servers on ephemeral ports,
//! and an HTTP client that checks every exchange against `openapi.yaml`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use gauntlet_core::DeviceChoice;
use gauntlet_models::Architecture;
use gauntlet_server::config::WordNetSetting;
use gauntlet_server::{AppState, Config, RunningServer};
use gauntlet_train::testing::{tiny_config, train_toy_bundle};
use gauntlet_train::TrainConfig;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};

use crate::openapi;

pub use gauntlet_train::testing::toy_rows as rows;

/// Inline examples for attack and audit requests.
pub fn examples(n: usize) -> Value {
    Value::Array(
        rows(n, 3000)
            .into_iter()
            .map(|r| json!({"text": r.text, "label": r.label}))
            .collect(),
    )
}

/// The models directory: `toy` (a trained word CNN), `toy-onnx` (its ONNX export) and
/// `broken` (an invalid bundle).
pub fn models_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = TrainConfig {
            label_names: Some(vec!["negative".into(), "positive".into()]),
            ..tiny_config(Architecture::WordCnn)
        };
        train_toy_bundle(&config, &dir.path().join("toy")).unwrap();
        gauntlet_models::export::export_bundle(
            &dir.path().join("toy"),
            &dir.path().join("toy-onnx"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("broken")).unwrap();
        std::fs::write(dir.path().join("broken/gauntlet.toml"), "not = [valid").unwrap();
        dir
    })
    .path()
}

/// A test configuration: the toy model as default, CPU, one audit worker, WordNet off
/// (explicitly, so `GAUNTLET_WORDNET` or a cache on the machine cannot change results).
pub fn config(data: &Path) -> Config {
    let mut c = Config::defaults().unwrap();
    c.server.bind = Some("127.0.0.1:0".parse().unwrap());
    c.server.http_workers = nz(2);
    c.models.dir = models_dir().to_path_buf();
    c.models.default_model = Some("toy".into());
    c.models.device = DeviceChoice::Cpu;
    c.data.dir = data.to_path_buf();
    c.scheduler.workers = nz(1);
    c.scheduler.queue_capacity = nz(4);
    c.attacks.wordnet = WordNetSetting::Off;
    c
}

/// A tiny fake WordNet under `dir` covering the toy vocabulary (the format of WordNet's
/// `index.POS` and `POS.exc` files); returns the root to configure, whose `dict`
/// directory lies three levels below it.
pub fn fake_wordnet(dir: &Path) -> std::path::PathBuf {
    use gauntlet_train::testing::{NEGATIVE, POSITIVE};
    let dict = dir.join("wordnet/usr/share/wordnet");
    std::fs::create_dir_all(&dict).unwrap();
    let lines = |words: &[&str], pos: &str| -> String {
        let mut out = String::from("  1 This software and database is being provided\n");
        for w in words {
            out.push_str(&format!("{w} {pos} 1 0 1 0 0 \n"));
        }
        out
    };
    let adjectives: Vec<&str> = POSITIVE.iter().chain(&NEGATIVE).copied().collect();
    std::fs::write(dict.join("index.adj"), lines(&adjectives, "a")).unwrap();
    std::fs::write(dict.join("index.noun"), lines(&["movie", "plot"], "n")).unwrap();
    std::fs::write(dict.join("index.verb"), lines(&["be"], "v")).unwrap();
    std::fs::write(dict.join("index.adv"), lines(&["really"], "r")).unwrap();
    std::fs::write(dict.join("verb.exc"), "was be\n").unwrap();
    dir.join("wordnet")
}

/// `$GAUNTLET_CACHE`, else `~/.cache/gauntlet`: where the test command's tools live.
pub fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("GAUNTLET_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gauntlet")))
        .expect("neither GAUNTLET_CACHE nor HOME is set")
}

/// Runs a tool, returning whether it succeeded and its stdout and stderr together.
pub fn run_tool(command: &mut std::process::Command) -> (bool, String) {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A count for a configuration setting (those are `NonZeroUsize`).
pub fn nz(n: usize) -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(n).unwrap()
}

/// Starts a real server on an ephemeral loopback port.
pub fn start(config: Config) -> RunningServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    RunningServer::spawn(AppState::new(config).unwrap(), listener).unwrap()
}

/// One answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// The error code, or "".
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{}", self.text);
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    /// Asserts a status and returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        &self.body
    }
}

/// A client for one server, validating every exchange against `openapi.yaml`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: Option<String>,
    http: Client,
}

impl Api {
    pub fn new(server: &RunningServer) -> Self {
        Self {
            base: server.url(),
            key: None,
            http: Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    /// A client for a server at `base` (e.g. one started as a process).
    pub fn at(base: String) -> Self {
        Self {
            base,
            key: None,
            http: Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .unwrap(),
        }
    }

    pub fn with_key(&self, key: &str) -> Self {
        Self {
            key: Some(key.into()),
            ..self.clone()
        }
    }

    fn send(&self, method: &str, path: &str, builder: RequestBuilder) -> Resp {
        let builder = match &self.key {
            Some(k) => builder.bearer_auth(k),
            None => builder,
        };
        let r = builder.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        openapi::check(method, path, status, &body);
        Resp {
            status,
            body,
            text,
            headers,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, self.http.get(format!("{}{path}", self.base)))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send(
            "DELETE",
            path,
            self.http.delete(format!("{}{path}", self.base)),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            "POST",
            path,
            self.http.post(format!("{}{path}", self.base)).json(body),
        )
    }

    pub fn post_raw(&self, path: &str, body: Vec<u8>) -> Resp {
        self.send(
            "POST",
            path,
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
    }

    pub fn method(&self, method: &str, path: &str) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.send(
            method,
            path,
            self.http.request(m, format!("{}{path}", self.base)),
        )
    }

    /// Polls an audit until `done(state)` holds (bounded: at most ~5 minutes).
    pub fn wait_audit(&self, id: &str, done: impl Fn(&str) -> bool) -> Value {
        for _ in 0..30_000 {
            let r = self.get(&format!("/v1/audits/{id}"));
            let body = r.ok(200).clone();
            if done(body["state"].as_str().unwrap()) {
                return body;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("audit {id} never reached the expected state");
    }

    /// Polls until the audit is finished.
    pub fn wait_finished(&self, id: &str) -> Value {
        self.wait_audit(id, |s| !matches!(s, "queued" | "running"))
    }
}

/// An audit request over inline examples.
pub fn audit(n: usize, attack: Value) -> Value {
    json!({"attacks": [attack], "dataset": {"examples": examples(n)}})
}
