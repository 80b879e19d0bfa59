//! Padding of unpadded [`TokenIds`] into the dense int64 inputs ONNX graphs take.
//!
//! Word batches become `[B, T]`, character batches `[B, W, C]`; every padded position holds
//! the manifest's `pad_id` with mask 0, and the innermost axis is at least the graph's
//! minimum (its widest convolution window). The real positions of each example are kept in
//! [`TokenIds::flat`] order so gradients can be read back unpadded.

use gauntlet_core::{InputKind, ModelError, TokenIds};

/// A batch padded for the graph.
pub(crate) struct Padded {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub shape: Vec<i64>,
    /// Flat padded indices of each example's real positions, in [`TokenIds::flat`] order.
    pub positions: Vec<Vec<usize>>,
}

/// Pads a batch to `[B, T]` (word) or `[B, W, C]` (char) with `pad_id`, checking kinds and
/// ids; the innermost axis is at least `min_len` long.
pub(crate) fn pad_batch(
    batch: &[TokenIds],
    kind: InputKind,
    rows: usize,
    pad_id: u32,
    min_len: usize,
) -> Result<Padded, ModelError> {
    if batch.is_empty() {
        return Err(ModelError::InvalidInput("empty batch".into()));
    }
    for (i, ids) in batch.iter().enumerate() {
        if ids.kind() != kind {
            return Err(ModelError::InvalidInput(format!(
                "example {i}: {:?} ids given to a {kind:?} model",
                ids.kind()
            )));
        }
        if ids.is_empty() {
            return Err(ModelError::InvalidInput(format!(
                "example {i} has no tokens"
            )));
        }
        if let Some(bad) = ids.flat().into_iter().find(|&id| id as usize >= rows) {
            return Err(ModelError::InvalidInput(format!(
                "example {i}: id {bad} is outside the vocabulary of {rows}"
            )));
        }
    }
    let words: Vec<Vec<Vec<u32>>> = batch
        .iter()
        .map(|ids| match ids {
            TokenIds::Words(w) => w.iter().map(|&id| vec![id]).collect(),
            TokenIds::Chars(w) => w.clone(),
        })
        .collect();
    let w = words.iter().map(Vec::len).max().unwrap_or(0);
    let inner = words.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let (w, c, shape) = match kind {
        InputKind::Word => {
            let t = w.max(min_len);
            (t, 1, vec![batch.len() as i64, t as i64])
        }
        InputKind::Char => {
            let c = inner.max(min_len);
            (w, c, vec![batch.len() as i64, w as i64, c as i64])
        }
    };
    let total = batch.len() * w * c;
    let mut ids = vec![i64::from(pad_id); total];
    let mut mask = vec![0i64; total];
    let mut positions = Vec::with_capacity(batch.len());
    for (i, example) in words.iter().enumerate() {
        let mut real = Vec::new();
        for (j, chars) in example.iter().enumerate() {
            for (k, &id) in chars.iter().enumerate() {
                let p = (i * w + j) * c + k;
                ids[p] = i64::from(id);
                mask[p] = 1;
                real.push(p);
            }
        }
        positions.push(real);
    }
    Ok(Padded {
        ids,
        mask,
        shape,
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_batches_pad_words_and_characters_and_keep_flat_order() {
        let batch = [
            TokenIds::Chars(vec![vec![5, 6], vec![7]]),
            TokenIds::Chars(vec![vec![8]]),
        ];
        let p = pad_batch(&batch, InputKind::Char, 10, 0, 3).unwrap();
        assert_eq!(p.shape, [2, 2, 3]);
        assert_eq!(p.ids, [5, 6, 0, 7, 0, 0, 8, 0, 0, 0, 0, 0]);
        assert_eq!(p.mask, [1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(p.positions, [vec![0, 1, 3], vec![6]]);
    }

    #[test]
    fn refuses_out_of_vocabulary_ids_and_wrong_kinds() {
        let err = pad_batch(&[TokenIds::Words(vec![10])], InputKind::Word, 10, 0, 1);
        assert!(err.is_err());
        let err = pad_batch(&[TokenIds::Words(vec![1])], InputKind::Char, 10, 0, 1);
        assert!(err.is_err());
    }
}
