//! One entry point that loads any Gauntlet bundle on the right runtime.
//!
//! A bundle whose manifest has an `[onnx]` section is an ONNX bundle: ONNX Runtime serves
//! its predictions (fast, forward only) and the tch interpreter of the same graph serves
//! gradients, when the graph's operators allow it. Any other bundle is a native tch model,
//! which serves both. Callers (server, CLI) see a [`LoadedBundle`]: the manifest, codec and
//! digest, a black-box [`Classifier`] for forward-only work, and a [`WhiteBox`] when one
//! exists — or the reason there is none, to put in an error message.

use std::path::{Path, PathBuf};

use gauntlet_attacks::audit::AuditTarget;
use gauntlet_core::codec::TextCodec;
use gauntlet_core::manifest::bundle_digest;
use gauntlet_core::vectors::{SimilarityVectors, WordVectors};
use gauntlet_core::{Classifier, DeviceChoice, InputKind, Manifest, WhiteBox};
use gauntlet_models::NativeModel;
use gauntlet_onnx::OnnxModel;
use gauntlet_onnx_tch::{OnnxWhiteBox, OperatorTime};
use gauntlet_ort::OrtModel;
pub use gauntlet_ort::{Optimization, OrtOptions};
pub use gauntlet_tch::allocator::keep_freed_memory;

/// Errors of loading a bundle on any runtime.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Manifest, tokenizer or word list.
    #[error(transparent)]
    Bundle(#[from] gauntlet_core::CoreError),
    /// The native tch model.
    #[error(transparent)]
    Native(#[from] gauntlet_models::ModelsError),
    /// ONNX Runtime.
    #[error(transparent)]
    Ort(#[from] gauntlet_ort::OrtError),
    /// Options that do not fit the bundle.
    #[error("{0}")]
    Config(String),
}

/// Which runtime serves a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A native model on libtorch.
    Tch,
    /// An ONNX graph on ONNX Runtime (gradients from the tch interpreter).
    Onnx,
}

/// How bundles are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Device of tch models and of the interpreter; ONNX Runtime tries CUDA unless `cpu`.
    pub device: DeviceChoice,
    /// ONNX Runtime session settings (its `device` is overridden by [`Self::device`]).
    pub ort: OrtOptions,
    /// A word2vec or GloVe file the `sem` attack takes its cosine similarities from,
    /// instead of the model's input embeddings. Applied to word and subword models;
    /// character models, which `sem` cannot attack, ignore it.
    pub sem_vectors: Option<PathBuf>,
}

enum Models {
    Native(Box<NativeModel>),
    Onnx {
        ort: Box<OrtModel>,
        white_box: Result<Box<OnnxWhiteBox>, String>,
    },
}

/// A loaded bundle on its runtime.
pub struct LoadedBundle {
    manifest: Manifest,
    codec: TextCodec,
    digest: String,
    device: String,
    models: Models,
    similarity: Option<SimilarityVectors>,
}

impl std::fmt::Debug for LoadedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedBundle")
            .field("architecture", &self.manifest.architecture)
            .field("runtime", &self.runtime())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedBundle {
    /// Loads the bundle in `dir` on the runtime its manifest calls for.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self, BackendError> {
        let bundle = Self::load_model(dir, options)?;
        match &options.sem_vectors {
            Some(file) if bundle.codec.kind() == InputKind::Word => bundle.with_sem_vectors(file),
            _ => Ok(bundle),
        }
    }

    /// Reads `file` (word2vec or GloVe) as the `sem` attack's similarity vectors, laid out
    /// by this model's ids. Character models are refused: `sem` swaps words.
    pub fn with_sem_vectors(mut self, file: &Path) -> Result<Self, BackendError> {
        if self.codec.kind() != InputKind::Word {
            return Err(BackendError::Config(format!(
                "sem vectors {}: the model reads characters; sem swaps words of word models",
                file.display()
            )));
        }
        let vectors = WordVectors::read(file)?;
        let lowercase = self.manifest.tokenization.lowercase;
        self.similarity = Some(vectors.similarity(file, &self.codec, lowercase));
        Ok(self)
    }

    /// The `sem` similarity vectors, when some were given.
    pub fn sem_vectors(&self) -> Option<&SimilarityVectors> {
        self.similarity.as_ref()
    }

    fn load_model(dir: &Path, options: &LoadOptions) -> Result<Self, BackendError> {
        let manifest = Manifest::load(dir)?;
        let Some(spec) = manifest.onnx.clone() else {
            return Ok(Self::from_native(NativeModel::load(dir, options.device)?));
        };
        let codec = gauntlet_models::bundle::load_codec(dir, &manifest)?;
        let ort_options = OrtOptions {
            device: options.device,
            ..options.ort.clone()
        };
        let ort = OrtModel::from_manifest(dir, manifest.clone(), &ort_options)?;
        // The manifest is already read; only the graph is parsed again, for the interpreter.
        let graph_file = dir.join(&spec.file);
        let white_box = OnnxModel::load(&graph_file)
            .map_err(|e| e.to_string())
            .and_then(|graph| {
                OnnxWhiteBox::from_parts(manifest.clone(), &graph, options.device)
                    .map_err(|e| e.to_string())
            })
            .map(Box::new);
        let device = match &white_box {
            Ok(interpreter) => gauntlet_models::device_name(interpreter.device()),
            Err(_) => "cpu".to_owned(),
        };
        Ok(Self {
            digest: bundle_digest(dir)?,
            manifest,
            codec,
            device,
            models: Models::Onnx {
                ort: Box::new(ort),
                white_box,
            },
            similarity: None,
        })
    }

    /// Wraps a native model already in memory.
    pub fn from_native(model: NativeModel) -> Self {
        Self {
            manifest: model.manifest().clone(),
            codec: model.codec().clone(),
            digest: model.digest().to_owned(),
            device: model.device_name(),
            models: Models::Native(Box::new(model)),
            similarity: None,
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The text codec.
    pub fn codec(&self) -> &TextCodec {
        &self.codec
    }

    /// SHA-256 of the bundle's files.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Device of the gradient-capable model (`cpu`, `cuda:0`).
    pub fn device_name(&self) -> &str {
        &self.device
    }

    /// The runtime serving the bundle.
    pub fn runtime(&self) -> Runtime {
        match self.models {
            Models::Native(_) => Runtime::Tch,
            Models::Onnx { .. } => Runtime::Onnx,
        }
    }

    /// The fastest forward-only view (ONNX Runtime for ONNX bundles).
    pub fn classifier(&self) -> &dyn Classifier {
        match &self.models {
            Models::Native(model) => model.as_ref(),
            Models::Onnx { ort, .. } => ort.as_ref(),
        }
    }

    /// The white-box view, when the runtime can give gradients.
    pub fn white_box(&self) -> Option<&dyn WhiteBox> {
        match &self.models {
            Models::Native(model) => Some(model.as_ref()),
            Models::Onnx { white_box, .. } => {
                white_box.as_ref().ok().map(|m| m.as_ref() as &dyn WhiteBox)
            }
        }
    }

    /// Why there is no white-box view (`None` when there is one).
    pub fn white_box_unavailable(&self) -> Option<&str> {
        match &self.models {
            Models::Native(_) => None,
            Models::Onnx { white_box, .. } => white_box.as_ref().err().map(String::as_str),
        }
    }

    /// Where the tch interpreter's time went since the last call, per operator type plus
    /// its backward passes and word-flip scoring (see [`OnnxWhiteBox::operator_profile`]);
    /// `None` for native models and for ONNX bundles without a white box.
    pub fn interpreter_profile(&self) -> Option<Vec<OperatorTime>> {
        match &self.models {
            Models::Onnx {
                white_box: Ok(interpreter),
                ..
            } => interpreter.operator_profile().ok(),
            _ => None,
        }
    }

    /// Size of the input vocabulary (or alphabet).
    pub fn vocabulary_size(&self) -> usize {
        self.white_box()
            .map_or_else(|| self.codec.size(), |m| m.embedding_table().rows)
    }
}

/// Audits run on loaded bundles through the one loader the CLI and the server share.
impl AuditTarget for LoadedBundle {
    fn codec(&self) -> &TextCodec {
        LoadedBundle::codec(self)
    }
    fn classifier(&self) -> &dyn Classifier {
        LoadedBundle::classifier(self)
    }
    fn white_box(&self) -> Option<&dyn WhiteBox> {
        LoadedBundle::white_box(self)
    }
    fn white_box_unavailable(&self) -> Option<&str> {
        LoadedBundle::white_box_unavailable(self)
    }
    fn digest(&self) -> &str {
        LoadedBundle::digest(self)
    }
    fn sem_similarity(&self) -> Option<&SimilarityVectors> {
        self.similarity.as_ref()
    }
}
