//! Dense, padded id batches on the host, for backends that feed a runtime with plain
//! buffers (ONNX Runtime, the ONNX interpreter).
//!
//! Word batches become `[B, T]`, character batches `[B, W, C]`, row-major. The innermost
//! axis is at least `min_len` long (graphs with convolutions need a minimum width), every
//! padded position holds `pad_id` with mask 0, and every real one mask 1.

use crate::classifier::{InputKind, TokenIds};
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
    /// Offsets into the padded buffer of every real position of each example, in
    /// [`TokenIds::flat`] order (to read per-position outputs such as gradients back).
    pub positions: Vec<Vec<usize>>,
}

/// What a backend accepts: the kind of ids and, when known, the vocabulary size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadSpec {
    /// Word or character ids.
    pub kind: InputKind,
    /// Ids must be below this, when given.
    pub vocabulary: Option<usize>,
    /// Id written at padded positions.
    pub pad_id: u32,
    /// Minimum length of the innermost axis.
    pub min_len: usize,
}

impl PaddedIds {
    /// Pads `batch`; fails on an empty batch, an empty example or word, ids of the wrong
    /// kind, or ids outside the vocabulary.
    pub fn new(batch: &[TokenIds], spec: PadSpec) -> Result<Self, ModelError> {
        if batch.is_empty() {
            return Err(ModelError::InvalidInput("empty batch".into()));
        }
        for (i, ids) in batch.iter().enumerate() {
            if ids.kind() != spec.kind {
                return Err(ModelError::InvalidInput(format!(
                    "example {i}: {:?} ids given to a {:?} model",
                    ids.kind(),
                    spec.kind
                )));
            }
            if ids.is_empty() {
                return Err(ModelError::InvalidInput(format!(
                    "example {i} has no tokens"
                )));
            }
            if let TokenIds::Chars(words) = ids {
                if let Some(k) = words.iter().position(Vec::is_empty) {
                    return Err(ModelError::InvalidInput(format!(
                        "example {i}: word {k} has no characters"
                    )));
                }
            }
            if let Some(rows) = spec.vocabulary {
                if let Some(bad) = ids.flat().into_iter().find(|&id| id as usize >= rows) {
                    return Err(ModelError::InvalidInput(format!(
                        "example {i}: id {bad} is outside the vocabulary of {rows}"
                    )));
                }
            }
        }
        // Word ids are padded as words of one "character" each, so one loop serves both.
        let words: Vec<Vec<Vec<u32>>> = batch
            .iter()
            .map(|ids| match ids {
                TokenIds::Words(w) => w.iter().map(|&id| vec![id]).collect(),
                TokenIds::Chars(w) => w.clone(),
            })
            .collect();
        let longest = words.iter().map(Vec::len).max().unwrap_or(0);
        let (w, c, shape) = match spec.kind {
            InputKind::Word => {
                let t = longest.max(spec.min_len);
                (t, 1, vec![batch.len(), t])
            }
            InputKind::Char => {
                let chars = words.iter().flatten().map(Vec::len).max().unwrap_or(0);
                let c = chars.max(spec.min_len);
                (longest, c, vec![batch.len(), longest, c])
            }
        };
        let total = batch.len() * w * c;
        let mut out = Self {
            ids: vec![i64::from(spec.pad_id); total],
            mask: vec![0; total],
            shape,
            positions: Vec::with_capacity(batch.len()),
        };
        for (i, example) in words.iter().enumerate() {
            let mut real = Vec::new();
            for (j, chars) in example.iter().enumerate() {
                for (k, &id) in chars.iter().enumerate() {
                    let at = (i * w + j) * c + k;
                    out.ids[at] = i64::from(id);
                    out.mask[at] = 1;
                    real.push(at);
                }
            }
            out.positions.push(real);
        }
        Ok(out)
    }

    /// The shape as `i64`, as runtimes take it.
    pub fn shape_i64(&self) -> Vec<i64> {
        self.shape.iter().map(|&d| d as i64).collect()
    }
}

/// Writes each example's `[positions, dim]` embeddings over its real positions of a padded
/// `[.., dim]` buffer (padding keeps whatever `host` holds there). Fails when the counts of
/// examples or values do not match.
pub fn scatter_rows(
    positions: &[Vec<usize>],
    rows: &[Vec<f32>],
    dim: usize,
    host: &mut [f32],
) -> Result<(), ModelError> {
    if rows.len() != positions.len() {
        return Err(ModelError::InvalidInput(format!(
            "{} embeddings for {} examples",
            rows.len(),
            positions.len()
        )));
    }
    for (i, (at, emb)) in positions.iter().zip(rows).enumerate() {
        if emb.len() != at.len() * dim {
            return Err(ModelError::InvalidInput(format!(
                "example {i}: {} values for {} positions of width {dim}",
                emb.len(),
                at.len()
            )));
        }
        for (r, &p) in at.iter().enumerate() {
            host[p * dim..(p + 1) * dim].copy_from_slice(&emb[r * dim..(r + 1) * dim]);
        }
    }
    Ok(())
}

/// The `[positions, dim]` rows of one example, read out of a padded `[.., dim]` buffer.
pub fn gather_rows(positions: &[usize], host: &[f32], dim: usize) -> Vec<f32> {
    positions
        .iter()
        .flat_map(|&p| host[p * dim..(p + 1) * dim].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: InputKind, pad_id: u32, min_len: usize) -> PadSpec {
        PadSpec {
            kind,
            vocabulary: Some(10),
            pad_id,
            min_len,
        }
    }

    #[test]
    fn word_batches_pad_to_the_longest_and_the_minimum() {
        let batch = [TokenIds::Words(vec![5, 6]), TokenIds::Words(vec![7])];
        let p = PaddedIds::new(&batch, spec(InputKind::Word, 9, 3)).unwrap();
        assert_eq!(p.shape, [2, 3]);
        assert_eq!(p.ids, [5, 6, 9, 7, 9, 9]);
        assert_eq!(p.mask, [1, 1, 0, 1, 0, 0]);
        assert_eq!(p.positions[1], [3]);
    }

    #[test]
    fn char_batches_pad_words_and_characters() {
        let batch = [
            TokenIds::Chars(vec![vec![2, 3], vec![4]]),
            TokenIds::Chars(vec![vec![5]]),
        ];
        let p = PaddedIds::new(&batch, spec(InputKind::Char, 0, 1)).unwrap();
        assert_eq!(p.shape, [2, 2, 2]);
        assert_eq!(p.ids, [2, 3, 4, 0, 5, 0, 0, 0]);
        assert_eq!(p.positions, [vec![0, 1, 2], vec![4]]);
    }

    #[test]
    fn rows_scatter_into_and_gather_from_real_positions() {
        let positions = vec![vec![0, 1], vec![2]];
        let mut host = vec![9.0; 8];
        scatter_rows(
            &positions,
            &[vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0]],
            2,
            &mut host,
        )
        .unwrap();
        assert_eq!(host, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 9.0]);
        assert_eq!(gather_rows(&positions[1], &host, 2), [5.0, 6.0]);
        assert!(scatter_rows(&positions, &[vec![1.0]], 2, &mut host).is_err());
        assert!(scatter_rows(&positions, &[vec![1.0], vec![2.0]], 2, &mut host).is_err());
    }

    #[test]
    fn bad_batches_are_refused() {
        let word = spec(InputKind::Word, 0, 1);
        assert!(PaddedIds::new(&[], word).is_err());
        assert!(PaddedIds::new(&[TokenIds::Words(vec![])], word).is_err());
        assert!(PaddedIds::new(&[TokenIds::Words(vec![10])], word).is_err());
        let mixed = [TokenIds::Words(vec![1]), TokenIds::Chars(vec![vec![1]])];
        assert!(PaddedIds::new(&mixed, word).is_err());
        let empty_word = [TokenIds::Chars(vec![vec![1], vec![]])];
        let err = PaddedIds::new(&empty_word, spec(InputKind::Char, 0, 1)).unwrap_err();
        assert!(err.to_string().contains("word 1 has no characters"));
    }
}
