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
use gauntlet_backends::{LoadOptions, LoadedBundle};
use gauntlet_core::{Probabilities, TokenIds};
use prometheus::Histogram;

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
