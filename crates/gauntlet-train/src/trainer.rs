//! The training loop: data preparation, Adam on shuffled mini-batches, and model selection
//! on the lowest development loss (Bělohlávek et al. 2018).
//!
//! Invariants: the vocabulary (or alphabet) comes from the training split only; labels are
//! the training split's, and a development label the training data never shows is an error;
//! the same seed on the same device gives the same weights (libtorch is seeded and batches
//! are shuffled by a seeded `StdRng`). Losses are accumulated on the device and read back
//! only every few steps, so a CUDA run does not stall on a host round trip per step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use gauntlet_core::codec::{VocabularyOptions, PAD_TOKEN, UNK_TOKEN};
use gauntlet_core::dataset::{resolve, LabelSet, RawExample};
use gauntlet_core::manifest::{Provenance, FORMAT_VERSION};
use gauntlet_core::{DeviceChoice, InputKind, Manifest, TextCodec, TokenIds, Tokenization};
use gauntlet_models::network::HyperParameters;
use gauntlet_models::{
    device_name, resolve_device, Architecture, ModelsError, Network, PaddedBatch,
};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use serde::Serialize;
use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use crate::adversarial::{AdversarialConfig, Batch, Regularizer};
use crate::error::TrainError;
use gauntlet_core::vectors::WordVectors;

/// A dataset file and its rows.
#[derive(Debug, Clone)]
pub struct DataSplit {
    /// The file (named in errors and provenance).
    pub path: PathBuf,
    /// Its rows.
    pub rows: Vec<RawExample>,
}

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Architecture.
    pub arch: Architecture,
    /// Hyper-parameters (defaults of the architecture, with overrides applied).
    pub hyper: HyperParameters,
    /// Passes over the training data (the most run when `patience` stops early).
    pub epochs: usize,
    /// Early stopping: end training once this many epochs in a row have not lowered the
    /// dev loss (`None` runs every epoch). The kept weights are the lowest dev loss's
    /// either way.
    pub patience: Option<usize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of libtorch and of the shuffling.
    pub seed: u64,
    /// Device.
    pub device: DeviceChoice,
    /// Lowercase text before tokenizing.
    pub lowercase: bool,
    /// Maximum words read per text.
    pub max_length: usize,
    /// Maximum characters read per word (character models).
    pub max_word_length: usize,
    /// Minimum count of a token to enter the vocabulary.
    pub min_count: usize,
    /// Maximum vocabulary size (specials excluded).
    pub max_vocab: usize,
    /// Display names of the labels, by id.
    pub label_names: Option<Vec<String>>,
    /// Gradient-norm clipping (0 disables).
    pub clip_norm: f64,
    /// Share of the training data held out for model selection when no dev file is given.
    pub holdout_fraction: f64,
    /// The command line recorded in the manifest.
    pub command: String,
    /// Adversarial regularization (`Method::None` for clean training).
    pub adversarial: AdversarialConfig,
    /// Unlabeled texts for virtual adversarial training (ignored by other methods).
    pub unlabeled: Vec<String>,
    /// WordNet directory for the `sem` regularizer.
    pub wordnet: Option<PathBuf>,
    /// Pretrained word vectors (word2vec text or binary, GloVe text) to start the input
    /// embeddings of a word model from; their width sets `embedding_dim`.
    pub embeddings: Option<PathBuf>,
    /// Keep the pretrained embeddings fixed (CNN-static) instead of fine-tuning them.
    pub freeze_embeddings: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: Architecture::WordCnn,
            hyper: Architecture::WordCnn.default_hyper_parameters(),
            epochs: 10,
            patience: None,
            batch_size: 50,
            learning_rate: 1e-3,
            seed: 42,
            device: DeviceChoice::Auto,
            lowercase: true,
            max_length: 100,
            max_word_length: 16,
            min_count: 1,
            max_vocab: 50_000,
            label_names: None,
            clip_norm: 5.0,
            holdout_fraction: 0.1,
            command: String::new(),
            adversarial: AdversarialConfig::default(),
            unlabeled: Vec::new(),
            wordnet: None,
            embeddings: None,
            freeze_embeddings: false,
        }
    }
}

/// Figures of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean adversarial term over the batches that had one.
    pub adversarial_loss: Option<f64>,
    /// Mean development loss.
    pub dev_loss: f64,
    /// Development accuracy.
    pub dev_accuracy: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Training throughput.
    pub examples_per_second: f64,
}

/// Events reported while training (for progress bars).
#[derive(Debug, Clone)]
pub enum Progress {
    /// An epoch begins with this many training examples.
    EpochStart {
        /// 1-based epoch.
        epoch: usize,
        /// Training examples in the epoch.
        examples: usize,
    },
    /// Some steps are done.
    Steps {
        /// Examples processed in the epoch so far.
        done: usize,
        /// Mean clean training loss so far in the epoch.
        loss: f64,
        /// Mean adversarial term so far in the epoch, when the method has one.
        adversarial_loss: Option<f64>,
    },
    /// An epoch finished and was evaluated.
    EpochEnd(EpochReport),
}

/// A trained model, restored to its best epoch, ready to save as a bundle.
pub struct TrainOutcome {
    /// The manifest to write (metrics and provenance filled in).
    pub manifest: Manifest,
    /// The codec built from the training data.
    pub codec: TextCodec,
    /// The weights.
    pub vs: nn::VarStore,
    /// The network.
    pub net: Box<dyn Network>,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
}

type Encoded = Vec<(TokenIds, usize)>;

fn encode_split(
    codec: &TextCodec,
    split: &DataSplit,
    labels: &[gauntlet_core::Label],
) -> Result<Encoded, TrainError> {
    let examples = resolve(&split.path, split.rows.clone(), labels)?;
    split
        .rows
        .iter()
        .zip(examples)
        .map(|(row, ex)| {
            let encoded = codec.encode(&ex.text).map_err(|e| {
                TrainError::Invalid(format!("{}:{}: {e}", split.path.display(), row.line))
            })?;
            Ok((encoded.ids, ex.label))
        })
        .collect()
}

/// Trains a model. `dev` is used for model selection; without it a seeded
/// `holdout_fraction` of the training rows is held out instead.
pub fn train(
    config: &TrainConfig,
    train_split: &DataSplit,
    dev: Option<&DataSplit>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<TrainOutcome, TrainError> {
    validate(config)?;
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (train_split, dev_split, dev_name) = match dev {
        Some(dev) => (
            train_split.clone(),
            dev.clone(),
            dev.path.display().to_string(),
        ),
        None => {
            let mut rows = train_split.rows.clone();
            rows.shuffle(&mut rng);
            let held = ((rows.len() as f64) * config.holdout_fraction)
                .round()
                .max(1.0) as usize;
            if rows.len() <= held {
                return Err(TrainError::Invalid(format!(
                    "{}: too few examples to hold out a development set; pass --dev",
                    train_split.path.display()
                )));
            }
            let dev_rows = rows.split_off(rows.len() - held);
            let name = format!(
                "{:.0}% of {} held out (seed {})",
                config.holdout_fraction * 100.0,
                train_split.path.display(),
                config.seed
            );
            (
                DataSplit {
                    path: train_split.path.clone(),
                    rows,
                },
                DataSplit {
                    path: train_split.path.clone(),
                    rows: dev_rows,
                },
                name,
            )
        }
    };
    let labels = LabelSet::from_rows(&train_split.rows, config.label_names.as_deref())
        .map_err(|m| TrainError::Invalid(format!("{}: {m}", train_split.path.display())))?
        .0;
    let kind = config.arch.input_kind();
    let texts: Vec<&str> = train_split.rows.iter().map(|r| r.text.as_str()).collect();
    let options = VocabularyOptions {
        kind,
        lowercase: config.lowercase,
        min_count: config.min_count,
        max_size: config.max_vocab,
    };
    let (tokenizer, words) = TextCodec::build(&texts, &options)?;
    let tokenization = Tokenization {
        kind,
        lowercase: config.lowercase,
        max_length: config.max_length,
        max_word_length: config.max_word_length,
        pad_token: PAD_TOKEN.into(),
        unk_token: UNK_TOKEN.into(),
        scheme: Default::default(),
    };
    let codec = TextCodec::new(tokenizer, &tokenization, words)?;
    let train_data = encode_split(&codec, &train_split, &labels)?;
    let dev_data = encode_split(&codec, &dev_split, &labels)?;

    let unlabeled: Vec<TokenIds> = config
        .unlabeled
        .iter()
        .enumerate()
        .map(|(i, text)| {
            codec
                .encode(text)
                .map(|e| e.ids)
                .map_err(|e| TrainError::Invalid(format!("unlabeled example {}: {e}", i + 1)))
        })
        .collect::<Result<_, _>>()?;
    config.adversarial.validate(kind)?;
    let mut hyper = config.hyper.clone();
    if config.adversarial.method.normalizes_embeddings() {
        hyper.insert("normalize_embeddings".into(), serde_json::Value::Bool(true));
    }

    let vectors = match &config.embeddings {
        Some(_) if kind != InputKind::Word => {
            return Err(TrainError::Invalid(format!(
                "--embeddings initialises word embeddings; {} reads characters",
                config.arch.name()
            )))
        }
        Some(path) => {
            let v = WordVectors::read(path)?;
            hyper.insert("embedding_dim".into(), serde_json::json!(v.dim));
            Some((path, v))
        }
        None if config.freeze_embeddings => {
            return Err(TrainError::Invalid(
                "--freeze-embeddings needs --embeddings FILE".into(),
            ))
        }
        None => None,
    };

    let device = resolve_device(config.device).map_err(ModelsError::from)?;
    tch::manual_seed(config.seed as i64);
    let vs = nn::VarStore::new(device);
    let net = config
        .arch
        .build(&vs.root(), &hyper, codec.size(), labels.len())?;
    net.input_embedding()
        .set_frequencies(&token_counts(&train_data, codec.size()));
    let embeddings = match &vectors {
        Some((path, v)) => {
            let (rows, coverage) = v.rows_for(&codec, config.lowercase);
            net.input_embedding()
                .set_rows(&rows)
                .map_err(|e| TrainError::Invalid(format!("--embeddings: {e}")))?;
            Some(v.provenance(path, coverage, config.freeze_embeddings))
        }
        None => None,
    };
    let mut regularizer = make_regularizer(config, &codec)?;
    let mut unlabeled_cursor = 0;
    let mut optimizer = nn::Adam::default()
        .build(&vs, config.learning_rate)
        .map_err(gauntlet_models::ModelsError::from)?;

    let mut history = Vec::with_capacity(config.epochs);
    let mut best: Option<(f64, usize, HashMap<String, Tensor>)> = None;
    let mut order: Vec<usize> = (0..train_data.len()).collect();
    for epoch in 1..=config.epochs {
        on_progress(Progress::EpochStart {
            epoch,
            examples: order.len(),
        });
        order.shuffle(&mut rng);
        let epoch_start = Instant::now();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, device));
        let mut adversarial_sum = Tensor::zeros([], (Kind::Float, device));
        let mut adversarial_examples = 0;
        let mut done = 0;
        for (step, chunk) in order.chunks(config.batch_size).enumerate() {
            let ids: Vec<TokenIds> = chunk.iter().map(|&i| train_data[i].0.clone()).collect();
            let targets: Vec<i64> = chunk.iter().map(|&i| train_data[i].1 as i64).collect();
            let batch = PaddedBatch::new(&ids, net.min_len(), device)?;
            let targets = Tensor::from_slice(&targets).to_device(device);
            let extra = if unlabeled.is_empty() {
                None
            } else {
                let end = (unlabeled_cursor + chunk.len()).min(unlabeled.len());
                let extra =
                    PaddedBatch::new(&unlabeled[unlabeled_cursor..end], net.min_len(), device)?;
                unlabeled_cursor = if end == unlabeled.len() { 0 } else { end };
                Some(extra)
            };
            // The regularizer runs the backward pass (it shares the clean pass's with its
            // input gradient), adding to the parameters' gradients: zero them first.
            optimizer.zero_grad();
            let step_loss = regularizer.backward(
                net.as_ref(),
                &Batch {
                    ids: &ids,
                    padded: &batch,
                    targets: &targets,
                    unlabeled: extra.as_ref(),
                },
            )?;
            if config.freeze_embeddings {
                net.input_embedding().clear_grad();
            }
            if config.clip_norm > 0.0 {
                optimizer.clip_grad_norm(config.clip_norm);
            }
            optimizer.step();
            loss_sum += step_loss.clean * chunk.len() as f64;
            if let Some(adversarial) = step_loss.adversarial {
                adversarial_sum += adversarial * chunk.len() as f64;
                adversarial_examples += chunk.len();
            }
            done += chunk.len();
            if step % 20 == 19 || done == order.len() {
                let adversarial_loss = (adversarial_examples > 0)
                    .then(|| adversarial_sum.double_value(&[]) / adversarial_examples as f64);
                on_progress(Progress::Steps {
                    done,
                    loss: loss_sum.double_value(&[]) / done as f64,
                    adversarial_loss,
                });
            }
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        let (dev_loss, dev_accuracy) =
            dev_metrics(net.as_ref(), &dev_data, config.batch_size.max(64), device)?;
        let report = EpochReport {
            epoch,
            train_loss: loss_sum.double_value(&[]) / done.max(1) as f64,
            adversarial_loss: (adversarial_examples > 0)
                .then(|| adversarial_sum.double_value(&[]) / adversarial_examples as f64),
            dev_loss,
            dev_accuracy,
            seconds,
            examples_per_second: done as f64 / seconds.max(1e-9),
        };
        on_progress(Progress::EpochEnd(report.clone()));
        if best
            .as_ref()
            .is_none_or(|(loss, _, _)| improves(dev_loss, *loss))
        {
            best = Some((dev_loss, epoch, snapshot(&vs)));
        }
        history.push(report);
        let best_epoch = best.as_ref().map_or(0, |(_, kept, _)| *kept);
        if config.patience.is_some_and(|p| epoch - best_epoch >= p) {
            break;
        }
        regularizer.refresh();
    }
    // The weights kept and the epoch the manifest names come from the same comparison.
    let (_, best_epoch, weights) =
        best.ok_or_else(|| TrainError::Invalid("no epoch was run".into()))?;
    restore(&vs, &weights);
    let kept = &history[best_epoch - 1];
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        architecture: config.arch.name().into(),
        hyper_parameters: hyper,
        labels,
        tokenization,
        training: Provenance {
            command: Some(config.command.clone()),
            train_data: Some(train_split.path.display().to_string()),
            dev_data: Some(dev_name),
            seed: Some(config.seed),
            device: Some(device_name(device)),
            epochs: Some(history.len()),
            patience: config.patience,
            best_epoch: Some(best_epoch),
            wall_seconds: Some(started.elapsed().as_secs_f64()),
            adversarial: adversarial_record(&config.adversarial),
            embeddings,
        },
        metrics: [
            ("dev_loss".to_owned(), kept.dev_loss),
            ("dev_accuracy".to_owned(), kept.dev_accuracy),
            ("train_loss".to_owned(), kept.train_loss),
        ]
        .into_iter()
        .collect(),
        onnx: None,
    };
    Ok(TrainOutcome {
        manifest,
        codec,
        vs,
        net,
        history,
    })
}

fn make_regularizer(config: &TrainConfig, codec: &TextCodec) -> Result<Regularizer, TrainError> {
    let adversarial = AdversarialConfig {
        seed: config.seed,
        ..config.adversarial.clone()
    };
    let sem = if adversarial.method == crate::adversarial::Method::Sem {
        let dir = config.wordnet.clone().ok_or_else(|| TrainError::Invalid("--adv sem needs WordNet: pass --wordnet DIR or set GAUNTLET_WORDNET (scripts/bootstrap.sh installs it)".into()))?;
        let lexicon = gauntlet_attacks::WordNetLexicon::load(&dir)
            .map_err(|e| TrainError::Invalid(format!("{}: {e}", dir.display())))?;
        Some((
            codec.clone(),
            Box::new(lexicon) as Box<dyn gauntlet_attacks::Lexicon>,
        ))
    } else {
        None
    };
    Regularizer::new(adversarial, sem)
}

/// The manifest record of the regularizer: its method and, unless clean, its settings.
fn adversarial_record(
    config: &AdversarialConfig,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut record = std::collections::BTreeMap::new();
    record.insert(
        "method".to_owned(),
        serde_json::Value::from(config.method.name()),
    );
    if config.method != crate::adversarial::Method::None {
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(config) {
            record.extend(
                map.into_iter()
                    .filter(|(k, _)| k != "method" && k != "seed"),
            );
        }
    }
    record
}

/// Occurrences of every id in the training data (for normalized embeddings).
fn token_counts(data: &Encoded, rows: usize) -> Vec<f64> {
    let mut counts = vec![0.0; rows];
    for (ids, _) in data {
        for id in ids.flat() {
            if let Some(c) = counts.get_mut(id as usize) {
                *c += 1.0;
            }
        }
    }
    counts
}

fn validate(config: &TrainConfig) -> Result<(), TrainError> {
    let bad = |m: &str| Err(TrainError::Invalid(m.into()));
    if config.epochs == 0 {
        return bad("--epochs must be at least 1");
    }
    if config.patience == Some(0) {
        return bad("--patience must be at least 1 (leave it out to run every epoch)");
    }
    if config.batch_size == 0 {
        return bad("--batch-size must be at least 1");
    }
    if !(config.learning_rate > 0.0 && config.learning_rate.is_finite()) {
        return bad("--lr must be a positive number");
    }
    if config.max_length == 0 || config.max_word_length == 0 {
        return bad("--max-length and --max-word-length must be at least 1");
    }
    if !(0.0..1.0).contains(&config.holdout_fraction) {
        return bad("the held-out fraction must be in [0, 1)");
    }
    Ok(())
}

fn dev_metrics(
    net: &dyn Network,
    data: &Encoded,
    batch_size: usize,
    device: tch::Device,
) -> Result<(f64, f64), TrainError> {
    let mut loss = 0.0;
    let mut correct = 0i64;
    for chunk in data.chunks(batch_size) {
        let ids: Vec<TokenIds> = chunk.iter().map(|(ids, _)| ids.clone()).collect();
        let targets = Tensor::from_slice(&chunk.iter().map(|(_, l)| *l as i64).collect::<Vec<_>>())
            .to_device(device);
        let batch = PaddedBatch::new(&ids, net.min_len(), device)?;
        let (l, c) = tch::no_grad(|| {
            let logits = net.forward(&batch, false);
            let l =
                logits.cross_entropy_for_logits(&targets).double_value(&[]) * chunk.len() as f64;
            let c = logits
                .argmax(-1, false)
                .eq_tensor(&targets)
                .sum(Kind::Int64)
                .int64_value(&[]);
            (l, c)
        });
        loss += l;
        correct += c;
    }
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

fn snapshot(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn restore(vs: &nn::VarStore, weights: &HashMap<String, Tensor>) {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if let Some(saved) = weights.get(&name) {
                var.copy_(saved);
            }
        }
    });
}

/// Reads a dataset file into a [`DataSplit`].
pub fn read_split(path: &Path) -> Result<DataSplit, TrainError> {
    Ok(DataSplit {
        path: path.to_owned(),
        rows: gauntlet_core::dataset::read_raw(path)?,
    })
}

/// Whether a dev loss improves on the best so far: strictly lower, and a number beats NaN
/// (a diverged epoch is never kept over a finite one, and never replaces it).
fn improves(dev_loss: f64, best: f64) -> bool {
    !dev_loss.is_nan() && (best.is_nan() || dev_loss < best)
}

#[cfg(test)]
mod tests {
    use super::improves;

    #[test]
    fn model_selection_keeps_the_lowest_finite_dev_loss() {
        // Epoch by epoch, as the training loop applies it.
        let keep = |losses: &[f64]| {
            let mut best: Option<(f64, usize)> = None;
            for (i, &l) in losses.iter().enumerate() {
                if best.is_none_or(|(b, _)| improves(l, b)) {
                    best = Some((l, i + 1));
                }
            }
            best.map(|(_, e)| e)
        };
        assert_eq!(keep(&[0.9, 0.5, 0.7]), Some(2));
        assert_eq!(
            keep(&[f64::NAN, 0.8, 0.6]),
            Some(3),
            "a NaN first epoch is replaced"
        );
        assert_eq!(keep(&[0.8, f64::NAN, 0.9]), Some(1), "NaN never wins");
        assert_eq!(keep(&[0.5, 0.5]), Some(1), "ties keep the earlier epoch");
    }
}
