//! `gauntlet-train`: train native classifiers into bundles, evaluate them, and classify a
//! few texts with one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gauntlet_backends::{LoadOptions, LoadedBundle};
use gauntlet_core::dataset::{read_labelled, read_raw};
use gauntlet_core::{DeviceChoice, TokenIds};
use gauntlet_models::export::export_bundle;
use gauntlet_models::network::apply_overrides;
use gauntlet_models::{save_bundle, Architecture};
use gauntlet_train::adversarial::{AdversarialConfig, Method};
use gauntlet_train::stats::paired_t_test;
use gauntlet_train::{evaluate, read_split, train, Evaluation, Progress, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "gauntlet-train",
    version,
    about = "Train and evaluate Gauntlet text classifiers"
)]
struct Cli {
    /// libtorch intra-op threads (default: libtorch's choice, every core).
    #[arg(long, global = true)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and write a bundle.
    Train(Box<TrainArgs>),
    /// Evaluate a bundle on a labelled dataset.
    Eval {
        /// Bundle directory.
        #[arg(long)]
        model: PathBuf,
        /// Dataset (.tsv, .csv or .jsonl).
        #[arg(long)]
        data: PathBuf,
        /// Examples per forward pass.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare two bundles on the same test data: accuracy, mean loss, and a paired t-test
    /// on per-example losses.
    Compare {
        /// The two bundle directories.
        #[arg(long, num_args = 2, required = true)]
        models: Vec<PathBuf>,
        /// Test data.
        #[arg(long)]
        data: PathBuf,
        /// auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Classify texts given on the command line.
    Predict {
        /// Bundle directory.
        #[arg(long)]
        model: PathBuf,
        /// auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Texts to classify.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Export a native bundle as an ONNX bundle (model.onnx, manifest, tokenizer).
    ExportOnnx {
        /// Native bundle directory.
        #[arg(long)]
        model: PathBuf,
        /// Output bundle directory (must be new, empty, or an earlier bundle to replace).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// word-cnn, char-cnn-lstm or birnn.
    #[arg(long)]
    arch: String,
    /// Training data (.tsv, .csv or .jsonl).
    #[arg(long)]
    train: PathBuf,
    /// Development data for model selection (default: hold out 10% of train).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Output bundle directory (replaced if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Stop once this many epochs in a row have not lowered the dev loss (default: run
    /// every epoch); the lowest dev loss's weights are kept either way.
    #[arg(long)]
    patience: Option<usize>,
    /// Examples per step.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Random seed (weights, dropout, shuffling).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Maximum words read per text.
    #[arg(long, default_value_t = 100)]
    max_length: usize,
    /// Maximum characters read per word (character models).
    #[arg(long, default_value_t = 16)]
    max_word_length: usize,
    /// Minimum token count to enter the vocabulary.
    #[arg(long, default_value_t = 1)]
    min_count: usize,
    /// Maximum vocabulary size.
    #[arg(long, default_value_t = 50_000)]
    max_vocab: usize,
    /// Keep case (default: lowercase).
    #[arg(long)]
    keep_case: bool,
    /// Display names of the labels, comma-separated, in label order.
    #[arg(long, value_delimiter = ',')]
    label_names: Option<Vec<String>>,
    /// Hyper-parameter override KEY=VALUE (repeatable), e.g. --hp hidden=256.
    #[arg(long = "hp")]
    hyper: Vec<String>,
    /// Adversarial regularization.
    #[arg(long, value_enum, default_value = "none")]
    adv: Method,
    /// Perturbation size ε (FGSM step, L2/VAT norm, or the dropout rate for --adv dropout).
    #[arg(long)]
    eps: Option<f64>,
    /// Weight α of the clean loss in αJ(x) + (1−α)J(x_adv) (fgsm, hotflip, unk, sem).
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// Weight λ of the adversarial term added to the clean loss (l2, vat).
    #[arg(long, default_value_t = 1.0)]
    adv_weight: f64,
    /// Share of characters flipped per example (hotflip).
    #[arg(long, default_value_t = 0.2)]
    ratio: f64,
    /// Probability that a batch gets the adversarial term.
    #[arg(long, default_value_t = 1.0)]
    adv_prob: f64,
    /// Size ξ of VAT's random direction.
    #[arg(long, default_value_t = 0.1)]
    xi: f64,
    /// Cosine threshold of semantic flips (sem).
    #[arg(long, default_value_t = 0.8)]
    cosine: f64,
    /// Words the UNK adversary checks by their true loss (unk): 1 takes the best
    /// first-order estimate (the paper); N runs the model on the N best-estimated words and
    /// keeps the worst for it, as the UNK attack's forward checks do.
    #[arg(long, default_value_t = 1)]
    candidates: usize,
    /// Words per example the UNK adversary replaces together (unk): the N best by the
    /// first-order estimate; 1 (the paper) replaces one.
    #[arg(long, default_value_t = 1)]
    unk_words: usize,
    /// WordNet directory for --adv sem (default: $GAUNTLET_WORDNET).
    #[arg(long, env = "GAUNTLET_WORDNET")]
    wordnet: Option<PathBuf>,
    /// Unlabeled texts for --adv vat (a dataset file; its labels are ignored).
    #[arg(long)]
    unlabeled: Option<PathBuf>,
    /// Pretrained word vectors for a word model's embeddings (word2vec text or binary,
    /// GloVe text); their width sets embedding_dim (tools/train_vectors.py makes some).
    #[arg(long, value_name = "FILE")]
    embeddings: Option<PathBuf>,
    /// Keep the pretrained embeddings fixed (CNN-static) instead of fine-tuning them.
    #[arg(long, requires = "embeddings")]
    freeze_embeddings: bool,
}

/// Default ε per method: small for sign perturbations, larger for L2 norms over a sequence.
fn default_epsilon(method: Method) -> f64 {
    match method {
        Method::Dropout => 0.2,
        Method::L2 | Method::Vat => 5.0,
        _ => 0.01,
    }
}

fn main() {
    gauntlet_backends::keep_freed_memory();
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        tch::set_num_threads(threads);
    }
    let result = match cli.command {
        Command::Train(args) => run_train(*args),
        Command::Eval {
            model,
            data,
            batch_size,
            device,
            json,
        } => run_eval(&model, &data, batch_size, device, json),
        Command::Predict {
            model,
            device,
            texts,
        } => run_predict(&model, device, &texts),
        Command::Compare {
            models,
            data,
            device,
            json,
        } => run_compare(&models, &data, device, json),
        Command::ExportOnnx { model, out } => run_export_onnx(&model, &out),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run_train(args: TrainArgs) -> Result<()> {
    let arch: Architecture = args.arch.parse()?;
    let hyper = apply_overrides(arch, arch.default_hyper_parameters(), &args.hyper)?;
    let config = TrainConfig {
        arch,
        hyper,
        epochs: args.epochs,
        patience: args.patience,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        device: args.device,
        lowercase: !args.keep_case,
        max_length: args.max_length,
        max_word_length: args.max_word_length,
        min_count: args.min_count,
        max_vocab: args.max_vocab,
        label_names: args.label_names,
        adversarial: AdversarialConfig {
            method: args.adv,
            epsilon: args.eps.unwrap_or_else(|| default_epsilon(args.adv)),
            alpha: args.alpha,
            weight: args.adv_weight,
            ratio: args.ratio,
            probability: args.adv_prob,
            xi: args.xi,
            cosine_threshold: args.cosine,
            candidates: args.candidates,
            unk_words: args.unk_words,
            seed: args.seed,
        },
        unlabeled: match &args.unlabeled {
            Some(path) => read_raw(path)?.into_iter().map(|r| r.text).collect(),
            None => Vec::new(),
        },
        wordnet: args.wordnet,
        embeddings: args.embeddings,
        freeze_embeddings: args.freeze_embeddings,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ..TrainConfig::default()
    };
    let train_split = read_split(&args.train)?;
    let dev_split = args.dev.as_deref().map(read_split).transpose()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut on_progress = |event: Progress| match event {
        Progress::EpochStart { epoch, examples } => {
            bar.reset();
            bar.set_length(examples as u64);
            bar.set_prefix(format!("{epoch}/{}", config.epochs));
        }
        Progress::Steps {
            done,
            loss,
            adversarial_loss,
        } => {
            bar.set_position(done as u64);
            match adversarial_loss {
                Some(adv) => bar.set_message(format!("loss {loss:.4} adv {adv:.4}")),
                None => bar.set_message(format!("loss {loss:.4}")),
            }
        }
        Progress::EpochEnd(r) => {
            let line = format!(
                "epoch {:>2}: train loss {:.4}  dev loss {:.4}  dev acc {:.2}%  {:.1}s ({:.0} ex/s)",
                r.epoch, r.train_loss, r.dev_loss, r.dev_accuracy * 100.0, r.seconds, r.examples_per_second
            );
            // A hidden bar (no terminal) drops println; the epoch summary must still show.
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    };
    let outcome = train(&config, &train_split, dev_split.as_ref(), &mut on_progress)?;
    bar.finish_and_clear();
    save_bundle(&args.out, &outcome.manifest, &outcome.codec, &outcome.vs)
        .context("writing the bundle")?;
    let t = &outcome.manifest.training;
    println!(
        "kept epoch {} (dev loss {:.4}, dev accuracy {:.2}%); wrote {} in {:.1}s",
        t.best_epoch
            .map_or_else(|| "unknown".to_owned(), |e| e.to_string()),
        outcome
            .manifest
            .metrics
            .get("dev_loss")
            .copied()
            .unwrap_or(f64::NAN),
        outcome
            .manifest
            .metrics
            .get("dev_accuracy")
            .copied()
            .unwrap_or(f64::NAN)
            * 100.0,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Loads any bundle (native, ONNX, converted HF) through the loader the server and the
/// `gauntlet` CLI use.
fn load_bundle(model_dir: &std::path::Path, device: DeviceChoice) -> Result<LoadedBundle> {
    let options = LoadOptions {
        device,
        ..LoadOptions::default()
    };
    LoadedBundle::load(model_dir, &options)
        .with_context(|| format!("loading the model bundle {}", model_dir.display()))
}

fn encode_all(
    model: &LoadedBundle,
    texts: &[String],
    path: &std::path::Path,
) -> Result<Vec<TokenIds>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            model
                .codec()
                .encode(text)
                .map(|e| e.ids)
                .with_context(|| format!("{}: example {}", path.display(), i + 1))
        })
        .collect()
}

fn evaluate_bundle(
    model_dir: &std::path::Path,
    data: &std::path::Path,
    batch_size: usize,
    device: DeviceChoice,
) -> Result<(LoadedBundle, Evaluation)> {
    let model = load_bundle(model_dir, device)?;
    let examples = read_labelled(data, &model.manifest().labels)?;
    let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
    let ids = encode_all(&model, &texts, data)?;
    let pairs: Vec<(TokenIds, usize)> = ids
        .into_iter()
        .zip(examples.iter().map(|e| e.label))
        .collect();
    let evaluation = evaluate(model.classifier(), &pairs, batch_size)?;
    Ok((model, evaluation))
}

fn run_compare(
    models: &[PathBuf],
    data: &std::path::Path,
    device: DeviceChoice,
    json: bool,
) -> Result<()> {
    let [a, b] = models else {
        bail!("--models takes exactly two bundle directories")
    };
    let (model_a, eval_a) = evaluate_bundle(a, data, 256, device)?;
    let (model_b, eval_b) = evaluate_bundle(b, data, 256, device)?;
    if model_a.manifest().labels != model_b.manifest().labels {
        bail!(
            "{} and {} have different labels; they cannot be compared on one dataset",
            a.display(),
            b.display()
        );
    }
    let test = paired_t_test(&eval_a.losses, &eval_b.losses)
        .context("a paired t-test needs at least two examples")?;
    if json {
        let report = serde_json::json!({
            "data": data.display().to_string(),
            "models": [
                {"path": a.display().to_string(), "accuracy": eval_a.accuracy, "mean_loss": eval_a.mean_loss},
                {"path": b.display().to_string(), "accuracy": eval_b.accuracy, "mean_loss": eval_b.mean_loss},
            ],
            "paired_t_test": test,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{:<40} {:>9} {:>10}", "model", "accuracy", "mean loss");
    for (path, e) in [(a, &eval_a), (b, &eval_b)] {
        println!(
            "{:<40} {:>8.2}% {:>10.4}",
            path.display(),
            e.accuracy * 100.0,
            e.mean_loss
        );
    }
    println!(
        "paired t-test on per-example losses (A - B): mean {:+.4}, t = {:.3}, df = {}, p = {:.4}",
        test.mean_difference, test.t, test.degrees_of_freedom, test.p_value
    );
    Ok(())
}

fn run_eval(
    model_dir: &std::path::Path,
    data: &std::path::Path,
    batch_size: usize,
    device: DeviceChoice,
    json: bool,
) -> Result<()> {
    let started = Instant::now();
    let (model, evaluation) = evaluate_bundle(model_dir, data, batch_size, device)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    println!(
        "model     {} ({}, {})",
        model_dir.display(),
        model.manifest().architecture,
        model.device_name()
    );
    println!("training  {}", model.manifest().training.describe());
    println!(
        "data      {} ({} examples, {:.2}s)",
        data.display(),
        evaluation.examples,
        started.elapsed().as_secs_f64()
    );
    println!("accuracy  {:.2}%", evaluation.accuracy * 100.0);
    println!("mean loss {:.4}", evaluation.mean_loss);
    println!("macro F1  {:.4}", evaluation.macro_f1);
    println!(
        "{:<16} {:>8} {:>9} {:>7} {:>7}",
        "label", "support", "precision", "recall", "F1"
    );
    for c in &evaluation.per_class {
        println!(
            "{:<16} {:>8} {:>9.4} {:>7.4} {:>7.4}",
            c.label, c.support, c.precision, c.recall, c.f1
        );
    }
    Ok(())
}

fn run_predict(model_dir: &std::path::Path, device: DeviceChoice, texts: &[String]) -> Result<()> {
    let model = load_bundle(model_dir, device)?;
    let ids = encode_all(&model, texts, std::path::Path::new("argument"))?;
    if ids.is_empty() {
        bail!("no text given");
    }
    let probs = model.classifier().predict(&ids)?;
    let labels = &model.manifest().labels;
    for (i, text) in texts.iter().enumerate() {
        let (label, p) = probs.argmax(i);
        println!("{:<10} {:.3}  {}", labels[label].name, p, text);
    }
    Ok(())
}

fn run_export_onnx(model_dir: &std::path::Path, out: &std::path::Path) -> Result<()> {
    if !model_dir.is_dir() {
        bail!("--model {}: no such bundle directory", model_dir.display());
    }
    if out.as_os_str().is_empty() {
        bail!("--out must name a directory");
    }
    let exported = export_bundle(model_dir, out)
        .with_context(|| format!("exporting {} to {}", model_dir.display(), out.display()))?;
    println!(
        "exported {} to ONNX ({} nodes, opset {}):",
        model_dir.display(),
        exported.nodes,
        gauntlet_models::export::OPSET
    );
    for file in &exported.files {
        let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        println!("  {:<50} {:>10} bytes", file.display(), bytes);
    }
    Ok(())
}
