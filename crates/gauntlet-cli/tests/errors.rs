//! Bad input exits 2 with a clear message and writes no report: unknown attacks, attacks
//! that do not fit the model, missing files, labels outside the model's, malformed rows,
//! empty texts, missing WordNet, and invalid spec files.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Runs an audit that must fail with exit 2, a message containing `expected`, and no
/// report (nor temporary file) in `dir`.
fn fails(dir: &Path, data: &Path, model: &Path, attack: &str, extra: &[&str], expected: &str) {
    let out = dir.join("out").join("report.json");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"audit",
        &"--model",
        &model,
        &"--data",
        &data,
        &"--attack",
        &attack,
        &"--device",
        &"cpu",
        &"--out",
        &out,
    ];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<_>));
    let run = gauntlet(&args);
    assert_code(&run, 2);
    let err = stderr(&run);
    assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: ") || err.contains("error:"),
        "{err}"
    );
    assert!(!out.exists(), "{attack}: a report was written");
    assert!(
        listing(&dir.join("out")).is_empty(),
        "{:?}",
        listing(&dir.join("out"))
    );
}

#[test]
fn bad_attacks_and_settings_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 6);
    let model = word_model();
    fails(
        dir.path(),
        &data,
        model,
        "hotflip",
        &[],
        "unknown attack \"hotflip\"; expected one of hotflip-char",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-char",
        &[],
        "needs a character-level model, but this model reads words",
    );
    fails(
        dir.path(),
        &data,
        char_model(),
        "hotflip-word",
        &[],
        "needs a word-level model, but this model reads characters",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-word",
        &["--budget", "0"],
        "nothing to attack",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-word",
        &["--confidence", "1.5"],
        "confidence",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-word",
        &["--target", "7"],
        "target label \"7\" is not a label of the model (ids 0..1, keys 0, 1)",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-word",
        &["--limit", "0"],
        "`limit` must be at least 1",
    );
    fails(
        dir.path(),
        &data,
        model,
        "hotflip-word",
        &["--max-success-rate", "2"],
        "must lie in [0, 1]",
    );
    fails(
        dir.path(),
        &data,
        model,
        "sem",
        &[],
        "attack `sem` needs WordNet's database files",
    );
    let empty = dir.path().join("empty-wordnet");
    fs::create_dir_all(&empty).unwrap();
    fails(
        dir.path(),
        &data,
        model,
        "sem",
        &["--wordnet", empty.to_str().unwrap()],
        "holds no WordNet database",
    );
    fails(
        dir.path(),
        &data,
        model,
        "unk",
        &["--random-counts-from", "x.json"],
        "the `random` attack only",
    );
    let vectors = dir.path().join("vectors.txt");
    fs::write(&vectors, "good 1 0\nbad 1 x\n").unwrap();
    fails(
        dir.path(),
        &data,
        model,
        "sem",
        &["--sem-vectors", vectors.to_str().unwrap()],
        "vectors.txt:2: \"x\" is not a number",
    );
    fails(
        dir.path(),
        &data,
        model,
        "sem",
        &["--sem-vectors", "missing.txt"],
        "missing.txt",
    );
    fs::write(&vectors, "good 1 0\n").unwrap();
    fails(
        dir.path(),
        &data,
        char_model(),
        "hotflip-char",
        &["--sem-vectors", vectors.to_str().unwrap()],
        "reads characters",
    );
}

#[test]
fn bad_files_and_rows_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let model = word_model();
    let missing = dir.path().join("missing.tsv");
    fails(
        dir.path(),
        &missing,
        model,
        "hotflip-word",
        &[],
        "missing.tsv: data file not found",
    );
    let good = data(dir.path(), 4);
    fails(
        dir.path(),
        &good,
        &dir.path().join("no-model"),
        "hotflip-word",
        &[],
        "bundle directory does not exist",
    );

    let write = |name: &str, body: &str| {
        let path = dir.path().join(name);
        fs::write(&path, body).unwrap();
        path
    };
    let label = write(
        "label.tsv",
        "label\ttext\n1\tthe movie was great\n7\ta dull plot\n",
    );
    fails(
        dir.path(),
        &label,
        model,
        "hotflip-word",
        &[],
        "label.tsv:3: label \"7\" is not one of the model's labels (0, 1)",
    );
    let malformed = write(
        "bad.tsv",
        "label\ttext\n1\tthe movie was great\nbroken line\n",
    );
    fails(
        dir.path(),
        &malformed,
        model,
        "hotflip-word",
        &[],
        "bad.tsv:3: no tab between label and text",
    );
    let empty = write("empty.tsv", "label\ttext\n1\tthe movie was great\n0\t   \n");
    fails(
        dir.path(),
        &empty,
        model,
        "hotflip-word",
        &[],
        "empty.tsv:3: empty text",
    );
    let jsonl = write(
        "bad.jsonl",
        "{\"label\": 1, \"text\": \"fine\"}\n{\"label\": 1}\n",
    );
    fails(dir.path(), &jsonl, model, "unk", &[], "bad.jsonl:2:");
    let no_rows = write("none.tsv", "label\ttext\n");
    fails(dir.path(), &no_rows, model, "unk", &[], "dataset is empty");
    let unknown_format = write("data.txt", "hello\n");
    fails(
        dir.path(),
        &unknown_format,
        model,
        "unk",
        &[],
        "unknown dataset format",
    );
    let not_a_report = write("r.json", "{}");
    let random_counts = ["--random-counts-from", not_a_report.to_str().unwrap()];
    fails(
        dir.path(),
        &good,
        model,
        "random",
        &random_counts,
        "not a Gauntlet JSON report",
    );
    let out_is_dir = dir.path().join("taken");
    fs::create_dir_all(&out_is_dir).unwrap();
    let run = gauntlet(&[
        &"audit",
        &"--model",
        &model,
        &"--data",
        &good,
        &"--attack",
        &"unk",
        &"--out",
        &out_is_dir,
    ]);
    assert_code(&run, 2);
    assert!(stderr(&run).contains("is a directory"), "{}", stderr(&run));
}

#[test]
fn bad_spec_files_exit_two_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path(), 6);
    let model = word_model().display().to_string();
    let cases = [
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"nope\"\n"), "unknown variant `nope`"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"hotflip-word\"\n[[attack]]\nkind = \"hotflip-char\"\n"), "needs a character-level model"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"unk\"\nbeem = 3\n"), "unknown field `beem`"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n"), "lists no attack"),
        (format!("model = \"{model}\"\ndata = \"missing.tsv\"\n[[attack]]\nkind = \"unk\"\n"), "data file not found"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"random\"\ncounts_from = \"unk\"\n"), "names no earlier attack"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"unk\"\nname = \"x\"\n[[attack]]\nkind = \"random\"\nname = \"x\"\n"), "is taken"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"unk\"\nmax_success_rate = -1\n"), "must lie in [0, 1]"),
        (format!("model = \"{model}\"\ndata = \"test.tsv\"\n[[attack]]\nkind = \"sem\"\n"), "needs WordNet"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("spec{i}.toml"));
        fs::write(&path, text).unwrap();
        let out_dir = dir.path().join(format!("reports{i}"));
        let run = gauntlet(&[&"run", &"--spec", &path, &"--out-dir", &out_dir]);
        assert_code(&run, 2);
        assert!(
            stderr(&run).contains(expected),
            "case {i}: expected {expected:?} in:\n{}",
            stderr(&run)
        );
        assert!(!out_dir.exists(), "case {i}: wrote {:?}", listing(&out_dir));
    }
    let missing = gauntlet(&[&"run", &"--spec", &dir.path().join("nope.toml")]);
    assert_code(&missing, 2);
    assert!(
        stderr(&missing).contains("reading the spec file"),
        "{}",
        stderr(&missing)
    );
}
