//! [`OnnxWhiteBox`]: an ONNX bundle as a [`Classifier`] and [`WhiteBox`], evaluated by the
//! tch interpreter.
//!
//! The white-box view needs the word-embedding lookup: the `Gather` whose data is a rank-2
//! initializer `[rows, dim]` and whose indices are the `input_ids` graph input (possibly
//! through a `Cast`). Its output is where gradients are taken: the interpreter is given a
//! leaf tensor as an override of that output. Inputs are padded to the longest example with
//! the manifest's `pad_id`; the mask (if the graph has one) is 1 on real positions and 0 on
//! padding, token types are zeros. Every returned buffer is indexed by unpadded positions in
//! [`TokenIds::flat`] order. [`OnnxWhiteBox::operator_profile`] says where the time of its
//! calls went: per operator, plus the autograd backward pass and the word-flip scoring.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use gauntlet_core::classifier::{check_labels, ExampleGradient, GradientBatch};
use gauntlet_core::scoring::{check_gradients, check_queries};
use gauntlet_core::{
    gather_rows, scatter_rows, BundleModel, DeviceChoice, EmbeddingTable, FlipBatch, FlipQuery,
    Manifest, ModelError, OnnxOutput, OnnxSpec, PadSpec, PaddedIds, Probabilities, ScoredFlip,
    TargetMask, TokenIds, WhiteBox,
};
use gauntlet_onnx::{attribute, OnnxModel};
use tch::{Device, Kind, Tensor};

use crate::error::GraphError;
use crate::graph::OnnxGraph;
use crate::ops::math::kind_of;
use crate::profile::OperatorTime;
use gauntlet_tch::device::resolve_device;
use gauntlet_tch::scoring::ScoringTable;

/// Where a graph looks its word (or character) embeddings up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingSite {
    /// The initializer holding the `[rows, dim]` table.
    pub table: String,
    /// The `Gather` output: the embedded inputs, `input_ids` shape plus `dim`.
    pub output: String,
}

/// Finds the word-embedding `Gather` of a graph fed `input_ids`, if there is one.
pub fn find_embedding_site(model: &OnnxModel, input_ids: &str) -> Option<EmbeddingSite> {
    let graph = model.graph();
    let casts_of_ids: Vec<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Cast" && n.input.first().is_some_and(|i| i == input_ids))
        .filter_map(|n| n.output.first().map(String::as_str))
        .collect();
    graph.node.iter().find_map(|node| {
        if node.op_type != "Gather" || attribute(node, "axis").and_then(|a| a.i).unwrap_or(0) != 0 {
            return None;
        }
        let (data, indices) = (node.input.first()?, node.input.get(1)?);
        let table = graph.initializer.iter().find(|t| &t.name == data)?;
        let reads_ids = indices == input_ids || casts_of_ids.contains(&indices.as_str());
        let output = node.output.first()?;
        (table.dims.len() == 2 && reads_ids).then(|| EmbeddingSite {
            table: data.clone(),
            output: output.clone(),
        })
    })
}

/// The shortest innermost axis the graph's convolutions and pools accept (their widest
/// window on the last axis, less its padding), so short texts are padded up to it.
fn min_inner_len(model: &OnnxModel) -> usize {
    let graph = model.graph();
    let init_dims = |name: &str| {
        graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.dims.clone())
    };
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" || n.op_type == "MaxPool")
        .filter_map(|n| {
            let kernel = attribute(n, "kernel_shape")
                .map(|a| a.ints.clone())
                .or_else(|| {
                    n.input
                        .get(1)
                        .and_then(|w| init_dims(w))
                        .map(|d| d[2.min(d.len())..].to_vec())
                })?;
            let k = *kernel.last()?;
            let dil = attribute(n, "dilations")
                .and_then(|a| a.ints.last().copied())
                .unwrap_or(1);
            let pads = attribute(n, "pads")
                .map(|a| a.ints.clone())
                .unwrap_or_default();
            let spatial = kernel.len();
            let pad = if pads.len() == 2 * spatial {
                pads[spatial - 1] + pads[2 * spatial - 1]
            } else {
                0
            };
            Some(((k - 1) * dil + 1 - pad).max(1) as usize)
        })
        .max()
        .unwrap_or(1)
}

/// An ONNX bundle evaluated by the tch interpreter, with gradients.
pub struct OnnxWhiteBox {
    manifest: Manifest,
    spec: OnnxSpec,
    device: Device,
    site: EmbeddingSite,
    table: EmbeddingTable,
    mask_kind: Kind,
    min_len: usize,
    graph: Mutex<OnnxGraph>,
    /// The word-embedding table as word-flip scoring reads it, built once (locked after
    /// `graph` wherever both are held).
    scoring: Mutex<ScoringTable>,
}

impl std::fmt::Debug for OnnxWhiteBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxWhiteBox")
            .field("architecture", &self.manifest.architecture)
            .field("site", &self.site)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl OnnxWhiteBox {
    /// Loads the ONNX bundle in `dir` (manifest with an `[onnx]` section plus the graph).
    pub fn load(dir: &Path, device: DeviceChoice) -> Result<Self, GraphError> {
        let manifest = Manifest::load(dir)?;
        let spec = manifest.onnx.clone().ok_or_else(|| GraphError::Bundle {
            path: dir.to_owned(),
            message: "the manifest has no [onnx] section; this is not an ONNX bundle".into(),
        })?;
        let model = OnnxModel::load(&dir.join(&spec.file))?;
        Self::from_parts(manifest, &model, device)
    }

    /// Builds the white box from an already loaded manifest and graph.
    pub fn from_parts(
        manifest: Manifest,
        model: &OnnxModel,
        device: DeviceChoice,
    ) -> Result<Self, GraphError> {
        let bad = |message: String| GraphError::Bundle {
            path: model.path.clone(),
            message,
        };
        let spec = manifest
            .onnx
            .clone()
            .ok_or_else(|| bad("the manifest has no [onnx] section".into()))?;
        let device = resolve_device(device)?;
        let known: Vec<&str> = [
            Some(&spec.input_ids),
            spec.attention_mask.as_ref(),
            spec.token_type_ids.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        let feeds = model.feed_inputs();
        if let Some(extra) = feeds.iter().find(|i| !known.contains(&i.name.as_str())) {
            return Err(bad(format!(
                "graph input {:?} is not named in the manifest's [onnx] section (input_ids, attention_mask, token_type_ids)",
                extra.name
            )));
        }
        let site = find_embedding_site(model, &spec.input_ids).ok_or_else(|| {
            bad(format!(
                "no word-embedding Gather (a Gather of a [rows, dim] initializer indexed by {:?}) found; the bundle can run forward-only through ONNX Runtime but not as a white box",
                spec.input_ids
            ))
        })?;
        let mask_kind = spec
            .attention_mask
            .as_ref()
            .and_then(|m| feeds.iter().find(|i| &i.name == m))
            .and_then(|i| i.r#type.as_ref()?.tensor_type.as_ref())
            .and_then(|t| kind_of(i64::from(t.elem_type)))
            .unwrap_or(Kind::Int64);
        let min_len = min_inner_len(model);
        let graph = OnnxGraph::new(model, device)?;
        let table = embedding_table(&graph, &site)?;
        let device_table = device_table(&graph, &site)?;
        // The filter is an optimization: a table that cannot take it is scored exactly.
        let scoring = ScoringTable::new(device_table.shallow_clone())
            .unwrap_or_else(|_| ScoringTable::exact(device_table));
        Ok(Self {
            manifest,
            spec,
            device,
            site,
            table,
            mask_kind,
            min_len,
            graph: Mutex::new(graph),
            scoring: Mutex::new(scoring),
        })
    }

    /// The manifest of the bundle.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The embedding lookup gradients are taken at.
    pub fn embedding_site(&self) -> &EmbeddingSite {
        &self.site
    }

    /// The device the graph runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    fn lock(&self) -> Result<MutexGuard<'_, OnnxGraph>, ModelError> {
        self.graph
            .lock()
            .map_err(|_| ModelError::Backend("graph lock poisoned by an earlier panic".into()))
    }

    fn pad(&self, batch: &[TokenIds]) -> Result<PaddedIds, ModelError> {
        PaddedIds::new(
            batch,
            PadSpec {
                kind: self.manifest.tokenization.kind,
                vocabulary: Some(self.table.rows),
                pad_id: self.spec.pad_id,
                min_len: self.min_len,
            },
        )
    }

    fn feeds(&self, p: &PaddedIds) -> Result<HashMap<String, Tensor>, GraphError> {
        let ids = Tensor::f_from_slice(&p.ids)?
            .f_reshape(p.shape_i64().as_slice())?
            .f_to_device(self.device)?;
        let mut feeds = HashMap::new();
        if let Some(name) = &self.spec.attention_mask {
            let mask = Tensor::f_from_slice(&p.mask)?
                .f_reshape(p.shape_i64().as_slice())?
                .f_to_kind(self.mask_kind)?
                .f_to_device(self.device)?;
            feeds.insert(name.clone(), mask);
        }
        if let Some(name) = &self.spec.token_type_ids {
            feeds.insert(name.clone(), ids.f_zeros_like()?);
        }
        feeds.insert(self.spec.input_ids.clone(), ids);
        Ok(feeds)
    }

    /// Runs the graph to the scores output and returns log-probabilities `[B, K]`.
    fn log_probs(
        &self,
        graph: &OnnxGraph,
        p: &PaddedIds,
        leaf: Option<&Tensor>,
    ) -> Result<Tensor, GraphError> {
        let feeds = self.feeds(p)?;
        let mut overrides = HashMap::new();
        if let Some(leaf) = leaf {
            overrides.insert(self.site.output.clone(), leaf.shallow_clone());
        }
        let out = graph
            .evaluate(&feeds, &overrides, &[self.spec.output.as_str()])?
            .remove(0)
            .f_to_kind(Kind::Float)?;
        let classes = self.manifest.labels.len() as i64;
        if out.size() != [p.positions.len() as i64, classes] {
            return Err(GraphError::Evaluation(format!(
                "output {:?} has shape {:?}, expected [batch, {classes}] for the manifest's labels",
                self.spec.output,
                out.size()
            )));
        }
        Ok(match self.spec.output_kind {
            OnnxOutput::Logits => out.f_log_softmax(-1, Kind::Float)?,
            OnnxOutput::Probabilities => out.f_clamp_min(1e-30)?.f_log()?,
        })
    }

    /// Embedding rows of the padded ids, `ids shape + [dim]`, on the device.
    fn embed(&self, graph: &OnnxGraph, p: &PaddedIds) -> Result<Tensor, GraphError> {
        let table = graph.constant(&self.site.table).ok_or_else(|| {
            GraphError::Evaluation(format!("initializer {:?} vanished", self.site.table))
        })?;
        let ids = Tensor::f_from_slice(&p.ids)?.f_to_device(self.device)?;
        let mut shape = p.shape_i64();
        shape.push(self.table.dim as i64);
        Ok(table.f_index_select(0, &ids)?.f_reshape(shape.as_slice())?)
    }
}

/// The embedding table on the device, as `f32`.
fn device_table(graph: &OnnxGraph, site: &EmbeddingSite) -> Result<Tensor, GraphError> {
    Ok(graph
        .constant(&site.table)
        .ok_or_else(|| GraphError::Evaluation(format!("no initializer {:?}", site.table)))?
        .f_to_kind(Kind::Float)?)
}

fn embedding_table(graph: &OnnxGraph, site: &EmbeddingSite) -> Result<EmbeddingTable, GraphError> {
    let t = graph
        .constant(&site.table)
        .ok_or_else(|| GraphError::Evaluation(format!("no initializer {:?}", site.table)))?;
    let (rows, dim) = t.size2()?;
    let values = Vec::<f32>::try_from(
        t.f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_flatten(0, -1)?,
    )?;
    Ok(EmbeddingTable {
        rows: rows as usize,
        dim: dim as usize,
        values,
    })
}

fn probabilities(log_probs: &Tensor) -> Result<Probabilities, GraphError> {
    Ok(gauntlet_tch::probabilities(
        &log_probs.f_detach()?.f_exp()?,
    )?)
}

impl BundleModel for OnnxWhiteBox {
    fn bundle_manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn forward_probabilities(&self, batch: &[TokenIds]) -> Result<Probabilities, ModelError> {
        let padded = self.pad(batch)?;
        let graph = self.lock()?;
        let log_probs = tch::no_grad(|| self.log_probs(&graph, &padded, None))?;
        Ok(probabilities(&log_probs)?)
    }
}

impl WhiteBox for OnnxWhiteBox {
    fn embedding_table(&self) -> &EmbeddingTable {
        &self.table
    }

    fn predict_embedded(
        &self,
        batch: &[TokenIds],
        embeddings: &[Vec<f32>],
    ) -> Result<Probabilities, ModelError> {
        let padded = self.pad(batch)?;
        let dim = self.table.dim;
        // Padding positions keep their table row (normally the pad row).
        let mut host: Vec<f32> = padded
            .ids
            .iter()
            .flat_map(|&id| self.table.row(id as usize).iter().copied())
            .collect();
        scatter_rows(&padded.positions, embeddings, dim, &mut host)?;
        let graph = self.lock()?;
        let run = || -> Result<Probabilities, GraphError> {
            let mut shape = padded.shape_i64();
            shape.push(dim as i64);
            let leaf = Tensor::f_from_slice(&host)?
                .f_reshape(shape.as_slice())?
                .f_to_device(self.device)?;
            probabilities(&self.log_probs(&graph, &padded, Some(&leaf))?)
        };
        Ok(tch::no_grad(run)?)
    }

    fn loss_gradients(
        &self,
        batch: &[TokenIds],
        labels: &[usize],
    ) -> Result<GradientBatch, ModelError> {
        check_labels(labels, batch.len(), self.manifest.labels.len())?;
        let padded = self.pad(batch)?;
        let graph = self.lock()?;
        let dim = self.table.dim;
        let run = || -> Result<GradientBatch, GraphError> {
            let (grad, losses, probabilities) = self.backward(&graph, &padded, labels)?;
            let host = Vec::<f32>::try_from(grad.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
            let gradients = padded
                .positions
                .iter()
                .zip(losses)
                .map(|(rows, loss)| ExampleGradient {
                    loss,
                    values: gather_rows(rows, &host, dim),
                })
                .collect();
            Ok(GradientBatch {
                probabilities,
                gradients,
                dim,
            })
        };
        Ok(run()?)
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
        let padded = self.pad(batch)?;
        let graph = self.lock()?;
        let run = || -> Result<FlipBatch, GraphError> {
            let (grad, losses, probabilities) = self.backward(&graph, &padded, &labels)?;
            let started = Instant::now();
            let table = self.scoring()?;
            let flips = gauntlet_tch::scoring::top_word_flips(
                &grad,
                &table,
                &padded.positions,
                batch,
                queries,
                masks,
                k,
            )?;
            graph.profile().record(SCORING, started.elapsed());
            Ok(FlipBatch {
                probabilities,
                losses,
                flips,
            })
        };
        Ok(run()?)
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
        let started = Instant::now();
        let run = || -> Result<Vec<Vec<ScoredFlip>>, GraphError> {
            let table = self.scoring()?;
            Ok(gauntlet_tch::scoring::score_host_gradients(
                gradients, &table, batch, queries, masks, k,
            )?)
        };
        let flips = run()?;
        self.lock()?.profile().record(SCORING, started.elapsed());
        Ok(flips)
    }
}

/// The profile entry of the autograd backward pass (the forward pass is in the operators).
pub const BACKWARD: &str = "(autograd backward)";
/// The profile entry of word-flip scoring (the vocabulary product and its top-k).
pub const SCORING: &str = "(word-flip scoring)";

impl OnnxWhiteBox {
    /// Where the time of the calls since the last call went, longest first: each operator
    /// type of the forward passes, [`BACKWARD`] and [`SCORING`].
    pub fn operator_profile(&self) -> Result<Vec<OperatorTime>, ModelError> {
        Ok(self.lock()?.profile().take())
    }

    /// The word-flip scoring table (taken after the graph's lock when both are held).
    fn scoring(&self) -> Result<MutexGuard<'_, ScoringTable>, GraphError> {
        self.scoring
            .lock()
            .map_err(|_| GraphError::Evaluation("scoring table lock poisoned".into()))
    }

    /// One forward and backward pass: the gradient of each example's `labels[i]` loss with
    /// respect to the embedded inputs (padded, on the device), the losses and the
    /// probabilities.
    fn backward(
        &self,
        graph: &OnnxGraph,
        padded: &PaddedIds,
        labels: &[usize],
    ) -> Result<(Tensor, Vec<f32>, Probabilities), GraphError> {
        let leaf = self
            .embed(graph, padded)?
            .f_detach()?
            .set_requires_grad(true);
        let log_probs = self.log_probs(graph, padded, Some(&leaf))?;
        let targets: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        let targets = Tensor::f_from_slice(&targets)?
            .f_to_device(self.device)?
            .f_unsqueeze(1)?;
        let losses = log_probs
            .f_gather(1, &targets, false)?
            .f_squeeze_dim(1)?
            .f_neg()?;
        // Summing keeps each example's gradient equal to the gradient of its own loss.
        let total = losses.f_sum(Kind::Float)?;
        let started = Instant::now();
        let grad = Tensor::f_run_backward(&[&total], &[&leaf], false, false)?
            .into_iter()
            .next()
            .ok_or_else(|| GraphError::Evaluation("libtorch returned no gradient".into()))?;
        graph.profile().record(BACKWARD, started.elapsed());
        let losses = Vec::<f32>::try_from(losses.f_detach()?.f_to_device(Device::Cpu)?)?;
        Ok((grad, losses, probabilities(&log_probs)?))
    }
}
