//! Padding of unpadded [`TokenIds`] into dense tensors with masks.
//!
//! Word batches are `[B, T]`; character batches `[B, W, C]`. `T`, `W` and `C` are at least
//! the caller's minimum (convolution widths need it), and every padded position holds
//! [`PAD_ID`] with mask 0. Lengths are kept so networks can read the last real state.

use gauntlet_core::codec::PAD_ID;
use gauntlet_core::{ModelError, PadSpec, PaddedIds, TokenIds};
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
    /// Offsets of each example's real positions in the flattened padded ids, in
    /// [`TokenIds::flat`] order (where gradients are read back).
    pub positions: Vec<Vec<usize>>,
}

impl PaddedBatch {
    /// Pads a batch; `min_len` is the minimum padded length of the innermost axis (tokens
    /// for word ids, characters for char ids).
    pub fn new(batch: &[TokenIds], min_len: usize, device: Device) -> Result<Self, ModelError> {
        let Some(first) = batch.first() else {
            return Err(ModelError::InvalidInput("empty batch".into()));
        };
        let padded = PaddedIds::new(
            batch,
            PadSpec {
                kind: first.kind(),
                vocabulary: None,
                pad_id: PAD_ID,
                min_len,
            },
        )?;
        let mut word_lengths = Vec::with_capacity(batch.len());
        let mut char_lengths = Vec::new();
        for ids in batch {
            match ids {
                TokenIds::Words(words) => word_lengths.push(words.len() as i64),
                TokenIds::Chars(words) => {
                    word_lengths.push(words.len() as i64);
                    char_lengths.push(words.iter().map(|cs| cs.len() as i64).collect());
                }
            }
        }
        let shape = padded.shape_i64();
        Ok(Self {
            ids: Tensor::from_slice(&padded.ids)
                .reshape(&shape)
                .to_device(device),
            mask: Tensor::from_slice(&padded.mask)
                .reshape(&shape)
                .to_kind(Kind::Float)
                .to_device(device),
            word_lengths,
            char_lengths,
            positions: padded.positions,
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
