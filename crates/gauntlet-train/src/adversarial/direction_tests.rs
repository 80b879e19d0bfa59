//! The perturbations point where the papers say, on models whose gradients and curvature
//! are known in closed form: Miyato's L2 perturbation is `ε·g/‖g‖`, one VAT power
//! iteration is `∝ H·d` and raises the Rayleigh quotient, and top-r HotFlip takes exactly
//! the r best first-order flips (a random choice of flips fails).
#![allow(clippy::unwrap_used)]

use gauntlet_core::{InputKind, TokenIds};
use gauntlet_models::{Architecture, InputEmbedding, Network, PaddedBatch};
use tch::{nn, Device, Kind, Tensor};

use super::clean_pass::clean_pass;
use super::embedding_space::{l2_perturbation, vat_perturbation};
use super::tests::{run, TORCH_RNG};
use super::token_space::{flips_for, hotflip_batch};

/// `logits = Σ_t s_t·e_t·W`: the gradient of the loss at position t is `s_t·W(p − y)`, a
/// different one at each position, and the KL's Hessian is `Aᵀ F A` with `A d = Σ_t s_t d_t W`.
#[derive(Debug)]
struct Linear {
    embedding: InputEmbedding,
    w: Tensor,
    scales: Tensor,
}

impl Network for Linear {
    fn input_kind(&self) -> InputKind {
        InputKind::Word
    }
    fn min_len(&self) -> usize {
        1
    }
    fn input_embedding(&self) -> &InputEmbedding {
        &self.embedding
    }
    fn logits(&self, embedded: &Tensor, _batch: &PaddedBatch, _train: bool) -> Tensor {
        let t = embedded.size()[1];
        let s = self.scales.narrow(0, 0, t).view([1, t, 1]);
        (embedded * s)
            .sum_dim_intlist([1].as_slice(), false, Kind::Float)
            .matmul(&self.w)
    }
}

fn linear(vs: &nn::VarStore) -> Linear {
    Linear {
        embedding: InputEmbedding::new(&(vs.root() / "emb"), 12, 4, false),
        w: Tensor::randn([4, 3], (Kind::Float, Device::Cpu)),
        scales: Tensor::from_slice(&[1.0f32, -0.5, 2.0, 0.75, 1.5, -1.25]),
    }
}

fn ids() -> Vec<TokenIds> {
    vec![
        TokenIds::Words(vec![2, 3, 4, 5, 6, 7]),
        TokenIds::Words(vec![8, 9, 2]),
    ]
}

/// Per-example L2 normalization over every position and dimension.
fn unit(x: &Tensor) -> Tensor {
    let norms = x
        .reshape([x.size()[0], -1])
        .norm_scalaropt_dim(2.0, [1].as_slice(), false)
        .view([-1, 1, 1]);
    x / norms
}

fn max_abs(x: &Tensor) -> f64 {
    x.abs().max().double_value(&[])
}

#[test]
fn the_l2_perturbation_is_epsilon_along_the_closed_form_gradient() {
    let _rng = TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = linear(&vs);
    let ids = ids();
    let padded = PaddedBatch::new(&ids, 1, Device::Cpu).unwrap();
    let targets = Tensor::from_slice(&[0i64, 2]);
    let embedded = net.embed(&padded);
    let logits = net.logits(&embedded, &padded, true);
    let loss = logits.cross_entropy_for_logits(&targets);
    let gradient = Tensor::run_backward(&[&loss], &[&embedded], true, false).remove(0);
    let r = l2_perturbation(&gradient, &padded, 0.7);
    // ∂J/∂e_{b,t} = mask·s_t·W(p_b − y_b)/B.
    let p = logits.softmax(-1, Kind::Float).detach();
    let y = targets.one_hot(3).to_kind(Kind::Float);
    let per_example = (p - y).matmul(&net.w.tr()) / 2.0; // [B, D]
    let g = per_example.unsqueeze(1) * net.scales.view([1, 6, 1]) * padded.mask.unsqueeze(-1);
    let expected = unit(&g) * 0.7;
    assert!(max_abs(&(&r - &expected)) < 1e-5, "{r} vs {expected}");
    // The sign matters: moving along r raises the loss by about ε‖g‖, against it lowers it.
    let up = net
        .logits(&(&embedded + &r * 1e-2), &padded, true)
        .cross_entropy_for_logits(&targets);
    let down = net
        .logits(&(&embedded - &r * 1e-2), &padded, true)
        .cross_entropy_for_logits(&targets);
    let (l, u, d) = (
        loss.double_value(&[]),
        up.double_value(&[]),
        down.double_value(&[]),
    );
    assert!(u > l && d < l, "{d} < {l} < {u}");
}

#[test]
fn one_vat_power_iteration_moves_toward_the_top_eigenvector() {
    let _rng = TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(6);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = linear(&vs);
    let ids = ids();
    let padded = PaddedBatch::new(&ids, 1, Device::Cpu).unwrap();
    let embedded = net.embed(&padded);
    let logits = net.logits(&embedded, &padded, true);
    let log_p = logits.log_softmax(-1, Kind::Float).detach();
    let mask = padded.mask.unsqueeze(-1);
    // The random start d that vat_perturbation draws, drawn again from the same seed.
    tch::manual_seed(77);
    let d = unit(&(embedded.randn_like() * &mask));
    tch::manual_seed(77);
    let r = vat_perturbation(&net, &embedded, &padded, &log_p, 0.5, 1e-3);
    // H·d with H = Aᵀ F A, F = diag(p) − p pᵀ: (A d)_b = Σ_t s_t d_{b,t} W.
    let s = net.scales.view([1, 6, 1]);
    let hessian_times = |v: &Tensor| -> Tensor {
        let p = log_p.exp();
        let av = (v * &s)
            .sum_dim_intlist([1].as_slice(), false, Kind::Float)
            .matmul(&net.w);
        let fav = &p * &av - &p * (&p * &av).sum_dim_intlist([-1].as_slice(), true, Kind::Float);
        fav.matmul(&net.w.tr()).unsqueeze(1) * &s * &mask
    };
    let expected = unit(&hessian_times(&d)) * 0.5;
    assert!(max_abs(&(&r - &expected)) < 5e-3, "{r} vs {expected}");
    // The power iteration raises the Rayleigh quotient vᵀHv/‖v‖² of every example.
    let rayleigh = |v: &Tensor| -> Vec<f64> {
        let v = unit(v);
        let q = (&v * hessian_times(&v)).reshape([2, -1]).sum_dim_intlist(
            [1].as_slice(),
            false,
            Kind::Double,
        );
        Vec::<f64>::try_from(q).unwrap()
    };
    let (before, after) = (rayleigh(&d), rayleigh(&r));
    for (b, a) in before.iter().zip(&after) {
        assert!(a > b, "Rayleigh quotient {b} -> {a}");
    }
}

#[test]
fn top_r_hotflip_takes_the_r_best_first_order_flips() {
    let _rng = TORCH_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut hyper = Architecture::CharCnnLstm.default_hyper_parameters();
    hyper.insert("dropout".into(), 0.0.into());
    let net = Architecture::CharCnnLstm
        .build(&vs.root(), &hyper, 12, 3)
        .unwrap();
    let ids = vec![
        TokenIds::Chars(vec![vec![2, 3, 4, 5], vec![6, 7], vec![8, 9, 2, 3, 4]]),
        TokenIds::Chars(vec![vec![5, 6, 7], vec![10, 11]]),
    ];
    run(net.as_ref(), &ids, |batch| {
        let (padded, targets) = (batch.padded, batch.targets);
        // The reference: every flip's first-order estimate g·(e_a − e_current), on the host.
        let embedded = net.embed(padded);
        let loss = net
            .logits(&embedded, padded, true)
            .cross_entropy_for_logits(targets);
        let g = Tensor::run_backward(&[&loss], &[&embedded], false, false).remove(0);
        let dim = g.size()[3] as usize;
        let g = Vec::<f32>::try_from(g.flatten(0, -1)).unwrap();
        let table = net.embedding().detach();
        let rows = table.size()[0] as usize;
        let table = Vec::<f32>::try_from(table.flatten(0, -1)).unwrap();
        let flat_ids = Vec::<i64>::try_from(padded.ids.flatten(0, -1)).unwrap();
        let mask = Vec::<f32>::try_from(padded.mask.flatten(0, -1)).unwrap();
        let per_example = flat_ids.len() / ids.len();
        let dot = |pos: usize, row: usize| -> f32 {
            (0..dim)
                .map(|k| g[pos * dim + k] * table[row * dim + k])
                .sum()
        };
        for ratio in [0.2, 0.5] {
            // The training path: the input gradient of the clean pass that also
            // accumulates αJ(x) (α = 0.5).
            let pass = clean_pass(net.as_ref(), batch, 0.5);
            let flipped = hotflip_batch(net.as_ref(), batch, &pass, ratio);
            let after = Vec::<i64>::try_from(flipped.ids.flatten(0, -1)).unwrap();
            for (b, example) in ids.iter().enumerate() {
                let range = b * per_example..(b + 1) * per_example;
                // Best flip of each real position: (gain, position, character).
                let mut best: Vec<(f32, usize, i64)> = range
                    .clone()
                    .filter(|&p| mask[p] > 0.0)
                    .map(|p| {
                        let current = flat_ids[p] as usize;
                        (2..rows)
                            .filter(|&a| a != current)
                            .map(|a| (dot(p, a) - dot(p, current), p, a as i64))
                            .fold(
                                (f32::NEG_INFINITY, p, -1),
                                |x, y| if y.0 > x.0 { y } else { x },
                            )
                    })
                    .collect();
                best.sort_by(|x, y| y.0.total_cmp(&x.0));
                let r = flips_for(example.positions(), ratio) as usize;
                let mut expected: Vec<(usize, i64)> =
                    best[..r].iter().map(|&(_, p, a)| (p, a)).collect();
                expected.sort_unstable();
                let changed: Vec<(usize, i64)> = range
                    .filter(|&p| after[p] != flat_ids[p])
                    .map(|p| (p, after[p]))
                    .collect();
                assert_eq!(
                    changed, expected,
                    "ratio {ratio}, example {b}: the r best flips"
                );
                // No tie blurs the choice: the r-th best gain beats the next one.
                if best.len() > r {
                    assert!(best[r - 1].0 > best[r].0, "a tie at the cut-off");
                }
            }
        }
    });
}
