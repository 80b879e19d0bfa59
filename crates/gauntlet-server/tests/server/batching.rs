//! Dynamic batching of predict requests: concurrent requests share model calls and get the
//! answers of single requests; errors stay per request; a full queue answers 429. The
//! batcher's hold hook makes "requests are queued" a stable state, so no test depends on
//! timing.

use std::sync::Arc;

use gauntlet_server::registry::LoadedModel;
use gauntlet_server::RunningServer;
use serde_json::{json, Value};

use crate::common::{config, nz, rows, start, Api};

const PREDICT: &str = "/v1/models/toy/predict";

fn toy(server: &RunningServer) -> Arc<LoadedModel> {
    server.state.models.get("toy").unwrap()
}

/// Waits (bounded) until `done` holds.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    for _ in 0..60_000 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("never reached: {what}");
}

/// `(model calls, model calls with one text)` from `/metrics`.
fn batch_calls(api: &Api) -> (u64, u64) {
    let metrics = api.get("/metrics").text;
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} not in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    (
        value("gauntlet_predict_batch_texts_count "),
        value("gauntlet_predict_batch_texts_bucket{le=\"1\"} "),
    )
}

/// Sends each body from its own thread while the batcher holds, waits until `valid`
/// requests reached it (one held, the others queued), releases, and returns the answers in
/// order.
fn concurrently(
    server: &RunningServer,
    api: &Api,
    bodies: Vec<Value>,
    valid: usize,
) -> Vec<(u16, Value)> {
    let model = toy(server);
    let batcher = model.batcher.as_ref().unwrap();
    batcher.set_hold(true);
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let api = api.clone();
            std::thread::spawn(move || {
                let r = api.post(PREDICT, &body);
                (r.status, r.body)
            })
        })
        .collect();
    wait_for("every request queued", || {
        batcher.holding() && batcher.queued() == valid - 1
    });
    batcher.set_hold(false);
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn concurrent_predicts_share_model_calls_and_answer_like_single_requests() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.batching.max_wait_us = 20_000;
    c.batching.max_batch_texts = nz(64);
    c.batching.queue_capacity = nz(64);
    let server = start(c);
    let api = Api::new(&server);
    let texts: Vec<String> = rows(40, 17).into_iter().map(|r| r.text).collect();
    // Sequential single requests: the reference, one text per model call.
    let single: Vec<Value> = texts
        .iter()
        .map(|t| api.post(PREDICT, &json!({ "texts": [t] })).ok(200)["predictions"][0].clone())
        .collect();
    let (calls, ones) = batch_calls(&api);
    assert_eq!((calls, ones), (40, 40));

    // 32 concurrent requests of one or two texts (48 texts, one model call of at most 64).
    let bodies: Vec<Value> = (0..32)
        .map(|i| json!({ "texts": texts[i..i + 1 + i % 2] }))
        .collect();
    let answers = concurrently(&server, &api, bodies, 32);
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["model"], "toy");
        let got = body["predictions"].as_array().unwrap();
        assert_eq!(got.len(), 1 + i % 2);
        for (k, p) in got.iter().enumerate() {
            let want = &single[i + k];
            assert_eq!(p["label"], want["label"]);
            assert_eq!(p["label_name"], want["label_name"]);
            let close =
                |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-5;
            assert!(
                close(&p["probability"], &want["probability"]),
                "{p} vs {want}"
            );
            let (a, b) = (
                p["probabilities"].as_array().unwrap(),
                want["probabilities"].as_array().unwrap(),
            );
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(b).all(|(x, y)| close(x, y)), "{p} vs {want}");
        }
    }
    let (calls, ones) = batch_calls(&api);
    assert!(calls > ones, "no model call had more than one text");
    assert!(
        calls < 40 + 32,
        "{calls} model calls for 32 concurrent requests"
    );
}

#[test]
fn a_bad_request_fails_alone_and_a_large_one_runs_alone() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.batching.max_batch_texts = nz(4);
    let server = start(c);
    let api = Api::new(&server);
    let bodies = vec![
        json!({"texts": ["the movie was great"]}),
        json!({"texts": ["a dull plot", "  "]}),
        json!({"texts": ["a b", "c d", "e f", "g h", "i j", "k l"]}),
        json!({"texts": ["really nice", "so boring"]}),
    ];
    // The bad request is refused on its own; the three others share the held batch.
    let answers = concurrently(&server, &api, bodies, 3);
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 400, 200, 200], "{answers:?}");
    assert_eq!(answers[1].1["error"]["code"], "bad_request");
    assert!(answers[1].1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("texts[1]"));
    assert_eq!(answers[2].1["predictions"].as_array().unwrap().len(), 6);
    assert_eq!(answers[3].1["predictions"].as_array().unwrap().len(), 2);
}

#[test]
fn a_full_predict_queue_answers_429_with_retry_after() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.batching.queue_capacity = nz(1);
    c.batching.max_wait_us = 0;
    let server = start(c);
    let api = Api::new(&server);
    let model = toy(&server);
    let batcher = model.batcher.as_ref().unwrap();
    batcher.set_hold(true);
    let send = |text: &str| {
        let api = api.clone();
        let body = json!({ "texts": [text] });
        std::thread::spawn(move || api.post(PREDICT, &body).status)
    };
    // One request is held by the model's thread, one waits in the queue: it is full.
    let held = send("a great movie");
    wait_for("a request held", || batcher.holding());
    let queued = send("an awful plot");
    wait_for("a request queued", || batcher.queued() == 1);
    let full = api.post(PREDICT, &json!({"texts": ["one more"]}));
    full.err(429, "queue_full");
    assert_eq!(full.headers["retry-after"], "1");
    batcher.set_hold(false);
    assert_eq!((held.join().unwrap(), queued.join().unwrap()), (200, 200));
    api.post(PREDICT, &json!({"texts": ["one more"]})).ok(200);
}

#[test]
fn batching_off_runs_one_call_per_request_with_the_same_answers() {
    let data = tempfile::tempdir().unwrap();
    let texts = json!({"texts": ["the movie was great", "a dull plot", "really nice"]});
    let on = start(config(data.path()));
    let batched = Api::new(&on).post(PREDICT, &texts).ok(200).clone();
    on.stop();
    let mut c = config(data.path());
    c.batching.enabled = false;
    let off = start(c);
    assert!(toy(&off).batcher.is_none());
    let api = Api::new(&off);
    assert_eq!(api.post(PREDICT, &texts).ok(200), &batched);
    assert_eq!(batch_calls(&api), (1, 0));
}
