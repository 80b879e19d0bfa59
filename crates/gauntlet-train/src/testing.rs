//! Test support shared by the workspace's test suites (feature `test-support`): a toy
//! sentiment task and tiny models trained on it in seconds, so tests of the CLI, the server
//! and training never need real data.
//!
//! The toy data is deterministic: each text is one polar word among filler words, label 1
//! for positive words. Tiny models learn it to (near) perfect accuracy in a few epochs.

use std::path::{Path, PathBuf};

use gauntlet_core::dataset::RawExample;
use gauntlet_core::DeviceChoice;
use gauntlet_models::{save_bundle, Architecture};

use crate::error::TrainError;
use crate::trainer::{train, DataSplit, TrainConfig};

/// Positive words of the toy task.
pub const POSITIVE: [&str; 6] = ["good", "great", "fine", "superb", "lovely", "nice"];
/// Negative words of the toy task.
pub const NEGATIVE: [&str; 6] = ["bad", "awful", "poor", "dull", "ugly", "boring"];
/// Filler words around the polar word.
pub const FILLER: [&str; 6] = ["the", "movie", "was", "plot", "really", "a"];

/// `n` toy rows; `offset` selects a different (but overlapping-vocabulary) slice.
pub fn toy_rows(n: usize, offset: usize) -> Vec<RawExample> {
    (0..n)
        .map(|i| {
            let j = i + offset;
            let label = j % 2;
            let polar = if label == 1 {
                POSITIVE[j % 6]
            } else {
                NEGATIVE[(j / 2) % 6]
            };
            let text = format!(
                "{} {} {} {}",
                FILLER[j % 6],
                FILLER[(j / 3) % 6],
                polar,
                FILLER[(j / 5) % 6]
            );
            RawExample {
                line: i + 2,
                label: label.to_string(),
                text,
            }
        })
        .collect()
}

/// Rows as the body of a TSV dataset file (with its header).
pub fn toy_tsv(rows: &[RawExample]) -> String {
    let body: String = rows
        .iter()
        .map(|r| format!("{}\t{}\n", r.label, r.text))
        .collect();
    format!("label\ttext\n{body}")
}

/// A split named `name` (the name appears in errors and provenance).
pub fn split(name: &str, rows: Vec<RawExample>) -> DataSplit {
    DataSplit {
        path: PathBuf::from(name),
        rows,
    }
}

/// Small hyper-parameters and settings that learn the toy task on a CPU in seconds.
pub fn tiny_config(arch: Architecture) -> TrainConfig {
    let mut hyper = arch.default_hyper_parameters();
    let small: &[(&str, serde_json::Value)] = match arch {
        Architecture::WordCnn => &[
            ("embedding_dim", serde_json::json!(16)),
            ("feature_maps", serde_json::json!(8)),
        ],
        Architecture::CharCnnLstm => &[
            ("maps_per_width", serde_json::json!(4)),
            ("hidden", serde_json::json!(16)),
        ],
        Architecture::BiRnn => &[
            ("embedding_dim", serde_json::json!(16)),
            ("hidden", serde_json::json!(16)),
        ],
    };
    for (k, v) in small {
        hyper.insert((*k).into(), v.clone());
    }
    TrainConfig {
        arch,
        hyper,
        epochs: if arch == Architecture::WordCnn { 4 } else { 8 },
        batch_size: 16,
        learning_rate: 5e-3,
        device: DeviceChoice::Cpu,
        seed: 5,
        ..TrainConfig::default()
    }
}

/// Trains `config` on 240 toy rows (60 for dev) and writes the bundle to `dir`.
pub fn train_toy_bundle(config: &TrainConfig, dir: &Path) -> Result<(), TrainError> {
    let outcome = train(
        config,
        &split("train.tsv", toy_rows(240, 0)),
        Some(&split("dev.tsv", toy_rows(60, 1000))),
        &mut |_| {},
    )?;
    save_bundle(dir, &outcome.manifest, &outcome.codec, &outcome.vs)?;
    Ok(())
}
