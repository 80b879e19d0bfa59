//! Prometheus metrics of one server instance, in its own registry (so several servers in
//! one process, as in the tests, never collide).
//!
//! HTTP metrics are labelled by route *pattern* (`/v1/audits/{id}`, never the concrete
//! path) so their cardinality is bounded; unmatched paths share the label `unmatched`.
//! Gauges derived from the job table (queue depth, jobs by state) are refreshed at scrape
//! time by the `/metrics` route.

use std::time::Duration;

use gauntlet_attacks::{AttackReport, Outcome};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// `gauntlet_http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `gauntlet_http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `gauntlet_attacks_total{attack,outcome}`: runs by how they ended.
    pub attacks: IntCounterVec,
    /// `gauntlet_attack_examples_total{attack,outcome}`: examples by outcome.
    pub examples: IntCounterVec,
    /// `gauntlet_forward_passes_total{attack}`.
    pub forward_passes: IntCounterVec,
    /// `gauntlet_backward_passes_total{attack}`.
    pub backward_passes: IntCounterVec,
    /// `gauntlet_queue_depth`.
    pub queue_depth: IntGauge,
    /// `gauntlet_jobs{state}`.
    pub jobs: IntGaugeVec,
    /// `gauntlet_audit_duration_seconds`.
    pub audit_duration: Histogram,
    /// `gauntlet_checkpoint_seconds`: time to write one checkpoint of a running job (append
    /// and fsync its new result lines, then write and fsync its record).
    pub checkpoint_duration: Histogram,
    /// `gauntlet_checkpoint_results_total`: result lines made durable by checkpoints.
    pub checkpoint_results: prometheus::IntCounter,
    /// `gauntlet_models_loaded`.
    pub models_loaded: IntGauge,
    /// `gauntlet_predict_batch_texts`: texts per predict model call (dynamic batching puts
    /// the texts of concurrent requests in one call).
    pub predict_batch_texts: Histogram,
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: Result<T, prometheus::Error>,
) -> Result<T, prometheus::Error> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        Ok(Self {
            http_requests: registered(
                &r,
                IntCounterVec::new(
                    Opts::new("gauntlet_http_requests_total", "HTTP requests answered"),
                    &["route", "method", "status"],
                ),
            )?,
            http_duration: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gauntlet_http_request_duration_seconds",
                        "HTTP request duration",
                    )
                    .buckets(buckets),
                    &["route", "method"],
                ),
            )?,
            attacks: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gauntlet_attacks_total",
                        "Attack runs by attack and outcome (completed, cancelled, failed, timed_out)",
                    ),
                    &["attack", "outcome"],
                ),
            )?,
            examples: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "gauntlet_attack_examples_total",
                        "Attacked examples by attack and outcome (success, failure, skipped)",
                    ),
                    &["attack", "outcome"],
                ),
            )?,
            forward_passes: registered(
                &r,
                IntCounterVec::new(
                    Opts::new("gauntlet_forward_passes_total", "Model forward passes"),
                    &["attack"],
                ),
            )?,
            backward_passes: registered(
                &r,
                IntCounterVec::new(
                    Opts::new("gauntlet_backward_passes_total", "Model backward passes"),
                    &["attack"],
                ),
            )?,
            queue_depth: registered(
                &r,
                IntGauge::new("gauntlet_queue_depth", "Audit jobs waiting in the queue"),
            )?,
            jobs: registered(
                &r,
                IntGaugeVec::new(Opts::new("gauntlet_jobs", "Audit jobs by state"), &["state"]),
            )?,
            audit_duration: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gauntlet_audit_duration_seconds",
                        "Wall time of finished audit jobs",
                    )
                    .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0]),
                ),
            )?,
            checkpoint_duration: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gauntlet_checkpoint_seconds",
                        "Time to write one checkpoint of a running audit job",
                    )
                    .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]),
                ),
            )?,
            checkpoint_results: registered(
                &r,
                prometheus::IntCounter::new(
                    "gauntlet_checkpoint_results_total",
                    "Example results made durable by checkpoints",
                ),
            )?,
            models_loaded: registered(
                &r,
                IntGauge::new("gauntlet_models_loaded", "Models loaded"),
            )?,
            predict_batch_texts: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gauntlet_predict_batch_texts",
                        "Texts per predict model call (concurrent requests batched together)",
                    )
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                    ]),
                ),
            )?,
            registry: r,
        })
    }

    /// Records one answered HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    /// Records a finished (or cancelled) attack run and its examples.
    pub fn observe_report(&self, report: &AttackReport, outcome: &str) {
        let attack = report.config.kind.name();
        self.attacks.with_label_values(&[attack, outcome]).inc();
        for e in &report.examples {
            let o = match e.outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
                Outcome::Skipped => "skipped",
            };
            self.examples.with_label_values(&[attack, o]).inc();
            self.forward_passes
                .with_label_values(&[attack])
                .inc_by(e.forward_passes);
            self.backward_passes
                .with_label_values(&[attack])
                .inc_by(e.backward_passes);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
