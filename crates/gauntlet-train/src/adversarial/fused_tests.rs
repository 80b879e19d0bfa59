//! The clean pass walked once ([`super::clean_pass`]) leaves in the parameters the
//! gradient that one backward pass of the whole reference loss gives: for every method
//! that uses it, on word and character models, with and without Miyato's embedding
//! normalization, and with `α = 0` (no clean term).
#![allow(clippy::unwrap_used)]

use gauntlet_models::{Architecture, Network};
use tch::{nn, Kind, Tensor};

use super::clean_pass::clean_pass;
use super::embedding_space::{fgsm_perturbation, l2_perturbation};
use super::tests::{char_ids, network_with, run, word_ids};
use super::token_space::{hotflip_batch, unk_batch};
use super::{AdversarialConfig, Batch, Method, Regularizer};

/// Hyper-parameter overrides of a test network.
type Overrides<'a> = &'a [(&'a str, serde_json::Value)];

/// Every variable's gradient (zero where none), by name; then zeroes them.
fn take_gradients(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, mut v)| {
            let g = v.grad();
            let g = if g.defined() {
                g.copy()
            } else {
                v.zeros_like()
            };
            v.zero_grad();
            (name, g)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn cross_entropy(net: &dyn Network, embedded: &Tensor, batch: &Batch<'_>) -> Tensor {
    net.logits(embedded, batch.padded, true)
        .cross_entropy_for_logits(batch.targets)
}

/// The loss of `config` written out in full, its perturbation taken with `run_backward`
/// (nothing accumulated), for one ordinary backward pass.
fn reference_loss(net: &dyn Network, batch: &Batch<'_>, config: &AdversarialConfig) -> Tensor {
    let (alpha, epsilon) = (config.alpha, config.epsilon);
    match config.method {
        Method::Fgsm | Method::L2 => {
            let embedded = net.embed(batch.padded);
            let clean = cross_entropy(net, &embedded, batch);
            let g = Tensor::run_backward(&[&clean], &[&embedded], true, false).remove(0);
            if config.method == Method::Fgsm {
                let delta = fgsm_perturbation(&g, batch.padded, epsilon);
                &clean * alpha + cross_entropy(net, &(&embedded + delta), batch) * (1.0 - alpha)
            } else {
                let r = l2_perturbation(&g, batch.padded, epsilon);
                &clean + cross_entropy(net, &(&embedded + r), batch) * config.weight
            }
        }
        Method::Hotflip | Method::Unk => {
            let pass = clean_pass(net, batch, 0.0);
            let adversarial = if config.method == Method::Hotflip {
                hotflip_batch(net, batch, &pass, config.ratio)
            } else {
                unk_batch(net, batch, &pass, config.candidates, config.unk_words)
            };
            let clean = net
                .forward(batch.padded, true)
                .cross_entropy_for_logits(batch.targets);
            let adv = net
                .forward(&adversarial, true)
                .cross_entropy_for_logits(batch.targets);
            &clean * alpha + adv * (1.0 - alpha)
        }
        other => panic!("no reference for {other:?}"),
    }
}

#[test]
fn one_walk_of_the_clean_graph_gives_the_reference_gradients() {
    let fgsm = |alpha: f64| AdversarialConfig {
        method: Method::Fgsm,
        epsilon: 0.3,
        alpha,
        ..Default::default()
    };
    let l2 = AdversarialConfig {
        method: Method::L2,
        epsilon: 0.7,
        weight: 0.8,
        ..Default::default()
    };
    let normalized = [("normalize_embeddings", serde_json::json!(true))];
    let cases: Vec<(Architecture, Overrides<'_>, AdversarialConfig)> = vec![
        (Architecture::WordCnn, &[], fgsm(0.5)),
        (Architecture::WordCnn, &[], fgsm(0.3)),
        (Architecture::WordCnn, &[], fgsm(0.0)),
        (Architecture::BiRnn, &[], fgsm(0.5)),
        (Architecture::BiRnn, &normalized, l2.clone()),
        (Architecture::CharCnnLstm, &normalized, l2),
        (
            Architecture::CharCnnLstm,
            &[],
            AdversarialConfig {
                method: Method::Hotflip,
                ratio: 0.3,
                ..Default::default()
            },
        ),
        (
            Architecture::WordCnn,
            &[],
            AdversarialConfig {
                method: Method::Unk,
                ..Default::default()
            },
        ),
        (
            Architecture::WordCnn,
            &[],
            AdversarialConfig {
                method: Method::Unk,
                candidates: 3,
                ..Default::default()
            },
        ),
    ];
    for (arch, extra, config) in cases {
        let (_rng, vs, net) = network_with(arch, 12, extra);
        let ids = if arch == Architecture::CharCnnLstm {
            char_ids()
        } else {
            word_ids()
        };
        let label = format!("{arch} {:?} α={} {extra:?}", config.method, config.alpha);
        run(net.as_ref(), &ids, |batch| {
            reference_loss(net.as_ref(), batch, &config).backward();
            let expected = take_gradients(&vs);
            let mut regularizer = Regularizer::new(config.clone(), None).unwrap();
            regularizer.backward(net.as_ref(), batch).unwrap();
            let fused = take_gradients(&vs);
            let table = expected
                .iter()
                .find(|(name, _)| name.contains("embedding"))
                .map(|(_, g)| g.abs().sum(Kind::Double).double_value(&[]));
            assert!(
                table.is_some_and(|t| t > 0.0),
                "{label}: precondition: the embedding table gets a gradient"
            );
            for ((name, want), (_, got)) in expected.iter().zip(&fused) {
                let scale = 1.0 + want.abs().max().double_value(&[]);
                let diff = (want - got).abs().max().double_value(&[]);
                assert!(
                    diff <= 1e-5 * scale,
                    "{label}: gradient of {name} differs by {diff} (scale {scale})"
                );
            }
        });
    }
}
