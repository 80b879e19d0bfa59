//! The clean half of an adversarial step, back-propagated once.
//!
//! FGSM, L2, HotFlip, UNK and SEM need `∇ₑJ(x)`, the clean loss's gradient at the embedded
//! input, to build their adversarial input, and their loss contains the clean term
//! `w·J(x)` too. Taking `∇ₑJ` with `run_backward` and back-propagating `w·J(x)` again in the
//! step's backward pass walks the clean graph twice; for a recurrent model the input-only
//! pass costs as much as the full one (back-propagation through time either way).
//! [`clean_pass`] walks it once: the network reads a detached leaf copy of the embedded
//! input, one `backward` of `w·J(x)` accumulates the clean term into every parameter
//! downstream of the input and leaves `w·∇ₑJ` on the leaf, and the embedding table's
//! share, which sits upstream of the leaf, is owed through [`CleanPass::upstream`]:
//! `sum(e(x) ∘ w·∇ₑJ)`, whose gradient with respect to the table is exactly what the
//! table would have received (the lookup, and the normalization of Miyato et al. when the
//! model has it, are differentiated as they are).
//!
//! Invariant: after [`clean_pass`] with weight `w > 0`, the parameters hold `w·∇θJ(x)` less
//! the table's share, and back-propagating `upstream` together with the adversarial term
//! completes the gradient of `w·J(x) + adversarial term`, equal (up to rounding) to one
//! backward pass of the whole loss. With `w = 0` nothing is accumulated, `upstream` is
//! zero and `∇ₑJ` comes from `run_backward`.

use gauntlet_models::Network;
use tch::{Kind, Tensor};

use super::Batch;

/// The clean pass of one step.
pub(crate) struct CleanPass {
    /// The clean cross-entropy (detached).
    pub(crate) loss: Tensor,
    /// `∇ₑJ(x)` at the embedded input, unscaled and detached.
    pub(crate) gradient: Tensor,
    /// The embedded input, still attached to the embedding table (the adversarial
    /// forward pass of the embedding-space methods starts from it).
    pub(crate) embedded: Tensor,
    /// The embedding table's share of `w·∇θJ(x)`, still to back-propagate.
    pub(crate) upstream: Tensor,
}

/// Runs the clean forward pass of `batch` and back-propagates `weight·J(x)` once (see the
/// module docs); `weight = 0` only takes the input gradient.
pub(crate) fn clean_pass(net: &dyn Network, batch: &Batch<'_>, weight: f64) -> CleanPass {
    let embedded = net.embed(batch.padded);
    let input = embedded.detach().set_requires_grad(true);
    let loss = net
        .logits(&input, batch.padded, true)
        .cross_entropy_for_logits(batch.targets);
    if weight > 0.0 {
        (&loss * weight).backward();
        let grad = input.grad();
        let scaled = if grad.defined() {
            grad.detach()
        } else {
            input.zeros_like()
        };
        CleanPass {
            upstream: (&embedded * &scaled).sum(Kind::Float),
            gradient: scaled / weight,
            loss: loss.detach(),
            embedded,
        }
    } else {
        let gradient = Tensor::run_backward(&[&loss], &[&input], false, false).remove(0);
        CleanPass {
            upstream: Tensor::zeros([], (Kind::Float, embedded.device())),
            gradient,
            loss: loss.detach(),
            embedded,
        }
    }
}
