//! The application state shared by every HTTP worker: configuration, model registry,
//! scheduler and metrics. [`AppState::new`] does everything a start needs (opens the job
//! store and restores jobs, loads the default model, starts the audit workers), so a
//! server that started is a server that is ready.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::registry::{LoadedModel, ModelRegistry};
use crate::scheduler::Scheduler;
use crate::store::JobStore;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The default model could not be loaded.
    #[error("models.default_model: {0}")]
    DefaultModel(String),
    /// The data directory or a thread could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// Everything a request handler may need.
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Loaded models.
    pub models: Arc<ModelRegistry>,
    /// Audit jobs.
    pub scheduler: Arc<Scheduler>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `<data dir>/datasets`.
    pub datasets_dir: PathBuf,
}

/// Readiness as `/readyz` reports it.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// Models loaded.
    pub models: usize,
    /// Audit workers alive.
    pub workers: usize,
}

impl AppState {
    /// Validates the configuration, restores jobs, loads the default model, starts the
    /// audit workers.
    pub fn new(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let device = config.device()?;
        let metrics =
            Arc::new(Metrics::new().map_err(|e| StartError::Setup(format!("metrics: {e}")))?);
        let data = &config.data.dir;
        let datasets_dir = data.join("datasets");
        std::fs::create_dir_all(&datasets_dir).map_err(|e| {
            StartError::Setup(format!(
                "data.dir = {:?}: cannot create {}: {e}; point --data-dir (or GAUNTLET__DATA__DIR) at a writable directory",
                data,
                datasets_dir.display()
            ))
        })?;
        let store = JobStore::open(data.join("jobs")).map_err(|e| {
            StartError::Setup(format!(
                "data.dir = {data:?}: cannot open the job store: {e}; point --data-dir at a writable directory"
            ))
        })?;
        let scheduler = Arc::new(
            Scheduler::new(
                store,
                config.scheduler.queue_capacity,
                config.scheduler.jobs_kept,
                Arc::clone(&metrics),
            )
            .map_err(|e| StartError::Setup(format!("cannot restore audit jobs: {e}")))?,
        );
        let models = Arc::new(ModelRegistry::new(config.models.dir.clone(), device));
        if !config.models.default_model.is_empty() {
            let name = &config.models.default_model;
            let loaded = models.load(name).map_err(|e| {
                StartError::DefaultModel(format!(
                    "{e}; check that {:?} holds the bundle {name:?}, pick another with --default-model, or pass --default-model \"\" to start without one",
                    config.models.dir
                ))
            })?;
            tracing::info!(
                "loaded model {name} ({}, {} on {})",
                loaded.model.manifest().architecture,
                loaded.model.digest(),
                loaded.model.device_name()
            );
        }
        metrics.models_loaded.set(models.len() as i64);
        scheduler
            .start(config.scheduler.workers)
            .map_err(|e| StartError::Setup(format!("cannot start audit workers: {e}")))?;
        Ok(Self {
            config: Arc::new(config),
            models,
            scheduler,
            metrics,
            datasets_dir,
        })
    }

    /// Ready when every audit worker runs and at least one model is loaded.
    pub fn readiness(&self) -> Result<Readiness, ApiError> {
        let workers = self.scheduler.workers_alive();
        let models = self.models.len();
        if self.scheduler.is_shutting_down() {
            return Err(ApiError::NotReady("the server is shutting down".into()));
        }
        if workers < self.config.scheduler.workers {
            return Err(ApiError::NotReady(format!(
                "{workers} of {} audit workers are running",
                self.config.scheduler.workers
            )));
        }
        if models == 0 {
            return Err(ApiError::NotReady(
                "no model is loaded; load one with POST /v1/models".into(),
            ));
        }
        Ok(Readiness {
            status: "ready",
            models,
            workers,
        })
    }

    /// The model a request names, or the default model when it names none.
    pub fn model(&self, name: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
        match name {
            Some(n) => self.models.get(n),
            None if !self.config.models.default_model.is_empty() => {
                self.models.get(&self.config.models.default_model)
            }
            None => Err(ApiError::BadRequest(
                "`model` is required: the server has no default model".into(),
            )),
        }
    }

    /// Stops the audit workers (running jobs end `interrupted`).
    pub fn shutdown(&self) {
        self.scheduler.shutdown();
    }
}
