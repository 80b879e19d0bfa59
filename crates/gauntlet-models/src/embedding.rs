//! The input-embedding layer shared by every architecture, with optional frequency-weighted
//! normalization (Miyato et al. 2017, Eq. 1): `v̄ = (v − E(v)) / sqrt(Var(v))`, where the
//! mean and variance are weighted by each token's training frequency.
//!
//! Normalization matters for embedding-space adversarial training: without it a model can
//! make any fixed-norm perturbation insignificant by growing its embeddings. The
//! frequencies are a non-trainable variable, saved with the weights, so a normalized model
//! reloads identically; they stay zero (and normalization off) unless the trainer sets them.

use tch::{nn, Kind, Tensor};

/// Trainable embedding matrix plus, when normalized, the token frequencies.
#[derive(Debug)]
pub struct InputEmbedding {
    weight: Tensor,
    frequencies: Option<Tensor>,
}

impl InputEmbedding {
    /// Creates `embedding` (and `embedding_frequencies` when `normalize`) under `path`.
    pub fn new(path: &nn::Path, rows: i64, dim: i64, normalize: bool) -> Self {
        let weight = path.var(
            "embedding",
            &[rows, dim],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.1,
            },
        );
        let frequencies = normalize.then(|| path.zeros_no_train("embedding_frequencies", &[rows]));
        Self {
            weight,
            frequencies,
        }
    }

    /// The effective embedding matrix `[rows, dim]` (normalized when enabled).
    pub fn matrix(&self) -> Tensor {
        match &self.frequencies {
            None => self.weight.shallow_clone(),
            Some(freq) => {
                let total = freq.sum(Kind::Float);
                // Before frequencies are set (all zero) fall back to uniform weights.
                let f = if total.double_value(&[]) > 0.0 {
                    freq / total
                } else {
                    freq.ones_like() / freq.size()[0] as f64
                };
                let f = f.to_kind(self.weight.kind()).unsqueeze(1);
                let mean =
                    (&f * &self.weight).sum_dim_intlist([0].as_slice(), true, self.weight.kind());
                let centered = &self.weight - mean;
                let var = (&f * centered.square()).sum_dim_intlist(
                    [0].as_slice(),
                    true,
                    self.weight.kind(),
                );
                centered / (var + 1e-6).sqrt()
            }
        }
    }

    /// Overwrites rows of the embedding matrix (pretrained vectors): `(row, values)`, every
    /// `values` as wide as the matrix.
    pub fn set_rows(&self, rows: &[(usize, &[f32])]) -> Result<(), String> {
        let size = self.weight.size();
        let (n, dim) = (size[0] as usize, size[1] as usize);
        tch::no_grad(|| {
            for &(row, values) in rows {
                if row >= n || values.len() != dim {
                    return Err(format!(
                        "row {row} with {} values does not fit the [{n}, {dim}] embedding",
                        values.len()
                    ));
                }
                let v = Tensor::from_slice(values)
                    .to_kind(self.weight.kind())
                    .to_device(self.weight.device());
                self.weight.get(row as i64).copy_(&v);
            }
            Ok(())
        })
    }

    /// Zeroes the matrix's gradient. Called after every backward pass, it keeps the matrix
    /// fixed (Kim's CNN-static): with zero gradients from the start Adam's moments stay
    /// zero and its steps are zero, while gradients still flow to the embedded inputs, which
    /// the adversarial methods differentiate.
    pub fn clear_grad(&self) {
        let mut grad = self.weight.grad();
        if grad.defined() {
            let _ = grad.zero_();
        }
    }

    /// The raw (unnormalized) matrix `[rows, dim]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Whether the layer normalizes.
    pub fn is_normalized(&self) -> bool {
        self.frequencies.is_some()
    }

    /// Sets the token frequencies (counts over the training data, by id). A no-op for an
    /// unnormalized layer.
    pub fn set_frequencies(&self, counts: &[f64]) {
        if let Some(freq) = &self.frequencies {
            let values = Tensor::from_slice(counts)
                .to_kind(freq.kind())
                .to_device(freq.device());
            tch::no_grad(|| {
                let mut target = freq.shallow_clone();
                target.copy_(&values);
            });
        }
    }
}
