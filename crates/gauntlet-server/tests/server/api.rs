//! Health, readiness, metrics, models, predict, synchronous attacks, auth and bad input.

use serde_json::json;

use crate::common::{config, examples, nz, start, Api};

#[test]
fn health_readiness_and_metrics_are_open() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    assert_eq!(api.get("/healthz").ok(200)["status"], "ok");
    let ready = api.get("/readyz");
    assert_eq!(ready.ok(200)["models"], 1);
    api.get("/v1/models").ok(200);
    api.post("/healthz", &json!({}))
        .err(405, "method_not_allowed");
    api.get("/nope").err(404, "route_not_found");
    api.get("/v1/nope").err(404, "route_not_found");
    let metrics = api.get("/metrics");
    assert_eq!(metrics.status, 200);
    for needle in [
        "gauntlet_http_requests_total{method=\"GET\",route=\"/v1/models\",status=\"200\"} 1",
        "gauntlet_http_request_duration_seconds_bucket",
        "gauntlet_models_loaded 1",
        "gauntlet_queue_depth 0",
        "gauntlet_jobs{state=\"queued\"} 0",
        "route=\"unmatched\"",
    ] {
        assert!(
            metrics.text.contains(needle),
            "{needle} not in\n{}",
            metrics.text
        );
    }
}

#[test]
fn models_load_describe_unload_and_readiness() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.models.default_model = None;
    let server = start(c);
    let api = Api::new(&server);
    api.get("/readyz").err(503, "not_ready");
    assert_eq!(api.get("/v1/models").ok(200)["models"], json!([]));
    let loaded = api.post("/v1/models", &json!({"name": "toy"}));
    let body = loaded.ok(201);
    assert_eq!(body["architecture"], "word-cnn");
    assert_eq!(loaded.headers["location"], "/v1/models/toy");
    api.get("/readyz").ok(200);
    api.post("/v1/models", &json!({"name": "toy"}))
        .err(409, "conflict");
    let details = api.get("/v1/models/toy");
    let d = details.ok(200);
    assert_eq!(d["input_kind"], "word");
    assert_eq!(d["device"], "cpu");
    assert_eq!(d["labels"][1]["name"], "positive");
    assert!(d["vocabulary_size"].as_u64().unwrap() > 10);
    let attacks = d["supported_attacks"].as_array().unwrap();
    assert!(attacks.contains(&json!("hotflip-word")) && attacks.contains(&json!("unk")));
    assert!(!attacks.contains(&json!("hotflip-char")));
    // Bad names, missing and broken bundles.
    for bad in ["../toy", "a/b", "..", ".hidden", "/etc", "to y"] {
        api.post("/v1/models", &json!({ "name": bad }))
            .err(400, "invalid_name");
    }
    api.post("/v1/models", &json!({"name": "missing"}))
        .err(404, "model_not_found");
    api.post("/v1/models", &json!({"name": "broken"}))
        .err(422, "model_invalid");
    api.get("/v1/models/.hidden").err(400, "invalid_name");
    api.get("/v1/models/%2e%2e%2fetc").err(400, "invalid_name");
    api.get("/v1/models/other").err(404, "model_not_found");
    api.post("/v1/models", &json!({"name": 3}))
        .err(400, "invalid_json");
    api.post("/v1/models", &json!({"name": "toy", "path": "/tmp"}))
        .err(400, "invalid_json");
    api.method("PUT", "/v1/models/toy")
        .err(405, "method_not_allowed");
    assert_eq!(api.delete("/v1/models/toy").status, 204);
    api.delete("/v1/models/toy").err(404, "model_not_found");
    api.get("/readyz").err(503, "not_ready");
    // Without a default model, requests must name one.
    api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "unk"}, "examples": examples(1)}),
    )
    .err(400, "bad_request");
}

#[test]
fn predict_answers_labels_and_rejects_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.limits.max_texts_per_request = nz(4);
    c.limits.max_chars_per_text = nz(50);
    c.limits.max_body_bytes = nz(2000);
    let server = start(c);
    let api = Api::new(&server);
    let path = "/v1/models/toy/predict";
    let r = api.post(
        path,
        &json!({"texts": ["the movie was great", "a dull plot"]}),
    );
    let body = r.ok(200);
    assert_eq!(body["model"], "toy");
    let preds = body["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    for p in preds {
        let label = p["label"].as_u64().unwrap();
        assert_eq!(p["label_name"], ["negative", "positive"][label as usize]);
    }
    let sum: f64 = preds[0]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4);

    api.post(path, &json!({"texts": []}))
        .err(400, "bad_request");
    api.post(path, &json!({"texts": ["  "]}))
        .err(400, "bad_request");
    // U+0085 is White_Space (Rust's definition, and openapi.yaml's `Text` pattern);
    // U+FEFF is not, although ECMA-262's `\s` counts it.
    api.post(path, &json!({"texts": ["\u{85}\u{2003}"]}))
        .err(400, "bad_request");
    api.post(path, &json!({"texts": ["\u{feff}"]})).ok(200);
    api.post(path, &json!({"texts": ["x".repeat(51)]}))
        .err(413, "payload_too_large");
    api.post(path, &json!({"texts": ["a", "b", "c", "d", "e"]}))
        .err(413, "payload_too_large");
    api.post(path, &json!({"texts": ["y ".repeat(1500)]}))
        .err(413, "payload_too_large");
    api.post_raw(path, b"{\"texts\": [".to_vec())
        .err(400, "invalid_json");
    api.post_raw(path, b"{\"texts\": [\"\xff\xfe\"]}".to_vec())
        .err(400, "invalid_json");
    api.post(path, &json!({"texts": "not a list"}))
        .err(400, "invalid_json");
    api.post(path, &json!({"texts": ["ok"], "extra": 1}))
        .err(400, "invalid_json");
    api.post(path, &json!({})).err(400, "invalid_json");
    api.post("/v1/models/ghost/predict", &json!({"texts": ["a"]}))
        .err(404, "model_not_found");
    api.post("/v1/models/..%2Fx/predict", &json!({"texts": ["a"]}))
        .err(400, "invalid_name");
    api.get(path).err(405, "method_not_allowed");
}

#[test]
fn synchronous_attacks_report_and_enforce_limits() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.limits.max_beam_width = nz(10);
    let server = start(c);
    let api = Api::new(&server);
    let r = api.post(
        "/v1/attacks",
        &json!({"model": "toy", "attack": {"kind": "hotflip-word", "beam_width": 2}, "examples": examples(6)}),
    );
    let report = r.ok(200);
    assert_eq!(report["examples"].as_array().unwrap().len(), 6);
    assert_eq!(report["summary"]["examples"], 6);
    assert!(report["model"].as_str().unwrap().starts_with("toy@"));
    assert_eq!(report["cancelled"], false);
    let r = api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "unk"}, "examples": [{"text": "the plot was great", "label": "positive"}]}),
    );
    assert_eq!(r.ok(200)["config"]["kind"], "unk");

    let attack = |a: serde_json::Value| json!({"attack": a, "examples": examples(2)});
    api.post("/v1/attacks", &attack(json!({"kind": "hotflip-char"})))
        .err(422, "attack_incompatible");
    api.post("/v1/attacks", &attack(json!({"kind": "sem"})))
        .err(422, "attack_incompatible");
    api.post(
        "/v1/attacks",
        &attack(json!({"kind": "hotflip-word", "beam_width": 11})),
    )
    .err(400, "limit_exceeded");
    api.post(
        "/v1/attacks",
        &attack(json!({"kind": "hotflip-word", "budget": {"changes": 1000}})),
    )
    .err(400, "limit_exceeded");
    api.post(
        "/v1/attacks",
        &attack(json!({"kind": "hotflip-word", "beam_width": 0})),
    )
    .err(400, "invalid_attack");
    api.post(
        "/v1/attacks",
        &attack(json!({"kind": "hotflip-word", "confidence": 2.0})),
    )
    .err(400, "invalid_attack");
    api.post("/v1/attacks", &attack(json!({"kind": "teleport"})))
        .err(400, "invalid_json");
    api.post("/v1/attacks", &attack(json!({"kind": "unk", "beam": 3})))
        .err(400, "invalid_json");
    api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "unk"}, "examples": [{"text": "good", "label": 7}]}),
    )
    .err(422, "invalid_label");
    api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "unk"}, "examples": [{"text": "", "label": 1}]}),
    )
    .err(400, "bad_request");
    api.post(
        "/v1/attacks",
        &json!({"model": "ghost", "attack": {"kind": "unk"}, "examples": examples(1)}),
    )
    .err(404, "model_not_found");
    let metrics = api.get("/metrics").text;
    assert!(
        metrics.contains("gauntlet_attacks_total{attack=\"hotflip-word\",outcome=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gauntlet_attack_examples_total{attack=\"hotflip-word\""));
    assert!(metrics.contains("gauntlet_forward_passes_total{attack=\"hotflip-word\"}"));
    assert!(metrics.contains("gauntlet_backward_passes_total{attack=\"hotflip-word\"}"));
    assert!(metrics.contains("route=\"/v1/attacks\""));
}

#[test]
fn synchronous_attacks_stop_at_the_time_limit() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    // A limit no real attack of 64 texts with a wide beam can meet.
    c.limits.attack_timeout_ms = std::num::NonZeroU64::MIN;
    let server = start(c);
    let api = Api::new(&server);
    api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "loss-beam", "beam_width": 20, "budget": {"changes": 4}}, "examples": examples(64)}),
    )
    .err(504, "attack_timeout");
    let metrics = api.get("/metrics").text;
    assert!(metrics.contains("outcome=\"timed_out\""), "{metrics}");
}

#[test]
fn api_key_guards_v1_only() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.server.api_key = Some("s3cret-key".into());
    let server = start(c);
    let open = Api::new(&server);
    open.get("/healthz").ok(200);
    open.get("/readyz").ok(200);
    assert_eq!(open.get("/metrics").status, 200);
    let r = open.get("/v1/models");
    r.err(401, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    open.post("/v1/models/toy/predict", &json!({"texts": ["a"]}))
        .err(401, "unauthorized");
    open.with_key("s3cret-kez")
        .get("/v1/models")
        .err(401, "unauthorized");
    open.with_key("s3cret")
        .get("/v1/models")
        .err(401, "unauthorized");
    open.with_key("s3cret-key-and-more")
        .get("/v1/audits")
        .err(401, "unauthorized");
    let authed = open.with_key("s3cret-key");
    authed.get("/v1/models").ok(200);
    authed
        .post("/v1/models/toy/predict", &json!({"texts": ["good"]}))
        .ok(200);
    authed.get("/v1/audits").ok(200);
    assert!(gauntlet_server::constant_time_eq(b"abc", b"abc"));
    assert!(!gauntlet_server::constant_time_eq(b"abd", b"abc"));
    assert!(!gauntlet_server::constant_time_eq(b"", b"abc"));
}

#[test]
fn concurrent_clients_are_all_served() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    // An audit runs in the background meanwhile.
    let job = api.post(
        "/v1/audits",
        &crate::common::audit(40, json!({"kind": "hotflip-word", "beam_width": 5})),
    );
    let id = job.ok(202)["id"].as_str().unwrap().to_owned();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let api = api.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    match (t + i) % 3 {
                        0 => {
                            api.get("/healthz").ok(200);
                        }
                        1 => {
                            api.get("/v1/models/toy").ok(200);
                        }
                        _ => {
                            let r = api.post(
                                "/v1/models/toy/predict",
                                &json!({"texts": ["a great movie", "an awful plot"]}),
                            );
                            assert_eq!(r.ok(200)["predictions"].as_array().unwrap().len(), 2);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(api.wait_finished(&id)["state"], "succeeded");
    let metrics = api.get("/metrics").text;
    assert!(
        metrics.contains("route=\"/v1/models/{name}/predict\""),
        "{metrics}"
    );
}
