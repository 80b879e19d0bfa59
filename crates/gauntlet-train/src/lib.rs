//! Gauntlet's training companion: trains native classifiers into bundles the server loads.
//!
//! [`trainer`] owns the training loop (Adam, shuffled mini-batches, model selection on the
//! lowest development loss), [`evaluate`] the metrics shared with `gauntlet-train eval`.
//! The CLI in `src/bin` is a thin user of both.

pub mod adversarial;
pub mod error;
pub mod evaluate;
pub mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod trainer;

pub use error::TrainError;
pub use evaluate::{evaluate, Evaluation};
pub use trainer::{read_split, train, DataSplit, EpochReport, Progress, TrainConfig, TrainOutcome};
