//! Dense, padded id batches on the host, for backends that feed a runtime with plain
//! buffers (ONNX Runtime, the ONNX interpreter).
//!
//! Word batches become `[B, T]`, character batches `[B, W, C]`, row-major. The innermost
//! axis is at least `min_len` long (graphs with convolutions need a minimum width), every
//! padded position holds `pad_id` with mask 0, and every real one mask 1.

use crate::classifier::TokenIds;
use crate::error::ModelError;

/// A padded batch of ids with its mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedIds {
    /// Ids, row-major with [`Self::shape`].
    pub ids: Vec<i64>,
    /// 1 at real positions, 0 at padding; same shape.
    pub mask: Vec<i64>,
    /// `[B, T]` or `[B, W, C]`.
    pub shape: Vec<usize>,
}

impl PaddedIds {
    /// Pads `batch`; fails on an empty batch, an empty example or mixed kinds.
    pub fn new(batch: &[TokenIds], pad_id: u32, min_len: usize) -> Result<Self, ModelError> {
        let Some(first) = batch.first() else {
            return Err(ModelError::InvalidInput("empty batch".into()));
        };
        if batch.iter().any(|ids| ids.kind() != first.kind()) {
            return Err(ModelError::InvalidInput(
                "batch mixes word and character ids".into(),
            ));
        }
        if let Some(i) = batch.iter().position(TokenIds::is_empty) {
            return Err(ModelError::InvalidInput(format!(
                "example {i} has no tokens"
            )));
        }
        let pad = i64::from(pad_id);
        let b = batch.len();
        match first {
            TokenIds::Words(_) => {
                let t = batch
                    .iter()
                    .map(TokenIds::positions)
                    .max()
                    .unwrap_or(0)
                    .max(min_len);
                let mut out = Self {
                    ids: vec![pad; b * t],
                    mask: vec![0; b * t],
                    shape: vec![b, t],
                };
                for (i, example) in batch.iter().enumerate() {
                    for (j, id) in example.flat().into_iter().enumerate() {
                        out.ids[i * t + j] = i64::from(id);
                        out.mask[i * t + j] = 1;
                    }
                }
                Ok(out)
            }
            TokenIds::Chars(_) => {
                let words = |ids: &TokenIds| match ids {
                    TokenIds::Chars(w) => w.clone(),
                    TokenIds::Words(_) => Vec::new(),
                };
                let all: Vec<Vec<Vec<u32>>> = batch.iter().map(words).collect();
                let w = all.iter().map(Vec::len).max().unwrap_or(0);
                let c = all
                    .iter()
                    .flatten()
                    .map(Vec::len)
                    .max()
                    .unwrap_or(0)
                    .max(min_len);
                let mut out = Self {
                    ids: vec![pad; b * w * c],
                    mask: vec![0; b * w * c],
                    shape: vec![b, w, c],
                };
                for (i, example) in all.iter().enumerate() {
                    for (k, word) in example.iter().enumerate() {
                        for (j, &id) in word.iter().enumerate() {
                            let at = (i * w + k) * c + j;
                            out.ids[at] = i64::from(id);
                            out.mask[at] = 1;
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Offsets into the padded buffer of every real position of example `i`, in
    /// [`TokenIds::flat`] order (to read per-position outputs such as gradients back).
    pub fn real_positions(&self, i: usize) -> Vec<usize> {
        let row: usize = self.shape[1..].iter().product();
        (i * row..(i + 1) * row)
            .filter(|&at| self.mask[at] == 1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_batches_pad_to_the_longest_and_the_minimum() {
        let batch = [TokenIds::Words(vec![5, 6]), TokenIds::Words(vec![7])];
        let p = PaddedIds::new(&batch, 9, 3).unwrap();
        assert_eq!(p.shape, [2, 3]);
        assert_eq!(p.ids, [5, 6, 9, 7, 9, 9]);
        assert_eq!(p.mask, [1, 1, 0, 1, 0, 0]);
        assert_eq!(p.real_positions(1), [3]);
    }

    #[test]
    fn char_batches_pad_words_and_characters() {
        let batch = [
            TokenIds::Chars(vec![vec![2, 3], vec![4]]),
            TokenIds::Chars(vec![vec![5]]),
        ];
        let p = PaddedIds::new(&batch, 0, 1).unwrap();
        assert_eq!(p.shape, [2, 2, 2]);
        assert_eq!(p.ids, [2, 3, 4, 0, 5, 0, 0, 0]);
        assert_eq!(p.real_positions(0), [0, 1, 2]);
        assert_eq!(p.real_positions(1), [4]);
    }

    #[test]
    fn empty_and_mixed_batches_are_refused() {
        assert!(PaddedIds::new(&[], 0, 1).is_err());
        assert!(PaddedIds::new(&[TokenIds::Words(vec![])], 0, 1).is_err());
        let mixed = [TokenIds::Words(vec![1]), TokenIds::Chars(vec![vec![1]])];
        assert!(PaddedIds::new(&mixed, 0, 1).is_err());
    }
}
