//! Adversarial regularizers as a plugin for any tch training loop.
//!
//! A [`Regularizer`] back-propagates the loss of one labelled batch: the clean loss, plus
//! an adversarial term computed from the same model through the
//! [`gauntlet_models::Network`] split at the input embeddings. The trainer of this crate is
//! only one user; any loop that owns a `Network` can call [`Regularizer::backward`] in place
//! of its cross-entropy's backward pass. It accumulates into the parameters' gradients, so
//! zero them before the call and step after it:
//!
//! ```no_run
//! # use gauntlet_train::adversarial::{AdversarialConfig, Method, Regularizer, Batch};
//! # fn demo(net: &dyn gauntlet_models::Network, batch: Batch<'_>, opt: &mut tch::nn::Optimizer)
//! #     -> Result<(), gauntlet_train::TrainError> {
//! let mut regularizer = Regularizer::new(AdversarialConfig { method: Method::Fgsm, ..Default::default() }, None)?;
//! opt.zero_grad();
//! let step = regularizer.backward(net, &batch)?; // step.clean, step.adversarial: for logging
//! opt.step();
//! # Ok(()) }
//! ```
//!
//! Why the regularizer runs the backward pass itself: the methods that need the clean
//! loss's input gradient get it from the same pass that accumulates the clean term
//! ([`clean_pass`]), so the clean graph is walked once, not twice.
//!
//! Methods (each applied to a batch with probability `probability`, else the clean loss):
//! * `none`: cross-entropy only — the exact operations of clean training, so `--adv none`
//!   is bit-identical to it.
//! * `dropout`: embedding dropout with rate `epsilon` (the non-adversarial baseline).
//! * `fgsm`: `Δ = ε·sign(∇ₑJ)`, loss `αJ(x) + (1−α)J(x+Δ)`, Δ detached (Goodfellow;
//!   Bělohlávek Eq. 1–2).
//! * `l2`: Miyato et al. (2017) on normalized embeddings: `r = ε·g/‖g‖₂` per example over the
//!   whole sequence, loss `J(x) + λ·J(x+r)`.
//! * `vat`: virtual adversarial training, one power iteration from a random `ξ`-scaled
//!   direction (Eq. 7–8), loss `J(x) + λ·KL(p(x) ‖ p(x+r))`, the KL averaged once over the
//!   labelled batch and the unlabelled texts drawn with it (Eq. 8).
//! * `hotflip`: character models; after the first backward pass apply the top-r flips
//!   (r = `ratio` of the characters) at once and train on `αJ(x) + (1−α)J(x_adv)`.
//! * `unk`, `sem`: word models; one word per example flipped to UNK, or by a semantic flip
//!   under the attack engine's `sem` constraints, same loss as `hotflip`. `unk` picks the
//!   word by its first-order estimate, or, with `candidates` N > 1, by the true loss of the
//!   N best-estimated words; with `unk_words` N > 1 it replaces the N best-estimated words
//!   of each example together.

mod clean_pass;
mod embedding_space;
mod token_space;

use gauntlet_core::{InputKind, TextCodec, TokenIds};
use gauntlet_models::{Network, PaddedBatch};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::TrainError;

/// The regularization method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Clean training.
    None,
    /// Dropout on embeddings (baseline).
    Dropout,
    /// Character HotFlip, top-r simultaneous flips.
    Hotflip,
    /// One word per example to UNK.
    Unk,
    /// One semantic word flip per example.
    Sem,
    /// Embedding FGSM.
    Fgsm,
    /// Miyato L2 adversarial training.
    L2,
    /// Virtual adversarial training.
    Vat,
}

impl Method {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Dropout => "dropout",
            Self::Hotflip => "hotflip",
            Self::Unk => "unk",
            Self::Sem => "sem",
            Self::Fgsm => "fgsm",
            Self::L2 => "l2",
            Self::Vat => "vat",
        }
    }

    /// The input kind the method needs, if it needs one.
    pub fn required_input(self) -> Option<InputKind> {
        match self {
            Self::Hotflip => Some(InputKind::Char),
            Self::Unk | Self::Sem => Some(InputKind::Word),
            _ => None,
        }
    }

    /// Whether the method assumes normalized embeddings (Miyato et al.).
    pub fn normalizes_embeddings(self) -> bool {
        matches!(self, Self::L2 | Self::Vat)
    }
}

/// Settings of a regularizer; recorded in the bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdversarialConfig {
    /// The method.
    pub method: Method,
    /// Perturbation size: FGSM step, L2/VAT norm, or the dropout rate.
    pub epsilon: f64,
    /// Weight of the clean loss in `αJ(x) + (1−α)J(x_adv)` (fgsm, hotflip, unk, sem).
    pub alpha: f64,
    /// Weight λ of the adversarial term added to the clean loss (l2, vat).
    pub weight: f64,
    /// Share of characters flipped per example (hotflip).
    pub ratio: f64,
    /// Probability that a batch gets the adversarial term.
    pub probability: f64,
    /// Size ξ of the random direction of VAT's power iteration.
    pub xi: f64,
    /// Cosine threshold of semantic flips (sem).
    pub cosine_threshold: f64,
    /// Replacements the inner adversary checks by their true loss (unk): 1 takes the
    /// best first-order estimate, as the paper; N > 1 runs the model on the N best-estimated
    /// replacements and keeps the one the model gets most wrong, as the UNK attack's own
    /// forward checks do.
    #[serde(default = "one")]
    pub candidates: usize,
    /// Words per example replaced by UNK together (unk): the `unk_words` best by the
    /// first-order estimate. 1 is the paper's one flip; more trains against the loss of
    /// several words at once, a stronger inner adversary than the one-word attack.
    #[serde(default = "one")]
    pub unk_words: usize,
    /// Seed of the per-batch application draw.
    pub seed: u64,
}

fn one() -> usize {
    1
}

impl Default for AdversarialConfig {
    fn default() -> Self {
        Self {
            method: Method::None,
            epsilon: 0.01,
            alpha: 0.5,
            weight: 1.0,
            ratio: 0.2,
            probability: 1.0,
            xi: 0.1,
            cosine_threshold: 0.8,
            candidates: 1,
            unk_words: 1,
            seed: 0,
        }
    }
}

impl AdversarialConfig {
    /// Checks ranges; messages name the flag to fix.
    pub fn validate(&self, kind: InputKind) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if let Some(needed) = self.method.required_input() {
            if needed != kind {
                return bad(format!("--adv {} needs a {needed:?}-level model, this architecture reads {kind:?} input", self.method.name()));
            }
        }
        if !(self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            return bad("--eps must be a non-negative number".into());
        }
        if self.method == Method::Dropout && self.epsilon >= 1.0 {
            return bad("--eps is the dropout rate for --adv dropout and must be below 1".into());
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad("--alpha must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.probability) {
            return bad("--adv-prob must be in [0, 1]".into());
        }
        if !(self.ratio > 0.0 && self.ratio <= 1.0) {
            return bad("--ratio must be in (0, 1]".into());
        }
        if !(self.weight >= 0.0 && self.xi > 0.0) {
            return bad("--adv-weight must be non-negative and --xi positive".into());
        }
        // The UNK adversary's two strength settings: at least 1, and above 1 only for unk.
        for (flag, value) in [
            ("--candidates", self.candidates),
            ("--unk-words", self.unk_words),
        ] {
            if value == 0 {
                return bad(format!("{flag} must be at least 1"));
            }
            if value > 1 && self.method != Method::Unk {
                return bad(format!(
                    "{flag} applies to --adv unk, not --adv {}",
                    self.method.name()
                ));
            }
        }
        if self.unk_words > 1 && self.candidates > 1 {
            return bad(
                "--unk-words and --candidates are two ways to strengthen the UNK adversary; \
                 give one of them"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One labelled batch as the regularizer sees it.
pub struct Batch<'a> {
    /// The unpadded ids (token-space methods edit them).
    pub ids: &'a [TokenIds],
    /// The padded batch on the model's device.
    pub padded: &'a PaddedBatch,
    /// Class ids, int64 on the model's device.
    pub targets: &'a Tensor,
    /// Unlabelled texts drawn with the batch (VAT's `--unlabeled` data; other methods
    /// ignore them).
    pub unlabeled: Option<&'a PaddedBatch>,
}

/// The losses of one step (detached), as [`Regularizer::backward`] back-propagated them.
pub struct StepLoss {
    /// The clean cross-entropy.
    pub clean: Tensor,
    /// The adversarial term, when one was computed.
    pub adversarial: Option<Tensor>,
}

/// A step whose backward pass is not finished: `rest` is what is still to
/// back-propagate (its value is not the loss; the clean term may already be accumulated).
pub(crate) struct Pending {
    rest: Tensor,
    loss: StepLoss,
}

impl Pending {
    fn clean(loss: Tensor) -> Self {
        Self {
            loss: StepLoss {
                clean: loss.detach(),
                adversarial: None,
            },
            rest: loss,
        }
    }
}

/// A configured regularizer. Holds the state some methods need (codec and lexicon for
/// `sem`, a random generator for the application draw).
pub struct Regularizer {
    config: AdversarialConfig,
    rng: StdRng,
    sem: Option<token_space::SemContext>,
}

impl Regularizer {
    /// A regularizer for `config`; `sem` methods need the codec and a lexicon.
    pub fn new(
        config: AdversarialConfig,
        sem: Option<(TextCodec, Box<dyn gauntlet_attacks::Lexicon>)>,
    ) -> Result<Self, TrainError> {
        if config.method == Method::Sem && sem.is_none() {
            return Err(TrainError::Invalid(
                "--adv sem needs WordNet (--wordnet DIR or GAUNTLET_WORDNET)".into(),
            ));
        }
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Self {
            config,
            rng,
            sem: sem.map(|(codec, lexicon)| token_space::SemContext::new(codec, lexicon)),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AdversarialConfig {
        &self.config
    }

    /// Forgets cached per-model state (the `sem` neighbour lists); call when the
    /// embeddings have moved enough to matter, e.g. once per epoch.
    pub fn refresh(&mut self) {
        if let Some(sem) = &mut self.sem {
            sem.clear();
        }
    }

    /// Back-propagates the loss of one training step (dropout on, i.e. the network in
    /// training mode) into the parameters' gradients, which it adds to: zero them before,
    /// step after. Returns the step's losses.
    pub fn backward(
        &mut self,
        net: &dyn Network,
        batch: &Batch<'_>,
    ) -> Result<StepLoss, TrainError> {
        let pending = self.pending(net, batch)?;
        pending.rest.backward();
        Ok(pending.loss)
    }

    fn pending(&mut self, net: &dyn Network, batch: &Batch<'_>) -> Result<Pending, TrainError> {
        let method = self.config.method;
        let clean = || {
            Pending::clean(
                net.forward(batch.padded, true)
                    .cross_entropy_for_logits(batch.targets),
            )
        };
        if method == Method::None {
            return Ok(clean());
        }
        let apply = self.config.probability >= 1.0 || self.rng.gen_bool(self.config.probability);
        let c = &self.config;
        match method {
            _ if !apply => Ok(clean()),
            Method::Dropout => Ok(embedding_space::dropout(net, batch, c.epsilon)),
            Method::Fgsm => Ok(embedding_space::fgsm(net, batch, c.epsilon, c.alpha)),
            Method::L2 => Ok(embedding_space::l2(net, batch, c.epsilon, c.weight)),
            Method::Vat => Ok(embedding_space::vat_labelled(
                net, batch, c.epsilon, c.xi, c.weight,
            )),
            Method::Hotflip => Ok(token_space::edited(net, batch, c.alpha, |pass| {
                token_space::hotflip_batch(net, batch, pass, c.ratio)
            })),
            Method::Unk => Ok(token_space::edited(net, batch, c.alpha, |pass| {
                token_space::unk_batch(net, batch, pass, c.candidates, c.unk_words)
            })),
            Method::Sem => {
                let sem = self.sem.as_mut().ok_or_else(|| {
                    TrainError::Invalid("sem regularizer without a lexicon".into())
                })?;
                Ok(token_space::edited(net, batch, c.alpha, |pass| {
                    token_space::sem_batch(net, batch, pass, c.cosine_threshold, sem)
                }))
            }
            Method::None => unreachable_none(),
        }
    }
}

fn unreachable_none() -> Result<Pending, TrainError> {
    Err(TrainError::Invalid(
        "internal: method none handled above".into(),
    ))
}

#[cfg(test)]
mod direction_tests;
#[cfg(test)]
mod fused_tests;
#[cfg(test)]
mod tests;
