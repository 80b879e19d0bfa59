//! What a running job hears from the engine ([`JobObserver`]): progress into its record,
//! each finished example into its results file, and checkpoints.
//!
//! A checkpoint appends the buffered result lines, flushes them to disk, then writes the
//! record that counts them (see [`crate::store`]). One is written at every attack boundary
//! and, while examples finish, at least every `scheduler.checkpoint_interval_ms`. A
//! checkpoint that cannot be written stops the job at its next beam step, and the job fails
//! with the reason: a job that cannot keep its results must not pretend to.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gauntlet_attacks::audit::{AuditObserver, AuditReport};
use gauntlet_attacks::{ExampleReport, Progress};

use super::{lock, Job, Scheduler};
use crate::jobs::summaries_only;
use crate::registry::now_ms;
use crate::store::{result_line, Checkpoint, ResultsFile};

/// Result lines not yet durable, and the file they go to.
struct Pending {
    results: ResultsFile,
    buffer: Vec<u8>,
    lines: usize,
    /// Lines the last checkpoint counts.
    committed: usize,
    last: Instant,
    failed: Option<String>,
}

/// Progress, results and checkpoints of one running job.
pub(super) struct JobObserver<'a> {
    scheduler: &'a Scheduler,
    job: &'a Job,
    /// Examples the job attacks (its shard), per attack.
    examples: usize,
    pending: Mutex<Pending>,
}

impl<'a> JobObserver<'a> {
    /// An observer appending to `results`, whose first `committed` lines are durable.
    pub(super) fn new(
        scheduler: &'a Scheduler,
        job: &'a Job,
        examples: usize,
        results: ResultsFile,
        committed: usize,
    ) -> Self {
        Self {
            scheduler,
            job,
            examples,
            pending: Mutex::new(Pending {
                results,
                buffer: Vec::new(),
                lines: 0,
                committed,
                last: Instant::now(),
                failed: None,
            }),
        }
    }

    /// Why a checkpoint failed, if one did.
    pub(super) fn failure(&self) -> Option<String> {
        lock(&self.pending).failed.clone()
    }

    /// Writes a checkpoint when `force`d or when the interval has passed with lines
    /// waiting.
    pub(super) fn checkpoint(&self, force: bool) {
        let mut pending = lock(&self.pending);
        if pending.failed.is_some() {
            return;
        }
        let due = pending.last.elapsed() >= self.scheduler.options.checkpoint_interval
            && pending.lines > 0;
        if !force && !due {
            return;
        }
        let started = Instant::now();
        let buffer = std::mem::take(&mut pending.buffer);
        let written = pending.results.append(&buffer).and_then(|bytes| {
            let results = pending.committed + pending.lines;
            let snapshot = self.job.write(|r| {
                r.checkpoint = Some(Checkpoint {
                    results_bytes: bytes,
                    results,
                    at_ms: now_ms(),
                });
                r.clone()
            });
            self.scheduler.store.save(&snapshot).map(|()| results)
        });
        match written {
            Ok(results) => {
                let metrics = &self.scheduler.metrics;
                metrics
                    .checkpoint_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.checkpoint_results.inc_by(pending.lines as u64);
                pending.committed = results;
                pending.lines = 0;
                pending.last = Instant::now();
            }
            Err(e) => {
                tracing::error!(
                    "audit {}: cannot write a checkpoint: {e}",
                    self.job.read(|r| r.id)
                );
                pending.failed = Some(format!(
                    "the job store cannot be written, so the job cannot keep its results: {e}"
                ));
                self.job.cancel.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl AuditObserver for JobObserver<'_> {
    fn progress(&self, attack: usize, p: Progress) {
        self.job.write(|r| {
            r.progress.done = attack * self.examples + p.done;
            r.progress.successes = p.successes;
            r.progress.evaluated = p.evaluated;
        });
        self.checkpoint(false);
        let s = self.scheduler;
        while s.hold.load(Ordering::SeqCst)
            && !self.job.cancel.load(Ordering::SeqCst)
            && !s.is_shutting_down()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn example_finished(&self, attack: usize, example: &ExampleReport) {
        let mut pending = lock(&self.pending);
        pending.buffer.extend(result_line(attack, example));
        pending.lines += 1;
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
        if !stopped {
            // Only complete attacks enter the record: a stopped one resumes from its lines.
            let done = partial.attacks.len();
            self.job.write(|r| {
                r.report = Some(summaries_only(partial));
                r.progress.attacks_done = done;
                r.progress.done = done * self.examples;
            });
        }
        self.checkpoint(true);
    }
}
