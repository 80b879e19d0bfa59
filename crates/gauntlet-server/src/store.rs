//! The durable job store: one JSON file per job in `<data dir>/jobs`.
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, and is
//! then renamed over the job's file, so a crash leaves either the old or the new record,
//! never a torn one. Leftover temporary files are removed when the store opens.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::jobs::JobRecord;

/// Job files in a directory.
#[derive(Debug, Clone)]
pub struct JobStore {
    dir: PathBuf,
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

    /// Deletes a job's file (absent is fine).
    pub fn remove(&self, id: Uuid) -> std::io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
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
