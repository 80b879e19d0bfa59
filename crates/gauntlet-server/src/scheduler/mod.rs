//! The audit scheduler: a bounded queue, worker threads (plain `std` threads, never the
//! HTTP workers) and the job table (a `DashMap`).
//!
//! Lock order: the queue mutex before a job's record lock; no lock is held while an attack
//! runs except for the brief progress updates. Every state change is written to the
//! [`JobStore`] before it is acknowledged, so a restart finds every accepted job; a job that
//! cannot be written is refused (507/503), never acknowledged and lost.
//!
//! Recovery: a running job checkpoints its finished examples ([`checkpoint`]). On restart,
//! with `scheduler.resume` on, queued and running jobs are queued again through
//! [`Scheduler::restore`] and resume from their checkpoint, or end `interrupted` with the
//! reason when they cannot (their model or dataset changed or is gone); with it off they
//! all end `interrupted`. Cancelling a queued job is immediate; cancelling a running one
//! sets its flag, which the engine checks once per beam step. A graceful stop
//! ([`Scheduler::begin_shutdown`]) stops running jobs the same way at their next beam step;
//! they write a last checkpoint and stay `running` on disk, so the next start resumes them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use gauntlet_attacks::audit::ResolvedPlan;
use gauntlet_attacks::{ExampleReport, Lexicon};
use gauntlet_core::Example;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{summaries_only, JobRecord, JobState, JobView};
use crate::metrics::Metrics;
use crate::registry::{now_ms, LoadedModel};
use crate::store::{result_line, Checkpoint, JobStore};

mod checkpoint;
mod worker;

/// How the scheduler runs and keeps jobs (`[scheduler]`).
#[derive(Debug, Clone, Copy)]
pub struct SchedulerOptions {
    /// Jobs that may wait in the queue.
    pub capacity: usize,
    /// Finished jobs kept.
    pub jobs_kept: usize,
    /// Whether unfinished jobs resume after a restart.
    pub resume: bool,
    /// Longest time between two checkpoints of a running job.
    pub checkpoint_interval: Duration,
}

/// What a queued job needs to run (in memory only).
pub struct JobWork {
    /// The model, held for the job's lifetime.
    pub model: Arc<LoadedModel>,
    /// The plan, checked against the model at submission.
    pub plan: ResolvedPlan,
    /// The whole dataset (the plan's `limit` and `shard` select from it).
    pub examples: Vec<Example>,
    /// The `sem` attack's lexicon, when the server has one.
    pub lexicon: Option<Arc<dyn Lexicon>>,
}

/// A job in the table.
pub struct Job {
    record: RwLock<JobRecord>,
    cancel: AtomicBool,
    work: Mutex<Option<JobWork>>,
}

impl Job {
    fn new(record: JobRecord, work: Option<JobWork>) -> Self {
        Self {
            record: RwLock::new(record),
            cancel: AtomicBool::new(false),
            work: Mutex::new(work),
        }
    }

    /// A copy of the record.
    pub fn record(&self) -> JobRecord {
        self.read(Clone::clone)
    }

    /// Reads the record under its lock.
    pub fn read<T>(&self, f: impl FnOnce(&JobRecord) -> T) -> T {
        match self.record.read() {
            Ok(r) => f(&r),
            Err(p) => f(&p.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut JobRecord) -> T) -> T {
        match self.record.write() {
            Ok(mut r) => f(&mut r),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Outcome of a cancel request.
pub enum Cancelled {
    /// The job was queued and is now cancelled.
    Now(JobView),
    /// The job is running; it stops at its next beam step.
    Requested(JobView),
}

/// The scheduler.
pub struct Scheduler {
    jobs: DashMap<Uuid, Arc<Job>>,
    queue: Mutex<VecDeque<Uuid>>,
    wake: Condvar,
    options: SchedulerOptions,
    store: JobStore,
    metrics: Arc<Metrics>,
    hold: AtomicBool,
    shutdown: AtomicBool,
    workers_alive: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    /// Opens the store and loads its jobs. Unfinished jobs wait for [`Scheduler::restore`]
    /// when resuming is on, and end `interrupted` when it is off.
    pub fn new(
        store: JobStore,
        options: SchedulerOptions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let scheduler = Self {
            jobs: DashMap::new(),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            options,
            store,
            metrics,
            hold: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            workers_alive: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        };
        for mut record in scheduler.store.load_all()? {
            if !record.examples_in_results {
                scheduler.move_examples_to_results(&mut record)?;
            }
            if !record.state.is_finished() && !options.resume {
                tracing::warn!(
                    "audit {} was {} when the server stopped; marking it interrupted (scheduler.resume is off)",
                    record.id,
                    record.state.name()
                );
                record.state = JobState::Interrupted;
                record.error = Some(
                    "the server stopped before the job finished and scheduler.resume is off; submit it again"
                        .into(),
                );
                record.finished_at_ms = Some(now_ms());
                scheduler.store.save(&record)?;
            }
            scheduler
                .jobs
                .insert(record.id, Arc::new(Job::new(record, None)));
        }
        scheduler.prune();
        Ok(scheduler)
    }

    /// Moves the examples of a record written before results files into its results file.
    fn move_examples_to_results(&self, record: &mut JobRecord) -> std::io::Result<()> {
        let mut results = self.store.results(record.id, 0)?;
        let mut lines = Vec::new();
        let mut count = 0;
        for (i, attack) in record.report.iter().flat_map(|r| &r.attacks).enumerate() {
            for example in &attack.report.examples {
                lines.extend(result_line(i, example));
                count += 1;
            }
        }
        let bytes = results.append(&lines)?;
        record.checkpoint = Some(Checkpoint {
            results_bytes: bytes,
            results: count,
            at_ms: now_ms(),
        });
        record.report = record.report.as_ref().map(summaries_only);
        record.examples_in_results = true;
        self.store.save(record)
    }

    /// Queues again every job that was queued or running when the server stopped, oldest
    /// first, with the work `work_of` rebuilds for it; a job it cannot rebuild (its model or
    /// dataset is gone or changed) ends `interrupted` with the reason. Call it once, before
    /// [`Scheduler::start`].
    pub fn restore(&self, work_of: impl Fn(&JobRecord) -> Result<JobWork, String>) {
        let mut pending: Vec<Arc<Job>> = self
            .jobs
            .iter()
            .filter(|j| j.read(|r| !r.state.is_finished()))
            .map(|j| Arc::clone(j.value()))
            .collect();
        pending.sort_by_key(|j| j.read(|r| (r.created_at_ms, r.id)));
        for job in pending {
            let record = job.record();
            let restored = match self.check_results(&record).and_then(|()| work_of(&record)) {
                Ok(work) => {
                    let was = record.state;
                    let record = job.write(|r| {
                        r.state = JobState::Queued;
                        r.resumed += u32::from(r.checkpoint.is_some());
                        r.clone()
                    });
                    tracing::info!(
                        "audit {} was {} when the server stopped; queued again{}",
                        record.id,
                        was.name(),
                        match record.checkpoint {
                            Some(c) => format!(", resuming after {} finished examples", c.results),
                            None => String::new(),
                        }
                    );
                    *lock(&job.work) = Some(work);
                    lock(&self.queue).push_back(record.id);
                    record
                }
                Err(why) => {
                    tracing::warn!("audit {} cannot resume: {why}", record.id);
                    job.write(|r| {
                        r.state = JobState::Interrupted;
                        r.error = Some(format!(
                            "the server stopped before the job finished, and it cannot resume: {why}"
                        ));
                        r.finished_at_ms = Some(now_ms());
                        r.clone()
                    })
                }
            };
            self.persist(&restored);
        }
        self.wake.notify_all();
    }

    /// Starts `n` worker threads.
    pub fn start(self: &Arc<Self>, n: usize) -> std::io::Result<()> {
        let mut threads = lock(&self.threads);
        for i in 0..n {
            let me = Arc::clone(self);
            self.workers_alive.fetch_add(1, Ordering::SeqCst);
            let spawned = std::thread::Builder::new()
                .name(format!("gauntlet-audit-{i}"))
                .spawn(move || {
                    me.work_loop();
                    me.workers_alive.fetch_sub(1, Ordering::SeqCst);
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.workers_alive.fetch_sub(1, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Worker threads alive.
    pub fn workers_alive(&self) -> usize {
        self.workers_alive.load(Ordering::SeqCst)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Holds running jobs at their next progress report until released (or cancelled).
    /// A maintenance and test hook: it makes "a job is running" a stable state.
    pub fn set_hold(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }

    /// Whether a job's results file holds the lines its checkpoint counts.
    fn check_results(&self, record: &JobRecord) -> Result<(), String> {
        let Some(checkpoint) = record.checkpoint else {
            return Ok(());
        };
        let lines = self
            .store
            .read_results(record.id, checkpoint.results_bytes)
            .map_err(|e| format!("its results file cannot be read: {e}"))?;
        if lines.len() != checkpoint.results {
            return Err(format!(
                "its results file holds {} results where its checkpoint counts {}",
                lines.len(),
                checkpoint.results
            ));
        }
        Ok(())
    }

    /// Begins a graceful stop: new audits are refused (503 `shutting_down`), idle workers
    /// exit, and running jobs stop at their next beam step, write a last checkpoint and
    /// stay unfinished on disk (so the next start resumes them). Returns at once; see
    /// [`Scheduler::join_workers`].
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for job in self.jobs.iter() {
            job.cancel.store(true, Ordering::SeqCst);
        }
        // Taking the queue lock orders this wake-up after any worker's check of the flag.
        drop(lock(&self.queue));
        self.wake.notify_all();
    }

    /// Waits until every worker has exited, at most `grace`; returns whether they did.
    pub fn join_workers(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.workers_alive() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
        true
    }

    /// [`Scheduler::begin_shutdown`], then waits for the workers however long they take.
    pub fn shutdown(&self) {
        self.begin_shutdown();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Queues a new job, written to the store (record and an empty results file) before it
    /// is acknowledged; 429 when the queue is full, 507/503 when the store cannot be
    /// written, 503 while shutting down.
    pub fn submit(&self, record: JobRecord, work: JobWork) -> Result<JobView, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::ShuttingDown);
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= self.options.capacity {
            return Err(ApiError::QueueFull(queue.len()));
        }
        let id = record.id;
        let written = self
            .store
            .results(id, 0)
            .and_then(|_| self.store.save(&record));
        if let Err(e) = written {
            let _ = self.store.remove(id);
            return Err(ApiError::storage("the audit was not accepted", &e));
        }
        let view = record.view();
        self.jobs.insert(id, Arc::new(Job::new(record, Some(work))));
        queue.push_back(id);
        drop(queue);
        self.wake.notify_one();
        Ok(view)
    }

    /// A job's example reports, by attack index (its plan's attacks that have any), each in
    /// index order, as far as its last checkpoint holds them.
    pub fn examples(&self, record: &JobRecord) -> Result<Vec<Vec<ExampleReport>>, ApiError> {
        self.results_by_attack(record).map_err(|e| {
            ApiError::Internal(format!(
                "cannot read the results of audit {}: {e}",
                record.id
            ))
        })
    }

    /// What [`Scheduler::examples`] answers, as the store reads it (also what a resuming
    /// job starts from).
    fn results_by_attack(&self, record: &JobRecord) -> std::io::Result<Vec<Vec<ExampleReport>>> {
        let upto = record.checkpoint.map_or(0, |c| c.results_bytes);
        let lines = self.store.read_results(record.id, upto)?;
        let mut by_attack: Vec<Vec<ExampleReport>> = Vec::new();
        for line in lines {
            if by_attack.len() <= line.attack {
                by_attack.resize_with(line.attack + 1, Vec::new);
            }
            by_attack[line.attack].push(line.example);
        }
        let attacks = record.report.as_ref().map_or(0, |r| r.attacks.len());
        if by_attack.len() < attacks {
            by_attack.resize_with(attacks, Vec::new);
        }
        for examples in &mut by_attack {
            examples.sort_by_key(|e| e.index);
        }
        Ok(by_attack)
    }

    /// A job.
    pub fn get(&self, id: Uuid) -> Result<Arc<Job>, ApiError> {
        self.jobs
            .get(&id)
            .map(|j| Arc::clone(j.value()))
            .ok_or_else(|| ApiError::AuditNotFound(id.to_string()))
    }

    /// Every job (optionally in one state), oldest first, after pruning.
    pub fn list(&self, state: Option<JobState>) -> Vec<JobView> {
        self.prune();
        let mut views: Vec<JobView> = self
            .jobs
            .iter()
            .map(|j| j.read(JobRecord::view))
            .filter(|v| state.is_none_or(|s| v.state == s))
            .collect();
        views.sort_by_key(|v| (v.created_at_ms, v.id));
        views
    }

    /// Cancels a job: immediately when queued, at the next beam step when running.
    pub fn cancel(&self, id: Uuid) -> Result<Cancelled, ApiError> {
        let job = self.get(id)?;
        let mut queue = lock(&self.queue);
        let outcome = job.write(|r| match r.state {
            JobState::Queued => {
                // On disk first: a cancel that cannot be written is refused, not forgotten
                // by the next start.
                let mut cancelled = r.clone();
                cancelled.state = JobState::Cancelled;
                cancelled.cancel_requested = true;
                cancelled.finished_at_ms = Some(now_ms());
                self.store
                    .save(&cancelled)
                    .map_err(|e| ApiError::storage("the audit was not cancelled", &e))?;
                queue.retain(|q| *q != id);
                *r = cancelled;
                Ok(true)
            }
            JobState::Running => {
                r.cancel_requested = true;
                job.cancel.store(true, Ordering::SeqCst);
                Ok(false)
            }
            s => Err(ApiError::Conflict(format!(
                "audit {id} is already {}; only queued or running audits can be cancelled",
                s.name()
            ))),
        })?;
        drop(queue);
        let record = job.record();
        if !outcome {
            self.persist(&record);
        }
        if outcome {
            *lock(&job.work) = None;
            self.prune();
            Ok(Cancelled::Now(record.view()))
        } else {
            Ok(Cancelled::Requested(record.view()))
        }
    }

    /// Deletes a finished job and its file.
    pub fn delete(&self, id: Uuid) -> Result<(), ApiError> {
        let job = self.get(id)?;
        let state = job.read(|r| r.state);
        if !state.is_finished() {
            return Err(ApiError::Conflict(format!(
                "audit {id} is {}; cancel it before deleting it",
                state.name()
            )));
        }
        self.store
            .remove(id)
            .map_err(|e| ApiError::storage("the audit was not deleted", &e))?;
        self.jobs.remove(&id);
        Ok(())
    }

    /// Refreshes the queue-depth and jobs-by-state gauges.
    pub fn refresh_gauges(&self) {
        self.metrics.queue_depth.set(lock(&self.queue).len() as i64);
        for state in JobState::ALL {
            let n = self
                .jobs
                .iter()
                .filter(|j| j.read(|r| r.state) == state)
                .count();
            self.metrics
                .jobs
                .with_label_values(&[state.name()])
                .set(n as i64);
        }
    }

    fn persist(&self, record: &JobRecord) {
        if let Err(e) = self.store.save(record) {
            tracing::error!("cannot persist audit {}: {e}", record.id);
        }
    }

    /// Removes the oldest finished jobs beyond `jobs_kept`.
    fn prune(&self) {
        let mut finished: Vec<(u64, Uuid)> = self
            .jobs
            .iter()
            .filter_map(|j| {
                j.read(|r| {
                    r.state
                        .is_finished()
                        .then(|| (r.finished_at_ms.unwrap_or(r.created_at_ms), r.id))
                })
            })
            .collect();
        if finished.len() <= self.options.jobs_kept {
            return;
        }
        finished.sort();
        let excess = finished.len() - self.options.jobs_kept;
        // The file goes first: once a job is gone from the listing, its file must be too,
        // or a restart would resurrect a job the API already dropped.
        for (_, id) in finished.into_iter().take(excess) {
            if let Err(e) = self.store.remove(id) {
                tracing::warn!("cannot delete the file of audit {id}: {e}");
            }
            self.jobs.remove(&id);
        }
    }
}
