//! Server configuration: [`Config`] and its layered loading.
//!
//! Layers, each overriding the one before: `config/default.toml` (compiled in), an optional
//! file (`--config`), environment variables `GAUNTLET__SECTION__KEY`, then command-line
//! flags ([`Overrides`]). Layers are merged as TOML tables and deserialized once with
//! `deny_unknown_fields`, so a misspelled key anywhere is an error naming it.
//!
//! The types carry the rules: counts that must be positive are `NonZero*`, a setting that
//! may be absent is an `Option` (spelled `""` in files and the environment, since TOML has
//! no null), WordNet is [`WordNetSetting`] and the device a [`DeviceChoice`]; so a value of
//! the wrong shape fails while loading, naming its key. [`Config::validate`] then checks
//! what types cannot (ranges, files); every [`ConfigError`] names the setting and says
//! how to fix it.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use gauntlet_backends::{LoadOptions, Optimization, OrtOptions};
use gauntlet_core::DeviceChoice;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::names::check_name;

/// The compiled-in defaults (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "GAUNTLET__";
/// Port used when `server.bind` is empty.
pub const DEFAULT_PORT: u16 = 8080;

/// A configuration problem, naming the setting and the fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Reads a setting whose "none" is spelled `""` in files and the environment (TOML has no
/// null) as an `Option`, parsing anything else with `FromStr`.
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(de::Error::custom)
}

/// A listen address: `HOST:PORT` with an IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddr(pub SocketAddr);

impl FromStr for BindAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Self).map_err(|_| {
            format!(
                "{s:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:8080); set it in the config file, GAUNTLET__SERVER__BIND or --bind"
            )
        })
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address; `""` (none) picks by whether an API key is set: localhost without
    /// one, every interface with one.
    #[serde(deserialize_with = "empty_as_none")]
    pub bind: Option<BindAddr>,
    /// API key for /v1; `""` (none) disables authentication.
    #[serde(deserialize_with = "empty_as_none")]
    pub api_key: Option<String>,
    /// actix HTTP worker threads.
    pub http_workers: NonZeroUsize,
    /// Log filter.
    pub log: String,
    /// Longest time, in seconds, from SIGTERM or SIGINT to exit: running jobs stop at their
    /// next beam step and checkpoint, then open requests finish.
    pub shutdown_grace_secs: NonZeroU64,
    /// Time a client has to send a request's head (slowloris), in milliseconds; then 408.
    pub client_request_timeout_ms: NonZeroU64,
    /// Time a client has to send a request's whole body, in milliseconds; then 408
    /// `request_timeout` and the connection is closed.
    pub request_body_timeout_ms: NonZeroU64,
    /// Idle time, in seconds, before a keep-alive connection is closed.
    pub keep_alive_secs: NonZeroU64,
    /// Most open connections per HTTP worker; more wait in the listen backlog.
    pub max_connections_per_worker: NonZeroUsize,
}

/// `[models]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    /// Directory of model bundles.
    pub dir: PathBuf,
    /// Bundle loaded at start; `""` (none) starts without a model.
    #[serde(deserialize_with = "empty_as_none")]
    pub default_model: Option<String>,
    /// `auto`, `cpu` or `cuda`.
    pub device: DeviceChoice,
}

/// `[data]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Data directory (jobs and datasets).
    pub dir: PathBuf,
}

/// `[scheduler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// Audit worker threads.
    pub workers: NonZeroUsize,
    /// Jobs that may wait in the queue.
    pub queue_capacity: NonZeroUsize,
    /// Finished jobs kept.
    pub jobs_kept: NonZeroUsize,
    /// Whether jobs queued or running when the server stopped run again at the next start,
    /// running ones from their last checkpoint; `false` marks them `interrupted`.
    pub resume: bool,
    /// Longest time, in milliseconds, between two checkpoints of a running job while its
    /// examples finish (there is always one at each attack's end).
    pub checkpoint_interval_ms: NonZeroU64,
}

impl SchedulerSection {
    /// The scheduler's options.
    pub fn options(&self) -> crate::scheduler::SchedulerOptions {
        crate::scheduler::SchedulerOptions {
            capacity: self.queue_capacity.get(),
            jobs_kept: self.jobs_kept.get(),
            resume: self.resume,
            checkpoint_interval: std::time::Duration::from_millis(
                self.checkpoint_interval_ms.get(),
            ),
        }
    }
}

/// `[batching]`: dynamic batching of predict requests (see [`crate::batcher`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    /// Whether concurrent predict requests for one model share model calls; `false` runs
    /// one model call per request on the blocking pool.
    pub enabled: bool,
    /// Most texts in one model call; a larger request runs alone.
    pub max_batch_texts: NonZeroUsize,
    /// Longest wait, in microseconds, for more requests after the first of a batch; 0
    /// takes only what is already queued.
    pub max_wait_us: u64,
    /// Predict requests that may wait per model; one more is refused with 429 queue_full.
    pub queue_capacity: NonZeroUsize,
}

/// Longest `batching.max_wait_us` accepted (one second).
pub const MAX_BATCH_WAIT_US: u64 = 1_000_000;
/// Largest `batching.max_batch_texts` accepted.
pub const MAX_BATCH_TEXTS: usize = 4096;

impl BatchingSection {
    /// The batcher's options.
    pub fn options(&self) -> crate::batcher::BatchOptions {
        crate::batcher::BatchOptions {
            max_batch_texts: self.max_batch_texts.get(),
            max_wait: std::time::Duration::from_micros(self.max_wait_us),
            queue_capacity: self.queue_capacity.get(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body_bytes: NonZeroUsize,
    /// Most texts per predict or synchronous attack request.
    pub max_texts_per_request: NonZeroUsize,
    /// Most characters per text.
    pub max_chars_per_text: NonZeroUsize,
    /// Largest beam width.
    pub max_beam_width: NonZeroUsize,
    /// Largest budget in changes.
    pub max_budget_changes: NonZeroUsize,
    /// Largest attack batch size.
    pub max_batch_size: NonZeroUsize,
    /// Most examples per audit.
    pub max_audit_examples: NonZeroUsize,
    /// Most attacks per audit.
    pub max_attacks_per_audit: NonZeroUsize,
    /// Synchronous attack time limit in milliseconds.
    pub attack_timeout_ms: NonZeroU64,
    /// Largest page of audit examples.
    pub max_page_size: NonZeroUsize,
}

/// `[attacks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttacksSection {
    /// WordNet for the `sem` attack: `""` (auto), `"off"`, or a directory.
    pub wordnet: WordNetSetting,
    /// A word2vec or GloVe file `sem` takes its cosine similarities from on every word
    /// model; `""` (none) takes each model's input embeddings.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub sem_vectors: Option<PathBuf>,
}

/// `[onnx]`: ONNX Runtime sessions of ONNX bundles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSection {
    /// `libonnxruntime.so.1.31.1` to load; `""` (none) takes `$GAUNTLET_ORT_DYLIB`, else
    /// the bootstrap's cache.
    #[serde(deserialize_with = "empty_as_none")]
    pub library: Option<PathBuf>,
    /// Threads inside one operator; 0 lets ONNX Runtime use one per core.
    pub intra_threads: usize,
    /// Graph optimisation level: `disable`, `basic`, `extended` or `all`.
    pub optimization: Optimization,
    /// ONNX Runtime sessions per model (concurrent predictions).
    pub sessions: NonZeroUsize,
}

/// Where the server takes WordNet from (`attacks.wordnet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordNetSetting {
    /// `""`: `$GAUNTLET_WORDNET`, else the cache (like the `gauntlet` CLI); when neither
    /// holds WordNet, `sem` is unavailable.
    Auto,
    /// `"off"`: no WordNet, so no `sem`.
    Off,
    /// A directory that must hold WordNet (`index.noun` at or below it).
    Dir(PathBuf),
}

impl FromStr for WordNetSetting {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" => Self::Auto,
            WORDNET_OFF => Self::Off,
            dir => Self::Dir(PathBuf::from(dir)),
        })
    }
}

impl<'de> Deserialize<'de> for WordNetSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl std::fmt::Display for WordNetSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("\"\" (auto)"),
            Self::Off => write!(f, "{WORDNET_OFF:?}"),
            Self::Dir(d) => write!(f, "{:?}", d.display().to_string()),
        }
    }
}

/// The outcome of looking WordNet up ([`Config::wordnet_dict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordNetLookup {
    /// The `dict` directory (it holds `index.noun`).
    Found(PathBuf),
    /// `sem` is unavailable, and why.
    Unavailable(String),
}

/// The value of `attacks.wordnet` that turns WordNet off.
pub const WORDNET_OFF: &str = "off";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerSection,
    /// `[models]`.
    pub models: ModelsSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[scheduler]`.
    pub scheduler: SchedulerSection,
    /// `[limits]`.
    pub limits: Limits,
    /// `[batching]`.
    pub batching: BatchingSection,
    /// `[attacks]`.
    pub attacks: AttacksSection,
    /// `[onnx]`.
    pub onnx: OnnxSection,
}

/// Command-line overrides, the last layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--models-dir`.
    pub models_dir: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--default-model`.
    pub default_model: Option<String>,
    /// `--wordnet`.
    pub wordnet: Option<String>,
}

impl Overrides {
    /// Writes the overrides that need parsing into the merged table, so a flag is read by
    /// the same rules (and errors) as the setting it overrides.
    fn apply_to(&self, table: &mut toml::Table) {
        for (section, key, value) in [
            ("server", "bind", &self.bind),
            ("models", "default_model", &self.default_model),
            ("attacks", "wordnet", &self.wordnet),
        ] {
            if let (Some(value), Some(toml::Value::Table(s))) = (value, table.get_mut(section)) {
                s.insert(key.into(), toml::Value::String(value.clone()));
            }
        }
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError(format!("{origin}: not valid TOML: {e}")))
}

/// Merges `top` into `base`, table by table.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies `GAUNTLET__SECTION__KEY` variables, typed like the setting they override.
fn apply_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let [section, key] = parts.as_slice() else {
            return Err(ConfigError(format!(
                "environment variable {name}: expected {ENV_PREFIX}SECTION__KEY (e.g. GAUNTLET__SERVER__BIND)"
            )));
        };
        let existing = table
            .get(section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(key))
            .ok_or_else(|| {
                ConfigError(format!(
                    "environment variable {name}: there is no setting {section}.{key}; see config/default.toml"
                ))
            })?;
        let value = match existing {
            toml::Value::Integer(_) => raw.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| {
                ConfigError(format!("environment variable {name}: {section}.{key} must be an integer, got {raw:?}"))
            })?,
            toml::Value::Boolean(_) => raw.trim().parse::<bool>().map(toml::Value::Boolean).map_err(|_| {
                ConfigError(format!("environment variable {name}: {section}.{key} must be true or false, got {raw:?}"))
            })?,
            _ => toml::Value::String(raw),
        };
        if let Some(toml::Value::Table(s)) = table.get_mut(section) {
            s.insert(key.clone(), value);
        }
    }
    Ok(())
}

impl Config {
    /// The compiled-in defaults.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_table(parse_table(DEFAULT_TOML, "config/default.toml")?)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                // The error's display ends with the key (`in `scheduler.workers``).
                let text = e.to_string().trim().replace('\n', " ");
                ConfigError(format!(
                    "{text}; see config/default.toml for every setting and its type"
                ))
            })
    }

    /// Loads every layer: defaults, `file`, the process environment, then `overrides`;
    /// then validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars(), overrides)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = parse_table(DEFAULT_TOML, "config/default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "--config {}: cannot read the file: {e}",
                    path.display()
                ))
            })?;
            merge(
                &mut table,
                parse_table(&text, &format!("--config {}", path.display()))?,
            );
        }
        apply_env(&mut table, env)?;
        overrides.apply_to(&mut table);
        let mut config = Self::from_table(table)?;
        if let Some(d) = &overrides.models_dir {
            config.models.dir.clone_from(d);
        }
        if let Some(d) = &overrides.data_dir {
            config.data.dir.clone_from(d);
        }
        config.validate()?;
        Ok(config)
    }

    /// Whether an API key is configured.
    pub fn auth_enabled(&self) -> bool {
        self.server.api_key.is_some()
    }

    /// The address to listen on: `server.bind`, else localhost (no API key) or every
    /// interface (with one) on [`DEFAULT_PORT`].
    pub fn bind_addr(&self) -> SocketAddr {
        self.server.bind.map_or_else(
            || {
                let host = if self.auth_enabled() {
                    [0, 0, 0, 0]
                } else {
                    [127, 0, 0, 1]
                };
                SocketAddr::from((host, DEFAULT_PORT))
            },
            |b| b.0,
        )
    }

    /// What `attacks.wordnet` asks for.
    pub fn wordnet(&self) -> &WordNetSetting {
        &self.attacks.wordnet
    }

    /// The WordNet `dict` directory to load `sem`'s lexicon from, by the rule the `gauntlet`
    /// CLI shares ([`gauntlet_attacks::locate_wordnet`]: the configured directory, else
    /// `env_wordnet` (the value of `$GAUNTLET_WORDNET`), else the cache). An
    /// error only for a configured directory without WordNet; in auto mode a missing
    /// WordNet is [`WordNetLookup::Unavailable`].
    pub fn wordnet_dict(&self, env_wordnet: Option<&str>) -> Result<WordNetLookup, ConfigError> {
        match self.wordnet() {
            WordNetSetting::Off => Ok(WordNetLookup::Unavailable(format!(
                "attacks.wordnet = {WORDNET_OFF:?}"
            ))),
            WordNetSetting::Dir(dir) => gauntlet_attacks::locate_wordnet(Some(dir), None)
                .map(WordNetLookup::Found)
                .map_err(|e| {
                    ConfigError(format!(
                        "attacks.wordnet = {}: {e}; point it at a WordNet dict directory (scripts/bootstrap.sh unpacks one into $GAUNTLET_CACHE/wordnet), or set it to \"\" (auto: $GAUNTLET_WORDNET, else the cache) or \"{WORDNET_OFF}\" to run without `sem`, in the config file, GAUNTLET__ATTACKS__WORDNET or --wordnet",
                        self.attacks.wordnet
                    ))
                }),
            WordNetSetting::Auto => Ok(match gauntlet_attacks::locate_wordnet(None, env_wordnet) {
                Ok(dict) => WordNetLookup::Found(dict),
                Err(e) => WordNetLookup::Unavailable(e.to_string()),
            }),
        }
    }

    /// How the model registry loads bundles.
    pub fn load_options(&self) -> Result<LoadOptions, ConfigError> {
        Ok(LoadOptions {
            device: self.models.device,
            ort: OrtOptions {
                library: self.onnx.library.clone(),
                intra_threads: self.onnx.intra_threads,
                optimization: self.onnx.optimization,
                sessions: self.onnx.sessions.get(),
                device: self.models.device,
            },
            sem_vectors: self.attacks.sem_vectors.clone(),
        })
    }

    /// Checks what the types cannot: ranges, files, names; the error names the setting
    /// and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(file) = &self.attacks.sem_vectors {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "attacks.sem_vectors = {}: no such file; give a word2vec or GloVe file (tools/train_vectors.py makes one), or \"\" to take each model's input embeddings",
                    file.display()
                )));
            }
        }
        let b = &self.batching;
        if b.max_batch_texts.get() > MAX_BATCH_TEXTS {
            return Err(ConfigError(format!(
                "batching.max_batch_texts = {}; at most {MAX_BATCH_TEXTS} texts per model call are allowed",
                b.max_batch_texts
            )));
        }
        if b.max_wait_us > MAX_BATCH_WAIT_US {
            return Err(ConfigError(format!(
                "batching.max_wait_us = {}; at most {MAX_BATCH_WAIT_US} (one second) is allowed; 0 (the default) or 1000-2000 are typical",
                b.max_wait_us
            )));
        }
        if self.onnx.sessions.get() > 64 {
            return Err(ConfigError(format!(
                "onnx.sessions = {}; at most 64 sessions per model are allowed",
                self.onnx.sessions
            )));
        }
        if let Some(library) = self.onnx.library.as_deref().filter(|l| !l.is_file()) {
            return Err(ConfigError(format!(
                "onnx.library = {:?} is not a file; point it at libonnxruntime.so.1.31.1 (scripts/bootstrap.sh installs one), or set \"\" to use $GAUNTLET_ORT_DYLIB or the cache",
                library.display().to_string()
            )));
        }
        if self.scheduler.workers.get() > 64 {
            return Err(ConfigError(format!(
                "scheduler.workers = {}; at most 64 audit workers are allowed",
                self.scheduler.workers
            )));
        }
        if self
            .server
            .api_key
            .as_deref()
            .is_some_and(|k| k.chars().any(char::is_whitespace))
        {
            return Err(ConfigError(
                "server.api_key contains whitespace; use a key of visible characters".into(),
            ));
        }
        if matches!(self.wordnet(), WordNetSetting::Dir(_)) {
            self.wordnet_dict(None)?;
        }
        if let Some(model) = &self.models.default_model {
            check_name("model", model).map_err(|e| {
                ConfigError(format!(
                    "models.default_model: {e}; give a bundle directory name inside models.dir, or \"\" for none"
                ))
            })?;
            if !self.models.dir.is_dir() {
                return Err(ConfigError(format!(
                    "models.dir = {:?} is not a directory, but models.default_model = {model:?} must be loaded from it; set --models-dir (or GAUNTLET__MODELS__DIR), or --default-model \"\" to start without a model",
                    self.models.dir
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_parse_and_validate_shape() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.models.default_model.as_deref(), Some("sst2-word-cnn"));
        assert_eq!(c.bind_addr().to_string(), "127.0.0.1:8080");
        assert_eq!(c.models.device, DeviceChoice::Auto);
        assert!(c.server.api_key.is_none() && c.onnx.library.is_none());
    }

    #[test]
    fn env_overrides_are_typed_and_named() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let o = Overrides {
            default_model: Some(String::new()),
            ..Overrides::default()
        };
        let c =
            Config::load_with_env(None, env("GAUNTLET__LIMITS__MAX_BEAM_WIDTH", "7"), &o).unwrap();
        assert_eq!(c.limits.max_beam_width.get(), 7);
        let e = Config::load_with_env(None, env("GAUNTLET__LIMITS__MAX_BEAM_WIDTH", "x"), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_beam_width"), "{e}");
        let e = Config::load_with_env(None, env("GAUNTLET__LIMITS__NOPE", "1"), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.nope"), "{e}");
        let e = Config::load_with_env(None, env("GAUNTLET__SCHEDULER__WORKERS", "0"), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scheduler.workers"), "{e}");
        let e = Config::load_with_env(None, env("GAUNTLET__SERVER__BIND", "nowhere"), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.bind"), "{e}");
        let c = Config::load_with_env(None, env("GAUNTLET__SERVER__API_KEY", "k"), &o).unwrap();
        assert_eq!(c.bind_addr().to_string(), "0.0.0.0:8080");
        let e = Config::load_with_env(None, env("GAUNTLET__MODELS__DEVICE", "tpu"), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("models.device"), "{e}");
        let e = Config::load_with_env(None, env("GAUNTLET__LIMITS__MAX_PAGE_SIZE", "0"), &o)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.max_page_size") && e.contains("nonzero"),
            "{e}"
        );
    }

    #[test]
    fn batching_settings_are_typed_and_checked() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let o = Overrides {
            default_model: Some(String::new()),
            ..Overrides::default()
        };
        let c = Config::defaults().unwrap();
        assert!(c.batching.enabled);
        assert!(c.batching.options().max_wait.is_zero());
        let c =
            Config::load_with_env(None, env("GAUNTLET__BATCHING__ENABLED", "false"), &o).unwrap();
        assert!(!c.batching.enabled);
        let c = Config::load_with_env(None, env("GAUNTLET__BATCHING__MAX_WAIT_US", "1500"), &o)
            .unwrap();
        assert_eq!(c.batching.options().max_wait.as_micros(), 1500);
        for (key, value) in [
            ("MAX_BATCH_TEXTS", "0"),
            ("MAX_BATCH_TEXTS", "5000"),
            ("QUEUE_CAPACITY", "0"),
            ("MAX_WAIT_US", "2000000"),
            ("ENABLED", "yes"),
        ] {
            let e =
                Config::load_with_env(None, env(&format!("GAUNTLET__BATCHING__{key}"), value), &o)
                    .unwrap_err()
                    .to_string();
            let name = format!("batching.{}", key.to_ascii_lowercase());
            assert!(e.contains(&name), "{e}");
        }
    }

    #[test]
    fn file_layer_rejects_unknown_keys_and_cli_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[limits]\nmax_beam_width = 3\n").unwrap();
        let o = Overrides {
            default_model: Some(String::new()),
            bind: Some("127.0.0.1:9999".into()),
            ..Overrides::default()
        };
        let env = vec![(
            "GAUNTLET__SERVER__BIND".to_string(),
            "127.0.0.1:1".to_string(),
        )];
        let c = Config::load_with_env(Some(&path), env, &o).unwrap();
        assert_eq!(c.limits.max_beam_width.get(), 3);
        assert_eq!(c.bind_addr().to_string(), "127.0.0.1:9999");
        let bad = Overrides {
            bind: Some("nowhere".into()),
            ..o.clone()
        };
        let e = Config::load_with_env(None, Vec::new(), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.bind") && e.contains("HOST:PORT"), "{e}");
        std::fs::write(&path, "[limits]\nmax_beam_widht = 3\n").unwrap();
        let e = Config::load_with_env(Some(&path), Vec::new(), &o)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_beam_widht"), "{e}");
    }

    #[test]
    fn wordnet_setting_auto_off_and_dir() {
        let mut c = Config::defaults().unwrap();
        c.models.default_model = None;
        assert_eq!(c.wordnet(), &WordNetSetting::Auto);
        let empty = tempfile::tempdir().unwrap();
        // Auto: $GAUNTLET_WORDNET without WordNet only makes `sem` unavailable.
        let lookup = c
            .wordnet_dict(Some(empty.path().to_str().unwrap()))
            .unwrap();
        assert!(
            matches!(&lookup, WordNetLookup::Unavailable(w) if w.contains("$GAUNTLET_WORDNET")),
            "{lookup:?}"
        );
        c.validate().unwrap();
        c.attacks.wordnet = WordNetSetting::Off;
        assert_eq!(c.wordnet(), &WordNetSetting::Off);
        assert!(matches!(
            c.wordnet_dict(Some("/anything")).unwrap(),
            WordNetLookup::Unavailable(_)
        ));
        // A configured directory must hold WordNet.
        c.attacks.wordnet = WordNetSetting::Dir(empty.path().to_owned());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("attacks.wordnet") && e.contains("index.noun"),
            "{e}"
        );
        let dict = empty.path().join("a/b");
        std::fs::create_dir_all(&dict).unwrap();
        std::fs::write(dict.join("index.noun"), "movie n 1 0 1 0 0 \n").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.wordnet_dict(None).unwrap(),
            WordNetLookup::Found(dict.clone())
        );
        // Auto finds it through $GAUNTLET_WORDNET by the same rule.
        c.attacks.wordnet = WordNetSetting::Auto;
        assert_eq!(
            c.wordnet_dict(Some(empty.path().to_str().unwrap()))
                .unwrap(),
            WordNetLookup::Found(dict)
        );
    }
}
