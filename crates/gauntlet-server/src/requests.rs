//! Checks shared by the routes: texts against the limits, attack configurations against
//! the ceilings, and datasets read by name (inline labels resolve in the engine,
//! `gauntlet_attacks::audit::resolve_inline`).

use std::path::Path;

use gauntlet_attacks::{AttackConfig, Budget};
use gauntlet_core::dataset::read_labelled;
use gauntlet_core::{CoreError, Example, Label};

use crate::config::Limits;
use crate::error::ApiError;
use crate::names;

/// Checks a batch of texts: at least one, at most `max_texts_per_request`, none empty,
/// none longer than `max_chars_per_text` characters.
pub fn check_texts<'a>(
    texts: impl ExactSizeIterator<Item = &'a str>,
    limits: &Limits,
    field: &str,
) -> Result<(), ApiError> {
    let n = texts.len();
    if n == 0 {
        return Err(ApiError::BadRequest(format!("`{field}` is empty")));
    }
    if n > limits.max_texts_per_request.get() {
        return Err(ApiError::PayloadTooLarge(format!(
            "{n} items in `{field}`; at most {} are allowed per request (limits.max_texts_per_request)",
            limits.max_texts_per_request.get()
        )));
    }
    check_each_text(texts, limits, field)
}

/// Checks every text is non-empty and within `max_chars_per_text`.
pub fn check_each_text<'a>(
    texts: impl Iterator<Item = &'a str>,
    limits: &Limits,
    field: &str,
) -> Result<(), ApiError> {
    for (i, text) in texts.enumerate() {
        if text.trim().is_empty() {
            return Err(ApiError::BadRequest(format!("`{field}[{i}]` is empty")));
        }
        let chars = text.chars().count();
        if chars > limits.max_chars_per_text.get() {
            return Err(ApiError::PayloadTooLarge(format!(
                "`{field}[{i}]` has {chars} characters; at most {} are allowed (limits.max_chars_per_text)",
                limits.max_chars_per_text.get()
            )));
        }
    }
    Ok(())
}

/// Checks an attack configuration against the configured ceilings.
pub fn check_attack(config: &AttackConfig, limits: &Limits) -> Result<(), ApiError> {
    if config.beam_width > limits.max_beam_width.get() {
        return Err(ApiError::LimitExceeded(format!(
            "beam_width {} is above the server's ceiling of {} (limits.max_beam_width)",
            config.beam_width,
            limits.max_beam_width.get()
        )));
    }
    if let Some(Budget::Changes(n)) = config.budget {
        if n > limits.max_budget_changes.get() {
            return Err(ApiError::LimitExceeded(format!(
                "budget of {n} changes is above the server's ceiling of {} (limits.max_budget_changes)",
                limits.max_budget_changes.get()
            )));
        }
    }
    if config.batch_size > limits.max_batch_size.get() {
        return Err(ApiError::LimitExceeded(format!(
            "batch_size {} is above the server's ceiling of {} (limits.max_batch_size)",
            config.batch_size,
            limits.max_batch_size.get()
        )));
    }
    Ok(())
}

/// Reads a dataset by name from the datasets directory, labels resolved against the model.
pub fn read_dataset(dir: &Path, name: &str, labels: &[Label]) -> Result<Vec<Example>, ApiError> {
    let path = names::resolve("dataset", dir, name)?;
    if !path.is_file() {
        return Err(ApiError::DatasetNotFound(name.to_owned()));
    }
    read_labelled(&path, labels).map_err(|e| {
        let message = match &e {
            CoreError::UnknownFormat { .. } => {
                "unknown dataset format; use a .tsv, .csv or .jsonl file".to_owned()
            }
            _ => e.to_string(),
        };
        // Report the dataset by name, not by the server's path.
        let message = message.replace(&*path.to_string_lossy(), name);
        ApiError::InvalidDataset(format!("dataset {name:?}: {message}"))
    })
}
