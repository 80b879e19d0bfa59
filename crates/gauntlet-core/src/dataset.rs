//! Dataset readers: labelled texts from TSV, CSV or JSONL files.
//!
//! * TSV: header `label<TAB>text`, then one example a line, split at the first tab, no
//!   quoting (the layout of `../shared/data`).
//! * CSV: a header naming `label` and `text` columns (any order, others ignored), RFC 4180
//!   quoting.
//! * JSONL: one object a line with `label` (string or integer) and `text`.
//!
//! Every error names the file and the 1-based line. A dataset with no example is an error,
//! and so is a label outside the model's labels when resolving against a manifest.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::manifest::Label;

/// One labelled example as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawExample {
    /// 1-based line number in the file.
    pub line: usize,
    /// Label as written.
    pub label: String,
    /// The text.
    pub text: String,
}

/// One labelled example with its class id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Class id.
    pub label: usize,
    /// The text.
    pub text: String,
}

/// Reads a dataset file, picking the format from its extension.
pub fn read_raw(path: &Path) -> Result<Vec<RawExample>, CoreError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let text = match ext.as_str() {
        "tsv" | "csv" | "jsonl" | "ndjson" => {
            let bytes = fs::read(path).map_err(|e| CoreError::io(path, e))?;
            String::from_utf8(bytes).map_err(|e| {
                let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                malformed(path, line, "not valid UTF-8")
            })?
        }
        _ => {
            return Err(CoreError::UnknownFormat {
                path: path.to_owned(),
            })
        }
    };
    let rows = match ext.as_str() {
        "tsv" => parse_tsv(path, &text)?,
        "csv" => parse_csv(path, &text)?,
        _ => parse_jsonl(path, &text)?,
    };
    if rows.is_empty() {
        return Err(CoreError::EmptyDataset {
            path: path.to_owned(),
        });
    }
    Ok(rows)
}

/// Reads a dataset and maps every label to the model's class id (by key, then by name).
pub fn read_labelled(path: &Path, labels: &[Label]) -> Result<Vec<Example>, CoreError> {
    resolve(path, read_raw(path)?, labels)
}

/// Maps raw labels to class ids; an unknown label names its line.
pub fn resolve(
    path: &Path,
    raw: Vec<RawExample>,
    labels: &[Label],
) -> Result<Vec<Example>, CoreError> {
    raw.into_iter()
        .map(|row| {
            let id = labels
                .iter()
                .find(|l| l.key == row.label)
                .or_else(|| labels.iter().find(|l| l.name == row.label))
                .map(|l| l.id)
                .ok_or_else(|| CoreError::UnknownLabel {
                    path: path.to_owned(),
                    line: row.line,
                    label: row.label.clone(),
                    known: labels
                        .iter()
                        .map(|l| l.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            Ok(Example {
                label: id,
                text: row.text,
            })
        })
        .collect()
}

/// The label set of a training file: distinct keys, numerically ordered when all are
/// integers (so `"0".."K-1"` keep their ids), else lexicographically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet(pub Vec<Label>);

impl LabelSet {
    /// Collects the labels of `rows`; `names`, when given, are display names by id.
    pub fn from_rows(rows: &[RawExample], names: Option<&[String]>) -> Result<Self, String> {
        let mut keys: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        keys.sort();
        keys.dedup();
        if keys.iter().all(|k| k.parse::<i64>().is_ok()) {
            keys.sort_by_key(|k| k.parse::<i64>().unwrap_or_default());
        }
        if keys.len() < 2 {
            return Err(format!(
                "training data has {} distinct label(s); a classifier needs at least two",
                keys.len()
            ));
        }
        if let Some(names) = names {
            if names.len() != keys.len() {
                return Err(format!(
                    "{} label names given for {} labels ({})",
                    names.len(),
                    keys.len(),
                    keys.join(", ")
                ));
            }
        }
        Ok(Self(
            keys.into_iter()
                .enumerate()
                .map(|(id, key)| Label {
                    id,
                    name: names.map(|n| n[id].clone()).unwrap_or_else(|| key.clone()),
                    key,
                })
                .collect(),
        ))
    }
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> CoreError {
    CoreError::MalformedRow {
        path: path.to_owned(),
        line,
        message: message.into(),
    }
}

fn parse_tsv(path: &Path, text: &str) -> Result<Vec<RawExample>, CoreError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header))
            if header
                .trim_end_matches('\r')
                .eq_ignore_ascii_case("label\ttext") => {}
        Some(_) => {
            return Err(malformed(
                path,
                1,
                "expected the header line `label<TAB>text`",
            ))
        }
        None => {
            return Err(CoreError::EmptyDataset {
                path: path.to_owned(),
            })
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (label, body) = line
            .split_once('\t')
            .ok_or_else(|| malformed(path, i + 1, "no tab between label and text"))?;
        rows.push(row(path, i + 1, label, body)?);
    }
    Ok(rows)
}

fn parse_csv(path: &Path, text: &str) -> Result<Vec<RawExample>, CoreError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| malformed(path, 1, e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| malformed(path, 1, format!("the header has no `{name}` column")))
    };
    let (label_col, text_col) = (col("label")?, col("text")?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            malformed(path, line, e.to_string())
        })?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        rows.push(row(path, line, &record[label_col], &record[text_col])?);
    }
    Ok(rows)
}

fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<RawExample>, CoreError> {
    #[derive(Deserialize)]
    struct Line {
        label: serde_json::Value,
        text: String,
    }
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line =
            serde_json::from_str(line).map_err(|e| malformed(path, i + 1, e.to_string()))?;
        let label = match parsed.label {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(malformed(
                    path,
                    i + 1,
                    format!("label must be a string or a number, got {other}"),
                ))
            }
        };
        rows.push(row(path, i + 1, &label, &parsed.text)?);
    }
    Ok(rows)
}

fn row(path: &Path, line: usize, label: &str, text: &str) -> Result<RawExample, CoreError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(malformed(path, line, "empty label"));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(malformed(path, line, "empty text"));
    }
    Ok(RawExample {
        line,
        label: label.to_owned(),
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn reads_the_three_formats_alike() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = write(
            &dir,
            "a.tsv",
            "label\ttext\n1\t\"quoted\" start\n0\tplain, text\n",
        );
        let csv = write(
            &dir,
            "a.csv",
            "text,label\n\"\"\"quoted\"\" start\",1\n\"plain, text\",0\n",
        );
        let jsonl = write(&dir, "a.jsonl", "{\"label\":1,\"text\":\"\\\"quoted\\\" start\"}\n{\"label\":\"0\",\"text\":\"plain, text\"}\n");
        let expected: Vec<(String, String)> = vec![
            ("1".into(), "\"quoted\" start".into()),
            ("0".into(), "plain, text".into()),
        ];
        for path in [tsv, csv, jsonl] {
            let rows: Vec<_> = read_raw(&path)
                .unwrap()
                .into_iter()
                .map(|r| (r.label, r.text))
                .collect();
            assert_eq!(rows, expected, "{}", path.display());
        }
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad.tsv", "label\ttext\n1\tfine\nno tab here\n");
        let err = read_raw(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("bad.tsv:3: no tab between label and text"),
            "{err}"
        );
        let path = write(
            &dir,
            "bad.jsonl",
            "{\"label\":1,\"text\":\"ok\"}\n{\"label\":1}\n",
        );
        assert!(read_raw(&path)
            .unwrap_err()
            .to_string()
            .contains("bad.jsonl:2:"));
    }

    #[test]
    fn empty_and_headerless_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(&dir, "e.tsv", "label\ttext\n");
        assert!(matches!(
            read_raw(&empty),
            Err(CoreError::EmptyDataset { .. })
        ));
        let headerless = write(&dir, "h.tsv", "1\thello\n");
        assert!(read_raw(&headerless)
            .unwrap_err()
            .to_string()
            .contains("header"));
        let unknown = write(&dir, "x.txt", "");
        assert!(matches!(
            read_raw(&unknown),
            Err(CoreError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn labels_resolve_by_key_or_name_and_unknown_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "l.tsv", "label\ttext\n10\ta\n2\tb\n10\tc\n");
        let rows = read_raw(&path).unwrap();
        let set = LabelSet::from_rows(&rows, None).unwrap();
        assert_eq!(
            set.0.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["2", "10"]
        );
        let examples = resolve(&path, rows, &set.0).unwrap();
        assert_eq!(examples[0].label, 1);
        let other = write(&dir, "o.tsv", "label\ttext\n3\td\n");
        let err = read_labelled(&other, &set.0).unwrap_err().to_string();
        assert!(err.contains("o.tsv:2: label \"3\""), "{err}");
    }
}
