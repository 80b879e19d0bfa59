//! Reading and writing whole `model.onnx` files, and the lookups every consumer needs.
//!
//! [`OnnxModel::load`] guarantees a graph is present and names the file in every error.
//! Nothing here evaluates the graph: runtimes (`gauntlet-ort`, the tch interpreter) do.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::OnnxError;
use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{decode, HostTensor};

/// A decoded model file.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    /// Where it was read from (for error messages).
    pub path: PathBuf,
    /// The decoded protobuf.
    pub proto: ModelProto,
}

impl OnnxModel {
    /// Reads and decodes `path`; fails when it is not an ONNX model with a graph.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = fs::read(path).map_err(|source| OnnxError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::decode(path, &bytes)
    }

    /// Decodes model bytes; `path` only labels errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self, OnnxError> {
        let proto = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if proto.graph.is_none() {
            return Err(OnnxError::Invalid {
                path: path.to_owned(),
                message: "the model has no graph".into(),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            proto,
        })
    }

    /// Wraps a model built in memory.
    pub fn from_proto(proto: ModelProto) -> Self {
        Self {
            path: PathBuf::from("<in memory>"),
            proto,
        }
    }

    /// Encodes and writes the model to `path` (through a temporary file and a rename, so a
    /// reader never sees half a model).
    pub fn save(&self, path: &Path) -> Result<(), OnnxError> {
        let io = |source| OnnxError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("onnx.tmp");
        fs::write(&tmp, self.proto.encode_to_vec()).map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// The main graph (present by construction).
    pub fn graph(&self) -> &GraphProto {
        static EMPTY: std::sync::OnceLock<GraphProto> = std::sync::OnceLock::new();
        self.proto
            .graph
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(GraphProto::default))
    }

    /// The default-domain (`ai.onnx`) opset version the model imports.
    pub fn opset(&self) -> Option<i64> {
        self.proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
    }

    /// Graph inputs that are not initializers (what a caller must feed).
    pub fn feed_inputs(&self) -> Vec<&ValueInfoProto> {
        let graph = self.graph();
        let init: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        graph
            .input
            .iter()
            .filter(|i| !init.contains(i.name.as_str()))
            .collect()
    }

    /// Names of the graph outputs.
    pub fn output_names(&self) -> Vec<&str> {
        self.graph()
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect()
    }

    /// Every initializer, decoded, by name.
    pub fn initializers(&self) -> Result<HashMap<String, HostTensor>, OnnxError> {
        self.graph()
            .initializer
            .iter()
            .map(|t| Ok((t.name.clone(), decode(t)?)))
            .collect()
    }

    /// An error about this file.
    pub fn invalid(&self, message: impl Into<String>) -> OnnxError {
        OnnxError::Invalid {
            path: self.path.clone(),
            message: message.into(),
        }
    }
}

/// Looks up an attribute of a node by name.
pub fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// A node's label for messages: `Conv (node "conv1")`.
pub fn describe(node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("{} (node with outputs {:?})", node.op_type, node.output)
    } else {
        format!("{} (node {:?})", node.op_type, node.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GraphBuilder;

    #[test]
    fn a_saved_model_loads_back_with_its_inputs_and_initializers() {
        let mut g = GraphBuilder::new("t");
        g.input_int64("input_ids", &["batch", "seq"]);
        let w = g.float_initializer("emb", &[3, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let out = g.node("Gather", &[&w, "input_ids"], &[]);
        g.output_float(&out, &["batch", "seq", "2"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        OnnxModel::from_proto(g.finish(17)).save(&path).unwrap();
        let model = OnnxModel::load(&path).unwrap();
        assert_eq!(model.opset(), Some(17));
        let feeds: Vec<_> = model.feed_inputs().iter().map(|i| i.name.clone()).collect();
        assert_eq!(feeds, ["input_ids"]);
        assert_eq!(model.output_names(), [out.as_str()]);
        assert_eq!(model.initializers().unwrap()[&w].dims, [3, 2]);
    }

    #[test]
    fn garbage_and_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, b"\xff\xff\xff not protobuf").unwrap();
        let err = OnnxModel::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("model.onnx") && err.contains("not an ONNX model"),
            "{err}"
        );
        let err = OnnxModel::load(&dir.path().join("absent.onnx")).unwrap_err();
        assert!(err.to_string().contains("absent.onnx"));
    }
}
