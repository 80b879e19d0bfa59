//! The server as a process: `kill -9` in the middle of a job, then a restart that resumes
//! it into the report of an uninterrupted run; SIGTERM that drains and exits 0; clients
//! that send slowly, cut off while others are served.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use gauntlet_tests::{assert_same_report, without_times};

use crate::common::{audit, config, examples, models_dir, start, Api};

/// A server process on a free loopback port over `data`.
struct Process {
    child: Child,
    api: Api,
}

impl Process {
    fn start(data: &Path, extra: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = data.join("server.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nbind = \"127.0.0.1:{port}\"\nlog = \"warn\"\n\
                 [models]\ndir = {:?}\ndefault_model = \"toy\"\ndevice = \"cpu\"\n\
                 [data]\ndir = {:?}\n\
                 [attacks]\nwordnet = \"off\"\n{extra}",
                models_dir().display().to_string(),
                data.display().to_string()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gauntlet-server"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let api = Api::at(format!("http://127.0.0.1:{port}"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, api }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plan long enough to interrupt: three attacks over many examples.
fn long_plan() -> Value {
    let mut req = audit(240, json!({"kind": "loss-beam", "beam_width": 4}));
    let attacks = req["attacks"].as_array_mut().unwrap();
    attacks.push(json!({"kind": "hotflip-word", "beam_width": 4}));
    attacks.push(json!({"kind": "unk", "beam_width": 4}));
    req["seed"] = json!(9);
    req
}

/// Waits until the job has checkpointed at least `done` of its examples.
fn wait_checkpointed(api: &Api, id: &str, done: u64) -> Value {
    let started = Instant::now();
    loop {
        let job = api.get(&format!("/v1/audits/{id}")).ok(200).clone();
        assert!(
            matches!(job["state"].as_str(), Some("queued" | "running")),
            "the job finished before it was interrupted: {job}"
        );
        if !job["checkpoint_at_ms"].is_null() && job["progress"]["done"].as_u64() >= Some(done) {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_mid_job_then_restart_resumes_into_the_uninterrupted_report() {
    let data = tempfile::tempdir().unwrap();
    let checkpoints = "[scheduler]\ncheckpoint_interval_ms = 50\n";
    let server = Process::start(data.path(), checkpoints);
    let id = server.api.post("/v1/audits", &long_plan());
    let id = id.ok(202)["id"].as_str().unwrap().to_owned();
    // Into the second attack: one attack finished, one part-way.
    let before = wait_checkpointed(&server.api, &id, 300);
    server.signal("KILL");
    drop(server);

    let server = Process::start(data.path(), checkpoints);
    let done = server.api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["resumed"], 1);
    eprintln!(
        "killed at {} of {} examples; resumed and succeeded",
        before["progress"]["done"], before["progress"]["total"]
    );
    let resumed = server
        .api
        .get(&format!("/v1/audits/{id}/report"))
        .ok(200)
        .clone();
    // The same plan, uninterrupted, on the same server.
    let fresh = server.api.post("/v1/audits", &long_plan());
    let fresh = fresh.ok(202)["id"].as_str().unwrap().to_owned();
    assert_eq!(server.api.wait_finished(&fresh)["state"], "succeeded");
    let uninterrupted = server
        .api
        .get(&format!("/v1/audits/{fresh}/report"))
        .ok(200)
        .clone();
    assert_same_report(
        &without_times(resumed),
        &without_times(uninterrupted),
        "report",
    );
    // Checkpointed examples were taken, not attacked again: one result line per example.
    let lines = std::fs::read_to_string(data.path().join(format!("jobs/{id}.results.jsonl")))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 3 * 240);
}

#[test]
fn sigterm_drains_running_jobs_and_exits_0() {
    let data = tempfile::tempdir().unwrap();
    let settings = "[scheduler]\ncheckpoint_interval_ms = 50\n";
    let mut server = Process::start(data.path(), settings);
    let id = server.api.post("/v1/audits", &long_plan());
    let id = id.ok(202)["id"].as_str().unwrap().to_owned();
    wait_checkpointed(&server.api, &id, 1);
    let asked = Instant::now();
    server.signal("TERM");
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        // server.shutdown_grace_secs is 30 by default.
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no exit within the grace time"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    eprintln!("SIGTERM to exit: {} ms", took.as_millis());
    // The job stopped at a checkpoint and resumes at the next start.
    let server = Process::start(data.path(), settings);
    let done = server.api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["resumed"], 1);
}

#[test]
fn while_draining_audits_are_refused_and_reads_are_served() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    let id = api.post("/v1/audits", &audit(2, json!({"kind": "unk"})));
    let id = id.ok(202)["id"].as_str().unwrap().to_owned();
    api.wait_finished(&id);
    server.state.scheduler.begin_shutdown();
    let refused = api.post("/v1/audits", &audit(2, json!({"kind": "unk"})));
    refused.err(503, "shutting_down");
    assert!(refused.headers.contains_key("retry-after"));
    api.get("/readyz").err(503, "shutting_down");
    api.get(&format!("/v1/audits/{id}")).ok(200);
    api.get(&format!("/v1/audits/{id}/report")).ok(200);
}

/// Sends `head` and then `body` a byte at a time every `gap`, and returns what the server
/// answered (empty when it closed without answering).
fn trickle(url: &str, head: &str, body: &[u8], gap: Duration) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(head.as_bytes());
    for b in body {
        if stream.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(gap);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.server.request_body_timeout_ms = std::num::NonZeroU64::new(600).unwrap();
    c.server.client_request_timeout_ms = std::num::NonZeroU64::new(600).unwrap();
    let server = start(c);
    let url = server.url();
    let body = serde_json::to_vec(&json!({"texts": ["a good movie"]})).unwrap();
    let head = format!(
        "POST /v1/models/toy/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let slow_body = {
        let (url, head, body) = (url.clone(), head.clone(), body.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = trickle(&url, &head, &body, Duration::from_millis(150));
            (answer, started.elapsed())
        })
    };
    let slow_head = {
        let url = url.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = trickle(
                &url,
                "",
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                Duration::from_millis(150),
            );
            (answer, started.elapsed())
        })
    };
    // Meanwhile others are served.
    let api = Api::new(&server);
    for _ in 0..20 {
        api.get("/healthz").ok(200);
        api.post("/v1/models/toy/predict", &json!({"texts": ["fine"]}))
            .ok(200);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (answer, took) = slow_body.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (answer, took) = slow_head.join().unwrap();
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // A client that sends in time is still answered.
    let answer = trickle(&url, &head, &body, Duration::ZERO);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = examples(1);
}
