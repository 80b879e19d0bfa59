//! Dynamic batching of predictions: concurrent predict requests for one model are queued
//! and run as one model call (as text-embeddings-inference and Triton do).
//!
//! Invariants:
//! - One [`Batcher`] per loaded model, with one dedicated thread. The thread blocks for the
//!   first request, then gathers queued requests until `max_batch_texts` texts are
//!   collected or `max_wait` has passed since the first (0: only what is already queued).
//!   A request that would overflow the batch waits for the next one; a request larger than
//!   `max_batch_texts` runs alone. No request is refused for its size.
//! - Requests keep their order inside a batch, and each gets exactly its own rows back.
//! - Encoding is per request: a request whose texts do not encode gets its own error and
//!   leaves the batch; a failed (or panicking) model call fails every request of its batch.
//! - The queue is bounded: [`Batcher::submit`] never blocks and answers
//!   [`ApiError::PredictQueueFull`] (429) when `queue_capacity` requests wait.
//! - Every queued request holds its model (`Arc<M>`), so a model is dropped only when no
//!   request is queued; dropping the [`Batcher`] closes the queue and its thread ends.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_core::{Probabilities, TokenIds};
use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// What the batcher needs of a model: per-request encoding and one batched call.
pub trait BatchModel: Send + Sync + 'static {
    /// Encodes one request's texts (errors are that request's alone).
    fn encode(&self, texts: &[String]) -> Result<Vec<TokenIds>, ApiError>;
    /// Class probabilities of every text of the batch, in order.
    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ApiError>;
}

/// How a batcher gathers requests.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Most texts in one model call (a larger request runs alone).
    pub max_batch_texts: usize,
    /// Longest wait for more requests after the first one of a batch.
    pub max_wait: Duration,
    /// Requests that may wait in the queue.
    pub queue_capacity: usize,
}

/// The answer to one request: its rows of the batch's probabilities.
pub type Answer = Result<Probabilities, ApiError>;

/// One queued request.
pub struct Job<M> {
    model: Arc<M>,
    texts: Vec<String>,
    reply: oneshot::Sender<Answer>,
}

/// State shared by the handle and the thread.
#[derive(Default)]
struct Shared {
    hold: AtomicBool,
    /// The thread holds a request because of `hold`.
    holding: AtomicBool,
    /// Requests accepted and not yet taken by the thread.
    queued: AtomicUsize,
}

/// The queue and thread of one model.
pub struct Batcher<M> {
    tx: SyncSender<Job<M>>,
    capacity: usize,
    shared: Arc<Shared>,
}

impl<M> std::fmt::Debug for Batcher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("capacity", &self.capacity)
            .field("queued", &self.shared.queued.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<M: BatchModel> Batcher<M> {
    /// Starts the batcher's thread, named after the model; `batch_texts` observes the texts
    /// of every model call.
    pub fn new(name: &str, options: BatchOptions, batch_texts: Histogram) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(options.queue_capacity);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("predict-{name}"))
            .spawn(move || run(&rx, options, &batch_texts, &thread_shared))?;
        Ok(Self {
            tx,
            capacity: options.queue_capacity,
            shared,
        })
    }

    /// Queues `texts` for `model` (the model this batcher belongs to); the receiver gets
    /// the answer. Never blocks: a full queue is [`ApiError::PredictQueueFull`].
    pub fn submit(
        &self,
        model: Arc<M>,
        texts: Vec<String>,
    ) -> Result<oneshot::Receiver<Answer>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let sent = self.tx.try_send(Job {
            model,
            texts,
            reply,
        });
        if let Err(e) = sent {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => ApiError::PredictQueueFull(self.capacity),
                TrySendError::Disconnected(_) => {
                    ApiError::Internal("the model's predict thread has stopped".into())
                }
            });
        }
        Ok(answer)
    }

    /// Requests accepted and not yet taken into a batch by the thread.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::SeqCst)
    }

    /// A maintenance and test hook: while set, the thread holds the first request it takes
    /// (before gathering more), so "the queue is full" becomes a stable state.
    pub fn set_hold(&self, hold: bool) {
        self.shared.hold.store(hold, Ordering::SeqCst);
    }

    /// Whether the thread holds a request because of [`Batcher::set_hold`].
    pub fn holding(&self) -> bool {
        self.shared.holding.load(Ordering::SeqCst)
    }
}

fn texts<M>(jobs: &[Job<M>]) -> usize {
    jobs.iter().map(|j| j.texts.len()).sum()
}

/// Gathers one batch, starting with `first`: queued requests are added while they fit in
/// `max_texts`, waiting until `max_wait` after the start for more. The first request that
/// does not fit is returned as the next batch's first.
fn gather<M>(
    rx: &Receiver<Job<M>>,
    first: Job<M>,
    max_texts: usize,
    max_wait: Duration,
    queued: &AtomicUsize,
) -> (Vec<Job<M>>, Option<Job<M>>) {
    let deadline = Instant::now() + max_wait;
    let mut batch = vec![first];
    while texts(&batch) < max_texts {
        let next = match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => rx.recv_timeout(left).ok(),
            _ => rx.try_recv().ok(),
        };
        let Some(job) = next else {
            break;
        };
        queued.fetch_sub(1, Ordering::SeqCst);
        if texts(&batch) + job.texts.len() > max_texts {
            return (batch, Some(job));
        }
        batch.push(job);
    }
    (batch, None)
}

/// Encodes every request, runs one model call over those that encode, and answers all.
fn run_batch<M: BatchModel>(batch: Vec<Job<M>>, batch_texts: &Histogram) {
    let Some(model) = batch.first().map(|j| Arc::clone(&j.model)) else {
        return;
    };
    let mut ids = Vec::new();
    let mut ready = Vec::with_capacity(batch.len());
    for job in batch {
        match model.encode(&job.texts) {
            Ok(encoded) => {
                ready.push((job.reply, encoded.len()));
                ids.extend(encoded);
            }
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }
    if ready.is_empty() {
        return;
    }
    batch_texts.observe(ids.len() as f64);
    let result = catch_unwind(AssertUnwindSafe(|| model.predict(&ids)))
        .unwrap_or_else(|_| Err(ApiError::Internal("the model call panicked".into())))
        .and_then(|p| {
            if p.len() == ids.len() && p.values.len() == ids.len() * p.classes {
                Ok(p)
            } else {
                Err(ApiError::Internal(format!(
                    "the model answered {} rows for {} texts",
                    p.len(),
                    ids.len()
                )))
            }
        });
    match result {
        Ok(probs) => {
            let mut rows = probs.values.chunks_exact(probs.classes.max(1));
            for (reply, n) in ready {
                let values = rows.by_ref().take(n).flatten().copied().collect();
                let _ = reply.send(Ok(Probabilities {
                    classes: probs.classes,
                    values,
                }));
            }
        }
        Err(e) => {
            for (reply, _) in ready {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The thread: one batch after another until the queue is closed.
fn run<M: BatchModel>(
    rx: &Receiver<Job<M>>,
    options: BatchOptions,
    batch_texts: &Histogram,
    shared: &Shared,
) {
    let mut carried: Option<Job<M>> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => {
                    shared.queued.fetch_sub(1, Ordering::SeqCst);
                    job
                }
                Err(_) => return,
            },
        };
        if shared.hold.load(Ordering::SeqCst) {
            shared.holding.store(true, Ordering::SeqCst);
            while shared.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2));
            }
            shared.holding.store(false, Ordering::SeqCst);
        }
        let (batch, next) = gather(
            rx,
            first,
            options.max_batch_texts,
            options.max_wait,
            &shared.queued,
        );
        carried = next;
        run_batch(batch, batch_texts);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    use prometheus::HistogramOpts;

    /// Ids are the texts' numbers; probabilities are `[id, -id]`. "bad" does not encode,
    /// "boom" fails the model call.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<usize>>,
    }

    impl BatchModel for Fake {
        fn encode(&self, texts: &[String]) -> Result<Vec<TokenIds>, ApiError> {
            texts
                .iter()
                .map(|t| match t.as_str() {
                    "bad" => Err(ApiError::BadRequest("bad text".into())),
                    "boom" => Ok(TokenIds::Words(vec![u32::MAX])),
                    _ => Ok(TokenIds::Words(vec![t.parse().unwrap()])),
                })
                .collect()
        }

        fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ApiError> {
            self.calls.lock().unwrap().push(batch.len());
            let ids: Vec<u32> = batch
                .iter()
                .map(|ids| match ids {
                    TokenIds::Words(w) => w[0],
                    TokenIds::Chars(_) => unreachable!(),
                })
                .collect();
            if ids.contains(&u32::MAX) {
                return Err(ApiError::Internal("boom".into()));
            }
            let values = ids.iter().flat_map(|&id| [id as f32, -(id as f32)]);
            Ok(Probabilities {
                classes: 2,
                values: values.collect(),
            })
        }
    }

    fn job(model: &Arc<Fake>, texts: &[&str]) -> (Job<Fake>, oneshot::Receiver<Answer>) {
        let (reply, rx) = oneshot::channel();
        let texts = texts.iter().map(|t| (*t).to_owned()).collect();
        let model = Arc::clone(model);
        (
            Job {
                model,
                texts,
                reply,
            },
            rx,
        )
    }

    fn histogram() -> Histogram {
        Histogram::with_opts(HistogramOpts::new("t", "t")).unwrap()
    }

    fn sizes(jobs: &[Job<Fake>]) -> Vec<usize> {
        jobs.iter().map(|j| j.texts.len()).collect()
    }

    #[test]
    fn gather_fills_up_to_the_limit_and_carries_the_overflow() {
        let m = Arc::new(Fake::default());
        let (tx, rx) = sync_channel(8);
        let q = AtomicUsize::new(100);
        for texts in [&["1", "2"][..], &["3"], &["4", "5"], &["6"]] {
            tx.send(job(&m, texts).0).unwrap();
        }
        let first = job(&m, &["0"]).0;
        // 1 + 2 + 1 = 4 fit; the next two texts would make 6 > 5.
        let (batch, next) = gather(&rx, first, 5, Duration::ZERO, &q);
        assert_eq!(sizes(&batch), [1, 2, 1]);
        let next = next.unwrap();
        assert_eq!(next.texts, ["4", "5"]);
        let (batch, next) = gather(&rx, next, 5, Duration::ZERO, &q);
        assert_eq!((sizes(&batch), next.is_none()), (vec![2, 1], true));
    }

    #[test]
    fn gather_without_wait_takes_only_what_is_queued_and_oversize_runs_alone() {
        let m = Arc::new(Fake::default());
        let (tx, rx) = sync_channel(8);
        let q = AtomicUsize::new(100);
        let (batch, next) = gather(&rx, job(&m, &["1"]).0, 4, Duration::ZERO, &q);
        assert_eq!((sizes(&batch), next.is_none()), (vec![1], true));
        tx.send(job(&m, &["2"]).0).unwrap();
        let big = job(&m, &["1", "2", "3", "4", "5"]).0;
        let (batch, next) = gather(&rx, big, 4, Duration::from_secs(60), &q);
        assert_eq!((sizes(&batch), next.is_none()), (vec![5], true));
        // What waits stays queued for the next batch.
        assert_eq!(rx.try_recv().unwrap().texts, ["2"]);
    }

    #[test]
    fn gather_waits_for_more_until_the_deadline() {
        let m = Arc::new(Fake::default());
        let (tx, rx) = sync_channel(8);
        let q = AtomicUsize::new(100);
        let late = job(&m, &["2"]).0;
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(late).unwrap();
        });
        // The limit is reached by the late request, so a long wait ends early.
        let (batch, _) = gather(&rx, job(&m, &["1"]).0, 2, Duration::from_secs(60), &q);
        assert_eq!(sizes(&batch), [1, 1]);
        sender.join().unwrap();
        // The sender is gone: the wait ends at the disconnect, with what there is.
        let (batch, _) = gather(&rx, job(&m, &["1"]).0, 2, Duration::from_secs(60), &q);
        assert_eq!(sizes(&batch), [1]);
    }

    #[test]
    fn a_batch_answers_each_request_its_rows_and_errors_stay_per_request() {
        let m = Arc::new(Fake::default());
        let (a, ra) = job(&m, &["1", "2"]);
        let (b, mut rb) = job(&m, &["bad"]);
        let (c, rc) = job(&m, &["3"]);
        let h = histogram();
        run_batch(vec![a, b, c], &h);
        assert_eq!(*m.calls.lock().unwrap(), [3]);
        assert_eq!(
            ra.blocking_recv().unwrap().unwrap().values,
            [1., -1., 2., -2.]
        );
        let e = rb.try_recv().unwrap().unwrap_err();
        assert_eq!(e.kind().code, "bad_request");
        assert_eq!(rc.blocking_recv().unwrap().unwrap().values, [3., -3.]);
        assert_eq!(h.get_sample_count(), 1);
        assert_eq!(h.get_sample_sum(), 3.0);
        // A failed model call fails every request of its batch.
        let (a, ra) = job(&m, &["1"]);
        let (b, rb) = job(&m, &["boom"]);
        run_batch(vec![a, b], &h);
        for r in [ra, rb] {
            assert_eq!(
                r.blocking_recv().unwrap().unwrap_err().kind().code,
                "internal"
            );
        }
    }

    #[test]
    fn the_thread_batches_and_a_full_queue_is_refused() {
        let m = Arc::new(Fake::default());
        let options = BatchOptions {
            max_batch_texts: 8,
            max_wait: Duration::ZERO,
            queue_capacity: 2,
        };
        let batcher = Batcher::new("fake", options, histogram()).unwrap();
        batcher.set_hold(true);
        // The thread takes the first request and holds it; the queue takes two more.
        let mut answers = vec![batcher.submit(Arc::clone(&m), vec!["0".into()]).unwrap()];
        while !batcher.holding() {
            std::thread::yield_now();
        }
        for i in 1..3 {
            answers.push(batcher.submit(Arc::clone(&m), vec![i.to_string()]).unwrap());
        }
        assert_eq!(batcher.queued(), 2);
        let refused = batcher
            .submit(Arc::clone(&m), vec!["9".into()])
            .unwrap_err();
        assert_eq!(refused.kind().code, "queue_full");
        batcher.set_hold(false);
        for (i, a) in answers.into_iter().enumerate() {
            let want = [i as f32, -(i as f32)];
            assert_eq!(a.blocking_recv().unwrap().unwrap().values, want);
        }
        assert_eq!(batcher.queued(), 0);
        // The held request ran with every request queued behind it.
        assert_eq!(*m.calls.lock().unwrap(), [3]);
    }
}
