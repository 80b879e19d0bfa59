//! The audit scheduler: a bounded queue, worker threads (plain `std` threads, never the
//! HTTP workers) and the job table (a `DashMap`).
//!
//! Lock order: the queue mutex before a job's record lock; no lock is held while an attack
//! runs except for the brief progress updates. Every state change is written to the
//! [`JobStore`] before it is acknowledged, so a restart finds every accepted job; jobs found
//! queued or running at start are marked `interrupted`. Cancelling a queued job is
//! immediate; cancelling a running one sets its flag, which the engine checks once per beam
//! step. At shutdown running jobs are stopped the same way and end `interrupted`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use dashmap::DashMap;
use gauntlet_attacks::audit::ResolvedPlan;
use gauntlet_attacks::Lexicon;
use gauntlet_core::Example;
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{JobRecord, JobState, JobView};
use crate::metrics::Metrics;
use crate::registry::{now_ms, LoadedModel};
use crate::store::JobStore;

mod worker;

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
    capacity: usize,
    jobs_kept: usize,
    store: JobStore,
    metrics: Arc<Metrics>,
    hold: AtomicBool,
    shutdown: AtomicBool,
    workers_alive: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    /// Opens the store, restores its jobs (marking unfinished ones `interrupted`).
    pub fn new(
        store: JobStore,
        capacity: usize,
        jobs_kept: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let scheduler = Self {
            jobs: DashMap::new(),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            capacity,
            jobs_kept,
            store,
            metrics,
            hold: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            workers_alive: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        };
        for mut record in scheduler.store.load_all()? {
            if !record.state.is_finished() {
                tracing::warn!(
                    "audit {} was {} when the server stopped; marking it interrupted",
                    record.id,
                    record.state.name()
                );
                record.state = JobState::Interrupted;
                record.error =
                    Some("the server stopped before the job finished; submit it again".into());
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

    /// Stops the workers: queued jobs stay queued (and are interrupted on restart),
    /// running ones stop at their next beam step and end `interrupted`. Waits for the
    /// workers to exit.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for job in self.jobs.iter() {
            job.cancel.store(true, Ordering::SeqCst);
        }
        self.wake.notify_all();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Queues a new job (persisted before it is acknowledged); 429 when the queue is full.
    pub fn submit(&self, record: JobRecord, work: JobWork) -> Result<JobView, ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::NotReady("the server is shutting down".into()));
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            return Err(ApiError::QueueFull(queue.len()));
        }
        self.store
            .save(&record)
            .map_err(|e| ApiError::Internal(format!("cannot persist the job: {e}")))?;
        let id = record.id;
        let view = record.view();
        self.jobs.insert(id, Arc::new(Job::new(record, Some(work))));
        queue.push_back(id);
        drop(queue);
        self.wake.notify_one();
        Ok(view)
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
                queue.retain(|q| *q != id);
                r.state = JobState::Cancelled;
                r.cancel_requested = true;
                r.finished_at_ms = Some(now_ms());
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
        self.persist(&record);
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
        self.jobs.remove(&id);
        self.store
            .remove(id)
            .map_err(|e| ApiError::Internal(format!("cannot delete the job file: {e}")))
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
        if finished.len() <= self.jobs_kept {
            return;
        }
        finished.sort();
        let excess = finished.len() - self.jobs_kept;
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
