//! Golden tests: every native architecture's gradient with respect to its input
//! embeddings matches a central finite-difference estimate (in double precision), and no
//! architecture's output depends on how much padding its batch carries.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use gauntlet_core::TokenIds;
use gauntlet_models::{Architecture, PaddedBatch};
use tch::{nn, Device, Kind, Tensor};

fn small_hyper(arch: Architecture) -> BTreeMap<String, serde_json::Value> {
    let mut hyper = arch.default_hyper_parameters();
    let set = |h: &mut BTreeMap<String, serde_json::Value>, k: &str, v: serde_json::Value| {
        h.insert(k.into(), v);
    };
    match arch {
        Architecture::WordCnn => {
            set(&mut hyper, "embedding_dim", 6.into());
            set(&mut hyper, "feature_maps", 4.into());
        }
        Architecture::CharCnnLstm => {
            set(&mut hyper, "char_dim", 5.into());
            set(&mut hyper, "filter_widths", serde_json::json!([1, 2, 3]));
            set(&mut hyper, "maps_per_width", 2.into());
            set(&mut hyper, "hidden", 7.into());
        }
        Architecture::BiRnn => {
            set(&mut hyper, "embedding_dim", 6.into());
            set(&mut hyper, "hidden", 5.into());
            set(&mut hyper, "mlp_hidden", 4.into());
        }
    }
    hyper
}

fn inputs(arch: Architecture) -> Vec<TokenIds> {
    match arch {
        Architecture::CharCnnLstm => vec![
            TokenIds::Chars(vec![vec![2, 3, 4], vec![5], vec![6, 7, 8, 9, 2]]),
            TokenIds::Chars(vec![vec![9, 8]]),
        ],
        _ => vec![
            TokenIds::Words(vec![2, 3, 4, 5, 6, 7]),
            TokenIds::Words(vec![8, 9]),
        ],
    }
}

fn loss(
    net: &dyn gauntlet_models::Network,
    embedded: &Tensor,
    batch: &PaddedBatch,
    labels: &Tensor,
) -> Tensor {
    let logits = net.logits(embedded, batch, false);
    -logits
        .log_softmax(-1, Kind::Double)
        .gather(1, &labels.unsqueeze(1), false)
        .sum(Kind::Double)
}

#[test]
fn input_gradients_match_finite_differences() {
    for arch in Architecture::ALL {
        tch::manual_seed(7);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let net = arch.build(&vs.root(), &small_hyper(arch), 10, 3).unwrap();
        vs.set_kind(Kind::Double);
        let batch = PaddedBatch::new(&inputs(arch), net.min_len(), Device::Cpu).unwrap();
        let labels = Tensor::from_slice(&[2i64, 0]);
        let embedded = net.embed(&batch).detach().set_requires_grad(true);
        let total = loss(net.as_ref(), &embedded, &batch, &labels);
        let grad = Tensor::run_backward(&[total], &[&embedded], false, false).remove(0);
        let flat_grad = Vec::<f64>::try_from(grad.flatten(0, -1)).unwrap();
        let base = Vec::<f64>::try_from(embedded.detach().flatten(0, -1)).unwrap();
        let mask = Vec::<f32>::try_from(batch.mask.flatten(0, -1)).unwrap();
        let dim = base.len() / mask.len();
        let h = 1e-6;
        let mut checked = 0;
        // Every 3rd coordinate of real positions: enough to cover all words and dims.
        for idx in (0..base.len()).step_by(3).filter(|i| mask[i / dim] > 0.0) {
            let shifted = |delta: f64| {
                let mut values = base.clone();
                values[idx] += delta;
                let x = Tensor::from_slice(&values).reshape(embedded.size());
                tch::no_grad(|| loss(net.as_ref(), &x, &batch, &labels).double_value(&[]))
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            let analytic = flat_grad[idx];
            assert!(
                (numeric - analytic).abs() <= 1e-6 + 1e-4 * analytic.abs(),
                "{arch}: coordinate {idx}: finite difference {numeric} vs autograd {analytic}"
            );
            checked += 1;
        }
        assert!(checked > 10, "{arch}: only {checked} coordinates checked");
    }
}

#[test]
fn padding_never_changes_an_example_output() {
    for arch in Architecture::ALL {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = arch.build(&vs.root(), &small_hyper(arch), 10, 2).unwrap();
        let examples = inputs(arch);
        let alone = PaddedBatch::new(&examples[1..], net.min_len(), Device::Cpu).unwrap();
        let together = PaddedBatch::new(&examples, net.min_len(), Device::Cpu).unwrap();
        let a = tch::no_grad(|| net.forward(&alone, false));
        let b = tch::no_grad(|| net.forward(&together, false))
            .get(1)
            .unsqueeze(0);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{arch}: padding changed the logits by {diff}");
    }
}
