//! End-to-end runs of the `gauntlet` binary on tiny models trained in the test: every word
//! attack in every format, the char attack, inline and standalone gates, spec files, the
//! random baseline's change counts, and truncation.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gauntlet_tests::{assert_same_report, without_times};

/// `--sem-vectors`: `sem` swaps exactly the pairs the file makes similar, says so in the
/// report, and fools the model with them (every positive word is given a negative twin).
#[test]
fn sem_takes_its_similarities_from_sem_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 12);
    let wordnet = fake_wordnet(dir.path());
    let vectors = dir.path().join("twins.txt");
    let mut text = String::new();
    for (i, (p, n)) in POSITIVE.iter().zip(NEGATIVE).enumerate() {
        let v: Vec<String> = (0..6)
            .map(|j| if j == i { "1" } else { "0" }.to_owned())
            .collect();
        text.push_str(&format!("{p} {}\n{n} {}\n", v.join(" "), v.join(" ")));
    }
    fs::write(&vectors, text).unwrap();
    let out = dir.path().join("sem.json");
    let run = gauntlet(&[
        &"audit",
        &"--model",
        &word_model(),
        &"--data",
        &data,
        &"--attack",
        &"sem",
        &"--device",
        &"cpu",
        &"--cosine-threshold",
        &"0.9",
        &"--wordnet",
        &wordnet,
        &"--sem-vectors",
        &vectors,
        &"--out",
        &out,
    ]);
    assert_code(&run, 0);
    let told = stderr(&run);
    assert!(
        told.contains("sem: cosine similarity from word vectors")
            && told.contains("vocabulary words"),
        "the file and its coverage are told: {told}"
    );
    let audit: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    let report = &audit["attacks"][0]["report"];
    let notes = report["notes"].to_string();
    assert!(notes.contains("twins.txt"), "{notes}");
    let twins: Vec<(&str, &str)> = POSITIVE.iter().copied().zip(NEGATIVE).collect();
    let mut flips = 0;
    for e in report["examples"].as_array().unwrap() {
        for op in e["operations"].as_array().unwrap() {
            let (before, after) = (
                op["before"].as_str().unwrap(),
                op["after"].as_str().unwrap(),
            );
            assert!(
                twins.contains(&(before, after)) || twins.contains(&(after, before)),
                "{before} -> {after} is not a pair of the file"
            );
            flips += 1;
        }
    }
    assert!(flips > 0, "{report}");
    assert!(
        report["summary"]["success_rate"].as_f64().unwrap() > 0.0,
        "{}",
        report["summary"]
    );
}

#[test]
fn every_word_attack_writes_json_markdown_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 12);
    let wordnet = fake_wordnet(dir.path());
    for attack in ["hotflip-word", "sem", "unk", "loss-beam", "random"] {
        for (ext, format) in [("json", "json"), ("md", "markdown"), ("xml", "junit")] {
            let out = dir.path().join(format!("{attack}.{ext}"));
            let run = gauntlet(&[
                &"audit",
                &"--model",
                &word_model(),
                &"--data",
                &data,
                &"--attack",
                &attack,
                &"--device",
                &"cpu",
                &"--beam",
                &"3",
                &"--cosine-threshold",
                &"-1",
                &"--wordnet",
                &wordnet,
                &"--format",
                &format,
                &"--out",
                &out,
            ]);
            assert_code(&run, 0);
            let text = fs::read_to_string(&out).unwrap();
            match format {
                "json" => {
                    let audit: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let report = &audit["attacks"][0]["report"];
                    assert_eq!(report["config"]["kind"], attack);
                    assert_eq!(report["summary"]["examples"], 12);
                    assert_eq!(report["examples"].as_array().unwrap().len(), 12);
                    let model = audit["model"].as_str().unwrap();
                    let (name, digest) = model.split_once('@').unwrap();
                    assert!(!name.is_empty() && digest.len() == 64, "{model}");
                    assert_eq!(report["model"], audit["model"]);
                    assert_eq!(audit["data"]["examples"], 12);
                }
                "markdown" => {
                    assert!(
                        text.contains(&format!("## Gauntlet audit: `{attack}`")),
                        "{text}"
                    )
                }
                _ => {
                    assert!(text.starts_with("<?xml"), "{text}");
                    assert!(text.contains(&format!("gauntlet.{attack}")), "{text}");
                    assert_eq!(text.matches("<testcase ").count(), 12);
                }
            }
        }
    }
    // No temporary file is left next to the reports.
    assert!(listing(dir.path()).iter().all(|n| !n.contains("partial")));
}

#[test]
fn hotflip_char_audits_a_character_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 8);
    let out = dir.path().join("char.json");
    let run = gauntlet(&[
        &"audit",
        &"--model",
        &char_model(),
        &"--data",
        &data,
        &"--attack",
        &"hotflip-char",
        &"--device",
        &"cpu",
        &"--beam",
        &"2",
        &"--budget",
        &"20%",
        &"--curve",
        &"0.5,0.9",
        &"--out",
        &out,
    ]);
    assert_code(&run, 0);
    let audit: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    let report = &audit["attacks"][0]["report"];
    assert_eq!(report["config"]["kind"], "hotflip-char");
    assert_eq!(report["config"]["budget"]["fraction"], 0.2);
    assert_eq!(report["summary"]["examples"], 8);
    assert_eq!(report["summary"]["curve"].as_array().unwrap().len(), 2);
}

#[test]
fn an_onnx_export_of_a_character_model_is_audited_like_the_native_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 6);
    let onnx = dir.path().join("char-onnx");
    gauntlet_models::export::export_bundle(char_model(), &onnx).unwrap();
    let audit = |model: &Path, attack: &str| {
        let out = dir.path().join(format!(
            "{attack}-{}.json",
            model.display().to_string().len()
        ));
        let run = gauntlet(&[
            &"audit",
            &"--model",
            &model,
            &"--data",
            &data,
            &"--attack",
            &attack,
            &"--device",
            &"cpu",
            &"--beam",
            &"2",
            &"--seed",
            &"3",
            &"--out",
            &out,
        ]);
        assert_code(&run, 0);
        let report: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
        report["attacks"][0]["report"]["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["outcome"].clone(), e["adversarial_text"].clone()))
            .collect::<Vec<_>>()
    };
    for attack in ["hotflip-char", "random"] {
        assert_eq!(
            audit(char_model(), attack),
            audit(&onnx, attack),
            "{attack}"
        );
    }
}

fn hotflip(dir: &std::path::Path, out: &std::path::Path, gate: &[&str]) -> std::process::Output {
    let data = data(dir, 12);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"audit",
        &"--attack",
        &"hotflip-word",
        &"--device",
        &"cpu",
        &"--seed",
        &"3",
    ];
    let model = word_model();
    args.extend([
        &"--model" as &dyn AsRef<_>,
        &model,
        &"--data",
        &data,
        &"--out",
        &out,
    ]);
    args.extend(gate.iter().map(|g| g as &dyn AsRef<_>));
    gauntlet(&args)
}

#[test]
fn inline_gate_exits_one_on_a_breach_and_zero_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let strict = hotflip(dir.path(), &out, &["--max-success-rate", "0"]);
    assert_code(&strict, 1);
    assert!(
        stdout(&strict).contains("FAIL hotflip-word: success_rate"),
        "{}",
        stdout(&strict)
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        report["attacks"][0]["report"]["summary"]["successes"]
            .as_u64()
            .unwrap()
            > 0,
        "the toy model is fooled"
    );
    let lenient = hotflip(dir.path(), &out, &["--max-success-rate", "1.0"]);
    assert_code(&lenient, 0);
    assert!(stdout(&lenient).contains("PASS hotflip-word"));
}

#[test]
fn gate_checks_a_saved_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    assert_code(&hotflip(dir.path(), &out, &[]), 0);
    let gate = |args: &[&str]| {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"gate", &"--report", &out];
        all.extend(args.iter().map(|a| a as &dyn AsRef<_>));
        gauntlet(&all)
    };
    assert_code(&gate(&["--max-success-rate", "0"]), 1);
    assert_code(&gate(&["--max-success-rate", "1"]), 0);
    assert_code(
        &gate(&[
            "--max-success-rate",
            "1",
            "--min-accuracy-under-attack",
            "1",
        ]),
        1,
    );
    assert_code(&gate(&["--min-accuracy-under-attack", "0"]), 0);
    let none = gate(&[]);
    assert_code(&none, 2);
    assert!(stderr(&none).contains("at least one of --max-success-rate"));
    let bad = gate(&["--max-success-rate", "1.5"]);
    assert_code(&bad, 2);
    let md = dir.path().join("r.md");
    assert_code(&hotflip(dir.path(), &md, &[]), 0);
    let not_json = gauntlet(&[&"gate", &"--report", &md, &"--max-success-rate", &"1"]);
    assert_code(&not_json, 2);
    assert!(
        stderr(&not_json).contains("not a Gauntlet JSON report"),
        "{}",
        stderr(&not_json)
    );
}

#[test]
fn spec_files_run_every_attack_and_gate_them() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 12);
    let spec = |max: f64| {
        format!(
            r#"
model = "{}"
data = "test.tsv"
limit = 10
seed = 1
device = "cpu"
out_dir = "reports"
formats = ["json", "junit", "markdown"]

[[attack]]
kind = "hotflip-word"
beam = 3
budget = 2
max_success_rate = {max}

[[attack]]
kind = "random"
counts_from = "hotflip-word"
min_accuracy_under_attack = 0.0

[[attack]]
kind = "loss-beam"
name = "loss-beam-greedy"
beam = 1
budget = "50%"
"#,
            word_model().display()
        )
    };
    let path = dir.path().join("gauntlet-audit.toml");
    fs::write(&path, spec(1.0)).unwrap();
    let run = gauntlet(&[&"run", &"--spec", &path]);
    assert_code(&run, 0);
    let reports = dir.path().join("reports");
    let names = listing(&reports);
    for stem in ["hotflip-word", "random", "loss-beam-greedy"] {
        for ext in ["json", "xml", "md"] {
            assert!(names.contains(&format!("{stem}.{ext}")), "{names:?}");
        }
    }
    let random: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(reports.join("random.json")).unwrap()).unwrap();
    assert_eq!(random["summary"]["examples"], 10);
    // Counts copied from an earlier attack are named, not repeated, in the configuration.
    assert!(random["config"]["random_change_counts"].is_null());
    let audit: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(reports.join("audit.json")).unwrap()).unwrap();
    assert_eq!(audit["attacks"][1]["counts_from"], "hotflip-word");
    assert_eq!(audit["verdict"]["passed"], true);
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(reports.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["attacks"].as_array().unwrap().len(), 3);

    fs::write(&path, spec(0.0)).unwrap();
    let out_dir = dir.path().join("strict");
    let run = gauntlet(&[&"run", &"--spec", &path, &"--out-dir", &out_dir]);
    assert_code(&run, 1);
    assert!(
        stdout(&run).contains("FAIL hotflip-word"),
        "{}",
        stdout(&run)
    );
    assert!(listing(&out_dir).contains(&"summary.json".to_owned()));
}

#[test]
fn random_takes_change_counts_from_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let adversary = dir.path().join("hotflip.json");
    assert_code(&hotflip(dir.path(), &adversary, &[]), 0);
    let data = dir.path().join("test.tsv");
    let out = dir.path().join("random.json");
    let run = |limit: &str| {
        gauntlet(&[
            &"audit",
            &"--model",
            &word_model(),
            &"--data",
            &data,
            &"--attack",
            &"random",
            &"--device",
            &"cpu",
            &"--limit",
            &limit,
            &"--random-counts-from",
            &adversary,
            &"--out",
            &out,
        ])
    };
    assert_code(&run("12"), 0);
    let counts: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&adversary).unwrap()).unwrap();
    let random: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    let expected: Vec<u64> = counts["attacks"][0]["report"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["changes"].as_u64().unwrap())
        .collect();
    let used: Vec<u64> = random["attacks"][0]["report"]["config"]["random_change_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(used, expected);
    fs::remove_file(&out).unwrap();
    let mismatch = run("5");
    assert_code(&mismatch, 2);
    assert!(
        stderr(&mismatch).contains("covers 12 examples but this audit has 5"),
        "{}",
        stderr(&mismatch)
    );
    assert!(!out.exists());
}

#[test]
fn long_texts_are_truncated_with_a_warning_and_stdout_gets_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("long.tsv");
    fs::write(
        &data,
        "label\ttext\n1\tthe movie was great\n0\tthe plot was a really really dull movie a plot the end\n",
    )
    .unwrap();
    let run = gauntlet(&[
        &"audit",
        &"--model",
        &word_model(),
        &"--data",
        &data,
        &"--attack",
        &"unk",
        &"--device",
        &"cpu",
        &"--format",
        &"markdown",
    ]);
    assert_code(&run, 0);
    assert!(
        stderr(&run).contains("1 of 2 texts exceed the model's limit (8 words"),
        "{}",
        stderr(&run)
    );
    assert!(stderr(&run).contains("long.tsv:3"), "{}", stderr(&run));
    assert!(
        stdout(&run).starts_with("## Gauntlet audit: `unk`"),
        "{}",
        stdout(&run)
    );
}

#[test]
fn shards_of_a_spec_merge_into_the_unsharded_report_and_gate() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 12);
    let path = dir.path().join("gauntlet-audit.toml");
    fs::write(
        &path,
        format!(
            r#"
model = "{}"
data = "test.tsv"
seed = 2
device = "cpu"
[gate]
max_success_rate = 0.0
[[attack]]
kind = "hotflip-word"
beam = 3
[[attack]]
kind = "random"
counts_from = "hotflip-word"
"#,
            word_model().display()
        ),
    )
    .unwrap();
    let run = |shard: Option<&str>, out: &str| {
        let out = dir.path().join(out);
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"run", &"--spec", &path, &"--out-dir", &out];
        if let Some(s) = &shard {
            args.extend([&"--shard" as &dyn AsRef<_>, s]);
        }
        let o = gauntlet(&args);
        (o, out.join("audit.json"))
    };
    let (whole, whole_report) = run(None, "whole");
    assert_code(&whole, 1);
    let mut shard_reports = Vec::new();
    for i in 0..3 {
        let (o, report) = run(Some(&format!("{i}/3")), &format!("shard-{i}"));
        // A shard has no verdict, so a breached threshold does not fail it.
        assert_code(&o, 0);
        shard_reports.push(report);
    }
    let merged = dir.path().join("merged.json");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"merge"];
    args.extend(shard_reports.iter().rev().map(|p| p as &dyn AsRef<_>));
    args.extend([&"--out" as &dyn AsRef<_>, &merged]);
    assert_code(&gauntlet(&args), 0);
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
    };
    let merged_json = read(&merged);
    assert_eq!(
        merged_json["merged_from"]["shards"],
        serde_json::json!([0, 1, 2])
    );
    assert_same_report(
        &without_times(merged_json),
        &without_times(read(&whole_report)),
        "merged",
    );

    let gate = gauntlet(&[&"gate", &"--report", &merged]);
    assert_code(&gate, 1);
    assert!(
        stdout(&gate).contains("FAIL hotflip-word: success_rate"),
        "{}",
        stdout(&gate)
    );
    let shard_gate = gauntlet(&[&"gate", &"--report", &shard_reports[0]]);
    assert_code(&shard_gate, 2);
    assert!(
        stderr(&shard_gate).contains("merge"),
        "{}",
        stderr(&shard_gate)
    );

    let partial = gauntlet(&[
        &"merge",
        &shard_reports[0],
        &shard_reports[2],
        &"--out",
        &merged,
    ]);
    assert_code(&partial, 2);
    assert!(
        stderr(&partial).contains("shard(s) 1/3 missing"),
        "{}",
        stderr(&partial)
    );
    let doubled = gauntlet(&[
        &"merge",
        &shard_reports[0],
        &shard_reports[1],
        &shard_reports[1],
        &shard_reports[2],
        &"--out",
        &merged,
    ]);
    assert_code(&doubled, 2);
    assert!(
        stderr(&doubled).contains("shard 1/3 is given twice"),
        "{}",
        stderr(&doubled)
    );
}
