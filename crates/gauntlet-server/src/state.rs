//! The application state shared by every HTTP worker: configuration, model registry,
//! scheduler, metrics and the `sem` attack's lexicon. [`AppState::new`] does everything a
//! start needs (opens the job store and restores jobs, loads WordNet and the default model,
//! starts the audit workers), so a server that started is a server that is ready.

use std::path::PathBuf;
use std::sync::Arc;

use gauntlet_attacks::audit::{attacker_for, AuditError};
use gauntlet_attacks::{
    AttackConfig, AttackError, AttackKind, Attacker, Lexicon, ModelRef, WordNetLexicon,
};
use gauntlet_backends::LoadedBundle;

use crate::config::{Config, ConfigError, WordNetLookup};
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
    /// The configured WordNet could not be loaded.
    #[error("attacks.wordnet: {0}")]
    WordNet(String),
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
    /// The `sem` attack's lexicon (WordNet), loaded once at start; `None` when WordNet is
    /// off or was not found, and then `sem` is refused.
    pub lexicon: Option<Arc<dyn Lexicon>>,
}

/// Why `sem` is refused on a server without WordNet (`422 attack_incompatible`).
pub const NO_WORDNET: &str = "attack `sem` needs WordNet, which is not configured on this server: set attacks.wordnet (GAUNTLET__ATTACKS__WORDNET or --wordnet) to a WordNet dict directory, or \"\" to find it through $GAUNTLET_WORDNET or the cache that scripts/bootstrap.sh fills, and restart the server";

/// The view of `model` an attack needs (the engine's one rule, [`ModelRef::for_attack`]).
pub fn model_ref(model: &LoadedBundle, kind: AttackKind) -> Result<ModelRef<'_>, ApiError> {
    Ok(ModelRef::for_attack(
        kind,
        model.codec(),
        model.classifier(),
        model.white_box(),
        model.white_box_unavailable(),
    )?)
}

/// Checks `config` against `model` as [`attacker`] would, normalizing it, without building
/// an attacker; `sem` needs the server's lexicon.
pub fn check_attack_fits(
    model: &LoadedBundle,
    config: &mut AttackConfig,
    has_lexicon: bool,
) -> Result<(), ApiError> {
    if config.kind == AttackKind::Sem && !has_lexicon {
        return Err(ApiError::AttackIncompatible(NO_WORDNET.into()));
    }
    Attacker::check(model_ref(model, config.kind)?, model.codec(), config)?;
    Ok(())
}

/// An attacker for `model` with the server's `lexicon`, validated against the model;
/// `sem` without a lexicon is refused with [`NO_WORDNET`].
pub fn attacker<'a>(
    model: &'a LoadedBundle,
    config: AttackConfig,
    lexicon: Option<&'a dyn Lexicon>,
) -> Result<Attacker<'a>, ApiError> {
    if config.kind == AttackKind::Sem && lexicon.is_none() {
        return Err(ApiError::AttackIncompatible(NO_WORDNET.into()));
    }
    Ok(attacker_for(model, config, lexicon)?)
}

/// An audit plan's error as the API answers it: the plan's own problems are bad requests,
/// an attack that does not fit the model keeps the engine's mapping (`sem` without WordNet
/// says how to configure it), and the attack's name prefixes the message.
pub fn audit_error(e: AuditError) -> ApiError {
    match e {
        AuditError::Attack {
            error: AttackError::MissingLexicon,
            ..
        } => ApiError::AttackIncompatible(NO_WORDNET.into()),
        AuditError::Attack { name, error } => match ApiError::from(error) {
            ApiError::AttackIncompatible(m) => {
                ApiError::AttackIncompatible(format!("attack {name:?}: {m}"))
            }
            ApiError::InvalidAttack(m) => ApiError::InvalidAttack(format!("attack {name:?}: {m}")),
            ApiError::InvalidLabel(m) => ApiError::InvalidLabel(format!("attack {name:?}: {m}")),
            other => other,
        },
        AuditError::Plan(m) | AuditError::Data(m) => ApiError::BadRequest(m),
        AuditError::Inconsistent(m) => ApiError::InvalidPlan(m),
        other @ (AuditError::Merge(_) | AuditError::Gate(_)) => {
            ApiError::Internal(other.to_string())
        }
    }
}

/// Loads WordNet as `attacks.wordnet` says (`env_wordnet`: `$GAUNTLET_WORDNET`). A
/// configured directory that does not load stops the start; in auto mode a missing or
/// unreadable WordNet only makes `sem` unavailable.
fn load_lexicon(
    config: &Config,
    env_wordnet: Option<&str>,
) -> Result<Option<Arc<dyn Lexicon>>, StartError> {
    let explicit = matches!(config.wordnet(), crate::config::WordNetSetting::Dir(_));
    match config.wordnet_dict(env_wordnet)? {
        WordNetLookup::Found(dict) => match WordNetLexicon::load(&dict) {
            Ok(lexicon) => {
                tracing::info!("loaded WordNet from {}: attack `sem` is available", dict.display());
                Ok(Some(Arc::new(lexicon)))
            }
            Err(e) if explicit => Err(StartError::WordNet(format!(
                "{e}; point attacks.wordnet (GAUNTLET__ATTACKS__WORDNET or --wordnet) at a complete WordNet dict directory, or set it to \"off\""
            ))),
            Err(e) => {
                tracing::warn!("attack `sem` is unavailable: WordNet found by auto-detection does not load: {e}; set attacks.wordnet to fix it or silence this");
                Ok(None)
            }
        },
        WordNetLookup::Unavailable(why) => {
            tracing::info!("attack `sem` is unavailable: no WordNet ({why}); set attacks.wordnet (GAUNTLET__ATTACKS__WORDNET or --wordnet) to a WordNet dict directory, or run scripts/bootstrap.sh");
            Ok(None)
        }
    }
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
        let env_wordnet = std::env::var("GAUNTLET_WORDNET").ok();
        let lexicon = load_lexicon(&config, env_wordnet.as_deref())?;
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
            Scheduler::new(store, config.scheduler.options(), Arc::clone(&metrics))
                .map_err(|e| StartError::Setup(format!("cannot restore audit jobs: {e}")))?,
        );
        let models = Arc::new(ModelRegistry::new(
            config.models.dir.clone(),
            config.load_options()?,
            config.batching.enabled.then(|| config.batching.options()),
            metrics.predict_batch_texts.clone(),
        ));
        if let Some(name) = &config.models.default_model {
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
        let workers = config.scheduler.workers.get();
        let state = Self {
            config: Arc::new(config),
            models,
            scheduler,
            metrics,
            datasets_dir,
            lexicon,
        };
        state
            .scheduler
            .restore(|record| crate::work::rebuild(&state, record));
        state.metrics.models_loaded.set(state.models.len() as i64);
        state
            .scheduler
            .start(workers)
            .map_err(|e| StartError::Setup(format!("cannot start audit workers: {e}")))?;
        Ok(state)
    }

    /// Ready when every audit worker runs and at least one model is loaded.
    pub fn readiness(&self) -> Result<Readiness, ApiError> {
        let workers = self.scheduler.workers_alive();
        let models = self.models.len();
        if self.scheduler.is_shutting_down() {
            return Err(ApiError::ShuttingDown);
        }
        if workers < self.config.scheduler.workers.get() {
            return Err(ApiError::NotReady(format!(
                "{workers} of {} audit workers are running",
                self.config.scheduler.workers.get()
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
            None => match &self.config.models.default_model {
                Some(default) => self.models.get(default),
                None => Err(ApiError::BadRequest(
                    "`model` is required: the server has no default model".into(),
                )),
            },
        }
    }

    /// Stops the audit workers: running jobs stop at their next beam step and checkpoint
    /// (and resume at the next start when `scheduler.resume` is on).
    pub fn shutdown(&self) {
        self.scheduler.shutdown();
    }
}
