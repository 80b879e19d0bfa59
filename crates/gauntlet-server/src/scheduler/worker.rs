//! The audit worker loop: takes jobs from the queue and runs their plans through the
//! engine's audit runner ([`gauntlet_attacks::audit::run`]), reporting progress into the job
//! record, honouring the cancel flag (checked by the engine once per beam step) and the
//! hold hook, and persisting every finished attack.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gauntlet_attacks::audit::{self, AuditControl, AuditObserver, AuditReport};
use gauntlet_attacks::{Lexicon, Progress};

use super::{lock, Job, Scheduler};
use crate::jobs::JobState;
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
        let observer = JobObserver {
            scheduler: self,
            job,
            examples: record.examples,
        };
        let control = AuditControl {
            cancel: Some(&job.cancel),
            observer: Some(&observer),
        };
        let result = audit::run(
            &work.plan,
            &work.model.model,
            &work.model.name,
            work.lexicon.as_deref().map(|l| l as &dyn Lexicon),
            &work.examples,
            &control,
        );
        // Persist the final state before publishing it: once a client can see the job as
        // finished, its file must already say so (a crash right after loses nothing).
        let mut finished = job.record();
        finished.finished_at_ms = Some(now_ms());
        match result {
            Err(e) => {
                let failed = finished.report.as_ref().map_or(0, |r| r.attacks.len());
                let name = work
                    .plan
                    .attacks
                    .get(failed)
                    .map_or("unknown", |a| a.config.kind.name());
                self.metrics
                    .attacks
                    .with_label_values(&[name, "failed"])
                    .inc();
                finished.state = JobState::Failed;
                finished.error = Some(e.to_string());
            }
            Ok(report) if report.cancelled || job.cancel.load(Ordering::SeqCst) => {
                finished.report = Some(report);
                if finished.cancel_requested {
                    finished.state = JobState::Cancelled;
                } else {
                    finished.state = JobState::Interrupted;
                    finished.error = Some("the server shut down while the job ran".into());
                }
            }
            Ok(report) => {
                finished.report = Some(report);
                finished.state = JobState::Succeeded;
            }
        }
        self.persist(&finished);
        job.write(|r| *r = finished.clone());
        self.metrics
            .audit_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::info!("audit {} {}", finished.id, finished.state.name());
    }
}

/// Progress and finished attacks of one job, into its record.
struct JobObserver<'a> {
    scheduler: &'a Scheduler,
    job: &'a Job,
    /// Examples the job attacks (its shard), per attack.
    examples: usize,
}

impl AuditObserver for JobObserver<'_> {
    fn progress(&self, attack: usize, p: Progress) {
        self.job.write(|r| {
            r.progress.done = attack * self.examples + p.done;
            r.progress.successes = p.successes;
            r.progress.evaluated = p.evaluated;
        });
        let s = self.scheduler;
        while s.hold.load(Ordering::SeqCst)
            && !self.job.cancel.load(Ordering::SeqCst)
            && !s.is_shutting_down()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn attack_finished(&self, partial: &AuditReport) {
        let Some(last) = partial.attacks.last() else {
            return;
        };
        let stopped = last.report.cancelled;
        self.scheduler.metrics.observe_report(
            &last.report,
            if stopped { "cancelled" } else { "completed" },
        );
        let done = partial.attacks.len();
        let snapshot = self.job.write(|r| {
            r.report = Some(partial.clone());
            if !stopped {
                r.progress.attacks_done = done;
                r.progress.done = done * self.examples;
            }
            r.clone()
        });
        self.scheduler.persist(&snapshot);
    }
}
