//! The model registry: bundles loaded by name from the configured models directory, shared
//! by every request and job through `Arc` (never copied per request).
//!
//! Loading is the only place a name touches the file system, and only after
//! [`crate::names::resolve`] has confined it to the models directory. Unloading removes the
//! name; requests and jobs that already hold the model keep it alive until they finish.
//! Each model has its own predict [`Batcher`] (when `batching.enabled`), created with the
//! model and dropped with it: its thread ends once the last holder lets the model go.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::mapref::entry::Entry;
use dashmap::{DashMap, DashSet};
use gauntlet_attacks::AttackKind;
use gauntlet_backends::{LoadOptions, LoadedBundle, Runtime};
use gauntlet_core::{InputKind, Probabilities, TokenIds};
use prometheus::Histogram;
use serde::Serialize;

use crate::batcher::{BatchModel, BatchOptions, Batcher};
use crate::error::ApiError;
use crate::names;

/// A loaded model and what the API says about it.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its name (the bundle directory's name).
    pub name: String,
    /// The model on its runtime.
    pub model: LoadedBundle,
    /// When it was loaded, in milliseconds since the Unix epoch.
    pub loaded_at_ms: u64,
    /// Its predict batcher; `None` when batching is off.
    pub batcher: Option<Batcher<LoadedModel>>,
}

/// Summary of a model (`GET /v1/models`).
#[derive(Debug, Serialize)]
pub struct ModelSummary {
    /// Name.
    pub name: String,
    /// Architecture.
    pub architecture: String,
    /// `word` or `char`.
    pub input_kind: InputKind,
    /// Number of classes.
    pub classes: usize,
    /// Device.
    pub device: String,
    /// Bundle digest.
    pub digest: String,
    /// `tch` (native bundle) or `onnx` (ONNX Runtime, gradients from the tch interpreter).
    pub runtime: Runtime,
    /// Whether gradient-based attacks can run against it.
    pub white_box: bool,
}

/// Details of a model (`GET /v1/models/{name}`).
#[derive(Debug, Serialize)]
pub struct ModelDetails {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// Labels, by id.
    pub labels: Vec<gauntlet_core::Label>,
    /// Vocabulary (or alphabet) size.
    pub vocabulary_size: usize,
    /// Maximum words read.
    pub max_length: usize,
    /// Attacks this server can run against the model.
    pub supported_attacks: Vec<&'static str>,
    /// Why gradient-based attacks are unavailable (ONNX graphs the interpreter cannot run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub white_box_unavailable: Option<String>,
    /// Architecture hyper-parameters.
    pub hyper_parameters: serde_json::Value,
    /// Metrics recorded at training time.
    pub metrics: serde_json::Value,
    /// Load time, ms since the epoch.
    pub loaded_at_ms: u64,
}

/// Attacks the server can run against a model reading `kind` (`sem` only when the server
/// has a lexicon, i.e. WordNet is loaded: `sem_available`; gradient-based attacks only when
/// the model is a white box).
pub fn supported_attacks(
    kind: InputKind,
    subword: bool,
    sem_available: bool,
    white_box: bool,
) -> Vec<&'static str> {
    AttackKind::ALL
        .iter()
        .filter(|a| sem_available || **a != AttackKind::Sem)
        .filter(|a| white_box || !a.needs_gradients(subword))
        .filter(|a| a.fits(kind, subword))
        .map(|a| a.name())
        .collect()
}

impl BatchModel for LoadedModel {
    /// Encodes a request's texts; a text the model reads nothing of is a bad request.
    fn encode(&self, texts: &[String]) -> Result<Vec<TokenIds>, ApiError> {
        let codec = self.model.codec();
        let mut ids = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let enc = codec
                .encode(t)
                .map_err(|e| ApiError::BadRequest(format!("`texts[{i}]`: {e}")))?;
            if enc.ids.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "`texts[{i}]` has no token the model reads"
                )));
            }
            ids.push(enc.ids);
        }
        Ok(ids)
    }

    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ApiError> {
        self.model
            .classifier()
            .predict(batch)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

impl LoadedModel {
    /// The summary.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            name: self.name.clone(),
            architecture: self.model.manifest().architecture.clone(),
            input_kind: self.model.manifest().tokenization.kind,
            classes: self.model.manifest().labels.len(),
            device: self.model.device_name().to_owned(),
            digest: self.model.digest().to_owned(),
            runtime: self.model.runtime(),
            white_box: self.model.white_box().is_some(),
        }
    }

    /// The details; `sem_available` says whether the server has a lexicon for `sem`.
    pub fn details(&self, sem_available: bool) -> ModelDetails {
        let m = self.model.manifest();
        ModelDetails {
            summary: self.summary(),
            labels: m.labels.clone(),
            vocabulary_size: self.model.vocabulary_size(),
            max_length: m.tokenization.max_length,
            supported_attacks: supported_attacks(
                m.tokenization.kind,
                self.model.codec().is_subword(),
                sem_available,
                self.model.white_box().is_some(),
            ),
            white_box_unavailable: self.model.white_box_unavailable().map(str::to_owned),
            hyper_parameters: serde_json::to_value(&m.hyper_parameters).unwrap_or_default(),
            metrics: serde_json::to_value(&m.metrics).unwrap_or_default(),
            loaded_at_ms: self.loaded_at_ms,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Loaded models by name.
pub struct ModelRegistry {
    dir: PathBuf,
    options: LoadOptions,
    batching: Option<BatchOptions>,
    batch_texts: Histogram,
    models: DashMap<String, Arc<LoadedModel>>,
    loading: DashSet<String>,
}

impl ModelRegistry {
    /// An empty registry over a models directory; every model it loads gets a predict
    /// batcher with `batching` (none when `None`), observing its calls in `batch_texts`.
    pub fn new(
        dir: PathBuf,
        options: LoadOptions,
        batching: Option<BatchOptions>,
        batch_texts: Histogram,
    ) -> Self {
        Self {
            dir,
            options,
            batching,
            batch_texts,
            models: DashMap::new(),
            loading: DashSet::new(),
        }
    }

    /// A loaded model.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedModel>, ApiError> {
        names::check_name("model", name)?;
        self.models
            .get(name)
            .map(|m| Arc::clone(m.value()))
            .ok_or_else(|| {
                ApiError::ModelNotFound(format!(
                    "no model named {name:?} is loaded; load it with POST /v1/models"
                ))
            })
    }

    /// Every loaded model, by name.
    pub fn list(&self) -> Vec<Arc<LoadedModel>> {
        let mut all: Vec<_> = self.models.iter().map(|m| Arc::clone(m.value())).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Number of loaded models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Loads a bundle by name (blocking: call it off the HTTP workers). A name already
    /// loaded or being loaded is a conflict.
    pub fn load(&self, name: &str) -> Result<Arc<LoadedModel>, ApiError> {
        let path = names::resolve("model", &self.dir, name)?;
        if self.models.contains_key(name) || !self.loading.insert(name.to_owned()) {
            return Err(ApiError::Conflict(format!(
                "model {name:?} is already loaded (or loading); DELETE /v1/models/{name} first to reload it"
            )));
        }
        let result = self.load_path(name, path);
        self.loading.remove(name);
        let loaded = Arc::new(result?);
        match self.models.entry(name.to_owned()) {
            Entry::Occupied(_) => Err(ApiError::Conflict(format!(
                "model {name:?} is already loaded"
            ))),
            Entry::Vacant(v) => {
                v.insert(Arc::clone(&loaded));
                Ok(loaded)
            }
        }
    }

    fn load_path(&self, name: &str, path: PathBuf) -> Result<LoadedModel, ApiError> {
        if !path.is_dir() {
            return Err(ApiError::ModelNotFound(format!(
                "no bundle named {name:?} in the models directory"
            )));
        }
        let model = LoadedBundle::load(&path, &self.options).map_err(|e| {
            // Never echo the server's absolute paths beyond the models directory's view.
            let message = e
                .to_string()
                .replace(&*self.dir.to_string_lossy(), "<models>");
            ApiError::ModelInvalid(format!("bundle {name:?} cannot be loaded: {message}"))
        })?;
        let batcher = self
            .batching
            .map(|options| Batcher::new(name, options, self.batch_texts.clone()))
            .transpose()
            .map_err(|e| {
                ApiError::Internal(format!("cannot start the predict thread of {name:?}: {e}"))
            })?;
        Ok(LoadedModel {
            name: name.to_owned(),
            model,
            loaded_at_ms: now_ms(),
            batcher,
        })
    }

    /// Unloads a model; jobs holding it keep it until they finish.
    pub fn unload(&self, name: &str) -> Result<(), ApiError> {
        names::check_name("model", name)?;
        self.models
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| ApiError::ModelNotFound(format!("no model named {name:?} is loaded")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_attacks_follow_input_kind_codec_lexicon_and_gradients() {
        let word = supported_attacks(InputKind::Word, false, true, true);
        assert_eq!(
            word,
            [
                "hotflip-word",
                "sem",
                "unk",
                "loss-beam",
                "random",
                "random-gradient"
            ]
        );
        assert!(!supported_attacks(InputKind::Word, false, false, true).contains(&"sem"));
        let char_model = supported_attacks(InputKind::Char, false, true, true);
        assert!(char_model.contains(&"hotflip-char") && !char_model.contains(&"unk"));
        // Subword models take character attacks, scored by exact loss.
        let subword = supported_attacks(InputKind::Word, true, true, true);
        assert!(subword.contains(&"hotflip-char") && subword.contains(&"hotflip-word"));
        // Without gradients: what runs on forward passes alone.
        assert_eq!(
            supported_attacks(InputKind::Word, false, true, false),
            ["unk", "loss-beam", "random"]
        );
        assert_eq!(
            supported_attacks(InputKind::Word, true, true, false),
            ["hotflip-char", "unk", "loss-beam", "random"]
        );
    }
}
