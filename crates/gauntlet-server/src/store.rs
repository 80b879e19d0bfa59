//! The durable job store, in `<data dir>/jobs`: per job, a record (`<id>.json`) and its
//! example results (`<id>.results.jsonl`).
//!
//! Invariants:
//! * a record is written to a temporary file in the same directory, flushed to disk and
//!   renamed over the old one, so a crash leaves the old or the new record, never a torn one;
//!   leftover temporary files are removed when the store opens;
//! * results are append-only lines `{"attack": i, "example": {...}}`, each batch of lines
//!   flushed to disk ([`ResultsFile::append`]) before the record that counts them (its
//!   [`Checkpoint`]) is written; so the record's `results_bytes` is always a prefix of
//!   whole, durable lines, and bytes past it (a batch torn by a crash) are cut off when the
//!   job resumes;
//! * records hold attack summaries only: example reports live in the results file, so
//!   finished jobs cost memory for their summaries, not their examples.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use gauntlet_attacks::ExampleReport;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::JobRecord;

/// Job files in a directory.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
}

/// How much of a job's results file is durable and counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Bytes of whole result lines on disk.
    pub results_bytes: u64,
    /// Result lines in those bytes (examples, over all attacks).
    pub results: usize,
    /// When it was written, ms since the epoch.
    pub at_ms: u64,
}

/// One line of a results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultLine {
    /// The attack's index in the plan.
    pub attack: usize,
    /// The example's report.
    pub example: ExampleReport,
}

/// A job's results file, open for appending.
pub struct ResultsFile {
    file: File,
    len: u64,
}

impl ResultsFile {
    /// Appends whole lines and flushes them to disk; returns the file's new length.
    /// On failure the file is cut back to its previous length (best effort), so what the
    /// last checkpoint counts stays a prefix of whole lines.
    pub fn append(&mut self, lines: &[u8]) -> std::io::Result<u64> {
        if lines.is_empty() {
            return Ok(self.len);
        }
        let written = self
            .file
            .write_all(lines)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += lines.len() as u64;
                Ok(self.len)
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// The file's length (what is durable once `append` returned).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Serializes one result line (with its newline).
pub fn result_line(attack: usize, example: &ExampleReport) -> Vec<u8> {
    let line = ResultLine {
        attack,
        example: example.clone(),
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl JobStore {
    /// Opens (creating) the store directory and removes leftover temporary files.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(Self { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn results_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.results.jsonl"))
    }

    /// Writes a record atomically (temporary file, fsync, rename).
    pub fn save(&self, record: &JobRecord) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record)?;
        let tmp = self
            .dir
            .join(format!("{}.{}.tmp", record.id, Uuid::new_v4()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, self.path(record.id))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Opens a job's results file for appending, cut to `keep` bytes (the last checkpoint:
    /// anything after it was never counted). Creates the file when missing.
    pub fn results(&self, id: Uuid, keep: u64) -> std::io::Result<ResultsFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.results_path(id))?;
        let len = file.metadata()?.len();
        if len > keep {
            file.set_len(keep)?;
            file.sync_data()?;
        }
        Ok(ResultsFile {
            file,
            len: len.min(keep),
        })
    }

    /// The result lines of a job within its first `upto` bytes, in the order written.
    /// A missing file has none.
    pub fn read_results(&self, id: Uuid, upto: u64) -> std::io::Result<Vec<ResultLine>> {
        let file = match File::open(self.results_path(id)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let reader = BufReader::new(file.take(upto));
        let mut lines = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            let parsed = serde_json::from_str(&line).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("results of audit {id}, line {}: {e}", n + 1),
                )
            })?;
            lines.push(parsed);
        }
        Ok(lines)
    }

    /// Deletes a job's files (absent is fine).
    pub fn remove(&self, id: Uuid) -> std::io::Result<()> {
        for path in [self.path(id), self.results_path(id)] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Every readable record; unreadable files are reported and skipped.
    pub fn load_all(&self) -> std::io::Result<Vec<JobRecord>> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<JobRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!("skipping unreadable job file {}: {e}", path.display()),
            }
        }
        records.sort_by_key(|r| (r.created_at_ms, r.id));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use gauntlet_attacks::{Outcome, Prediction};

    fn example(index: usize) -> ExampleReport {
        let p = Prediction {
            label: 0,
            probability: 0.9,
        };
        ExampleReport {
            index,
            original_text: format!("text {index}"),
            adversarial_text: format!("text {index}"),
            operations: Vec::new(),
            true_label: 0,
            target_label: None,
            before: p,
            after: p,
            changes: 0,
            units: 2,
            fraction_changed: 0.0,
            forward_passes: 1,
            backward_passes: 0,
            wall_time_ms: 0.0,
            outcome: Outcome::Failure,
            skip_reason: None,
            curve: Vec::new(),
        }
    }

    #[test]
    fn bytes_past_the_checkpoint_are_cut_when_a_job_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path().to_path_buf()).unwrap();
        let id = Uuid::new_v4();
        let mut results = store.results(id, 0).unwrap();
        let mut batch = result_line(0, &example(3));
        batch.extend(result_line(0, &example(1)));
        let committed = results.append(&batch).unwrap();
        // A crash tore the next batch: half a line past the checkpoint.
        let torn = result_line(1, &example(2));
        results.append(&torn[..torn.len() / 2]).unwrap();
        drop(results);
        let read = store.read_results(id, committed).unwrap();
        assert_eq!(
            read.iter()
                .map(|l| (l.attack, l.example.index))
                .collect::<Vec<_>>(),
            [(0, 3), (0, 1)]
        );
        let mut results = store.results(id, committed).unwrap();
        assert_eq!(results.len(), committed);
        let end = results.append(&result_line(1, &example(2))).unwrap();
        assert_eq!(store.read_results(id, end).unwrap().len(), 3);
        store.remove(id).unwrap();
        assert!(store.read_results(id, end).unwrap().is_empty());
    }
}
