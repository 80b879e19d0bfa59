//! The interpreter against ONNX Runtime and against finite differences, on graphs written
//! by `torch.onnx.export` (see `tools/fixtures/make_onnx_fixtures.py`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;

use gauntlet_core::{Classifier, DeviceChoice, TokenIds, WhiteBox};
use gauntlet_onnx::OnnxModel;
use gauntlet_onnx_tch::{OnnxGraph, OnnxWhiteBox};
use serde_json::Value;
use tch::{Device, Tensor};

fn int_matrix(v: &Value) -> (Vec<i64>, Vec<i64>) {
    let rows = v.as_array().unwrap();
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect();
    let shape = vec![rows.len() as i64, (flat.len() / rows.len()) as i64];
    (flat, shape)
}

#[test]
fn interpreter_logits_match_onnx_runtime() {
    for name in common::FIXTURES {
        let model = OnnxModel::load(&common::bundle(name).join("model.onnx")).unwrap();
        let graph = OnnxGraph::new(&model, Device::Cpu).unwrap();
        let expected = common::expected(name);
        for batch in expected["batches"].as_array().unwrap() {
            let mut feeds = HashMap::new();
            for input in expected["inputs"].as_array().unwrap() {
                let input = input.as_str().unwrap();
                let (values, shape) = int_matrix(&batch[input]);
                feeds.insert(
                    input.to_owned(),
                    Tensor::from_slice(&values).reshape(&shape),
                );
            }
            let logits = tch::no_grad(|| graph.evaluate(&feeds, &HashMap::new(), &["logits"]))
                .unwrap()
                .remove(0);
            let got = Vec::<f32>::try_from(logits.flatten(0, -1)).unwrap();
            let want: Vec<f32> = batch["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{name}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4,
                    "{name}: {got:?} vs ONNX Runtime {want:?}"
                );
            }
        }
    }
}

/// Unpadded examples of a recorded batch.
fn examples(name: &str) -> Vec<TokenIds> {
    let expected = common::expected(name);
    let batch = &expected["batches"][0];
    batch["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(batch["attention_mask"].as_array().unwrap())
        .map(|(ids, mask)| {
            TokenIds::Words(
                ids.as_array()
                    .unwrap()
                    .iter()
                    .zip(mask.as_array().unwrap())
                    .filter(|(_, m)| m.as_i64() == Some(1))
                    .map(|(id, _)| id.as_u64().unwrap() as u32)
                    .collect(),
            )
        })
        .collect()
}

fn loss_of(
    model: &OnnxWhiteBox,
    batch: &[TokenIds],
    emb: &[Vec<f32>],
    labels: &[usize],
    i: usize,
) -> f64 {
    let p = model.predict_embedded(batch, emb).unwrap();
    -f64::from(p.row(i)[labels[i]]).ln()
}

#[test]
fn gradients_match_central_finite_differences() {
    for name in common::FIXTURES {
        let model = OnnxWhiteBox::load(&common::bundle(name), DeviceChoice::Cpu).unwrap();
        let batch = examples(name);
        let labels: Vec<usize> = (0..batch.len()).map(|i| i % model.labels().len()).collect();
        let grads = model.loss_gradients(&batch, &labels).unwrap();
        let table = model.embedding_table();
        let dim = grads.dim;
        assert_eq!(dim, table.dim);
        let emb: Vec<Vec<f32>> = batch
            .iter()
            .map(|ids| {
                ids.flat()
                    .iter()
                    .flat_map(|&id| table.row(id as usize).to_vec())
                    .collect()
            })
            .collect();
        // The embedded forward pass reproduces the id forward pass.
        let by_ids = model.predict(&batch).unwrap();
        let by_emb = model.predict_embedded(&batch, &emb).unwrap();
        for (a, b) in by_ids.values.iter().zip(&by_emb.values) {
            assert!((a - b).abs() < 1e-5, "{name}");
        }
        for (i, g) in grads.gradients.iter().enumerate() {
            assert_eq!(g.values.len(), batch[i].positions() * dim, "{name}");
            assert!((f64::from(g.loss) - loss_of(&model, &batch, &emb, &labels, i)).abs() < 1e-4);
            // The largest-gradient coordinate plus two fixed ones.
            let top = (0..g.values.len())
                .max_by(|&a, &b| g.values[a].abs().total_cmp(&g.values[b].abs()))
                .unwrap();
            for coord in [top, 0, g.values.len() - 1] {
                let h = 1e-2f32;
                let mut plus = emb.clone();
                plus[i][coord] += h;
                let mut minus = emb.clone();
                minus[i][coord] -= h;
                let fd = (loss_of(&model, &batch, &plus, &labels, i)
                    - loss_of(&model, &batch, &minus, &labels, i))
                    / (2.0 * f64::from(h));
                let analytic = f64::from(g.values[coord]);
                assert!(
                    (fd - analytic).abs() <= 2e-3 + 5e-2 * analytic.abs(),
                    "{name}: example {i} coordinate {coord}: finite difference {fd} vs gradient {analytic}"
                );
            }
        }
    }
}
