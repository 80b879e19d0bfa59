//! The bundle manifest (`gauntlet.toml`, or `gauntlet.json`): what a bundle directory holds
//! and how to read it.
//!
//! A bundle is a directory with the manifest, `tokenizer.json`, the weights
//! (`model.safetensors`) and, for character models, `words.txt` (the training word
//! vocabulary, one word a line). The manifest is validated on load: the format version must
//! be one this build reads, labels must be numbered `0..K-1` with distinct keys, and the
//! tokenization limits must be positive. Errors always name the file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classifier::InputKind;
use crate::error::CoreError;

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Manifest file name (TOML).
pub const MANIFEST_TOML: &str = "gauntlet.toml";
/// Manifest file name (JSON alternative).
pub const MANIFEST_JSON: &str = "gauntlet.json";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Weights file name for native models.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Word vocabulary of character models.
pub const WORDS_FILE: &str = "words.txt";
/// Default graph file of ONNX bundles.
pub const ONNX_FILE: &str = "model.onnx";

/// One class of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Class index, `0..K-1`.
    pub id: usize,
    /// The label as written in datasets (e.g. `"0"`).
    pub key: String,
    /// Human-readable name (e.g. `"negative"`); defaults to the key.
    pub name: String,
}

/// Which tokenizer pipeline a bundle's `tokenizer.json` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScheme {
    /// Gauntlet's own pipelines: a `WordLevel` vocabulary (word models) or alphabet
    /// (character models) with `[PAD]` at id 0 and `[UNK]` at id 1.
    #[default]
    Native,
    /// A HuggingFace subword tokenizer (WordPiece, BPE, Unigram) with special tokens added by
    /// its post-processor; padding and unknown ids are looked up by `pad_token`/`unk_token`.
    /// Only valid with `kind = "word"`.
    Subword,
}

impl TokenScheme {
    fn is_native(&self) -> bool {
        *self == Self::Native
    }
}

/// How text becomes ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokenization {
    /// Word or character model (subword models read word-kind ids: one id per token).
    pub kind: InputKind,
    /// Whether text is lowercased first.
    pub lowercase: bool,
    /// Maximum number of words read; longer texts are truncated. For subword models, the
    /// maximum number of tokens, special tokens included (the model's `max_length`).
    pub max_length: usize,
    /// Maximum characters read per word (character models; ignored by word models).
    pub max_word_length: usize,
    /// Padding token (id 0 for native pipelines; looked up in subword vocabularies).
    pub pad_token: String,
    /// Unknown token (id 1 for native pipelines; looked up in subword vocabularies).
    pub unk_token: String,
    /// Native pipeline or HuggingFace subword tokenizer. Omitted (native) in older manifests.
    #[serde(default, skip_serializing_if = "TokenScheme::is_native")]
    pub scheme: TokenScheme,
}

/// Where a bundle came from. Every field is optional: a bundle made outside Gauntlet
/// (converted weights, an HF export) records what it knows, and an absent field reads as
/// unknown ([`Provenance::describe`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The exact command line that produced the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Training data file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_data: Option<String>,
    /// Development data file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_data: Option<String>,
    /// Random seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Device the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Epochs run (fewer than asked when early stopping ended the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Early-stopping patience in epochs, if training used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// The epoch kept (lowest dev loss), 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// Training wall time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    /// Adversarial training method and settings (`none` for clean training).
    #[serde(default)]
    pub adversarial: BTreeMap<String, serde_json::Value>,
    /// Pretrained word vectors the input embeddings started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EmbeddingsProvenance>,
}

/// The pretrained vectors a word model started from (`gauntlet-train train --embeddings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsProvenance {
    /// The file as given.
    pub file: String,
    /// SHA-256 of the file.
    pub digest: String,
    /// Vector width.
    pub dim: usize,
    /// Vocabulary words (special tokens aside) that took a pretrained vector.
    pub found: usize,
    /// Vocabulary words, special tokens aside.
    pub words: usize,
    /// Whether the embeddings were frozen during training (CNN-static).
    pub frozen: bool,
}

impl Provenance {
    /// One line for people: `12 epochs on cpu, kept epoch 7, 95.1 s, seed 42`, with
    /// `unknown` for what the bundle does not record.
    pub fn describe(&self) -> String {
        fn or_unknown<T: std::fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
        }
        format!(
            "{} epochs on {}, kept epoch {}, {} s, seed {}",
            or_unknown(self.epochs),
            or_unknown(self.device.as_deref()),
            or_unknown(self.best_epoch),
            or_unknown(self.wall_seconds.map(|s| format!("{s:.1}"))),
            or_unknown(self.seed)
        )
    }
}

/// What the graph's output holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnnxOutput {
    /// Unnormalized scores; the backend applies a softmax.
    #[default]
    Logits,
    /// Class probabilities already.
    Probabilities,
}

/// How an ONNX bundle's graph is fed and read (`[onnx]` in the manifest). Its presence makes
/// a bundle an ONNX bundle: `model.onnx` replaces `model.safetensors`.
///
/// Word (and subword) graphs take `input_ids` as int64 `[batch, tokens]`; character graphs
/// as int64 `[batch, words, chars]`. The optional mask has the shape of `input_ids` and holds
/// 1 at real positions, 0 at padding (`pad_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxSpec {
    /// Graph file inside the bundle.
    #[serde(default = "OnnxSpec::default_file")]
    pub file: String,
    /// Name of the token-id input.
    #[serde(default = "OnnxSpec::default_input_ids")]
    pub input_ids: String,
    /// Name of the attention-mask input, if the graph has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_mask: Option<String>,
    /// Name of the token-type (segment) input, fed zeros, if the graph has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_ids: Option<String>,
    /// Name of the output read as scores, `[batch, classes]`.
    #[serde(default = "OnnxSpec::default_output")]
    pub output: String,
    /// Whether that output holds logits or probabilities.
    #[serde(default)]
    pub output_kind: OnnxOutput,
    /// Id fed at padded positions.
    #[serde(default)]
    pub pad_id: u32,
    /// The innermost axis is padded to at least this many positions (tokens, or characters
    /// of a word): graphs with convolutions need at least their widest filter.
    #[serde(default = "OnnxSpec::default_min_length")]
    pub min_length: usize,
}

impl OnnxSpec {
    fn default_file() -> String {
        ONNX_FILE.into()
    }
    fn default_input_ids() -> String {
        "input_ids".into()
    }
    fn default_output() -> String {
        "logits".into()
    }
    fn default_min_length() -> usize {
        1
    }
}

impl Default for OnnxSpec {
    fn default() -> Self {
        Self {
            file: Self::default_file(),
            input_ids: Self::default_input_ids(),
            attention_mask: None,
            token_type_ids: None,
            output: Self::default_output(),
            output_kind: OnnxOutput::Logits,
            pad_id: 0,
            min_length: Self::default_min_length(),
        }
    }
}

/// The manifest of a model bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Architecture name (`word-cnn`, `char-cnn-lstm`, `birnn`).
    pub architecture: String,
    /// Architecture hyper-parameters, as the architecture defines them.
    pub hyper_parameters: BTreeMap<String, serde_json::Value>,
    /// Classes, indexed by id.
    pub labels: Vec<Label>,
    /// Tokenization settings.
    pub tokenization: Tokenization,
    /// Training provenance.
    #[serde(default)]
    pub training: Provenance,
    /// Evaluation metrics recorded at training time (e.g. `dev_accuracy`).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Present for ONNX bundles: how to feed and read `model.onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxSpec>,
}

impl Manifest {
    /// Path of the manifest inside a bundle directory (TOML preferred, then JSON).
    pub fn locate(dir: &Path) -> Result<PathBuf, CoreError> {
        if !dir.is_dir() {
            return Err(CoreError::Manifest {
                path: dir.to_owned(),
                message: "bundle directory does not exist".into(),
            });
        }
        [MANIFEST_TOML, MANIFEST_JSON]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| CoreError::Manifest {
                path: dir.join(MANIFEST_TOML),
                message: format!("missing manifest (neither {MANIFEST_TOML} nor {MANIFEST_JSON})"),
            })
    }

    /// Reads and validates the manifest of a bundle directory.
    pub fn load(dir: &Path) -> Result<Self, CoreError> {
        let path = Self::locate(dir)?;
        let text = fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        let bad = |message: String| CoreError::Manifest {
            path: path.clone(),
            message,
        };
        // Read the version first so an unknown version is reported as such, not as a
        // confusing schema error.
        let version = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| bad(e.to_string()))?
                .get("format_version")
                .and_then(serde_json::Value::as_u64)
        } else {
            text.parse::<toml::Table>()
                .map_err(|e| bad(e.to_string()))?
                .get("format_version")
                .and_then(toml::Value::as_integer)
                .and_then(|v| u64::try_from(v).ok())
        };
        match version {
            None => return Err(bad("missing or invalid `format_version`".into())),
            Some(v) if v != u64::from(FORMAT_VERSION) => {
                return Err(bad(format!(
                    "unsupported format_version {v}: this build reads version {FORMAT_VERSION}"
                )))
            }
            Some(_) => {}
        }
        let manifest: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| bad(e.to_string()))?
        };
        manifest.validate().map_err(bad)?;
        Ok(manifest)
    }

    /// Writes `gauntlet.toml` into a bundle directory.
    pub fn save(&self, dir: &Path) -> Result<(), CoreError> {
        let path = dir.join(MANIFEST_TOML);
        let text = toml::to_string_pretty(self).map_err(|e| CoreError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fs::write(&path, text).map_err(|e| CoreError::io(&path, e))
    }

    /// Checks the invariants documented on the module.
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.len() < 2 {
            return Err("a classifier needs at least two labels".into());
        }
        for (i, label) in self.labels.iter().enumerate() {
            if label.id != i {
                return Err(format!(
                    "labels must be numbered 0..K-1 in order; entry {i} has id {}",
                    label.id
                ));
            }
            if self.labels[..i].iter().any(|l| l.key == label.key) {
                return Err(format!("label key {:?} appears twice", label.key));
            }
        }
        if self.tokenization.max_length == 0 {
            return Err("tokenization.max_length must be at least 1".into());
        }
        if let Some(onnx) = &self.onnx {
            if onnx.file.contains('/') || onnx.file.contains('\\') || onnx.file.starts_with('.') {
                return Err(format!(
                    "onnx.file {:?} must be a plain file name inside the bundle",
                    onnx.file
                ));
            }
            if onnx.input_ids.is_empty() || onnx.output.is_empty() {
                return Err("onnx.input_ids and onnx.output must name graph values".into());
            }
        }
        if self.tokenization.scheme == TokenScheme::Subword
            && self.tokenization.kind != InputKind::Word
        {
            return Err("tokenization.scheme = \"subword\" needs kind = \"word\"".into());
        }
        if self.tokenization.kind == InputKind::Char && self.tokenization.max_word_length == 0 {
            return Err(
                "tokenization.max_word_length must be at least 1 for character models".into(),
            );
        }
        Ok(())
    }

    /// The label whose key or name is `text`.
    pub fn label(&self, text: &str) -> Option<&Label> {
        find_label(&self.labels, text)
    }
}

/// The label whose key is `text`, else the one whose display name is: keys (as written in
/// datasets) take precedence, so a key that is another label's name still means its own
/// label.
pub fn find_label<'l>(labels: &'l [Label], text: &str) -> Option<&'l Label> {
    labels
        .iter()
        .find(|l| l.key == text)
        .or_else(|| labels.iter().find(|l| l.name == text))
}

/// SHA-256 over the bundle's files (manifest, tokenizer, weights, word list, ONNX graph),
/// in a fixed order: the model identity reports and caches refer to.
pub fn bundle_digest(dir: &Path) -> Result<String, CoreError> {
    let mut hasher = Sha256::new();
    let manifest = Manifest::locate(dir)?;
    for path in [
        manifest,
        dir.join(TOKENIZER_FILE),
        dir.join(WEIGHTS_FILE),
        dir.join(WORDS_FILE),
        dir.join(ONNX_FILE),
    ] {
        if path.is_file() {
            let bytes = fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
            hasher.update(
                path.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            architecture: "word-cnn".into(),
            hyper_parameters: BTreeMap::from([("embedding_dim".into(), 8.into())]),
            labels: vec![
                Label {
                    id: 0,
                    key: "0".into(),
                    name: "negative".into(),
                },
                Label {
                    id: 1,
                    key: "1".into(),
                    name: "positive".into(),
                },
            ],
            tokenization: Tokenization {
                kind: InputKind::Word,
                lowercase: true,
                max_length: 10,
                max_word_length: 0,
                pad_token: "[PAD]".into(),
                unk_token: "[UNK]".into(),
                scheme: TokenScheme::Native,
            },
            training: Provenance::default(),
            metrics: BTreeMap::from([("dev_accuracy".into(), 0.5)]),
            onnx: None,
        }
    }

    #[test]
    fn onnx_section_round_trips_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = sample();
        manifest.onnx = Some(OnnxSpec {
            attention_mask: Some("attention_mask".into()),
            ..OnnxSpec::default()
        });
        manifest.save(dir.path()).unwrap();
        let loaded = Manifest::load(dir.path()).unwrap();
        assert_eq!(loaded, manifest);
        assert_eq!(loaded.onnx.unwrap().file, ONNX_FILE);
        manifest.onnx = Some(OnnxSpec {
            file: "../elsewhere.onnx".into(),
            ..OnnxSpec::default()
        });
        assert!(manifest.validate().unwrap_err().contains("plain file name"));
    }

    #[test]
    fn subword_scheme_round_trips_and_native_stays_implicit() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(MANIFEST_TOML)).unwrap();
        assert!(!text.contains("scheme"), "{text}");
        let mut manifest = sample();
        manifest.tokenization.scheme = TokenScheme::Subword;
        manifest.save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(MANIFEST_TOML)).unwrap();
        assert!(text.contains("scheme = \"subword\""), "{text}");
        assert_eq!(Manifest::load(dir.path()).unwrap(), manifest);
        manifest.tokenization.kind = InputKind::Char;
        manifest.tokenization.max_word_length = 5;
        assert!(manifest.validate().unwrap_err().contains("subword"));
    }

    #[test]
    fn round_trips_through_toml() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), sample());
    }

    #[test]
    fn reads_json_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::to_string(&sample()).unwrap();
        fs::write(dir.path().join(MANIFEST_JSON), json).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), sample());
    }

    #[test]
    fn rejects_unknown_format_version_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = sample();
        m.format_version = 99;
        m.save(dir.path()).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gauntlet.toml"), "{err}");
        assert!(err.contains("unsupported format_version 99"), "{err}");
    }

    #[test]
    fn rejects_a_missing_manifest_and_bad_labels() {
        let dir = tempfile::tempdir().unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing manifest"), "{err}");
        let mut m = sample();
        m.labels[1].id = 5;
        assert!(m.validate().unwrap_err().contains("numbered"));
    }

    #[test]
    fn finds_labels_by_key_or_name() {
        let m = sample();
        assert_eq!(m.label("1").map(|l| l.id), Some(1));
        assert_eq!(m.label("negative").map(|l| l.id), Some(0));
        assert!(m.label("2").is_none());
    }

    #[test]
    fn digest_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let a = bundle_digest(dir.path()).unwrap();
        fs::write(dir.path().join(TOKENIZER_FILE), "{}").unwrap();
        assert_ne!(a, bundle_digest(dir.path()).unwrap());
    }
}
