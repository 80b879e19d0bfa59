//! The reports people read: `--format html` of `audit`, `run` and `merge`, `gauntlet report`
//! re-rendering a saved report, `gauntlet compare` of two models on the same data, and the
//! summary table at the end of an audit.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::fs;
use std::path::Path;

use common::*;
use gauntlet_tests::without_times;

/// The JSON a page embeds.
fn embedded(html: &str) -> serde_json::Value {
    let tag = "<script id=\"gauntlet-data\" type=\"application/json\">";
    let start = html.find(tag).unwrap() + tag.len();
    let end = html[start..].find("</script>").unwrap() + start;
    serde_json::from_str(&html[start..end]).unwrap()
}

/// `gauntlet audit` of the word model on `data` with `attack`, `extra` flags and `--out`.
fn audit_to(data: &Path, attack: &str, extra: &[&str], out: &Path) -> std::process::Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"audit", &"--model"];
    let model = word_model();
    args.extend([
        &model as &dyn AsRef<_>,
        &"--data",
        &data,
        &"--attack",
        &attack,
    ]);
    args.extend(extra.iter().map(|a| a as &dyn AsRef<_>));
    args.extend([&"--device" as &dyn AsRef<_>, &"cpu", &"--out", &out]);
    gauntlet(&args)
}

#[test]
fn html_pages_of_audits_runs_merges_and_comparisons() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path(), 8);
    let page = dir.path().join("audit.html");
    let json = dir.path().join("audit.json");
    for (out, format) in [(&page, "html"), (&json, "json")] {
        let o = audit_to(
            &data,
            "hotflip-word",
            &["--beam", "2", "--seed", "1", "--format", format],
            out,
        );
        assert_code(&o, 0);
        // The summary table, after the progress bar.
        assert!(
            stderr(&o).contains("| Attack success rate"),
            "{}",
            stderr(&o)
        );
    }
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("https://") && !html.contains("src=\"http"));
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        without_times(embedded(&html)["report"].clone()),
        without_times(report.clone())
    );

    // `gauntlet report` renders the saved JSON into the same page.
    let again = dir.path().join("again.html");
    assert_code(&gauntlet(&[&"report", &json, &"--out", &again]), 0);
    let again = fs::read_to_string(&again).unwrap();
    assert_eq!(embedded(&again)["report"], report);

    // `gauntlet run --format html` writes audit.html; merge --format html too.
    let spec = dir.path().join("spec.toml");
    fs::write(
        &spec,
        format!(
            "model = \"{}\"\ndata = \"test.tsv\"\nseed = 1\ndevice = \"cpu\"\n[[attack]]\nkind = \"unk\"\n",
            word_model().display()
        ),
    )
    .unwrap();
    let mut shards = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("shard-{i}"));
        let shard = format!("{i}/2");
        assert_code(
            &gauntlet(&[
                &"run",
                &"--spec",
                &spec,
                &"--out-dir",
                &out,
                &"--shard",
                &shard,
                &"--format",
                &"html",
                &"--format",
                &"json",
            ]),
            0,
        );
        assert!(out.join("audit.html").is_file());
        assert!(!out.join("unk.html").exists());
        shards.push(out.join("audit.json"));
    }
    let merged = dir.path().join("merged.html");
    assert_code(
        &gauntlet(&[&"merge", &shards[0], &shards[1], &"--out", &merged]),
        0,
    );
    let merged = embedded(&fs::read_to_string(&merged).unwrap());
    assert_eq!(merged["report"]["merged_from"]["count"], 2);

    // A comparison of two reports of the same data and attack.
    let other = dir.path().join("other.json");
    assert_code(
        &audit_to(
            &data,
            "hotflip-word",
            &["--beam", "2", "--seed", "1"],
            &other,
        ),
        0,
    );
    for (ext, needle) in [
        ("html", "\"kind\":\"compare\""),
        ("md", "| hotflip-word |"),
        ("json", "\"only_a_fooled\""),
    ] {
        let out = dir.path().join(format!("compare.{ext}"));
        let o = gauntlet(&[&"compare", &json, &other, &"--out", &out]);
        assert_code(&o, 0);
        assert!(fs::read_to_string(&out).unwrap().contains(needle), "{ext}");
    }
    // Different attacks do not compare.
    let unk = dir.path().join("unk.json");
    assert_code(&audit_to(&data, "unk", &[], &unk), 0);
    let refused = gauntlet(&[&"compare", &json, &unk]);
    assert_code(&refused, 2);
    assert!(
        stderr(&refused).contains("cannot compare"),
        "{}",
        stderr(&refused)
    );
}
