//! Export of native (tch) models to ONNX bundles.
//!
//! [`network_graph`] writes a network as an opset-17 graph that computes exactly what the
//! native forward pass computes in eval mode: int64 `input_ids` and `attention_mask`
//! (`[batch, tokens]`, or `[batch, words, chars]` for character models; 1 real, 0 pad) in,
//! float `logits` `[batch, classes]` (before softmax) out, batch and length axes dynamic.
//! The graph begins with a `Gather` from the effective embedding table (frequency-normalized
//! rows baked in) whose indices are the `input_ids` input itself — white-box readers find
//! the embedding lookup by that — followed by the multiplication with the mask.
//!
//! [`export_bundle`] turns a native bundle directory into an ONNX bundle directory:
//! `model.onnx`, the manifest with an [`OnnxSpec`] (architecture, labels and provenance
//! kept), `tokenizer.json` and, for character models, `words.txt`; no weights file. The
//! bundle is written next to its target and renamed into place, and only an empty
//! directory or an earlier Gauntlet bundle is ever replaced.

mod birnn;
mod char_cnn_lstm;
mod graph;
mod rnn;
mod word_cnn;

use std::fs;
use std::path::{Path, PathBuf};

use gauntlet_core::manifest::{OnnxOutput, ONNX_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WORDS_FILE};
use gauntlet_core::{InputKind, Manifest, OnnxSpec};
use gauntlet_onnx::proto::ModelProto;
use gauntlet_onnx::OnnxModel;
use serde::de::DeserializeOwned;
use tch::{nn, Device};

use crate::bundle::{load_codec, load_network};
use crate::error::ModelsError;
use crate::network::{Architecture, HyperParameters, Network};
use graph::{Graph, Param, Weights};

/// ONNX opset the exported graphs use.
pub const OPSET: i64 = 17;
/// Name of the token-id input.
pub const INPUT_IDS: &str = "input_ids";
/// Name of the attention-mask input.
pub const ATTENTION_MASK: &str = "attention_mask";
/// Name of the logits output.
pub const LOGITS: &str = "logits";

/// How an exported graph is fed and read, as its manifest records it.
pub fn onnx_spec() -> OnnxSpec {
    OnnxSpec {
        file: ONNX_FILE.into(),
        input_ids: INPUT_IDS.into(),
        attention_mask: Some(ATTENTION_MASK.into()),
        token_type_ids: None,
        output: LOGITS.into(),
        output_kind: OnnxOutput::Logits,
        pad_id: 0,
        // The convolutions pad inside the graph, so any length works.
        ..OnnxSpec::default()
    }
}

fn config<T: DeserializeOwned>(
    arch: Architecture,
    hyper: &HyperParameters,
) -> Result<T, ModelsError> {
    let value = serde_json::Value::Object(hyper.clone().into_iter().collect());
    serde_json::from_value(value)
        .map_err(|e| ModelsError::Config(format!("{arch} hyper-parameters: {e}")))
}

/// The ONNX model of `net`, an `arch` network built from `hyper` whose variables live in
/// `vs`, with `classes` outputs.
pub fn network_graph(
    arch: Architecture,
    hyper: &HyperParameters,
    net: &dyn Network,
    vs: &nn::VarStore,
    classes: usize,
) -> Result<ModelProto, ModelsError> {
    let weights = Weights::new(vs.variables());
    let table = tch::no_grad(|| Param::from_tensor("embedding", &net.embedding()))?;
    let mut graph = Graph::new(&format!("gauntlet-{arch}"));
    let dims: &[&str] = match arch.input_kind() {
        InputKind::Word => &["batch", "tokens"],
        InputKind::Char => &["batch", "words", "chars"],
    };
    graph.builder().input_int64(INPUT_IDS, dims);
    graph.builder().input_int64(ATTENTION_MASK, dims);
    let logits = match arch {
        Architecture::WordCnn => {
            word_cnn::build(&mut graph, &config(arch, hyper)?, &weights, &table)?
        }
        Architecture::BiRnn => birnn::build(&mut graph, &config(arch, hyper)?, &weights, &table)?,
        Architecture::CharCnnLstm => {
            char_cnn_lstm::build(&mut graph, &config(arch, hyper)?, &weights, &table)?
        }
    };
    let mut builder = graph.into_builder();
    builder.rename(&logits, LOGITS);
    builder.output_float(LOGITS, &["batch", &classes.to_string()]);
    Ok(builder.finish(OPSET))
}

/// What [`export_bundle`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedBundle {
    /// The ONNX bundle directory.
    pub dir: PathBuf,
    /// The files in it, in writing order.
    pub files: Vec<PathBuf>,
    /// Nodes in the graph.
    pub nodes: usize,
}

fn bundle_err(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelsError {
    ModelsError::Bundle {
        path: path.into(),
        message: message.into(),
    }
}

/// Loads the native bundle at `model_dir` on the CPU and writes it as an ONNX bundle to
/// `out_dir` (replacing an earlier bundle there; refusing any other non-empty directory).
pub fn export_bundle(model_dir: &Path, out_dir: &Path) -> Result<ExportedBundle, ModelsError> {
    let manifest = Manifest::load(model_dir)?;
    if manifest.onnx.is_some() {
        return Err(bundle_err(
            Manifest::locate(model_dir)?,
            "this is already an ONNX bundle; export needs a native one",
        ));
    }
    let arch: Architecture = manifest.architecture.parse()?;
    let weights_path = model_dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        return Err(bundle_err(weights_path, "missing bundle file"));
    }
    let codec = load_codec(model_dir, &manifest)?;
    let (vs, net) = load_network(model_dir, &manifest, arch, &codec, Device::Cpu)?;
    let proto = network_graph(
        arch,
        &manifest.hyper_parameters,
        net.as_ref(),
        &vs,
        manifest.labels.len(),
    )?;
    let nodes = proto.graph.as_ref().map_or(0, |g| g.node.len());
    check_target(model_dir, out_dir)?;

    let staging = sibling(out_dir, "partial")?;
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| bundle_err(&staging, e.to_string()))?;
    let written = write_files(model_dir, &staging, &manifest, proto, arch.input_kind());
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    replace_dir(&staging, out_dir)?;
    Ok(ExportedBundle {
        dir: out_dir.to_owned(),
        files: files.iter().map(|f| out_dir.join(f)).collect(),
        nodes,
    })
}

/// Refuses to export onto the source bundle or over a directory that is not a bundle.
fn check_target(model_dir: &Path, out_dir: &Path) -> Result<(), ModelsError> {
    if out_dir.exists() {
        if !out_dir.is_dir() {
            return Err(bundle_err(out_dir, "exists and is not a directory"));
        }
        let same = match (fs::canonicalize(model_dir), fs::canonicalize(out_dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if same {
            return Err(bundle_err(
                out_dir,
                "is the bundle being exported; choose another output directory",
            ));
        }
        let empty = fs::read_dir(out_dir)
            .map_err(|e| bundle_err(out_dir, e.to_string()))?
            .next()
            .is_none();
        if !empty && Manifest::locate(out_dir).is_err() {
            return Err(bundle_err(
                out_dir,
                "is not empty and holds no Gauntlet bundle; refusing to overwrite it",
            ));
        }
    }
    Ok(())
}

/// A hidden sibling of `dir` for staging (`.NAME.KIND-PID`).
fn sibling(dir: &Path, kind: &str) -> Result<PathBuf, ModelsError> {
    let name = dir
        .file_name()
        .ok_or_else(|| bundle_err(dir, "not a directory name"))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| bundle_err(parent, e.to_string()))?;
    Ok(parent.join(format!(
        ".{}.{kind}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes the bundle's files into `staging`; returns their names.
fn write_files(
    model_dir: &Path,
    staging: &Path,
    manifest: &Manifest,
    proto: ModelProto,
    kind: InputKind,
) -> Result<Vec<String>, ModelsError> {
    OnnxModel::from_proto(proto)
        .save(&staging.join(ONNX_FILE))
        .map_err(|e| bundle_err(staging.join(ONNX_FILE), e.to_string()))?;
    let mut files = vec![ONNX_FILE.to_owned()];
    let mut copies = vec![TOKENIZER_FILE];
    if kind == InputKind::Char {
        copies.push(WORDS_FILE);
    }
    for file in copies {
        fs::copy(model_dir.join(file), staging.join(file))
            .map_err(|e| bundle_err(model_dir.join(file), format!("cannot copy: {e}")))?;
        files.push(file.to_owned());
    }
    // The manifest goes last: a directory without one never loads as a bundle.
    let manifest = Manifest {
        onnx: Some(onnx_spec()),
        ..manifest.clone()
    };
    manifest.save(staging)?;
    files.push(gauntlet_core::manifest::MANIFEST_TOML.to_owned());
    Ok(files)
}

/// Moves `staging` to `dir`, moving an existing `dir` aside first and deleting it after.
fn replace_dir(staging: &Path, dir: &Path) -> Result<(), ModelsError> {
    let old = if dir.exists() {
        let old = sibling(dir, "old")?;
        let _ = fs::remove_dir_all(&old);
        fs::rename(dir, &old)
            .map_err(|e| bundle_err(dir, format!("cannot move the earlier bundle aside: {e}")))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(staging, dir) {
        if let Some(old) = &old {
            let _ = fs::rename(old, dir);
        }
        let _ = fs::remove_dir_all(staging);
        return Err(bundle_err(dir, e.to_string()));
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of(arch: Architecture, hyper: HyperParameters) -> ModelProto {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = arch.build(&vs.root(), &hyper, 12, 3).unwrap();
        network_graph(arch, &hyper, net.as_ref(), &vs, 3).unwrap()
    }

    #[test]
    fn every_architecture_has_the_documented_interface() {
        for arch in Architecture::ALL {
            let mut hyper = arch.default_hyper_parameters();
            hyper.insert("normalize_embeddings".into(), serde_json::json!(true));
            let proto = graph_of(arch, hyper);
            let model = OnnxModel::from_proto(proto);
            assert_eq!(model.opset(), Some(OPSET));
            let inputs: Vec<&str> = model
                .feed_inputs()
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            assert_eq!(inputs, [INPUT_IDS, ATTENTION_MASK], "{arch}");
            assert_eq!(model.output_names(), [LOGITS], "{arch}");
            let lookups = model
                .graph()
                .node
                .iter()
                .filter(|n| n.op_type == "Gather" && n.input[1] == INPUT_IDS)
                .count();
            assert_eq!(lookups, 1, "{arch}: one embedding Gather reads input_ids");
            let table = &model.initializers().unwrap()["embedding_1"];
            assert_eq!(table.dims[0], 12, "{arch}");
        }
    }

    #[test]
    fn foreign_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("source");
        let foreign = root.path().join("foreign");
        fs::create_dir_all(&source).unwrap();
        fs::create_dir_all(&foreign).unwrap();
        check_target(&source, &foreign).unwrap();
        fs::write(foreign.join("data.csv"), "x").unwrap();
        let err = check_target(&source, &foreign).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        let err = check_target(&source, &source).unwrap_err().to_string();
        assert!(err.contains("being exported"), "{err}");
    }
}
