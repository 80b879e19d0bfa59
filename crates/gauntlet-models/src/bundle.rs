//! Model bundles on disk and [`NativeModel`], the loaded form behind the core traits.
//!
//! Loading checks every file before using it: the manifest (format version, labels), the
//! tokenizer, `words.txt` for character models, and that `model.safetensors` holds exactly
//! the variables the architecture declares with the same shapes. Errors name the file.
//! Saving writes into a temporary sibling directory and renames it into place, so a crash
//! never leaves a half-written bundle under the target name.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use gauntlet_core::classifier::{check_labels, ExampleGradient, GradientBatch};
use gauntlet_core::manifest::{bundle_digest, TOKENIZER_FILE, WEIGHTS_FILE, WORDS_FILE};
use gauntlet_core::scoring::{check_gradients, check_queries};
use gauntlet_core::{
    gather_rows, scatter_rows, BundleModel, DeviceChoice, EmbeddingTable, FlipBatch, FlipQuery,
    InputKind, Manifest, ModelError, Probabilities, ScoredFlip, TargetMask, TextCodec, TokenIds,
    WhiteBox,
};
use tch::{nn, Device, Kind, Tensor};

use crate::batch::PaddedBatch;
use crate::error::ModelsError;
use crate::lookup_forward::FrozenForward;
use crate::network::{autograd_loss_gradients, cross_entropies, Architecture, Network};
use gauntlet_tch::device::{device_name, resolve_device};
use gauntlet_tch::scoring::ScoringTable;

/// Names of the files of a native bundle.
pub struct BundleFiles;

impl BundleFiles {
    /// Files every native bundle has besides the manifest.
    pub const REQUIRED: [&'static str; 2] = [TOKENIZER_FILE, WEIGHTS_FILE];
}

struct Loaded {
    _vs: nn::VarStore,
    net: Box<dyn Network>,
    /// The input-embedding table as word-flip scoring reads it (built once: a bundle's
    /// weights never change after loading).
    scoring: ScoringTable,
    /// The architecture's frozen-weight passes, when it has them: `predict` uses its
    /// forward pass, gradient calls its closed-form gradient.
    frozen: Option<Box<dyn FrozenForward>>,
}

/// A native (tch) model loaded from a bundle, usable from many threads.
///
/// libtorch tensors are not `Sync`, so forward passes take a lock; libtorch's own
/// intra-op threads still use every core inside one pass.
pub struct NativeModel {
    manifest: Manifest,
    codec: TextCodec,
    digest: String,
    device: Device,
    table: EmbeddingTable,
    inner: Mutex<Loaded>,
}

impl std::fmt::Debug for NativeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeModel")
            .field("architecture", &self.manifest.architecture)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn bundle_err(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelsError {
    ModelsError::Bundle {
        path: path.into(),
        message: message.into(),
    }
}

/// The text codec of a bundle: its tokenizer and, for character models, its word list.
pub fn load_codec(dir: &Path, manifest: &Manifest) -> Result<TextCodec, ModelsError> {
    let words = match manifest.tokenization.kind {
        InputKind::Char => read_words(dir)?,
        InputKind::Word => Vec::new(),
    };
    Ok(TextCodec::load(
        &dir.join(TOKENIZER_FILE),
        &manifest.tokenization,
        words,
    )?)
}

/// Builds the manifest's architecture on `device` and loads the bundle's weights into it.
pub(crate) fn load_network(
    dir: &Path,
    manifest: &Manifest,
    arch: Architecture,
    codec: &TextCodec,
    device: Device,
) -> Result<(nn::VarStore, Box<dyn Network>), ModelsError> {
    let mut vs = nn::VarStore::new(device);
    let net = arch.build(
        &vs.root(),
        &manifest.hyper_parameters,
        codec.size(),
        manifest.labels.len(),
    )?;
    load_weights(&mut vs, &dir.join(WEIGHTS_FILE))?;
    Ok((vs, net))
}

/// Reads `words.txt` of a character bundle.
pub fn read_words(dir: &Path) -> Result<Vec<String>, ModelsError> {
    let path = dir.join(WORDS_FILE);
    let text = fs::read_to_string(&path).map_err(|e| {
        bundle_err(
            &path,
            format!("cannot read the word vocabulary of a character model: {e}"),
        )
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

impl NativeModel {
    /// Loads a bundle directory onto the chosen device.
    pub fn load(dir: &Path, device: DeviceChoice) -> Result<Self, ModelsError> {
        let manifest = Manifest::load(dir)?;
        let arch: Architecture = manifest.architecture.parse()?;
        if arch.input_kind() != manifest.tokenization.kind {
            return Err(bundle_err(
                Manifest::locate(dir)?,
                format!(
                    "architecture {arch} reads {:?} input but tokenization.kind is {:?}",
                    arch.input_kind(),
                    manifest.tokenization.kind
                ),
            ));
        }
        for file in BundleFiles::REQUIRED {
            if !dir.join(file).is_file() {
                return Err(bundle_err(dir.join(file), "missing bundle file"));
            }
        }
        let codec = load_codec(dir, &manifest)?;
        let (vs, net) = load_network(dir, &manifest, arch, &codec, resolve_device(device)?)?;
        let digest = bundle_digest(dir)?;
        Ok(Self::assemble(manifest, codec, digest, vs, net))
    }

    /// Wraps a network that lives in memory (e.g. just trained) behind the core traits.
    pub fn from_parts(
        manifest: Manifest,
        codec: TextCodec,
        vs: nn::VarStore,
        net: Box<dyn Network>,
    ) -> Self {
        Self::assemble(manifest, codec, String::from("in-memory"), vs, net)
    }

    fn assemble(
        manifest: Manifest,
        codec: TextCodec,
        digest: String,
        mut vs: nn::VarStore,
        net: Box<dyn Network>,
    ) -> Self {
        // Nothing trains a loaded model: without this every backward pass would also
        // compute (and accumulate) gradients of all the weights.
        vs.freeze();
        // `GAUNTLET_FORWARD=product` keeps the network's own forward pass and autograd
        // (benchmarks set it to measure what the lookup and the closed form save).
        let frozen = match std::env::var("GAUNTLET_FORWARD").as_deref() {
            Ok("product") => None,
            _ => net.frozen_forward(),
        };
        let weight = net
            .embedding()
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float);
        let (rows, dim) = weight.size2().unwrap_or((0, 0));
        let values = Vec::<f32>::try_from(weight.flatten(0, -1)).unwrap_or_default();
        let table = EmbeddingTable {
            rows: rows as usize,
            dim: dim as usize,
            values,
        };
        let embedding = tch::no_grad(|| net.embedding());
        // The filter is an optimization: a table that cannot take it is scored exactly.
        let scoring = ScoringTable::new(embedding.shallow_clone())
            .unwrap_or_else(|_| ScoringTable::exact(embedding));
        Self {
            device: vs.device(),
            manifest,
            codec,
            digest,
            table,
            inner: Mutex::new(Loaded {
                _vs: vs,
                net,
                scoring,
                frozen,
            }),
        }
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bundle's text codec.
    pub fn codec(&self) -> &TextCodec {
        &self.codec
    }

    /// SHA-256 of the bundle's files (model identity).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The device the model runs on (`cpu`, `cuda:0`).
    pub fn device_name(&self) -> String {
        device_name(self.device)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Loaded>, ModelError> {
        self.inner
            .lock()
            .map_err(|_| ModelError::Backend("model lock poisoned by an earlier panic".into()))
    }

    fn check(&self, batch: &[TokenIds]) -> Result<(), ModelError> {
        let rows = self.table.rows as u32;
        for (i, ids) in batch.iter().enumerate() {
            if ids.kind() != self.manifest.tokenization.kind {
                return Err(ModelError::InvalidInput(format!(
                    "example {i}: {:?} ids given to a {:?} model",
                    ids.kind(),
                    self.manifest.tokenization.kind
                )));
            }
            if let Some(bad) = ids.flat().into_iter().find(|&id| id >= rows) {
                return Err(ModelError::InvalidInput(format!(
                    "example {i}: id {bad} is outside the vocabulary of {rows}"
                )));
            }
        }
        Ok(())
    }

    fn pad(&self, net: &dyn Network, batch: &[TokenIds]) -> Result<PaddedBatch, ModelError> {
        self.check(batch)?;
        PaddedBatch::new(batch, net.min_len(), self.device)
    }
}

fn probabilities(logits: &Tensor) -> Result<Probabilities, ModelError> {
    gauntlet_tch::probabilities(&logits.softmax(-1, Kind::Float))
        .map_err(|e| ModelError::Backend(e.to_string()))
}

impl BundleModel for NativeModel {
    fn bundle_manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn forward_probabilities(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        let loaded = self.lock()?;
        let padded = self.pad(loaded.net.as_ref(), batch)?;
        let logits = match &loaded.frozen {
            Some(frozen) => frozen.logits(&padded),
            None => tch::no_grad(|| loaded.net.forward(&padded, false)),
        };
        probabilities(&logits)
    }
}

impl WhiteBox for NativeModel {
    fn embedding_table(&self) -> &EmbeddingTable {
        &self.table
    }

    fn predict_embedded(
        &self,
        batch: &[TokenIds],
        embeddings: &[Vec<f32>],
    ) -> Result<Probabilities, ModelError> {
        let loaded = self.lock()?;
        let padded = self.pad(loaded.net.as_ref(), batch)?;
        let dim = self.table.dim;
        let mut shape = padded.ids.size();
        let total: usize = shape.iter().product::<i64>() as usize;
        let mut host = vec![0f32; total * dim];
        scatter_rows(&padded.positions, embeddings, dim, &mut host)?;
        shape.push(dim as i64);
        let embedded = Tensor::from_slice(&host)
            .reshape(&shape)
            .to_device(self.device);
        let logits = tch::no_grad(|| loaded.net.logits(&embedded, &padded, false));
        probabilities(&logits)
    }

    fn loss_gradients(
        &self,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<GradientBatch, ModelError> {
        let loaded = self.lock()?;
        let (padded, pass) = self.backward(&loaded, batch, labels)?;
        let host = Vec::<f32>::try_from(pass.grad.to_device(Device::Cpu).flatten(0, -1))
            .map_err(backend_err)?;
        let dim = self.table.dim;
        let gradients = padded
            .positions
            .iter()
            .zip(pass.losses)
            .map(|(rows, loss)| ExampleGradient {
                loss,
                values: gather_rows(rows, &host, dim),
            })
            .collect();
        Ok(GradientBatch {
            probabilities: pass.probabilities,
            gradients,
            dim,
        })
    }

    fn top_word_flips(
        &self,
        batch: &[TokenIds],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<FlipBatch, ModelError> {
        check_queries(batch, queries, masks, self.manifest.labels.len())?;
        let labels: Vec<usize> = queries.iter().map(|q| q.label).collect();
        let loaded = self.lock()?;
        let (padded, pass) = self.backward(&loaded, batch, &labels)?;
        let flips = gauntlet_tch::scoring::top_word_flips(
            &pass.grad,
            &loaded.scoring,
            &padded.positions,
            batch,
            queries,
            masks,
            k,
        )
        .map_err(backend_err)?;
        Ok(FlipBatch {
            probabilities: pass.probabilities,
            losses: pass.losses,
            flips,
        })
    }

    fn score_word_flips(
        &self,
        batch: &[TokenIds],
        gradients: &[Vec<f32>],
        queries: &[FlipQuery],
        masks: &[TargetMask],
        k: usize,
    ) -> Result<Vec<Vec<ScoredFlip>>, ModelError> {
        check_queries(batch, queries, masks, self.manifest.labels.len())?;
        check_gradients(batch, gradients)?;
        let loaded = self.lock()?;
        gauntlet_tch::scoring::score_host_gradients(
            gradients,
            &loaded.scoring,
            batch,
            queries,
            masks,
            k,
        )
        .map_err(backend_err)
    }

    fn padding_is_zero(&self) -> bool {
        // `Network::embed` multiplies the lookup by the mask.
        true
    }
}

/// One forward and backward pass, with the gradient left on the device.
struct Backward {
    /// Gradient with respect to the embedded inputs, padded shape `+ [dim]`.
    grad: Tensor,
    losses: Vec<f32>,
    probabilities: Probabilities,
}

fn backend_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Backend(e.to_string())
}

impl NativeModel {
    /// Cross-entropy of `labels[i]` for every example and its gradient with respect to the
    /// embedded inputs, kept on the model's device.
    fn backward(
        &self,
        loaded: &Loaded,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<(PaddedBatch, Backward), ModelError> {
        check_labels(labels, batch.len(), self.manifest.labels.len())?;
        let padded = self.pad(loaded.net.as_ref(), batch)?;
        let targets = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>())
            .to_device(self.device);
        let closed_form = loaded
            .frozen
            .as_ref()
            .and_then(|frozen| frozen.loss_gradients(&padded, &targets));
        let (logits, grad) = match closed_form {
            Some(pair) => pair,
            None => autograd_loss_gradients(loaded.net.as_ref(), &padded, &targets)
                .ok_or_else(|| ModelError::Backend("no gradient returned".into()))?,
        };
        let losses =
            Vec::<f32>::try_from(cross_entropies(&logits, &targets).to_device(Device::Cpu))
                .map_err(backend_err)?;
        let probabilities = probabilities(&logits.detach())?;
        Ok((
            padded,
            Backward {
                grad,
                losses,
                probabilities,
            },
        ))
    }
}

/// Checks that a safetensors file holds exactly the store's variables with their shapes,
/// then loads it.
pub(crate) fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), ModelsError> {
    let stored = Tensor::read_safetensors(path)
        .map_err(|e| bundle_err(path, format!("cannot read weights: {e}")))?;
    let expected = vs.variables();
    for (name, tensor) in &stored {
        match expected.get(name) {
            None => {
                return Err(bundle_err(
                    path,
                    format!("unexpected tensor {name:?} (not part of this architecture)"),
                ))
            }
            Some(var) if var.size() != tensor.size() => {
                return Err(bundle_err(
                    path,
                    format!(
                        "tensor {name:?} has shape {:?}, the manifest's architecture expects {:?}",
                        tensor.size(),
                        var.size()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = expected
        .keys()
        .find(|k| !stored.iter().any(|(n, _)| n == *k))
    {
        return Err(bundle_err(path, format!("missing tensor {missing:?}")));
    }
    vs.load(path).map_err(|e| bundle_err(path, e.to_string()))
}

/// Writes a bundle: manifest, tokenizer, word list (character models) and weights. Files go
/// to a temporary sibling directory first, which then replaces `dir`.
pub fn save_bundle(
    dir: &Path,
    manifest: &Manifest,
    codec: &TextCodec,
    vs: &nn::VarStore,
) -> Result<(), ModelsError> {
    manifest.validate().map_err(|m| bundle_err(dir, m))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| bundle_err(parent, e.to_string()))?;
    let name = dir
        .file_name()
        .ok_or_else(|| bundle_err(dir, "not a directory name"))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| bundle_err(&staging, e.to_string()))?;
    manifest.save(&staging)?;
    codec.save(&staging.join(TOKENIZER_FILE))?;
    if manifest.tokenization.kind == InputKind::Char {
        let words = codec.word_vocabulary().join("\n") + "\n";
        fs::write(staging.join(WORDS_FILE), words)
            .map_err(|e| bundle_err(staging.join(WORDS_FILE), e.to_string()))?;
    }
    vs.save(staging.join(WEIGHTS_FILE))
        .map_err(|e| bundle_err(dir.join(WEIGHTS_FILE), e.to_string()))?;
    if dir.exists() {
        fs::remove_dir_all(dir)
            .map_err(|e| bundle_err(dir, format!("cannot replace the existing bundle: {e}")))?;
    }
    fs::rename(&staging, dir).map_err(|e| bundle_err(dir, e.to_string()))
}
