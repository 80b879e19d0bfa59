//! Attack configuration: [`AttackConfig`], the attack [`AttackKind`] and the [`Budget`].
//!
//! The configuration is a plain serde struct (every field has a default) shared by the CLI
//! and the server. [`AttackConfig::validate`] checks it against a model before anything
//! runs; the engine refuses an unvalidated combination. Invariants after validation: beam
//! width, batch size and budget are at least 1, every confidence threshold lies in (0, 1],
//! and the attack fits the model's input kind.

use std::fmt;
use std::str::FromStr;

use gauntlet_core::InputKind;
use serde::{Deserialize, Serialize};

use crate::error::AttackError;

/// Which attack to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// HotFlip on characters: flips, inserts and deletes scored by directional derivatives.
    #[serde(alias = "hotflip_char")]
    HotflipChar,
    /// HotFlip on words: word flips scored by directional derivatives.
    #[serde(alias = "hotflip_word")]
    HotflipWord,
    /// Word flips under the paper's semantic constraints (cosine, part of speech, stop
    /// words, lemmas).
    Sem,
    /// Replace words by legible out-of-vocabulary spellings (the model sees `[UNK]`).
    Unk,
    /// Beam search scored by the exact loss of every candidate (forward passes only).
    #[serde(alias = "loss_beam")]
    LossBeam,
    /// Random changes, as many as the adversary made on each example.
    Random,
    /// Beam search driven by random vectors instead of gradients.
    #[serde(alias = "random_gradient")]
    RandomGradient,
}

impl AttackKind {
    /// The attack a model gets when a request names none: HotFlip at the model's level
    /// (`hotflip-word` for word and subword models, `hotflip-char` for character models).
    pub fn default_for(input: InputKind) -> Self {
        match input {
            InputKind::Word => Self::HotflipWord,
            InputKind::Char => Self::HotflipChar,
        }
    }

    /// Every attack, in a stable order.
    pub const ALL: [AttackKind; 7] = [
        Self::HotflipChar,
        Self::HotflipWord,
        Self::Sem,
        Self::Unk,
        Self::LossBeam,
        Self::Random,
        Self::RandomGradient,
    ];

    /// The name used in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::HotflipChar => "hotflip-char",
            Self::HotflipWord => "hotflip-word",
            Self::Sem => "sem",
            Self::Unk => "unk",
            Self::LossBeam => "loss-beam",
            Self::Random => "random",
            Self::RandomGradient => "random-gradient",
        }
    }

    /// The input kind the attack requires, if it requires one.
    pub fn required_input(self) -> Option<InputKind> {
        match self {
            Self::HotflipChar => Some(InputKind::Char),
            Self::HotflipWord | Self::Sem | Self::Unk => Some(InputKind::Word),
            Self::LossBeam | Self::Random | Self::RandomGradient => None,
        }
    }

    /// Whether the attack calls [`gauntlet_core::WhiteBox`] (gradients or the embedding
    /// table). `loss-beam` and `random` work with any [`gauntlet_core::Classifier`].
    pub fn needs_white_box(self) -> bool {
        !matches!(self, Self::LossBeam | Self::Random)
    }

    /// Whether the attack runs on a model reading `input`; `subword` says the model's
    /// codec is a subword one (then `hotflip-char` runs as the exact-loss character search).
    pub fn fits(self, input: InputKind, subword: bool) -> bool {
        self.required_input().is_none_or(|k| k == input) || (subword && self == Self::HotflipChar)
    }

    /// Whether the attack cannot run without gradients on a model whose codec is
    /// (`subword`) or is not a subword one. Character attacks on subword models are scored by
    /// exact loss only; `unk` on a black box picks the word to replace by exact loss (its
    /// candidates are few: one per word).
    pub fn needs_gradients(self, subword: bool) -> bool {
        self.needs_white_box() && self != Self::Unk && !(subword && self == Self::HotflipChar)
    }

    /// Whether the attack should be given a white box when there is one: it needs gradients,
    /// or (`unk`) uses the paper's gradient estimate when it can.
    pub fn prefers_gradients(self, subword: bool) -> bool {
        self.needs_gradients(subword) || self == Self::Unk
    }
}

impl fmt::Display for AttackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many changes an attack may make per example.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// At most this many changes.
    Changes(usize),
    /// At most this fraction of the example's units (characters for character models,
    /// words for word models), rounded down, and at least one change.
    Fraction(f64),
}

impl Budget {
    /// The number of changes allowed on an example with `units` characters or words.
    pub fn resolve(self, units: usize) -> usize {
        match self {
            Self::Changes(n) => n,
            // Truncation toward zero is the documented rounding.
            Self::Fraction(f) => ((f * units as f64).floor() as usize).max(1),
        }
    }
}

impl FromStr for Budget {
    type Err = String;

    /// An integer is a number of changes; a decimal in (0, 1] or a percentage (`10%`) a
    /// fraction of the units.
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let invalid = || format!("invalid budget {text:?}; expected e.g. 2, 0.1 or 10%");
        let fraction = |f: f64| {
            if f > 0.0 && f <= 1.0 {
                Ok(Budget::Fraction(f))
            } else {
                Err(format!(
                    "invalid budget {text:?}: a fraction must lie in (0, 1]"
                ))
            }
        };
        if let Some(pct) = t.strip_suffix('%') {
            let p: f64 = pct.trim().parse().map_err(|_| invalid())?;
            return fraction(p / 100.0);
        }
        if let Ok(n) = t.parse::<usize>() {
            return if n == 0 {
                Err("a budget of 0 changes leaves nothing to attack".into())
            } else {
                Ok(Budget::Changes(n))
            };
        }
        fraction(t.parse().map_err(|_| invalid())?)
    }
}

/// Everything that defines an attack run. Serialized with snake_case field names; every
/// field may be omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", default, deny_unknown_fields)]
pub struct AttackConfig {
    /// The attack.
    pub kind: AttackKind,
    /// Beam width b (1 is greedy search). Default 10.
    pub beam_width: usize,
    /// Changes allowed per example; `None` uses the attack's default: 10% of the
    /// characters for character attacks, 2 words for word flips, 1 word for `unk`.
    pub budget: Option<Budget>,
    /// Confidence τ at which success is reported. Default 0.5.
    pub confidence: f64,
    /// Confidences of the success-vs-τ curve, all measured in the same run.
    /// Default 0.5, 0.6, 0.7, 0.8, 0.9.
    pub curve: Vec<f64>,
    /// Targeted mode: drive the prediction to this class instead of away from the true one.
    pub target_label: Option<usize>,
    /// Change each word at most once. Default true.
    pub one_change_per_word: bool,
    /// Character attacks: allow a change only if the resulting word is out of the model's
    /// word vocabulary. Default true. (Word flips always produce in-vocabulary words.)
    pub require_oov: bool,
    /// `sem`: minimum cosine similarity of the two words' embeddings. Default 0.8.
    pub cosine_threshold: f64,
    /// Seed of every random choice (baselines, candidate caps). Default 0.
    pub seed: u64,
    /// Most texts per model call. Default 32.
    pub batch_size: usize,
    /// `loss-beam` and `random`: at most this many candidate changes per beam state,
    /// sampled with the seed. `None` (default) evaluates all candidates, except `loss-beam`
    /// word flips on a vocabulary above [`crate::engine::LARGE_VOCABULARY`] tokens, which
    /// sample [`crate::engine::DEFAULT_LARGE_VOCABULARY_CAP`] (the report notes it).
    pub candidates_cap: Option<usize>,
    /// `random`: the number of changes to make on each example (indexed like the input,
    /// typically the adversary's changes, see [`crate::AttackReport::change_counts`]);
    /// examples without an entry get the budget.
    pub random_change_counts: Option<Vec<usize>>,
    /// Subword models: also flip pieces of words the tokenizer split (`##ing`, or a
    /// word-start piece like `play`), each to a piece of the same kind. Default false: only
    /// tokens that are whole words are flipped, and only to whole-word tokens. Special tokens
    /// are never touched either way; `sem` and `unk` always edit whole words only.
    pub allow_subword_pieces: bool,
    /// Subword models: attack with character edits (flip, insert, delete) of the *text*,
    /// re-tokenized after every edit and scored by the exact loss (forward passes only),
    /// since gradient estimates over token embeddings do not transfer across
    /// re-tokenization. Applies to `loss-beam` and `random`; `hotflip-char` on a subword
    /// model turns it on by itself. Character models always edit characters, so it changes
    /// nothing there. Every word offers about 50 candidates per character, each re-encoded
    /// and evaluated, so long texts want a `candidates_cap`. Default false.
    pub char_edits: bool,
}

impl Default for AttackConfig {
    fn default() -> Self {
        Self {
            kind: AttackKind::HotflipChar,
            beam_width: 10,
            budget: None,
            confidence: 0.5,
            curve: vec![0.5, 0.6, 0.7, 0.8, 0.9],
            target_label: None,
            one_change_per_word: true,
            require_oov: true,
            cosine_threshold: 0.8,
            seed: 0,
            batch_size: 32,
            candidates_cap: None,
            random_change_counts: None,
            allow_subword_pieces: false,
            char_edits: false,
        }
    }
}

impl AttackConfig {
    /// The default configuration of one attack.
    pub fn new(kind: AttackKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// The budget in force for a model reading `input` (the configured one or the
    /// attack's default). Character edits of subword models default to 10% of the
    /// characters, like character models.
    pub fn effective_budget(&self, input: InputKind) -> Budget {
        if self.char_edits && self.budget.is_none() {
            return Budget::Fraction(0.1);
        }
        self.budget.unwrap_or(match (self.kind, input) {
            (AttackKind::Unk, _) => Budget::Changes(1),
            (AttackKind::HotflipWord | AttackKind::Sem, _) | (_, InputKind::Word) => {
                Budget::Changes(2)
            }
            (_, InputKind::Char) => Budget::Fraction(0.1),
        })
    }

    /// The confidences the run tracks: the curve and the reporting confidence, sorted and
    /// without duplicates.
    pub fn thresholds(&self) -> Vec<f64> {
        let mut all: Vec<f64> = self.curve.to_vec();
        all.push(self.confidence);
        all.sort_by(f64::total_cmp);
        all.dedup();
        all
    }

    /// Checks the configuration against a model that reads `input` and has `labels`
    /// classes. With `char_edits`, `hotflip-char` accepts word-kind (subword) models; the
    /// [`crate::Attacker`] checks the codec is a subword one.
    pub fn validate(&self, input: InputKind, labels: usize) -> Result<(), AttackError> {
        if self.char_edits
            && !matches!(
                self.kind,
                AttackKind::HotflipChar | AttackKind::LossBeam | AttackKind::Random
            )
        {
            return Err(AttackError::config(
                "char_edits",
                format!(
                    "applies to hotflip-char, loss-beam and random, not to {}",
                    self.kind
                ),
            ));
        }
        if let Some(needs) = self.kind.required_input() {
            let retokenized = self.char_edits && input == InputKind::Word;
            if needs != input && !retokenized {
                return Err(AttackError::Incompatible {
                    attack: self.kind,
                    needs: match needs {
                        InputKind::Char => "character-level",
                        InputKind::Word => "word-level",
                    },
                    model: input,
                });
            }
        }
        if self.beam_width == 0 {
            return Err(AttackError::config(
                "beam_width",
                "must be at least 1 (1 is greedy search)",
            ));
        }
        if self.batch_size == 0 {
            return Err(AttackError::config("batch_size", "must be at least 1"));
        }
        match self.budget {
            Some(Budget::Changes(0)) => {
                return Err(AttackError::config(
                    "budget",
                    "0 changes leaves nothing to attack",
                ))
            }
            Some(Budget::Fraction(f)) if !(f > 0.0 && f <= 1.0) => {
                return Err(AttackError::config(
                    "budget",
                    format!("fraction {f} must lie in (0, 1]"),
                ))
            }
            _ => {}
        }
        let in_range = |t: f64| t > 0.0 && t <= 1.0;
        if !in_range(self.confidence) {
            return Err(AttackError::config(
                "confidence",
                format!("{} must lie in (0, 1]", self.confidence),
            ));
        }
        if let Some(t) = self.curve.iter().find(|t| !in_range(**t)) {
            return Err(AttackError::config(
                "curve",
                format!("{t} must lie in (0, 1]"),
            ));
        }
        if labels < 2 {
            return Err(AttackError::config(
                "model",
                format!("an attack needs at least 2 classes, the model has {labels}"),
            ));
        }
        if let Some(t) = self.target_label {
            if t >= labels {
                return Err(AttackError::config(
                    "target_label",
                    format!(
                        "class {t} is out of range; the model has classes 0..{}",
                        labels - 1
                    ),
                ));
            }
        }
        if !(-1.0..=1.0).contains(&self.cosine_threshold) {
            return Err(AttackError::config(
                "cosine_threshold",
                format!("{} must lie in [-1, 1]", self.cosine_threshold),
            ));
        }
        if self.candidates_cap == Some(0) {
            return Err(AttackError::config(
                "candidates_cap",
                "must be at least 1 when set",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_validate() {
        let config = AttackConfig::default();
        let json = serde_json::to_string(&config).unwrap_or_default();
        assert!(json.contains("\"kind\":\"hotflip-char\""), "{json}");
        let back: AttackConfig = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, config);
        assert!(config.validate(InputKind::Char, 2).is_ok());
        let partial: Result<AttackConfig, _> =
            serde_json::from_str(r#"{"kind":"loss_beam","budget":{"fraction":0.2}}"#);
        assert!(
            matches!(partial, Ok(c) if c.kind == AttackKind::LossBeam && c.budget == Some(Budget::Fraction(0.2)))
        );
    }

    #[test]
    fn invalid_configurations_name_the_problem() {
        let err = AttackConfig::new(AttackKind::HotflipChar)
            .validate(InputKind::Word, 2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("hotflip-char")
                && err.contains("character-level")
                && err.contains("words"),
            "{err}"
        );
        let bad = |c: AttackConfig, field: &str| {
            let e = c
                .validate(InputKind::Word, 3)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(field), "{e}");
        };
        let base = AttackConfig::new(AttackKind::HotflipWord);
        bad(
            AttackConfig {
                beam_width: 0,
                ..base.clone()
            },
            "beam_width",
        );
        bad(
            AttackConfig {
                budget: Some(Budget::Changes(0)),
                ..base.clone()
            },
            "budget",
        );
        bad(
            AttackConfig {
                budget: Some(Budget::Fraction(1.5)),
                ..base.clone()
            },
            "budget",
        );
        bad(
            AttackConfig {
                confidence: 0.0,
                ..base.clone()
            },
            "confidence",
        );
        bad(
            AttackConfig {
                confidence: 1.2,
                ..base.clone()
            },
            "confidence",
        );
        bad(
            AttackConfig {
                curve: vec![0.5, 2.0],
                ..base.clone()
            },
            "curve",
        );
        bad(
            AttackConfig {
                target_label: Some(3),
                ..base.clone()
            },
            "target_label",
        );
        bad(
            AttackConfig {
                candidates_cap: Some(0),
                ..base.clone()
            },
            "candidates_cap",
        );
        assert!(AttackConfig {
            confidence: 1.0,
            ..base.clone()
        }
        .validate(InputKind::Word, 3)
        .is_ok());
        let chars = AttackConfig {
            char_edits: true,
            ..AttackConfig::new(AttackKind::HotflipChar)
        };
        assert!(chars.validate(InputKind::Word, 2).is_ok());
        assert_eq!(
            chars.effective_budget(InputKind::Word),
            Budget::Fraction(0.1)
        );
        bad(
            AttackConfig {
                char_edits: true,
                ..base
            },
            "char_edits",
        );
    }

    #[test]
    fn budgets_resolve_with_a_floor_of_one() {
        assert_eq!(Budget::Fraction(0.1).resolve(44), 4);
        assert_eq!(Budget::Fraction(0.1).resolve(3), 1);
        assert_eq!(Budget::Changes(2).resolve(100), 2);
        let c = AttackConfig::new(AttackKind::Unk);
        assert_eq!(c.effective_budget(InputKind::Word), Budget::Changes(1));
        let c = AttackConfig::new(AttackKind::LossBeam);
        assert_eq!(c.effective_budget(InputKind::Char), Budget::Fraction(0.1));
        let c = AttackConfig {
            curve: vec![0.9, 0.5],
            confidence: 0.7,
            ..c
        };
        assert_eq!(c.thresholds(), vec![0.5, 0.7, 0.9]);
    }
}
