//! Padding of unpadded [`TokenIds`] into dense tensors with masks.
//!
//! Word batches are `[B, T]`; character batches `[B, W, C]`. `T`, `W` and `C` are at least
//! the caller's minimum (convolution widths need it), and every padded position holds
//! [`PAD_ID`] with mask 0. Lengths are kept so networks can read the last real state.

use gauntlet_core::codec::PAD_ID;
use gauntlet_core::{ModelError, TokenIds};
use tch::{Device, Kind, Tensor};

/// A padded batch on a device.
#[derive(Debug)]
pub struct PaddedBatch {
    /// Token ids, `[B, T]` (word) or `[B, W, C]` (char), int64.
    pub ids: Tensor,
    /// 1.0 for real positions, 0.0 for padding; same shape as `ids`, float.
    pub mask: Tensor,
    /// Number of words of each example.
    pub word_lengths: Vec<i64>,
    /// Characters of each word (`[B][W]`), character batches only.
    pub char_lengths: Vec<Vec<i64>>,
}

impl PaddedBatch {
    /// Pads a batch; `min_len` is the minimum padded length of the innermost axis (tokens
    /// for word ids, characters for char ids).
    pub fn new(batch: &[TokenIds], min_len: usize, device: Device) -> Result<Self, ModelError> {
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
        let b = batch.len();
        let (ids, mask, shape, word_lengths, char_lengths) = match first {
            TokenIds::Words(_) => {
                let t = batch
                    .iter()
                    .map(TokenIds::positions)
                    .max()
                    .unwrap_or(0)
                    .max(min_len);
                let mut ids = vec![i64::from(PAD_ID); b * t];
                let mut mask = vec![0f32; b * t];
                let mut lengths = Vec::with_capacity(b);
                for (i, example) in batch.iter().enumerate() {
                    if let TokenIds::Words(words) = example {
                        for (j, &id) in words.iter().enumerate() {
                            ids[i * t + j] = i64::from(id);
                            mask[i * t + j] = 1.0;
                        }
                        lengths.push(words.len() as i64);
                    }
                }
                (ids, mask, vec![b as i64, t as i64], lengths, Vec::new())
            }
            TokenIds::Chars(_) => {
                let words_of = |ids: &TokenIds| match ids {
                    TokenIds::Chars(w) => w.clone(),
                    TokenIds::Words(_) => Vec::new(),
                };
                let all: Vec<Vec<Vec<u32>>> = batch.iter().map(words_of).collect();
                let w = all.iter().map(Vec::len).max().unwrap_or(0);
                let c = all
                    .iter()
                    .flatten()
                    .map(Vec::len)
                    .max()
                    .unwrap_or(0)
                    .max(min_len);
                let mut ids = vec![i64::from(PAD_ID); b * w * c];
                let mut mask = vec![0f32; b * w * c];
                let mut word_lengths = Vec::with_capacity(b);
                let mut char_lengths = Vec::with_capacity(b);
                for (i, words) in all.iter().enumerate() {
                    if let Some(k) = words.iter().position(Vec::is_empty) {
                        return Err(ModelError::InvalidInput(format!(
                            "example {i}: word {k} has no characters"
                        )));
                    }
                    for (j, chars) in words.iter().enumerate() {
                        for (k, &id) in chars.iter().enumerate() {
                            ids[(i * w + j) * c + k] = i64::from(id);
                            mask[(i * w + j) * c + k] = 1.0;
                        }
                    }
                    word_lengths.push(words.len() as i64);
                    char_lengths.push(words.iter().map(|cs| cs.len() as i64).collect());
                }
                (
                    ids,
                    mask,
                    vec![b as i64, w as i64, c as i64],
                    word_lengths,
                    char_lengths,
                )
            }
        };
        Ok(Self {
            ids: Tensor::from_slice(&ids).reshape(&shape).to_device(device),
            mask: Tensor::from_slice(&mask)
                .reshape(&shape)
                .to_kind(Kind::Float)
                .to_device(device),
            word_lengths,
            char_lengths,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.word_lengths.len()
    }

    /// Whether the batch is empty (never true for a constructed batch).
    pub fn is_empty(&self) -> bool {
        self.word_lengths.is_empty()
    }

    /// Word lengths as an int64 tensor on `device`.
    pub fn lengths_tensor(&self, device: Device) -> Tensor {
        Tensor::from_slice(&self.word_lengths).to_device(device)
    }
}

/// Max over `dim` of `x`, ignoring positions where `valid` is false (`valid` broadcasts).
pub(crate) fn masked_max(x: &Tensor, valid: &Tensor, dim: i64) -> Tensor {
    x.masked_fill(&valid.logical_not(), -1e9)
        .amax([dim].as_slice(), false)
}

/// Validity of convolution output positions: with inputs of `lengths` real positions and a
/// window of `width`, position `t` is valid when `t < max(len - width + 1, 1)`.
pub(crate) fn conv_valid(lengths: &Tensor, out_len: i64, width: i64) -> Tensor {
    let device = lengths.device();
    let positions = Tensor::arange(out_len, (Kind::Int64, device)).unsqueeze(0);
    let limit = (lengths - (width - 1)).clamp_min(1).unsqueeze(-1);
    positions.lt_tensor(&limit)
}
