//! Audit jobs: lifecycle, datasets by name, gate, paging, queue limits, cancel, pruning,
//! and restart from the data directory.

use gauntlet_tests::{assert_same_report, without_times};
use serde_json::{json, Value};

use crate::common::{audit, config, examples, nz, start, Api};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn audit_lifecycle_with_gate_and_paging() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    let mut req = json!({
        "model": "toy",
        "attacks": [{"kind": "hotflip-word", "beam_width": 2}, {"kind": "unk"}],
        "dataset": {"examples": examples(12)},
        "limit": 10,
        "seed": 3,
        "gate": {"max_success_rate": 1.0, "min_clean_accuracy": 0.0, "min_accuracy_under_attack": 1.0}
    });
    let r = api.post("/v1/audits", &req);
    let job = r.ok(202);
    let id = id_of(job);
    assert_eq!(r.headers["location"], format!("/v1/audits/{id}").as_str());
    assert_eq!(job["examples"], 10);
    assert_eq!(job["attacks"], json!(["hotflip-word", "unk"]));
    let done = api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["done"], 20);
    assert_eq!(done["results"].as_array().unwrap().len(), 2);
    assert_eq!(done["results"][0]["summary"]["examples"], 10);
    let gate = &done["gate"];
    assert_eq!(gate["checks"].as_array().unwrap().len(), 6);
    let under_attack_ok = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["summary"]["accuracy_under_attack"] == 1.0);
    assert_eq!(gate["passed"], under_attack_ok);

    let page = api.get(&format!("/v1/audits/{id}/examples?offset=5&limit=10"));
    let p = page.ok(200);
    assert_eq!(p["total"], 20);
    assert_eq!(p["items"].as_array().unwrap().len(), 10);
    assert_eq!(p["items"][0]["attack"], "hotflip-word");
    assert_eq!(p["items"][0]["index"], 5);
    assert_eq!(p["items"][5]["attack"], "unk");
    let unk = api.get(&format!(
        "/v1/audits/{id}/examples?attack=1&outcome=skipped"
    ));
    for item in unk.ok(200)["items"].as_array().unwrap() {
        assert_eq!(item["outcome"], "skipped");
        assert_eq!(item["attack_index"], 1);
    }
    api.get(&format!("/v1/audits/{id}/examples?limit=0"))
        .err(400, "limit_exceeded");
    api.get(&format!("/v1/audits/{id}/examples?outcome=maybe"))
        .err(400, "invalid_query");
    api.get(&format!("/v1/audits/{id}/examples?page=2"))
        .err(400, "invalid_query");

    let list = api.get("/v1/audits?state=succeeded");
    assert_eq!(list.ok(200)["audits"][0]["id"], id.as_str());
    assert_eq!(
        api.get("/v1/audits?state=queued").ok(200)["audits"],
        json!([])
    );
    api.get("/v1/audits?state=bogus").err(400, "invalid_query");
    api.get("/v1/audits/not-a-uuid").err(400, "invalid_path");
    let ghost = "00000000-0000-4000-8000-000000000000";
    api.get(&format!("/v1/audits/{ghost}"))
        .err(404, "audit_not_found");
    api.post(&format!("/v1/audits/{ghost}/cancel"), &json!({}))
        .err(404, "audit_not_found");
    api.get(&format!("/v1/audits/{ghost}/examples"))
        .err(404, "audit_not_found");
    api.post(&format!("/v1/audits/{id}/cancel"), &json!({}))
        .err(409, "conflict");
    assert_eq!(api.delete(&format!("/v1/audits/{id}")).status, 204);
    api.get(&format!("/v1/audits/{id}"))
        .err(404, "audit_not_found");
    api.delete(&format!("/v1/audits/{id}"))
        .err(404, "audit_not_found");

    // Bad submissions.
    req["gate"] = json!({"max_success_rate": 2.0});
    api.post("/v1/audits", &req).err(400, "bad_request");
    req["gate"] = json!({"max_succes_rate": 0.5});
    api.post("/v1/audits", &req).err(400, "invalid_json");
    api.post(
        "/v1/audits",
        &json!({"attacks": [], "dataset": {"examples": examples(1)}}),
    )
    .err(400, "bad_request");
    api.post("/v1/audits", &audit(2, json!({"kind": "hotflip-char"})))
        .err(422, "attack_incompatible");
    api.post(
        "/v1/audits",
        &audit(2, json!({"kind": "unk", "beam_width": 1000})),
    )
    .err(400, "limit_exceeded");
    api.post(
        "/v1/audits",
        &json!({"attacks": [{"kind": "unk"}], "dataset": {}}),
    )
    .err(400, "bad_request");
    api.post(
        "/v1/audits",
        &json!({"attacks": [{"kind": "unk"}], "dataset": {"examples": [{"text": "", "label": 0}]}}),
    )
    .err(400, "bad_request");
    api.post("/v1/audits", &json!({"attacks": [{"kind": "unk"}], "dataset": {"examples": [{"text": "good", "label": "meh"}]}}))
        .err(422, "invalid_label");
    api.post("/v1/audits", &json!({"attacks": "unk", "dataset": {}}))
        .err(400, "invalid_json");
}

#[test]
fn datasets_by_name_stay_inside_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let datasets = data.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let mut tsv = String::from("label\ttext\n");
    for r in crate::common::rows(30, 500) {
        tsv.push_str(&format!("{}\t{}\n", r.label, r.text));
    }
    std::fs::write(datasets.join("toy.tsv"), tsv).unwrap();
    std::fs::write(datasets.join("bad.tsv"), "label\ttext\n7\tgood\n").unwrap();
    std::fs::write(data.path().join("secret.tsv"), "label\ttext\n1\tgood\n").unwrap();
    let mut c = config(data.path());
    c.limits.max_audit_examples = nz(20);
    let server = start(c);
    let api = Api::new(&server);
    let named = |name: &str, limit: Option<u64>| {
        let mut v = json!({"attacks": [{"kind": "unk"}], "dataset": {"name": name}});
        if let Some(l) = limit {
            v["limit"] = json!(l);
        }
        v
    };
    let r = api.post("/v1/audits", &named("toy.tsv", Some(5)));
    let id = id_of(r.ok(202));
    let done = api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["examples"], 5);
    api.post("/v1/audits", &named("toy.tsv", None))
        .err(413, "payload_too_large");
    for bad in [
        "../secret.tsv",
        "..",
        "/etc/passwd",
        "sub/toy.tsv",
        ".toy.tsv",
    ] {
        api.post("/v1/audits", &named(bad, Some(1)))
            .err(400, "invalid_name");
    }
    api.post("/v1/audits", &named("missing.tsv", Some(1)))
        .err(404, "dataset_not_found");
    let r = api.post("/v1/audits", &named("bad.tsv", Some(1)));
    r.err(400, "invalid_dataset");
    assert!(
        !r.text.contains(&*data.path().to_string_lossy()),
        "{}",
        r.text
    );
    api.post(
        "/v1/audits",
        &json!({"attacks": [{"kind": "unk"}], "dataset": {"name": "toy.tsv", "examples": examples(1)}}),
    )
    .err(400, "bad_request");
}

#[test]
fn queue_fills_up_and_cancel_stops_queued_and_running_jobs() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.scheduler.queue_capacity = nz(2);
    let server = start(c);
    let api = Api::new(&server);
    // Hold running jobs at their first progress report: "running" becomes a stable state.
    server.state.scheduler.set_hold(true);
    let job = |n| audit(n, json!({"kind": "hotflip-word", "beam_width": 3}));
    let a = id_of(api.post("/v1/audits", &job(8)).ok(202));
    api.wait_audit(&a, |s| s == "running");
    let b = id_of(api.post("/v1/audits", &job(4)).ok(202));
    let c2 = id_of(api.post("/v1/audits", &job(4)).ok(202));
    let full = api.post("/v1/audits", &job(4));
    full.err(429, "queue_full");
    assert!(full.headers.contains_key("retry-after"));
    let metrics = api.get("/metrics").text;
    assert!(metrics.contains("gauntlet_queue_depth 2"), "{metrics}");
    assert!(
        metrics.contains("gauntlet_jobs{state=\"running\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        api.get("/v1/audits?state=queued").ok(200)["audits"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A queued job is cancelled at once; a second cancel conflicts.
    let r = api.post(&format!("/v1/audits/{b}/cancel"), &json!({}));
    assert_eq!(r.ok(200)["state"], "cancelled");
    api.post(&format!("/v1/audits/{b}/cancel"), &json!({}))
        .err(409, "conflict");
    // A queued or running job cannot be deleted.
    api.delete(&format!("/v1/audits/{c2}")).err(409, "conflict");
    api.delete(&format!("/v1/audits/{a}")).err(409, "conflict");
    // There is room again.
    let d = id_of(api.post("/v1/audits", &job(2)).ok(202));

    // The running job stops at its next beam step.
    let r = api.post(&format!("/v1/audits/{a}/cancel"), &json!({}));
    assert_eq!(r.ok(202)["cancel_requested"], true);
    let done = api.wait_finished(&a);
    assert_eq!(done["state"], "cancelled");
    assert!(done["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["cancelled"] == true));

    server.state.scheduler.set_hold(false);
    assert_eq!(api.wait_finished(&c2)["state"], "succeeded");
    assert_eq!(api.wait_finished(&d)["state"], "succeeded");
    assert_eq!(api.delete(&format!("/v1/audits/{b}")).status, 204);
    let metrics = api.get("/metrics").text;
    assert!(
        metrics.contains("gauntlet_audit_duration_seconds_count"),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"cancelled\""), "{metrics}");
}

#[test]
fn finished_jobs_beyond_jobs_kept_are_pruned() {
    let data = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.scheduler.jobs_kept = nz(2);
    let server = start(c);
    let api = Api::new(&server);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = id_of(
            api.post("/v1/audits", &audit(2, json!({"kind": "unk"})))
                .ok(202),
        );
        api.wait_finished(&id);
        ids.push(id);
    }
    let list = api.get("/v1/audits");
    let kept: Vec<&str> = list.ok(200)["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [ids[1].as_str(), ids[2].as_str()]);
    // A record and a results file each.
    let files = std::fs::read_dir(data.path().join("jobs")).unwrap().count();
    assert_eq!(files, 4);
}

#[test]
fn restart_resumes_unfinished_jobs_and_interrupts_only_those_that_cannot() {
    let data = tempfile::tempdir().unwrap();
    let plan = || {
        let mut req = audit(6, json!({"kind": "hotflip-word", "beam_width": 2}));
        req["attacks"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kind": "unk", "beam_width": 2}));
        req
    };
    let (done_id, held_id, report, page) = {
        let server = start(config(data.path()));
        let api = Api::new(&server);
        let id = id_of(api.post("/v1/audits", &plan()).ok(202));
        assert_eq!(api.wait_finished(&id)["state"], "succeeded");
        let report = api.get(&format!("/v1/audits/{id}/report")).ok(200).clone();
        let page = api
            .get(&format!("/v1/audits/{id}/examples"))
            .ok(200)
            .clone();
        // A job still running at a graceful stop checkpoints and resumes at the next start.
        server.state.scheduler.set_hold(true);
        let held = id_of(api.post("/v1/audits", &plan()).ok(202));
        api.wait_audit(&held, |s| s == "running");
        server.stop();
        (id, held, report, page)
    };
    // A crash leaves records in the running and queued states: write them as a crash would,
    // copies of the finished job (a running one with its results, a queued one without).
    let jobs = data.path().join("jobs");
    let record: Value =
        serde_json::from_slice(&std::fs::read(jobs.join(format!("{done_id}.json"))).unwrap())
            .unwrap();
    let crash = |n: usize, state: &str, results: bool, change: &dyn Fn(&mut Value)| {
        let mut r = record.clone();
        let id = format!("00000000-0000-4000-8000-00000000000{n}");
        r["id"] = json!(id);
        r["state"] = json!(state);
        r["finished_at_ms"] = Value::Null;
        change(&mut r);
        std::fs::write(
            jobs.join(format!("{id}.json")),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
        if results {
            std::fs::copy(
                jobs.join(format!("{done_id}.results.jsonl")),
                jobs.join(format!("{id}.results.jsonl")),
            )
            .unwrap();
        }
        id
    };
    let running = crash(1, "running", true, &|_| {});
    let queued = crash(2, "queued", false, &|r| {
        r["report"] = Value::Null;
        r["checkpoint"] = Value::Null;
    });
    let lost_results = crash(3, "running", false, &|_| {});
    let other_model = crash(4, "running", true, &|r| r["model_digest"] = json!("feed"));
    std::fs::write(jobs.join("garbage.json"), b"{not json").unwrap();
    std::fs::write(jobs.join("x.tmp"), b"partial").unwrap();

    let server = start(config(data.path()));
    let api = Api::new(&server);
    assert_eq!(
        api.get(&format!("/v1/audits/{done_id}/examples")).ok(200),
        &page
    );
    for id in [&held_id, &running, &queued] {
        let job = api.wait_finished(id);
        assert_eq!(job["state"], "succeeded", "{job}");
        let again = api.get(&format!("/v1/audits/{id}/report")).ok(200).clone();
        assert_same_report(&without_times(again), &without_times(report.clone()), id);
    }
    assert_eq!(
        api.get(&format!("/v1/audits/{held_id}")).ok(200)["resumed"],
        1
    );
    assert_eq!(
        api.get(&format!("/v1/audits/{queued}")).ok(200)["resumed"],
        0
    );
    for (id, why) in [(&lost_results, "results file"), (&other_model, "changed")] {
        let job = api.get(&format!("/v1/audits/{id}"));
        let j = job.ok(200);
        assert_eq!(j["state"], "interrupted", "{j}");
        assert!(j["error"].as_str().unwrap().contains(why), "{j}");
    }
    assert!(!jobs.join("x.tmp").exists());
    // The restarted server still runs new jobs.
    let id = id_of(
        api.post("/v1/audits", &audit(2, json!({"kind": "unk"})))
            .ok(202),
    );
    assert_eq!(api.wait_finished(&id)["state"], "succeeded");
    server.stop();

    // With resuming off, an unfinished job ends interrupted and says why.
    let off = crash(5, "running", true, &|_| {});
    let mut c = config(data.path());
    c.scheduler.resume = false;
    let server = start(c);
    let job = Api::new(&server).get(&format!("/v1/audits/{off}"));
    let j = job.ok(200);
    assert_eq!(j["state"], "interrupted", "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("scheduler.resume"),
        "{j}"
    );
}

#[test]
fn a_shard_job_reports_its_shard_and_the_report_waits_for_success() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    server.state.scheduler.set_hold(true);
    let mut req = audit(10, json!({"kind": "hotflip-word", "beam": 2}));
    req["shard"] = json!("1/3");
    req["seed"] = json!(5);
    let job = api.post("/v1/audits", &req);
    let job = job.ok(202);
    let id = id_of(job);
    assert_eq!(job["shard"], "1/3");
    assert_eq!(job["examples"], 3, "indices 1, 4, 7 of 10");
    api.wait_audit(&id, |s| s == "running");
    api.get(&format!("/v1/audits/{id}/report"))
        .err(409, "conflict");
    server.state.scheduler.set_hold(false);
    assert_eq!(api.wait_finished(&id)["state"], "succeeded");
    let report = api.get(&format!("/v1/audits/{id}/report"));
    let report = report.ok(200);
    assert_eq!(report["shard"], "1/3");
    assert_eq!(report["data"]["examples"], 10);
    let indices: Vec<u64> = report["attacks"][0]["report"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [1, 4, 7]);
    assert!(report["verdict"].is_null(), "no verdict on one shard");

    for (shard, status, code) in [
        ("3/3", 422, "invalid_plan"),
        ("0/0", 400, "invalid_json"),
        ("a/b", 400, "invalid_json"),
    ] {
        req["shard"] = json!(shard);
        api.post("/v1/audits", &req).err(status, code);
    }
    api.get("/v1/audits/00000000-0000-4000-8000-000000000000/report")
        .err(404, "audit_not_found");
}
