//! Regularizers that perturb the embedded input continuously: embedding dropout, FGSM,
//! Miyato's L2 adversarial loss and virtual adversarial training.
//!
//! Invariants: perturbations touch only real (unpadded) positions and are detached before
//! the adversarial forward pass, so no gradient flows through their construction (the
//! constant θ̂ of Miyato et al.). FGSM and L2 take `∇ₑJ` from the clean pass that also
//! accumulates the clean term ([`super::clean_pass`]); VAT's power iteration takes its
//! gradient with `run_backward` on the random direction alone (nothing accumulates into
//! the parameters' gradients).

use gauntlet_models::{Network, PaddedBatch};
use tch::{Kind, Tensor};

use super::clean_pass::clean_pass;
use super::{Batch, Pending, StepLoss};

fn cross_entropy(net: &dyn Network, embedded: &Tensor, batch: &Batch<'_>) -> Tensor {
    net.logits(embedded, batch.padded, true)
        .cross_entropy_for_logits(batch.targets)
}

/// Mask broadcastable to the embedded input: 1 at real positions.
fn position_mask(padded: &PaddedBatch) -> Tensor {
    padded.mask.unsqueeze(-1)
}

/// `x / ‖x‖₂` per example, the norm taken over every position and dimension.
pub(super) fn normalize_per_example(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let norms = x
        .reshape([b, -1])
        .norm_scalaropt_dim(2.0, [1].as_slice(), false);
    let shape: Vec<i64> = std::iter::once(b)
        .chain(std::iter::repeat_n(1, x.dim() - 1))
        .collect();
    x / (norms.reshape(shape.as_slice()) + 1e-12)
}

/// Embedding dropout at `rate` (the non-adversarial baseline).
pub(super) fn dropout(net: &dyn Network, batch: &Batch<'_>, rate: f64) -> Pending {
    let embedded = net.embed(batch.padded).dropout(rate, true);
    let loss = cross_entropy(net, &embedded, batch);
    Pending {
        loss: StepLoss {
            clean: loss.detach(),
            adversarial: None,
        },
        rest: loss,
    }
}

/// The FGSM perturbation `ε·sign(g)` of the input gradient `g` at real positions, detached.
pub(super) fn fgsm_perturbation(gradient: &Tensor, padded: &PaddedBatch, epsilon: f64) -> Tensor {
    (gradient.sign() * epsilon * position_mask(padded)).detach()
}

/// `αJ(x) + (1−α)J(x + ε·sign(∇ₑJ))`.
pub(super) fn fgsm(net: &dyn Network, batch: &Batch<'_>, epsilon: f64, alpha: f64) -> Pending {
    let pass = clean_pass(net, batch, alpha);
    let delta = fgsm_perturbation(&pass.gradient, batch.padded, epsilon);
    let adversarial = cross_entropy(net, &(&pass.embedded + delta), batch);
    Pending {
        rest: &adversarial * (1.0 - alpha) + pass.upstream,
        loss: StepLoss {
            clean: pass.loss,
            adversarial: Some(adversarial.detach()),
        },
    }
}

/// The L2 perturbation `ε·g/‖g‖₂` of the input gradient `g` (per example, whole
/// sequence, real positions), detached.
pub(super) fn l2_perturbation(gradient: &Tensor, padded: &PaddedBatch, epsilon: f64) -> Tensor {
    let g = gradient * position_mask(padded);
    (normalize_per_example(&g) * epsilon).detach()
}

/// `J(x) + λ·J(x + r_adv)`.
pub(super) fn l2(net: &dyn Network, batch: &Batch<'_>, epsilon: f64, weight: f64) -> Pending {
    let pass = clean_pass(net, batch, 1.0);
    let r = l2_perturbation(&pass.gradient, batch.padded, epsilon);
    let adversarial = cross_entropy(net, &(&pass.embedded + r), batch);
    Pending {
        rest: &adversarial * weight + pass.upstream,
        loss: StepLoss {
            clean: pass.loss,
            adversarial: Some(adversarial.detach()),
        },
    }
}

/// Per-example `KL(p ‖ q)` `[B]` from clean log-probabilities (detached) and perturbed
/// logits.
fn kl_each(clean_log_probs: &Tensor, logits: &Tensor) -> Tensor {
    let log_q = logits.log_softmax(-1, Kind::Float);
    (clean_log_probs.exp() * (clean_log_probs - log_q)).sum_dim_intlist(
        [-1].as_slice(),
        false,
        Kind::Float,
    )
}

/// Mean `KL(p ‖ q)`.
fn kl(clean_log_probs: &Tensor, logits: &Tensor) -> Tensor {
    kl_each(clean_log_probs, logits).mean(Kind::Float)
}

/// The virtual adversarial perturbation (one power iteration from `ξ·d`), detached.
pub(super) fn vat_perturbation(
    net: &dyn Network,
    embedded: &Tensor,
    padded: &PaddedBatch,
    clean_log_probs: &Tensor,
    epsilon: f64,
    xi: f64,
) -> Tensor {
    let mask = position_mask(padded);
    let d = (normalize_per_example(&(embedded.randn_like() * &mask)) * xi).set_requires_grad(true);
    let divergence = kl(
        clean_log_probs,
        &net.logits(&(embedded.detach() + &d), padded, true),
    );
    let g = Tensor::run_backward(&[&divergence], &[&d], false, false).remove(0) * &mask;
    (normalize_per_example(&g) * epsilon).detach()
}

/// VAT's divergences `KL(p(x) ‖ p(x + r_v-adv))` `[B]` of a batch (labels unused).
pub(super) fn vat_divergences(
    net: &dyn Network,
    padded: &PaddedBatch,
    epsilon: f64,
    xi: f64,
) -> Tensor {
    let embedded = net.embed(padded);
    let clean_log_probs = net
        .logits(&embedded, padded, true)
        .log_softmax(-1, Kind::Float)
        .detach();
    let r = vat_perturbation(net, &embedded, padded, &clean_log_probs, epsilon, xi);
    kl_each(
        &clean_log_probs,
        &net.logits(&(&embedded + r), padded, true),
    )
}

/// `J(x) + λ·mean KL(p(x) ‖ p(x + r_v-adv))`, the mean over the labelled batch and the
/// unlabelled texts drawn with it.
pub(super) fn vat_labelled(
    net: &dyn Network,
    batch: &Batch<'_>,
    epsilon: f64,
    xi: f64,
    weight: f64,
) -> Pending {
    let embedded = net.embed(batch.padded);
    let logits = net.logits(&embedded, batch.padded, true);
    let clean = logits.cross_entropy_for_logits(batch.targets);
    let clean_log_probs = logits.log_softmax(-1, Kind::Float).detach();
    let r = vat_perturbation(net, &embedded, batch.padded, &clean_log_probs, epsilon, xi);
    let labelled = kl_each(
        &clean_log_probs,
        &net.logits(&(&embedded + r), batch.padded, true),
    );
    // Miyato et al. Eq. 8: ONE mean over the labelled and the unlabelled examples.
    let adversarial = match batch.unlabeled {
        Some(unlabeled) => {
            Tensor::cat(&[labelled, vat_divergences(net, unlabeled, epsilon, xi)], 0)
        }
        None => labelled,
    }
    .mean(Kind::Float);
    // VAT walks the clean graph once anyway: its power iteration differentiates a separate
    // forward pass with respect to the random direction.
    Pending {
        rest: &clean + &adversarial * weight,
        loss: StepLoss {
            clean: clean.detach(),
            adversarial: Some(adversarial.detach()),
        },
    }
}
