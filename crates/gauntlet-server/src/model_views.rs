//! What the API says about a loaded model: [`ModelSummary`] (`GET /v1/models`) and
//! [`ModelDetails`] (`GET /v1/models/{name}`), built from the registry's [`LoadedModel`].

use gauntlet_attacks::AttackKind;
use gauntlet_backends::Runtime;
use gauntlet_core::InputKind;
use serde::Serialize;

use crate::registry::LoadedModel;

/// Summary of a model (`GET /v1/models`).
#[derive(Debug, Serialize)]
pub struct ModelSummary {
    /// Name.
    pub name: String,
    /// Architecture.
    pub architecture: String,
    /// `word` or `char`.
    pub input_kind: InputKind,
    /// Number of classes.
    pub classes: usize,
    /// Device.
    pub device: String,
    /// Bundle digest.
    pub digest: String,
    /// `tch` (native bundle) or `onnx` (ONNX Runtime, gradients from the tch interpreter).
    pub runtime: Runtime,
    /// Whether gradient-based attacks can run against it.
    pub white_box: bool,
}

/// Details of a model (`GET /v1/models/{name}`).
#[derive(Debug, Serialize)]
pub struct ModelDetails {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// Labels, by id.
    pub labels: Vec<gauntlet_core::Label>,
    /// Vocabulary (or alphabet) size.
    pub vocabulary_size: usize,
    /// Maximum words read.
    pub max_length: usize,
    /// Attacks this server can run against the model.
    pub supported_attacks: Vec<&'static str>,
    /// Why gradient-based attacks are unavailable (ONNX graphs the interpreter cannot run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub white_box_unavailable: Option<String>,
    /// Architecture hyper-parameters.
    pub hyper_parameters: serde_json::Value,
    /// Metrics recorded at training time.
    pub metrics: serde_json::Value,
    /// Load time, ms since the epoch.
    pub loaded_at_ms: u64,
}

/// Attacks the server can run against a model reading `kind` (`sem` only when the server
/// has a lexicon, i.e. WordNet is loaded: `sem_available`; gradient-based attacks only when
/// the model is a white box).
pub fn supported_attacks(
    kind: InputKind,
    subword: bool,
    sem_available: bool,
    white_box: bool,
) -> Vec<&'static str> {
    AttackKind::ALL
        .iter()
        .filter(|a| sem_available || **a != AttackKind::Sem)
        .filter(|a| white_box || !a.needs_gradients(subword))
        .filter(|a| a.fits(kind, subword))
        .map(|a| a.name())
        .collect()
}

impl LoadedModel {
    /// The summary.
    pub fn summary(&self) -> ModelSummary {
        ModelSummary {
            name: self.name.clone(),
            architecture: self.model.manifest().architecture.clone(),
            input_kind: self.model.manifest().tokenization.kind,
            classes: self.model.manifest().labels.len(),
            device: self.model.device_name().to_owned(),
            digest: self.model.digest().to_owned(),
            runtime: self.model.runtime(),
            white_box: self.model.white_box().is_some(),
        }
    }

    /// The details; `sem_available` says whether the server has a lexicon for `sem`.
    pub fn details(&self, sem_available: bool) -> ModelDetails {
        let m = self.model.manifest();
        ModelDetails {
            summary: self.summary(),
            labels: m.labels.clone(),
            vocabulary_size: self.model.vocabulary_size(),
            max_length: m.tokenization.max_length,
            supported_attacks: supported_attacks(
                m.tokenization.kind,
                self.model.codec().is_subword(),
                sem_available,
                self.model.white_box().is_some(),
            ),
            white_box_unavailable: self.model.white_box_unavailable().map(str::to_owned),
            hyper_parameters: serde_json::to_value(&m.hyper_parameters).unwrap_or_default(),
            metrics: serde_json::to_value(&m.metrics).unwrap_or_default(),
            loaded_at_ms: self.loaded_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_attacks_follow_input_kind_codec_lexicon_and_gradients() {
        let word = supported_attacks(InputKind::Word, false, true, true);
        assert_eq!(
            word,
            [
                "hotflip-word",
                "sem",
                "unk",
                "loss-beam",
                "random",
                "random-gradient"
            ]
        );
        assert!(!supported_attacks(InputKind::Word, false, false, true).contains(&"sem"));
        let char_model = supported_attacks(InputKind::Char, false, true, true);
        assert!(char_model.contains(&"hotflip-char") && !char_model.contains(&"unk"));
        // Subword models take character attacks, scored by exact loss.
        let subword = supported_attacks(InputKind::Word, true, true, true);
        assert!(subword.contains(&"hotflip-char") && subword.contains(&"hotflip-word"));
        // Without gradients: what runs on forward passes alone.
        assert_eq!(
            supported_attacks(InputKind::Word, false, true, false),
            ["unk", "loss-beam", "random"]
        );
        assert_eq!(
            supported_attacks(InputKind::Word, true, true, false),
            ["hotflip-char", "unk", "loss-beam", "random"]
        );
    }
}
