//! [`OrtModel`]: an ONNX bundle as a [`Classifier`] on ONNX Runtime.
//!
//! Invariants: the manifest's `[onnx]` section names inputs and an output that the graph
//! has (checked at load, with the graph's actual names in the error); every prediction
//! returns one row of `labels.len()` probabilities per text. Sessions are pooled so
//! concurrent requests do not queue behind one another; each session is used by one thread
//! at a time (`Session::run` needs exclusive access).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use gauntlet_core::manifest::Manifest;
use gauntlet_core::{
    BundleModel, Classifier, DeviceChoice, ModelError, OnnxOutput, OnnxSpec, PadSpec, PaddedIds,
    Probabilities, TokenIds,
};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use crate::error::OrtError;
use crate::runtime;

/// Graph optimisation level of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimization {
    /// No graph rewrites.
    Disable,
    /// Constant folding and redundant-node elimination.
    Basic,
    /// Basic plus operator fusions.
    Extended,
    /// Everything, including layout optimisations.
    #[default]
    All,
}

/// How sessions are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtOptions {
    /// The ONNX Runtime library; `None` uses `$GAUNTLET_ORT_DYLIB` or the cached default.
    pub library: Option<PathBuf>,
    /// Threads inside one operator; 0 lets ONNX Runtime decide (one per core).
    pub intra_threads: usize,
    /// Graph optimisation level.
    pub optimization: Optimization,
    /// Sessions in the pool (concurrent predictions); at least 1.
    pub sessions: usize,
    /// `cuda` and `auto` try the CUDA execution provider; ONNX Runtime falls back to the CPU
    /// when its library has none (the PyPI `onnxruntime` wheel is CPU-only).
    pub device: DeviceChoice,
}

impl Default for OrtOptions {
    fn default() -> Self {
        Self {
            library: None,
            intra_threads: 0,
            optimization: Optimization::All,
            sessions: 1,
            device: DeviceChoice::Auto,
        }
    }
}

/// An ONNX bundle served by ONNX Runtime.
pub struct OrtModel {
    manifest: Manifest,
    spec: OnnxSpec,
    graph_path: PathBuf,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtModel")
            .field("graph", &self.graph_path)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl OrtModel {
    /// Loads the ONNX bundle in `dir` (manifest with an `[onnx]` section, and its graph).
    pub fn load(dir: &Path, options: &OrtOptions) -> Result<Self, OrtError> {
        let manifest = Manifest::load(dir)?;
        Self::from_manifest(dir, manifest, options)
    }

    /// Loads the graph of a bundle whose manifest is already read.
    pub fn from_manifest(
        dir: &Path,
        manifest: Manifest,
        options: &OrtOptions,
    ) -> Result<Self, OrtError> {
        let spec = manifest.onnx.clone().ok_or_else(|| OrtError::Spec {
            path: dir.to_owned(),
            message: "not an ONNX bundle: the manifest has no [onnx] section".into(),
        })?;
        let graph_path = dir.join(&spec.file);
        if !graph_path.is_file() {
            return Err(OrtError::Spec {
                path: graph_path,
                message: "missing graph file named by onnx.file".into(),
            });
        }
        let env = runtime::environment(options.library.as_deref())?;
        let session_err = |message: String| OrtError::Session {
            path: graph_path.clone(),
            message,
        };
        let level = match options.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        };
        let mut sessions = Vec::new();
        for _ in 0..options.sessions.max(1) {
            let mut builder = Session::builder(env)
                .map_err(|e| session_err(e.to_string()))?
                .with_optimization_level(level)
                .map_err(|e| session_err(e.to_string()))?;
            if options.intra_threads > 0 {
                builder = builder
                    .with_intra_threads(options.intra_threads)
                    .map_err(|e| session_err(e.to_string()))?;
            }
            if options.device != DeviceChoice::Cpu {
                builder = builder
                    .with_execution_providers([ort::ep::CUDA::default().build()])
                    .map_err(|e| session_err(e.to_string()))?;
            }
            let session = builder
                .commit_from_file(&graph_path)
                .map_err(|e| session_err(e.to_string()))?;
            sessions.push(Mutex::new(session));
        }
        let model = Self {
            manifest,
            spec,
            graph_path,
            sessions,
            next: AtomicUsize::new(0),
        };
        model.check_names()?;
        Ok(model)
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn check_names(&self) -> Result<(), OrtError> {
        let session = self.session();
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_owned())
            .collect();
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        let mut fed = vec![&self.spec.input_ids];
        fed.extend(self.spec.attention_mask.iter());
        fed.extend(self.spec.token_type_ids.iter());
        for name in &fed {
            if !inputs.contains(name) {
                return Err(OrtError::Spec {
                    path: self.graph_path.clone(),
                    message: format!(
                        "the manifest names graph input {name:?}, but the graph's inputs are {inputs:?}"
                    ),
                });
            }
        }
        if let Some(missing) = inputs.iter().find(|i| !fed.contains(i)) {
            return Err(OrtError::Spec {
                path: self.graph_path.clone(),
                message: format!(
                    "the graph needs input {missing:?}, which the manifest's [onnx] section does not name (input_ids, attention_mask, token_type_ids)"
                ),
            });
        }
        if !outputs.contains(&self.spec.output) {
            return Err(OrtError::Spec {
                path: self.graph_path.clone(),
                message: format!(
                    "the manifest names output {:?}, but the graph's outputs are {outputs:?}",
                    self.spec.output
                ),
            });
        }
        Ok(())
    }

    /// A free session, or the next one in turn when all are busy.
    fn session(&self) -> MutexGuard<'_, Session> {
        for slot in &self.sessions {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        self.sessions[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn backend(e: impl std::fmt::Display) -> ModelError {
    ModelError::Backend(format!("ONNX Runtime: {e}"))
}

/// Softmax of every row, in place.
fn softmax_rows(values: &mut [f32], classes: usize) {
    for row in values.chunks_mut(classes) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

impl BundleModel for OrtModel {
    fn bundle_manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn forward_probabilities(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        let padded = PaddedIds::new(
            batch,
            PadSpec {
                kind: self.input_kind(),
                vocabulary: None,
                pad_id: self.spec.pad_id,
                min_len: self.spec.min_length.max(1),
            },
        )?;
        let shape = padded.shape_i64();
        let mut inputs = vec![(
            self.spec.input_ids.clone(),
            Tensor::from_array((shape.clone(), padded.ids)).map_err(backend)?,
        )];
        if let Some(name) = &self.spec.attention_mask {
            inputs.push((
                name.clone(),
                Tensor::from_array((shape.clone(), padded.mask)).map_err(backend)?,
            ));
        }
        if let Some(name) = &self.spec.token_type_ids {
            let zeros = vec![0i64; shape.iter().product::<i64>() as usize];
            inputs.push((
                name.clone(),
                Tensor::from_array((shape, zeros)).map_err(backend)?,
            ));
        }
        let classes = self.manifest.labels.len();
        let mut session = self.session();
        let outputs = session.run(inputs).map_err(backend)?;
        let output = outputs
            .get(&self.spec.output)
            .ok_or_else(|| backend(format!("no output {:?}", self.spec.output)))?;
        let (out_shape, values) = output.try_extract_tensor::<f32>().map_err(backend)?;
        let dims: Vec<i64> = out_shape.iter().copied().collect();
        if dims != [batch.len() as i64, classes as i64] {
            return Err(backend(format!(
                "output {:?} has shape {dims:?}; expected [{}, {classes}] (batch, labels in the manifest)",
                self.spec.output,
                batch.len()
            )));
        }
        let mut values = values.to_vec();
        if self.spec.output_kind == OnnxOutput::Logits {
            softmax_rows(&mut values, classes);
        }
        Ok(Probabilities { classes, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut v = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, 0.0];
        softmax_rows(&mut v, 3);
        assert!((v[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
        assert!((v[3] - 0.5).abs() < 1e-6 && v[5] < 1e-6);
    }
}
