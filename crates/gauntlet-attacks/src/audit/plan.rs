//! [`AuditPlan`]: what to audit (model, data, attacks, seeds, limit, gate, shard), as one
//! serde type with three spellings.
//!
//! | plan field | spec file (`gauntlet run`, TOML) | `gauntlet audit` flag | `POST /v1/audits` (JSON) |
//! |---|---|---|---|
//! | `model` | `model = "dir"` (relative to the spec) | `--model DIR` | `"model": "name"` (a loaded model; default model when omitted) |
//! | `dataset` | `data = "file"` (relative to the spec) | `--data FILE` | `"dataset": {"name": …}` or `{"examples": […]}` |
//! | `attacks` | `[[attack]]` tables | `--attack KIND` and its flags | `"attacks": [{…}]` |
//! | `limit`, `seed`, `batch_size` | top-level keys | `--limit`, `--seed`, `--batch-size` | top-level keys |
//! | `gate` | `[gate]` table (per attack: `max_success_rate = …` in `[[attack]]`) | `--max-success-rate`, `--min-accuracy-under-attack` | `"gate": {…}` |
//! | `shard` | `shard = "I/N"` | `--shard I/N` | `"shard": "I/N"` |
//!
//! The spellings are one type: `data` is an alias of `dataset` (a string is a file name),
//! `attack` of `attacks`, `beam` of `beam_width` and `target_label` of `target`; a budget
//! is a count (`2`), a fraction (`0.1`), a percentage (`"10%"`) or the engine's object
//! form (`{"changes": 2}`). Spec files also hold settings of the machine that runs them
//! (`device`, `threads`, `out_dir`, `formats`, `wordnet`), which the CLI reads and removes
//! before the plan is parsed: they change where and how fast an audit runs, never its
//! report.
//!
//! [`AuditPlan::validate`] checks everything that needs no model; [`AuditPlan::resolve`]
//! checks every attack against the model and gives the final engine configurations, and
//! nothing else builds them.

use std::fmt;
use std::str::FromStr;

use gauntlet_core::manifest::find_label;
use gauntlet_core::{Example, Label};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::gate::Gate;
use super::{AuditError, AuditTarget};
use gauntlet_core::InputKind;

use crate::config::{AttackConfig, AttackKind, Budget};
use crate::engine::{Attacker, ModelRef};
use crate::error::AttackError;

/// An audit: one model, one dataset, attacks run in order over the same examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPlan {
    /// The model: a bundle directory (CLI) or a loaded model's name (server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The examples.
    #[serde(default, alias = "data")]
    pub dataset: DatasetSpec,
    /// The attacks, run in order.
    #[serde(default, alias = "attack")]
    pub attacks: Vec<AttackSpec>,
    /// Attack only the first `limit` examples of the dataset (before sharding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Seed of every attack that sets none itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Most texts per model call, for every attack that sets none itself. Changes speed,
    /// never results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Thresholds checked on every attack (an attack's own thresholds take precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// Run one shard: the examples whose index is ≡ `index` (mod `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// Where an audit's examples come from: exactly one of `name` and `examples`. A plain
/// string stands for `name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFields {
    /// A dataset file: relative to the spec file (CLI) or a name in the server's datasets
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Examples given inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Vec<InlineExample>>,
}

/// See [`DatasetFields`]; deserializes from a string (a file name) or a table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct DatasetSpec(pub DatasetFields);

impl<'de> Deserialize<'de> for DatasetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DatasetSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dataset file name or a table with `name` or `examples`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DatasetSpec, E> {
                Ok(DatasetSpec(DatasetFields {
                    name: Some(v.to_owned()),
                    examples: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DatasetSpec, A::Error> {
                DatasetFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(DatasetSpec)
            }
        }
        d.deserialize_any(V)
    }
}

impl DatasetSpec {
    /// A dataset file.
    pub fn file(name: impl Into<String>) -> Self {
        Self(DatasetFields {
            name: Some(name.into()),
            examples: None,
        })
    }
}

/// A label given by class id, key or name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelRef {
    /// Class id.
    Id(usize),
    /// Key (as in datasets) or display name.
    Name(String),
}

impl fmt::Display for LabelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl LabelRef {
    /// The class id among `labels`, or an error listing them.
    pub fn resolve(&self, labels: &[Label], field: &str) -> Result<usize, String> {
        let found = match self {
            Self::Id(id) => labels.iter().find(|l| l.id == *id),
            Self::Name(n) => find_label(labels, n),
        };
        found.map(|l| l.id).ok_or_else(|| {
            let keys: Vec<&str> = labels.iter().map(|l| l.key.as_str()).collect();
            format!(
                "{field} {self} is not a label of the model (ids 0..{}, keys {})",
                labels.len().saturating_sub(1),
                keys.join(", ")
            )
        })
    }
}

/// One labelled text given inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineExample {
    /// The text.
    pub text: String,
    /// Its true label.
    pub label: LabelRef,
}

/// Resolves inline examples' labels against the model's.
pub fn resolve_inline(
    examples: &[InlineExample],
    labels: &[Label],
    field: &str,
) -> Result<Vec<Example>, String> {
    examples
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            Ok(Example {
                label: ex.label.resolve(labels, &format!("`{field}[{i}].label`"))?,
                text: ex.text.clone(),
            })
        })
        .collect()
}

/// A budget as plans write it: `2`, `0.1`, `"10%"` or `{"changes": 2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BudgetSpec {
    /// A number of changes.
    Count(u64),
    /// A fraction of the units.
    Fraction(f64),
    /// Either, as text.
    Text(String),
    /// The engine's form.
    Budget(Budget),
}

impl BudgetSpec {
    /// The engine's budget.
    pub fn resolve(&self) -> Result<Budget, String> {
        match self {
            Self::Count(n) => n.to_string().parse(),
            // A float that parses as an integer (`1.0`) stays a fraction.
            Self::Fraction(f) if *f > 0.0 && *f <= 1.0 => Ok(Budget::Fraction(*f)),
            Self::Fraction(f) => Err(format!("fraction {f} must lie in (0, 1]")),
            Self::Text(t) => t.parse(),
            Self::Budget(b) => Ok(*b),
        }
    }
}

/// One attack of a plan: the engine's settings (all optional), a report name, and its own
/// thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// The attack; default: the model's HotFlip ([`AttackKind::default_for`]:
    /// `hotflip-word` on word and subword models, `hotflip-char` on character models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AttackKind>,
    /// Name in reports (letters, digits, `-`, `_`, `.`); default: the attack's name, with
    /// `-2`, `-3`… on repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Beam width (1 is greedy search).
    #[serde(default, alias = "beam", skip_serializing_if = "Option::is_none")]
    pub beam_width: Option<usize>,
    /// Changes allowed per example.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
    /// Confidence τ at which success is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Confidences of the success-vs-τ curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<Vec<f64>>,
    /// Targeted mode: the label (id, key or name) to drive predictions to.
    #[serde(
        default,
        alias = "target_label",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<LabelRef>,
    /// Change each word at most once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_change_per_word: Option<bool>,
    /// Character attacks: only out-of-vocabulary results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_oov: Option<bool>,
    /// `sem`: minimum cosine similarity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosine_threshold: Option<f64>,
    /// `loss-beam` and `random`: candidate cap per beam state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates_cap: Option<usize>,
    /// Seed (overrides the plan's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Batch size (overrides the plan's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Subword models: flip word pieces too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_subword_pieces: Option<bool>,
    /// Subword models: character edits of the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_edits: Option<bool>,
    /// `random`: per-example change counts, indexed like the dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_change_counts: Option<Vec<usize>>,
    /// `random`: make on each example as many changes as this earlier attack of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts_from: Option<String>,
    /// Highest acceptable success rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_success_rate: Option<f64>,
    /// Lowest acceptable accuracy under attack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy_under_attack: Option<f64>,
    /// Lowest acceptable clean accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_clean_accuracy: Option<f64>,
}

impl AttackSpec {
    /// The attack's name as plans spell it (`hotflip` while its kind waits for the model).
    pub fn kind_name(&self) -> &'static str {
        self.kind.map_or("hotflip", AttackKind::name)
    }

    /// An attack with every setting at its default.
    pub fn new(kind: AttackKind) -> Self {
        Self {
            kind: Some(kind),
            name: None,
            beam_width: None,
            budget: None,
            confidence: None,
            curve: None,
            target: None,
            one_change_per_word: None,
            require_oov: None,
            cosine_threshold: None,
            candidates_cap: None,
            seed: None,
            batch_size: None,
            allow_subword_pieces: None,
            char_edits: None,
            random_change_counts: None,
            counts_from: None,
            max_success_rate: None,
            min_accuracy_under_attack: None,
            min_clean_accuracy: None,
        }
    }

    /// This attack's own thresholds, over the plan's.
    fn gate(&self, plan: Option<&Gate>) -> Gate {
        let base = plan.cloned().unwrap_or_default();
        Gate {
            max_success_rate: self.max_success_rate.or(base.max_success_rate),
            min_accuracy_under_attack: self
                .min_accuracy_under_attack
                .or(base.min_accuracy_under_attack),
            min_clean_accuracy: self.min_clean_accuracy.or(base.min_clean_accuracy),
        }
    }
}

/// One shard of an audit: the examples whose index is ≡ `index` (mod `count`). Written
/// `"I/N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    /// 0-based shard index, below `count`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl Shard {
    /// Whether the example at `index` of the dataset belongs to this shard.
    pub fn contains(self, index: usize) -> bool {
        index % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid shard {s:?}: write I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    /// Reads `I/N` with N ≥ 1; an index not below N parses and is refused by
    /// [`AuditPlan::validate`] (the two numbers are each fine, together inconsistent).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            de::Error::custom(format!(
                "invalid shard {text:?}: write I/N with N >= 1, e.g. 0/4"
            ))
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// An attack of a plan checked against the model: its final engine configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttack {
    /// Name in reports.
    pub name: String,
    /// The engine configuration, as the attacker runs it.
    pub config: AttackConfig,
    /// `random`: take change counts from this earlier attack (index).
    pub counts_from: Option<usize>,
    /// The thresholds in force for this attack.
    pub gate: Gate,
}

/// A plan checked against its model, ready to run ([`super::run`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPlan {
    /// The plan as given.
    pub plan: AuditPlan,
    /// Its attacks, resolved.
    pub attacks: Vec<ResolvedAttack>,
}

fn is_report_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl AuditPlan {
    /// Checks everything that needs no model: at least one attack, report names, limits,
    /// rates, shard, `counts_from` references. Answers the attacks' report names.
    pub fn validate(&self) -> Result<Vec<String>, AuditError> {
        let bad = |m: String| Err(AuditError::Plan(m));
        let inconsistent = |m: String| Err(AuditError::Inconsistent(m));
        if let Some(shard) = self.shard.filter(|s| s.index >= s.count) {
            return inconsistent(format!(
                "shard {shard}: the index must lie below the count, 0 <= I < N"
            ));
        }
        if self.attacks.is_empty() {
            return bad(
                "the plan lists no attack (add an [[attack]] table, or an entry to `attacks`)"
                    .into(),
            );
        }
        if self.limit == Some(0) {
            return bad("`limit` must be at least 1".into());
        }
        if self.batch_size == Some(0) {
            return bad("`batch_size` must be at least 1".into());
        }
        if let Some(gate) = &self.gate {
            gate.validate("gate").map_err(AuditError::Plan)?;
        }
        let mut names: Vec<String> = Vec::with_capacity(self.attacks.len());
        for (i, a) in self.attacks.iter().enumerate() {
            let at = format!("attacks[{i}] ({})", a.kind_name());
            let name = match &a.name {
                Some(n) if !is_report_name(n) => {
                    return bad(format!(
                        "{at}: name {n:?} must be letters, digits, '-', '_' or '.'"
                    ))
                }
                Some(n) if names.contains(n) || n == "summary" || n == "audit" => {
                    return inconsistent(format!("{at}: the report name {n:?} is taken"))
                }
                Some(n) => n.clone(),
                None => {
                    let base = a.kind_name();
                    (1..)
                        .map(|k| match k {
                            1 => base.to_owned(),
                            k => format!("{base}-{k}"),
                        })
                        .find(|n| !names.contains(n))
                        .unwrap_or_default()
                }
            };
            a.gate(None).validate(&at).map_err(AuditError::Plan)?;
            if let Some(other) = &a.counts_from {
                if a.kind != Some(AttackKind::Random) {
                    return inconsistent(format!("{at}: counts_from applies to `random` only"));
                }
                if !names.contains(other) {
                    return inconsistent(format!(
                        "{at}: counts_from {other:?} names no earlier attack of the plan"
                    ));
                }
                if a.random_change_counts.is_some() {
                    return inconsistent(format!(
                        "{at}: give counts_from or random_change_counts, not both"
                    ));
                }
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Gives every attack without a kind the model's HotFlip ([`AttackKind::default_for`]).
    pub fn fit_defaults(&mut self, input: InputKind) {
        for a in &mut self.attacks {
            a.kind.get_or_insert(AttackKind::default_for(input));
        }
    }

    /// Checks every attack against the model (input kind, gradients, labels, `sem`'s
    /// lexicon, ranges) and gives the final engine configurations. Nothing is built but
    /// the configurations.
    pub fn resolve(
        self,
        target: &dyn AuditTarget,
        has_lexicon: bool,
    ) -> Result<ResolvedPlan, AuditError> {
        let mut plan = self;
        plan.fit_defaults(target.classifier().input_kind());
        let names = plan.validate()?;
        let labels = target.classifier().labels();
        let mut attacks = Vec::with_capacity(names.len());
        for (a, name) in plan.attacks.iter().zip(names) {
            let fail = |source: AttackError| AuditError::Attack {
                name: name.clone(),
                error: source,
            };
            let kind = a.kind.unwrap_or(AttackKind::HotflipWord);
            let mut c = AttackConfig::new(kind);
            c.beam_width = a.beam_width.unwrap_or(c.beam_width);
            c.budget = a
                .budget
                .as_ref()
                .map(BudgetSpec::resolve)
                .transpose()
                .map_err(|m| {
                    fail(AttackError::InvalidConfig {
                        field: "budget",
                        message: m,
                    })
                })?;
            c.confidence = a.confidence.unwrap_or(c.confidence);
            c.curve = a.curve.clone().unwrap_or(c.curve);
            c.one_change_per_word = a.one_change_per_word.unwrap_or(c.one_change_per_word);
            c.require_oov = a.require_oov.unwrap_or(c.require_oov);
            c.cosine_threshold = a.cosine_threshold.unwrap_or(c.cosine_threshold);
            c.candidates_cap = a.candidates_cap.or(c.candidates_cap);
            c.seed = a.seed.or(plan.seed).unwrap_or(c.seed);
            c.batch_size = a.batch_size.or(plan.batch_size).unwrap_or(c.batch_size);
            c.allow_subword_pieces = a.allow_subword_pieces.unwrap_or(c.allow_subword_pieces);
            c.char_edits = a.char_edits.unwrap_or(c.char_edits);
            c.random_change_counts = a.random_change_counts.clone();
            if let Some(t) = &a.target {
                c.target_label = Some(t.resolve(labels, "target label").map_err(|m| {
                    fail(AttackError::InvalidConfig {
                        field: "target",
                        message: m,
                    })
                })?);
            }
            if kind == AttackKind::Sem && !has_lexicon {
                return Err(fail(AttackError::MissingLexicon));
            }
            let model = model_ref_of(target, kind).map_err(fail)?;
            Attacker::check(model, target.codec(), &mut c).map_err(fail)?;
            let counts_from = a.counts_from.as_ref().and_then(|other| {
                attacks
                    .iter()
                    .position(|p: &ResolvedAttack| &p.name == other)
            });
            attacks.push(ResolvedAttack {
                gate: a.gate(plan.gate.as_ref()),
                name,
                config: c,
                counts_from,
            });
        }
        Ok(ResolvedPlan { plan, attacks })
    }
}

/// Checks `kind` can get the model view it needs.
pub(super) fn model_ref_of(
    target: &dyn AuditTarget,
    kind: AttackKind,
) -> Result<ModelRef<'_>, AttackError> {
    ModelRef::for_attack(
        kind,
        target.codec(),
        target.classifier(),
        target.white_box(),
        target.white_box_unavailable(),
    )
}
