//! Attack speed of the engine on one bundle: ms per attacked example, success, passes, and
//! the engine's overhead over the model calls it makes, measured side by side in one run.
//!
//! Usage: `attack_speed BUNDLE DATA_FILE LIMIT ATTACK BEAM [--reference|--both] [--device cpu|cuda] [--batch N]`.
//! Prints one JSON object. Every model call of the attack (forward, forward + backward,
//! device scoring) is recorded with its inputs and replayed alone afterwards, so
//! `model_ms` is the time of exactly the same passes with the same batch shapes, and
//! `overhead` = (attack wall time − model_ms) / model_ms. `--reference` runs the host
//! reference scoring path instead of the fast one; `fast_equals_reference` is filled when
//! both ran (the reports compared field by field, wall times aside). For an ONNX bundle,
//! `interpreter_operators` splits the tch interpreter's time in the attack by operator type.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use gauntlet_attacks::{AttackConfig, AttackKind, AttackReport, Attacker, ModelRef, RunControl};
use gauntlet_backends::{LoadOptions, LoadedBundle};
use gauntlet_core::dataset::{read_raw, resolve};
use gauntlet_core::{
    Classifier, DeviceChoice, EmbeddingTable, Example, FlipBatch, FlipQuery, GradientBatch,
    InputKind, Label, ModelError, Probabilities, ScoredFlip, TargetMask, TokenIds, WhiteBox,
};

/// One recorded model call.
enum Call {
    Predict(Vec<TokenIds>),
    Gradients(Vec<TokenIds>, Vec<usize>),
    Flips(Vec<TokenIds>, Vec<FlipQuery>, Vec<TargetMask>, usize),
    Scores(
        Vec<TokenIds>,
        Vec<Vec<f32>>,
        Vec<FlipQuery>,
        Vec<TargetMask>,
        usize,
    ),
}

/// Forwards every call to the model and records it.
struct Recorder<'a> {
    inner: &'a dyn WhiteBox,
    calls: Mutex<Vec<Call>>,
    in_model: Mutex<Duration>,
}

impl Recorder<'_> {
    fn timed<T>(&self, call: Call, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        if let Ok(mut t) = self.in_model.lock() {
            *t += started.elapsed();
        }
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        out
    }

    /// Replays every recorded call; the time they take alone, in all and per kind of call
    /// (`predict`, `gradients`, `flips`, `scores`), with the calls and states of each kind.
    fn replay(&self) -> Result<(Duration, serde_json::Value)> {
        let calls = self.calls.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut kinds = [(Duration::ZERO, 0usize, 0usize); 4];
        let started = Instant::now();
        for call in calls.iter() {
            let at = Instant::now();
            let (kind, states) = match call {
                Call::Predict(b) => (0, self.inner.predict(b).map(|_| b.len())?),
                Call::Gradients(b, l) => (1, self.inner.loss_gradients(b, l).map(|_| b.len())?),
                Call::Flips(b, q, m, k) => {
                    (2, self.inner.top_word_flips(b, q, m, *k).map(|_| b.len())?)
                }
                Call::Scores(b, g, q, m, k) => (
                    3,
                    self.inner
                        .score_word_flips(b, g, q, m, *k)
                        .map(|_| b.len())?,
                ),
            };
            let entry = &mut kinds[kind];
            entry.0 += at.elapsed();
            entry.1 += 1;
            entry.2 += states;
        }
        let total = started.elapsed();
        let names = ["predict", "gradients", "flips", "scores"];
        let breakdown: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(kinds)
            .filter(|(_, (_, calls, _))| *calls > 0)
            .map(|(name, (time, calls, states))| {
                let value = serde_json::json!({
                    "ms": time.as_secs_f64() * 1000.0,
                    "calls": calls,
                    "states": states,
                });
                ((*name).to_owned(), value)
            })
            .collect();
        Ok((total, serde_json::Value::Object(breakdown)))
    }
}

impl Classifier for Recorder<'_> {
    fn labels(&self) -> &[Label] {
        self.inner.labels()
    }
    fn input_kind(&self) -> InputKind {
        self.inner.input_kind()
    }
    fn max_len(&self) -> usize {
        self.inner.max_len()
    }
    fn predict(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        self.timed(Call::Predict(batch.to_vec()), || self.inner.predict(batch))
    }
}

impl WhiteBox for Recorder<'_> {
    fn embedding_table(&self) -> &EmbeddingTable {
        self.inner.embedding_table()
    }
    fn predict_embedded(
        &self,
        batch: &[TokenIds],
        embeddings: &[Vec<f32>],
    ) -> Result<Probabilities, ModelError> {
        self.inner.predict_embedded(batch, embeddings)
    }
    fn loss_gradients(
        &self,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<GradientBatch, ModelError> {
        let call = Call::Gradients(batch.to_vec(), labels.to_vec());
        self.timed(call, || self.inner.loss_gradients(batch, labels))
    }
    fn top_word_flips(
        &self,
        batch: &[TokenIds],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<FlipBatch, ModelError> {
        let call = Call::Flips(batch.to_vec(), queries.to_vec(), masks.to_vec(), k);
        self.timed(call, || self.inner.top_word_flips(batch, queries, masks, k))
    }
    fn score_word_flips(
        &self,
        batch: &[TokenIds],
        gradients: &[Vec<f32>],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<Vec<Vec<ScoredFlip>>, ModelError> {
        let call = Call::Scores(
            batch.to_vec(),
            gradients.to_vec(),
            queries.to_vec(),
            masks.to_vec(),
            k,
        );
        self.timed(call, || {
            self.inner
                .score_word_flips(batch, gradients, queries, masks, k)
        })
    }
    fn padding_is_zero(&self) -> bool {
        self.inner.padding_is_zero()
    }
}

fn without_times(mut r: AttackReport) -> AttackReport {
    r.summary.wall_time_ms = 0.0;
    r.summary.examples_per_second = 0.0;
    r.examples.iter_mut().for_each(|e| e.wall_time_ms = 0.0);
    r
}

struct Run {
    report: AttackReport,
    wall: Duration,
    model: Duration,
    breakdown: serde_json::Value,
    /// The tch interpreter's time per operator during the attack (ONNX bundles).
    operators: Option<Vec<serde_json::Value>>,
}

fn attack(
    bundle: &LoadedBundle,
    config: &AttackConfig,
    examples: &[Example],
    reference: bool,
) -> Result<Run> {
    let white_box = bundle
        .white_box()
        .context("the bundle gives no gradients on this runtime")?;
    let recorder = Recorder {
        inner: white_box,
        calls: Mutex::new(Vec::new()),
        in_model: Mutex::new(Duration::ZERO),
    };
    let attacker = Attacker::new(
        ModelRef::WhiteBox(&recorder),
        bundle.codec(),
        config.clone(),
    )?;
    let attacker = if reference {
        attacker.with_reference_scoring()
    } else {
        attacker
    };
    let prepared = attacker.prepare(examples)?;
    // Only the attack's own calls go into the operator breakdown.
    let _ = bundle.interpreter_profile();
    let started = Instant::now();
    let report = attacker.run(&prepared, &RunControl::default())?;
    let wall = started.elapsed();
    let operators = bundle.interpreter_profile().map(|times| {
        times
            .iter()
            .map(|t| {
                let ms = t.time.as_secs_f64() * 1000.0;
                serde_json::json!({"op": t.op, "calls": t.calls, "ms": ms})
            })
            .collect::<Vec<_>>()
    });
    let (model, breakdown) = recorder.replay()?;
    Ok(Run {
        report,
        wall,
        model,
        breakdown,
        operators,
    })
}

/// Runs `f` three times when a run takes under 5 s (once otherwise) and keeps the run of
/// median wall time.
fn median_run(f: impl Fn() -> Result<Run>) -> Result<Run> {
    let mut runs = vec![f()?];
    if runs[0].wall < Duration::from_secs(5) {
        runs.push(f()?);
        runs.push(f()?);
    }
    runs.sort_by_key(|r| r.wall);
    let middle = runs.len() / 2;
    Ok(runs.swap_remove(middle))
}

fn main() -> Result<()> {
    gauntlet_backends::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        bail!("usage: attack_speed BUNDLE DATA_FILE LIMIT ATTACK BEAM [--reference|--both] [--device cpu|cuda] [--batch N]");
    }
    let (dir, data) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let limit: usize = args[3].parse().context("LIMIT")?;
    let kind: AttackKind = serde_json::from_value(serde_json::Value::String(args[4].clone()))
        .with_context(|| format!("unknown attack {:?}", args[4]))?;
    let beam: usize = args[5].parse().context("BEAM")?;
    let rest = &args[6..];
    let mode = rest
        .iter()
        .find(|a| *a == "--reference" || *a == "--both")
        .map_or("fast", |a| a.trim_start_matches("--"));
    let device = match rest.iter().position(|a| a == "--device") {
        Some(i) => match rest.get(i + 1).map(String::as_str) {
            Some("cuda") => DeviceChoice::Cuda,
            Some("cpu") => DeviceChoice::Cpu,
            other => bail!("--device takes cpu or cuda, not {other:?}"),
        },
        None => DeviceChoice::Cpu,
    };
    let options = LoadOptions {
        device,
        ..LoadOptions::default()
    };
    let bundle =
        LoadedBundle::load(&dir, &options).with_context(|| format!("bundle {}", dir.display()))?;
    let examples: Vec<Example> = resolve(&data, read_raw(&data)?, &bundle.manifest().labels)?
        .into_iter()
        .take(limit)
        .collect();
    let mut config = AttackConfig {
        beam_width: beam,
        seed: 0,
        ..AttackConfig::new(kind)
    };
    if let Some(i) = rest.iter().position(|a| a == "--batch") {
        config.batch_size = rest.get(i + 1).context("--batch N")?.parse()?;
    }
    // Warm-up: libtorch's first passes allocate and pick kernels.
    attack(&bundle, &config, &examples[..examples.len().min(8)], false)?;
    // Short runs are repeated and the median kept: one run of the word attacks takes well
    // under a second, where a single scheduler hiccup shows.
    let fast = (mode != "reference")
        .then(|| median_run(|| attack(&bundle, &config, &examples, false)))
        .transpose()?;
    let reference = (mode != "fast")
        .then(|| attack(&bundle, &config, &examples, true))
        .transpose()?;
    let main = fast.as_ref().or(reference.as_ref()).context("no run")?;
    let s = &main.report.summary;
    let attacked = s.attacked.max(1) as f64;
    let examples_run = main.report.examples.len().max(1) as f64;
    let passes = |f: fn(&gauntlet_attacks::ExampleReport) -> u64| {
        main.report
            .examples
            .iter()
            .filter(|e| e.skip_reason.is_none())
            .map(f)
            .sum::<u64>() as f64
            / attacked
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let out = serde_json::json!({
        "model": bundle.manifest().architecture,
        "attack": args[4],
        "beam": beam,
        "batch_size": config.batch_size,
        "mode": mode,
        "device": bundle.device_name(),
        "threads": tch::get_num_threads(),
        "examples": examples_run,
        "attacked": s.attacked,
        "clean_accuracy": s.clean_accuracy,
        "success_rate": s.success_rate,
        "ms_per_attacked": ms(main.wall) / attacked,
        "model_ms_per_attacked": ms(main.model) / attacked,
        "model_calls": main.breakdown,
        "interpreter_operators": main.operators,
        "overhead": (main.wall.as_secs_f64() - main.model.as_secs_f64()) / main.model.as_secs_f64().max(1e-9),
        "forward_per_attacked": passes(|e| e.forward_passes),
        "backward_per_attacked": passes(|e| e.backward_passes),
        "reference_ms_per_attacked": reference.as_ref().map(|r| ms(r.wall) / attacked),
        "reference_success_rate": reference.as_ref().map(|r| r.report.summary.success_rate),
        "fast_equals_reference": match (&fast, &reference) {
            (Some(f), Some(r)) => Some(without_times(f.report.clone()) == without_times(r.report.clone())),
            _ => None,
        },
    });
    println!("{out}");
    Ok(())
}
