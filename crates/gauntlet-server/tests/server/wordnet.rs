//! The `sem` attack: offered with a configured WordNet, refused (422) without one, and a
//! configured directory without WordNet stops the start. Every test sets
//! `attacks.wordnet` explicitly, so the machine's WordNet cannot change the results.

use gauntlet_server::config::WordNetSetting;
use gauntlet_server::{AppState, Config, Overrides, StartError};
use serde_json::json;

use crate::common::{audit, config, examples, fake_wordnet, start, Api};

fn lists_sem(api: &Api) -> bool {
    let details = api.get("/v1/models/toy");
    details.ok(200)["supported_attacks"]
        .as_array()
        .unwrap()
        .contains(&json!("sem"))
}

#[test]
fn sem_runs_and_is_listed_with_a_configured_wordnet() {
    let data = tempfile::tempdir().unwrap();
    let wordnet = tempfile::tempdir().unwrap();
    let mut c = config(data.path());
    c.attacks.wordnet = WordNetSetting::Dir(fake_wordnet(wordnet.path()));
    let server = start(c);
    assert!(server.state.lexicon.is_some());
    let api = Api::new(&server);
    assert!(lists_sem(&api));
    let r = api.post(
        "/v1/attacks",
        &json!({"attack": {"kind": "sem", "beam_width": 2}, "examples": examples(4)}),
    );
    let report = r.ok(200);
    assert_eq!(report["config"]["kind"], "sem");
    assert_eq!(report["summary"]["examples"], 4);
    assert_eq!(report["cancelled"], false);
    // Audit jobs get the lexicon too.
    let job = api.post("/v1/audits", &audit(3, json!({"kind": "sem"})));
    let id = job.ok(202)["id"].as_str().unwrap().to_owned();
    let done = api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// `attacks.sem_vectors`: one-off attacks and audit jobs take `sem`'s similarities from the
/// file and name it in their notes; a missing file stops the start with the setting named.
#[test]
fn sem_takes_its_similarities_from_the_configured_vectors() {
    let data = tempfile::tempdir().unwrap();
    let wordnet = tempfile::tempdir().unwrap();
    let vectors = wordnet.path().join("vectors.txt");
    std::fs::write(&vectors, "2 2\ngood 1 0\nbad 1 0\n").unwrap();
    let mut c = config(data.path());
    c.attacks.wordnet = WordNetSetting::Dir(fake_wordnet(wordnet.path()));
    c.attacks.sem_vectors = Some(vectors.clone());
    let server = start(c);
    let api = Api::new(&server);
    let attack = json!({"kind": "sem", "beam_width": 2, "cosine_threshold": 0.9});
    let r = api.post(
        "/v1/attacks",
        &json!({"attack": attack, "examples": examples(4)}),
    );
    let report = r.ok(200);
    let notes = report["notes"].to_string();
    assert!(notes.contains("vectors.txt"), "{notes}");
    for e in report["examples"].as_array().unwrap() {
        for op in e["operations"].as_array().unwrap() {
            let pair = (
                op["before"].as_str().unwrap(),
                op["after"].as_str().unwrap(),
            );
            assert!(
                matches!(pair, ("good", "bad") | ("bad", "good")),
                "{pair:?}"
            );
        }
    }
    let job = api.post("/v1/audits", &audit(3, attack));
    let id = job.ok(202)["id"].as_str().unwrap().to_owned();
    let done = api.wait_finished(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    let r = api.get(&format!("/v1/audits/{id}/report"));
    let full = r.ok(200);
    let notes = full["attacks"][0]["report"]["notes"].to_string();
    assert!(notes.contains("vectors.txt"), "{notes}");

    let mut c = config(data.path());
    c.attacks.sem_vectors = Some(wordnet.path().join("missing.txt"));
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("attacks.sem_vectors") && e.contains("missing.txt"),
        "{e}"
    );
}

#[test]
fn sem_is_refused_without_wordnet() {
    let data = tempfile::tempdir().unwrap();
    let server = start(config(data.path()));
    assert!(server.state.lexicon.is_none());
    let api = Api::new(&server);
    assert!(!lists_sem(&api));
    let attack = json!({"attack": {"kind": "sem"}, "examples": examples(2)});
    let r = api.post("/v1/attacks", &attack);
    r.err(422, "attack_incompatible");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("WordNet") && message.contains("attacks.wordnet"),
        "{message}"
    );
    api.post("/v1/audits", &audit(2, json!({"kind": "sem"})))
        .err(422, "attack_incompatible");
}

#[test]
fn a_configured_directory_without_wordnet_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let expect_named = |e: String| {
        assert!(
            e.contains("attacks.wordnet") && e.contains("index.noun"),
            "{e}"
        );
    };
    // The environment layer, as GAUNTLET__ATTACKS__WORDNET.
    let env = vec![
        (
            "GAUNTLET__ATTACKS__WORDNET".to_string(),
            empty.path().to_string_lossy().into_owned(),
        ),
        ("GAUNTLET__MODELS__DEFAULT_MODEL".to_string(), String::new()),
    ];
    let e = Config::load_with_env(None, env, &Overrides::default()).unwrap_err();
    expect_named(e.to_string());
    // The flag layer, as --wordnet.
    let o = Overrides {
        default_model: Some(String::new()),
        wordnet: Some(empty.path().to_string_lossy().into_owned()),
        ..Overrides::default()
    };
    let e = Config::load_with_env(None, Vec::new(), &o).unwrap_err();
    expect_named(e.to_string());
    // A configuration built in code is validated at start too.
    let mut c = config(data.path());
    c.attacks.wordnet = WordNetSetting::Dir(empty.path().to_owned());
    match AppState::new(c) {
        Err(e @ StartError::Config(_)) => expect_named(e.to_string()),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the server started without WordNet"),
    }
    // "off" and a directory with WordNet below it are accepted.
    let wordnet = tempfile::tempdir().unwrap();
    let root = fake_wordnet(wordnet.path()).to_string_lossy().into_owned();
    for value in ["off", root.as_str()] {
        let o = Overrides {
            default_model: Some(String::new()),
            wordnet: Some(value.into()),
            ..Overrides::default()
        };
        let c = Config::load_with_env(None, Vec::new(), &o).unwrap();
        assert_eq!(c.attacks.wordnet, value.parse().unwrap());
    }
}
