//! The audit worker loop: takes jobs from the queue and runs their attacks one after
//! another, reporting progress into the job record, honouring the cancel flag (checked by
//! the engine once per beam step) and the hold hook, and persisting every state change.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gauntlet_attacks::{Attacker, Progress, RunControl};

use super::{lock, Job, Scheduler};
use crate::jobs::{JobRecord, JobState};
use crate::registry::now_ms;

impl Scheduler {
    pub(super) fn work_loop(&self) {
        loop {
            let id = {
                let mut queue = lock(&self.queue);
                loop {
                    if self.is_shutting_down() {
                        return;
                    }
                    if let Some(id) = queue.pop_front() {
                        break id;
                    }
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            let Ok(job) = self.get(id) else { continue };
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| self.run(&job)));
            if run.is_err() {
                job.write(|r| {
                    r.state = JobState::Failed;
                    r.error = Some("internal error: the attack panicked".into());
                    r.finished_at_ms = Some(now_ms());
                });
                self.persist(&job.record());
            }
            self.prune();
        }
    }

    fn run(&self, job: &Job) {
        let Some(work) = lock(&job.work).take() else {
            return;
        };
        let starting = job.write(|r| {
            if r.state != JobState::Queued {
                return None;
            }
            r.state = JobState::Running;
            r.started_at_ms = Some(now_ms());
            Some(r.clone())
        });
        let Some(record) = starting else { return };
        self.persist(&record);
        let started = Instant::now();
        let attacks = record.request.attacks.clone();
        let examples = work.examples.len();
        let model = &work.model.model;
        let mut error = None;
        for (i, mut config) in attacks.into_iter().enumerate() {
            if job.cancel.load(Ordering::SeqCst) {
                break;
            }
            if let Some(seed) = record.request.seed {
                config.seed = seed;
            }
            let attacker = match crate::state::model_ref(model, config.kind)
                .map_err(|e| e.to_string())
                .and_then(|m| Attacker::new(m, model.codec(), config).map_err(|e| e.to_string()))
            {
                Ok(a) => {
                    let a = a.with_model_id(format!("{}@{}", work.model.name, model.digest()));
                    match work.lexicon.as_deref() {
                        Some(lexicon) => a.with_lexicon(lexicon),
                        None => a,
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            let progress = |p: Progress| {
                job.write(|r| {
                    r.progress.done = i * examples + p.done;
                    r.progress.successes = p.successes;
                });
                while self.hold.load(Ordering::SeqCst)
                    && !job.cancel.load(Ordering::SeqCst)
                    && !self.is_shutting_down()
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            };
            let control = RunControl {
                cancel: Some(&job.cancel),
                progress: Some(&progress),
            };
            match attacker.run_examples(&work.examples, &control) {
                Ok(report) => {
                    let stopped = report.cancelled;
                    self.metrics
                        .observe_report(&report, if stopped { "cancelled" } else { "completed" });
                    let snapshot = job.write(|r| {
                        r.reports.push(report);
                        if !stopped {
                            r.progress.attacks_done = i + 1;
                            r.progress.done = (i + 1) * examples;
                        }
                        r.clone()
                    });
                    self.persist(&snapshot);
                    if stopped {
                        break;
                    }
                }
                Err(e) => {
                    self.metrics
                        .attacks
                        .with_label_values(&[config_name(&record, i), "failed"])
                        .inc();
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        // Persist the final state before publishing it: once a client can see the job as
        // finished, its file must already say so (a crash right after loses nothing).
        let mut finished = job.record();
        finished.finished_at_ms = Some(now_ms());
        if let Some(e) = error {
            finished.state = JobState::Failed;
            finished.error = Some(e);
        } else if job.cancel.load(Ordering::SeqCst) {
            if finished.cancel_requested {
                finished.state = JobState::Cancelled;
            } else {
                finished.state = JobState::Interrupted;
                finished.error = Some("the server shut down while the job ran".into());
            }
        } else {
            finished.state = JobState::Succeeded;
            finished.gate = finished
                .request
                .gate
                .as_ref()
                .map(|g| g.verdict(&finished.reports));
        }
        self.persist(&finished);
        job.write(|r| *r = finished.clone());
        self.metrics
            .audit_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::info!("audit {} {}", finished.id, finished.state.name());
    }
}

fn config_name(record: &JobRecord, i: usize) -> &'static str {
    record
        .request
        .attacks
        .get(i)
        .map_or("unknown", |a| a.kind.name())
}
