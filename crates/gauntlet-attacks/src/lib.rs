//! Gauntlet's white-box attack engine: HotFlip (Ebrahimi et al., 2018) on characters and
//! words, the `sem` and `unk` word attacks, exact loss-based beam search, random baselines,
//! and audit reports.
//!
//! The crate sees models only through [`gauntlet_core::Classifier`] and
//! [`gauntlet_core::WhiteBox`] and text only through [`gauntlet_core::TextCodec`]: no
//! runtime tensors, no network. Entry point: build an [`AttackConfig`], create an
//! [`Attacker`] for a [`ModelRef`] and a codec, and [`Attacker::run_examples`]; render the
//! resulting [`AttackReport`] with [`render`].
//!
//! Subword (WordPiece, BPE) models are attacked token by token: word flips, `sem`, `unk`
//! and the baselines touch only tokens that are whole words, and replace them only with
//! whole-word tokens, unless [`AttackConfig::allow_subword_pieces`] is set; special tokens
//! are never touched. Character attacks on subword models (`hotflip-char`, or `loss-beam`
//! and `random` with [`AttackConfig::char_edits`]) edit the text itself and re-tokenize it;
//! since a gradient over token embeddings cannot score an edit that changes the
//! tokenization, `hotflip-char` there runs the exact-loss beam search (forward passes only).
//!
//! Audits (several attacks over one dataset, sharded or not, gated) are [`audit`]: an
//! [`audit::AuditPlan`] resolved against an [`audit::AuditTarget`] and [`audit::run`].
//!
//! Module map: [`config`] (configuration and validation), [`estimate`] (first-order loss
//! estimates of edits), `candidates` (allowed edits under the constraints), `state` (beam
//! states and splicing), `search` (beam steps), [`engine`] (scheduling, batching, passes),
//! `retokenize` (character edits of subword models), [`lexicon`] (parts of speech,
//! lemmas, stop words), [`spelling`] (legible OOV spellings),
//! [`report`] (the report schema), [`render`] (JSON, Markdown, JUnit), and `testing` (a
//! pure-Rust linear model, with the `test-support` feature).

pub mod audit;
mod best_first;
mod candidates;
pub mod config;
pub mod engine;
pub mod error;
pub mod estimate;
pub mod lexicon;
pub mod render;
pub mod report;
mod retokenize;
mod search;
pub mod spelling;
mod state;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use candidates::SemFilter;
pub use config::{AttackConfig, AttackKind, Budget};
pub use engine::{Attacker, ModelRef, PreparedExample, Progress, RunControl};
pub use error::AttackError;
pub use lexicon::{
    find_wordnet_dict, is_stop_word, locate_wordnet, wordnet_default_root, Lexicon, MemoryLexicon,
    Pos, WordNetLexicon, WordNetNotFound, STOP_WORDS,
};
pub use report::{
    AttackReport, ChangesHistogram, CurvePoint, ExampleReport, Operation, Outcome, Prediction,
    SkipReason, Summary, ThresholdResult,
};

#[cfg(test)]
mod char_subword_tests;
#[cfg(test)]
mod fast_path_tests;
#[cfg(test)]
mod subword_tests;
#[cfg(test)]
mod tests;
