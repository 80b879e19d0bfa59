//! Evaluation of any [`Classifier`] on labelled, encoded examples: accuracy, mean
//! cross-entropy, and per-class precision, recall and F1.

use gauntlet_core::{Classifier, TokenIds};
use serde::Serialize;

use crate::error::TrainError;

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Label name.
    pub label: String,
    /// Examples of this class.
    pub support: usize,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score.
    pub f1: f64,
}

/// Evaluation of a model on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Number of examples.
    pub examples: usize,
    /// Share classified correctly.
    pub accuracy: f64,
    /// Mean cross-entropy of the true label.
    pub mean_loss: f64,
    /// Per-example cross-entropy, in input order (for paired tests).
    #[serde(skip)]
    pub losses: Vec<f64>,
    /// Per-class metrics, by class id.
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
}

/// Evaluates `model` on `(ids, label)` pairs in batches of `batch_size`.
pub fn evaluate(
    model: &dyn Classifier,
    examples: &[(TokenIds, usize)],
    batch_size: usize,
) -> Result<Evaluation, TrainError> {
    if examples.is_empty() {
        return Err(TrainError::Invalid(
            "cannot evaluate on an empty dataset".into(),
        ));
    }
    let classes = model.labels().len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut losses = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size.max(1)) {
        let ids: Vec<TokenIds> = chunk.iter().map(|(ids, _)| ids.clone()).collect();
        let probs = model.predict(&ids)?;
        for (i, (_, label)) in chunk.iter().enumerate() {
            let p = f64::from(probs.row(i)[*label]).max(1e-12);
            losses.push(-p.ln());
            confusion[*label][probs.argmax(i).0] += 1;
        }
    }
    let correct: usize = (0..classes).map(|k| confusion[k][k]).sum();
    let per_class: Vec<ClassMetrics> = model
        .labels()
        .iter()
        .enumerate()
        .map(|(k, label)| {
            let tp = confusion[k][k] as f64;
            let support: usize = confusion[k].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[k]).sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassMetrics {
                label: label.name.clone(),
                support,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let n = examples.len() as f64;
    Ok(Evaluation {
        examples: examples.len(),
        accuracy: correct as f64 / n,
        mean_loss: losses.iter().sum::<f64>() / n,
        macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / classes as f64,
        per_class,
        losses,
    })
}
