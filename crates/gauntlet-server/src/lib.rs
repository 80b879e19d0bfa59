//! Gauntlet's attack server: a REST API over the attack engine, with audit jobs, a
//! durable job store, Prometheus metrics, limits and optional API-key authentication.
//!
//! Layout (after meilisearch): [`create_app`] builds the actix [`App`] from an
//! [`AppState`], so tests can run the real server in-process; [`routes`] holds one module
//! per resource ([`model_views`] the model responses); [`middleware`] authenticates `/v1`
//! and counts requests; [`error`] is the one error table; [`scheduler`] runs audit jobs on its own
//! threads with state in a `DashMap`; [`store`] persists them; [`registry`] holds the
//! loaded models, each with the [`batcher`] that runs concurrent predict requests as one
//! model call; [`config`] loads and validates the layered configuration; [`metrics`]
//! exports Prometheus metrics. The server never sees gradients: it speaks only to the
//! attack engine and the core traits.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer};

pub mod batcher;
pub mod config;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod middleware;
pub mod model_views;
pub mod names;
pub mod registry;
pub mod requests;
pub mod routes;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod work;

pub use config::{Config, ConfigError, Overrides};
pub use error::ApiError;
pub use middleware::constant_time_eq;
pub use state::{AppState, StartError};

/// Builds the application: routes, extractor configuration, authentication on `/v1`,
/// request metrics, and JSON errors for unknown routes.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limits = &state.config.limits;
    let key: Option<Arc<str>> = state.config.server.api_key.as_deref().map(Arc::from);
    let metrics = Arc::clone(&state.metrics);
    let state_body_timeout_ms = state.config.server.request_body_timeout_ms.get();
    let v1 = web::scope("/v1")
        .wrap_fn(middleware::require_api_key(key))
        .configure(routes::models::configure)
        .configure(routes::attacks::configure)
        .configure(routes::audits::configure);
    App::new()
        .app_data(error::json_config(limits.max_body_bytes.get()))
        .app_data(error::path_config())
        .app_data(error::query_config())
        .app_data(state)
        .configure(routes::health::configure)
        .configure(routes::metrics::configure)
        .configure(routes::ui::configure)
        .service(v1)
        .default_service(web::to(routes::route_not_found))
        .wrap_fn(middleware::body_deadline(Duration::from_millis(
            state_body_timeout_ms,
        )))
        .wrap_fn(middleware::observe_requests(metrics))
}

/// Builds the HTTP server on a bound listener (call inside an actix system), with the
/// client bounds of `[server]`. It does not handle signals: [`serve_until_signal`] does,
/// so that a stop first drains the audit workers.
pub fn build_server(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let server = &state.config.server;
    let workers = server.http_workers.get();
    let (head, keep_alive, connections) = (
        Duration::from_millis(server.client_request_timeout_ms.get()),
        Duration::from_secs(server.keep_alive_secs.get()),
        server.max_connections_per_worker.get(),
    );
    let http_grace = http_grace(server.shutdown_grace_secs.get());
    Ok(HttpServer::new(move || create_app(state.clone()))
        .workers(workers)
        .client_request_timeout(head)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(keep_alive)
        .max_connections(connections)
        .shutdown_timeout(http_grace)
        .disable_signals()
        .listen(listener)?
        .run())
}

/// The part of the shutdown grace left to open requests (the rest goes to the audit
/// workers' last beam step and checkpoint): a third, at least a second.
fn http_grace(grace_secs: u64) -> u64 {
    (grace_secs / 3).max(1)
}

/// Serves until SIGTERM or SIGINT, then stops gracefully within `server.shutdown_grace_secs`:
/// new audits get 503 `shutting_down` (and `/readyz` 503) while reads are still served,
/// running jobs stop at their next beam step and write a checkpoint, then the HTTP server
/// lets open requests finish and stops. Call inside an actix system.
pub async fn serve_until_signal(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> std::io::Result<()> {
    let server = build_server(state.clone(), listener)?;
    let handle = server.handle();
    let grace_secs = state.config.server.shutdown_grace_secs.get();
    actix_web::rt::spawn(async move {
        let signal = wait_for_signal().await;
        let started = std::time::Instant::now();
        tracing::info!(
            "{signal}: refusing new audits; running jobs stop at their next beam step and checkpoint (grace {grace_secs} s)"
        );
        state.scheduler.begin_shutdown();
        let scheduler = Arc::clone(&state.scheduler);
        let workers_grace =
            Duration::from_secs(grace_secs - http_grace(grace_secs).min(grace_secs - 1));
        let joined =
            actix_web::rt::task::spawn_blocking(move || scheduler.join_workers(workers_grace))
                .await
                .unwrap_or(false);
        if joined {
            tracing::info!(
                "audit workers stopped after {} ms; stopping the HTTP server",
                started.elapsed().as_millis()
            );
        } else {
            tracing::warn!("audit workers still running after {} s; they resume from their last checkpoint at the next start", workers_grace.as_secs());
        }
        handle.stop(true).await;
    });
    server.await
}

/// The first SIGTERM or SIGINT (Ctrl-C), by name.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// A server running on a background thread (tests, embedding).
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state.
    pub state: web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Starts a server on `listener` in a background thread with its own actix system.
    pub fn spawn(state: AppState, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = web::Data::new(state);
        let data = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gauntlet-http".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = build_server(data, listener)?;
                    let _ = tx.send(server.handle());
                    server.await
                })
            })?;
        let handle = rx.recv().map_err(|_| {
            std::io::Error::other("the HTTP server thread exited before it started")
        })?;
        Ok(Self {
            addr,
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the HTTP server, then the audit workers (running jobs end `interrupted`).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() {
                rt.block_on(self.handle.stop(true));
            }
            let _ = thread.join();
            self.state.shutdown();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
