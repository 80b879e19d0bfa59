//! ONNX bundles through the API: the export of the toy model serves the same predictions
//! and, for the same attack and seed, the same audit results as the native bundle.

use serde_json::{json, Value};

use crate::common::{config, examples, start, Api};

fn load(api: &Api, name: &str) {
    api.post("/v1/models", &json!({"name": name})).ok(201);
}

/// The per-example outcomes and adversarial texts of a report.
fn outcomes(report: &Value) -> Vec<(String, String, u64)> {
    report["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().to_owned(),
                e["adversarial_text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["changes"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn an_onnx_export_predicts_and_is_attacked_like_its_native_bundle() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    let api = Api::new(&server);
    load(&api, "toy-onnx");

    let details = api.get("/v1/models/toy-onnx").ok(200).clone();
    assert_eq!(details["runtime"], "onnx");
    assert_eq!(details["white_box"], true);
    let native = api.get("/v1/models/toy").ok(200).clone();
    assert_eq!(native["runtime"], "tch");
    assert_eq!(details["supported_attacks"], native["supported_attacks"]);
    assert_eq!(details["vocabulary_size"], native["vocabulary_size"]);

    let texts = json!({"texts": ["the movie was great", "a dull plot", "great great dull"]});
    let a = api.post("/v1/models/toy/predict", &texts).ok(200).clone();
    let b = api
        .post("/v1/models/toy-onnx/predict", &texts)
        .ok(200)
        .clone();
    for (pa, pb) in a["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["predictions"].as_array().unwrap())
    {
        assert_eq!(pa["label"], pb["label"]);
        for (x, y) in pa["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .zip(pb["probabilities"].as_array().unwrap())
        {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }

    for attack in [
        json!({"kind": "hotflip-word", "beam_width": 2, "seed": 7}),
        json!({"kind": "unk", "seed": 7}),
        json!({"kind": "loss-beam", "beam_width": 2, "seed": 7}),
        json!({"kind": "random", "seed": 7}),
    ] {
        let run = |model: &str| {
            api.post(
                "/v1/attacks",
                &json!({"model": model, "attack": attack, "examples": examples(8)}),
            )
            .ok(200)
            .clone()
        };
        let (native, onnx) = (run("toy"), run("toy-onnx"));
        assert_eq!(outcomes(&native), outcomes(&onnx), "attack {attack}");
        assert_eq!(
            native["summary"]["success_rate"], onnx["summary"]["success_rate"],
            "attack {attack}"
        );
    }
}
