//! The audit worker loop: takes jobs from the queue and runs their plans through the
//! engine's audit runner ([`gauntlet_attacks::audit::run`]), from their checkpoint when
//! they resume, with a [`JobObserver`] that reports progress and writes checkpoints,
//! honouring the cancel flag (checked by the engine once per beam step) and the hold hook.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Instant;

use gauntlet_attacks::audit::{self, AuditControl, AuditResume, NamedReport};
use gauntlet_attacks::{ExampleReport, Lexicon};

use super::checkpoint::JobObserver;
use super::{lock, Job, Scheduler};
use crate::jobs::{summaries_only, JobRecord, JobState};
use crate::registry::now_ms;
use crate::store::ResultsFile;

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
            r.started_at_ms.get_or_insert_with(now_ms);
            Some(r.clone())
        });
        let Some(record) = starting else { return };
        let started = Instant::now();
        let prepared = self
            .store
            .save(&record)
            .map_err(|e| format!("the job store cannot be written: {e}"))
            .and_then(|()| self.resume_point(&record));
        let (resume, results, committed) = match prepared {
            Ok(p) => p,
            Err(why) => {
                self.finish(job, |r| {
                    r.state = JobState::Failed;
                    r.error = Some(why);
                });
                return;
            }
        };
        let observer = JobObserver::new(self, job, record.examples, results, committed);
        let control = AuditControl {
            cancel: Some(&job.cancel),
            observer: Some(&observer),
            resume: resume.as_ref(),
        };
        let result = audit::run(
            &work.plan,
            &work.model.model,
            &work.model.name,
            work.lexicon.as_deref().map(|l| l as &dyn Lexicon),
            &work.examples,
            &control,
        );
        observer.checkpoint(true);
        let draining = self.is_shutting_down() && self.options.resume;
        let state = self.finish(job, |r| match (result, observer.failure()) {
            (_, Some(why)) => {
                r.state = JobState::Failed;
                r.error = Some(why);
            }
            (Err(e), None) => {
                let failed = r.report.as_ref().map_or(0, |r| r.attacks.len());
                let name = work
                    .plan
                    .attacks
                    .get(failed)
                    .map_or("unknown", |a| a.config.kind.name());
                self.metrics
                    .attacks
                    .with_label_values(&[name, "failed"])
                    .inc();
                r.state = JobState::Failed;
                r.error = Some(e.to_string());
            }
            (Ok(report), None) if report.cancelled || job.cancel.load(Ordering::SeqCst) => {
                if r.cancel_requested {
                    r.state = JobState::Cancelled;
                    r.report = Some(summaries_only(&report));
                } else if draining {
                    // Stays running on disk, with its last checkpoint: the next start
                    // resumes it.
                    r.finished_at_ms = None;
                } else {
                    r.state = JobState::Interrupted;
                    r.report = Some(summaries_only(&report));
                    r.error = Some(
                        "the server shut down while the job ran and scheduler.resume is off".into(),
                    );
                }
            }
            (Ok(report), None) => {
                r.report = Some(summaries_only(&report));
                r.state = JobState::Succeeded;
            }
        });
        self.metrics
            .audit_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            "audit {} {}",
            record.id,
            if state == JobState::Running {
                "stopped at a checkpoint; it resumes at the next start"
            } else {
                state.name()
            }
        );
    }

    /// Applies the job's final change: on disk first, then in memory (once a client can
    /// see the job as finished, its file already says so, unless the store failed, which
    /// is logged). Returns the new state.
    fn finish(&self, job: &Job, change: impl FnOnce(&mut JobRecord)) -> JobState {
        let mut finished = job.record();
        finished.finished_at_ms = Some(now_ms());
        change(&mut finished);
        self.persist(&finished);
        let state = finished.state;
        job.write(|r| *r = finished);
        state
    }

    /// What an interrupted job resumes from (its finished attacks and the running attack's
    /// examples, read from its results file up to the checkpoint), its results file cut to
    /// that checkpoint, and the lines it counts.
    fn resume_point(
        &self,
        record: &JobRecord,
    ) -> Result<(Option<AuditResume>, ResultsFile, usize), String> {
        let checkpoint = record.checkpoint.unwrap_or_default();
        let results = self
            .store
            .results(record.id, checkpoint.results_bytes)
            .map_err(|e| format!("cannot open the job's results file: {e}"))?;
        if record.checkpoint.is_none() {
            return Ok((None, results, 0));
        }
        let mut by_attack = self
            .results_by_attack(record)
            .map_err(|e| format!("cannot read the job's checkpoint: {e}"))?
            .into_iter();
        let mut finished: Vec<NamedReport> = record
            .report
            .iter()
            .flat_map(|r| r.attacks.iter().cloned())
            .take_while(|a| !a.report.cancelled)
            .collect();
        for attack in &mut finished {
            attack.report.examples = by_attack.next().unwrap_or_default();
        }
        let partial: BTreeMap<usize, ExampleReport> = by_attack
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.index, e))
            .collect();
        if by_attack.any(|rest| !rest.is_empty()) {
            return Err("the results file holds attacks beyond the checkpoint's".into());
        }
        Ok((
            Some(AuditResume { finished, partial }),
            results,
            checkpoint.results,
        ))
    }
}
