//! Shared helpers of the CLI tests: toy sentiment data, tiny models trained in-process
//! (once per test binary), and a runner for the real `gauntlet` binary.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use gauntlet_models::Architecture;
use gauntlet_train::testing::{tiny_config, train_toy_bundle};
use gauntlet_train::TrainConfig;

pub use gauntlet_train::testing::{toy_rows as rows, toy_tsv as tsv, NEGATIVE, POSITIVE};

fn train_bundle(arch: Architecture, dir: &Path) {
    let config = TrainConfig {
        max_length: 8,
        ..tiny_config(arch)
    };
    train_toy_bundle(&config, dir).unwrap();
}

/// A directory that lives as long as the test binary.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap())
        .path()
}

/// A tiny word-cnn bundle (max_length 8), trained once per test binary.
pub fn word_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = scratch().join("word-cnn");
        train_bundle(Architecture::WordCnn, &dir);
        dir
    })
}

/// A tiny char-cnn-lstm bundle, trained once per test binary.
pub fn char_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = scratch().join("char-cnn-lstm");
        train_bundle(Architecture::CharCnnLstm, &dir);
        dir
    })
}

/// Writes a test dataset of `n` toy examples into `dir`.
pub fn data(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("test.tsv");
    fs::write(&path, tsv(&rows(n, 500))).unwrap();
    path
}

/// A tiny fake WordNet `dict` directory covering the toy vocabulary.
pub fn fake_wordnet(dir: &Path) -> PathBuf {
    let dict = dir.join("wordnet/usr/share/wordnet");
    fs::create_dir_all(&dict).unwrap();
    let lines = |words: &[&str], pos: &str| -> String {
        let mut out = String::from("  1 This software and database is being provided\n");
        for w in words {
            out.push_str(&format!("{w} {pos} 1 0 1 0 0 \n"));
        }
        out
    };
    let adjectives: Vec<&str> = POSITIVE.iter().chain(&NEGATIVE).copied().collect();
    fs::write(dict.join("index.adj"), lines(&adjectives, "a")).unwrap();
    fs::write(dict.join("index.noun"), lines(&["movie", "plot"], "n")).unwrap();
    fs::write(dict.join("index.verb"), lines(&["be"], "v")).unwrap();
    fs::write(dict.join("index.adv"), lines(&["really"], "r")).unwrap();
    fs::write(dict.join("verb.exc"), "was be\n").unwrap();
    dir.join("wordnet")
}

/// Runs the real binary with a clean environment for WordNet lookups.
pub fn gauntlet(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("GAUNTLET_WORDNET")
        .env("GAUNTLET_CACHE", scratch().join("empty-cache"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Stderr of a run, lossily decoded.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout of a run, lossily decoded.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing stderr on failure.
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// The names of the files in `dir` (sorted).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
