//! `gauntlet-server`: starts the attack server.
//!
//! Configuration layers: `config/default.toml` (compiled in), `--config FILE`, environment
//! variables `GAUNTLET__SECTION__KEY`, then the flags below. A bad setting stops the
//! server with a message naming it.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gauntlet_server::{serve_until_signal, AppState, Config, Overrides};
use tracing_subscriber::EnvFilter;

/// Gauntlet attack server: REST API, audit jobs, Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "gauntlet-server", version)]
struct Cli {
    /// Configuration file (TOML, any subset of config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, HOST:PORT (server.bind).
    #[arg(long)]
    bind: Option<String>,
    /// Directory of model bundles (models.dir).
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Data directory for jobs and datasets (data.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Bundle loaded at start; "" for none (models.default_model).
    #[arg(long)]
    default_model: Option<String>,
    /// WordNet directory for the `sem` attack; "" for auto, "off" for none
    /// (attacks.wordnet).
    #[arg(long, value_name = "DIR")]
    wordnet: Option<String>,
}

fn main() -> anyhow::Result<()> {
    gauntlet_backends::keep_freed_memory();
    let cli = Cli::parse();
    let overrides = Overrides {
        bind: cli.bind,
        models_dir: cli.models_dir,
        data_dir: cli.data_dir,
        default_model: cli.default_model,
        wordnet: cli.wordnet,
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.server.log))
        .context(
            "server.log is not a valid log filter (e.g. \"info\" or \"gauntlet_server=debug\")",
        )?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let addr = config.bind_addr();
    if config.auth_enabled() {
        tracing::info!("API key authentication is on for /v1");
    } else if addr.ip().is_loopback() {
        tracing::warn!(
            "no API key is configured: authentication is off, so the server listens on {addr} (localhost only); set server.api_key (GAUNTLET__SERVER__API_KEY) to serve other hosts"
        );
    } else {
        tracing::warn!("no API key is configured and the server listens on {addr}: anyone who can reach it can use the API");
    }
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("server.bind: cannot listen on {addr}; pick another address with --bind or GAUNTLET__SERVER__BIND")
    })?;
    let state = actix_web::web::Data::new(AppState::new(config)?);
    tracing::info!("listening on http://{addr}");
    let data = state.clone();
    actix_web::rt::System::new().block_on(serve_until_signal(data, listener))?;
    // After a signal the workers have stopped (or the grace ran out: their jobs resume from
    // their last checkpoint at the next start); this only joins idle threads.
    state.scheduler.begin_shutdown();
    tracing::info!("stopped");
    Ok(())
}
