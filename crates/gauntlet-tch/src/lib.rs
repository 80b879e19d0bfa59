//! What every libtorch backend of Gauntlet shares (the native models and the ONNX
//! interpreter), so each rule is written once:
//!
//! * [`device`]: the user's [`gauntlet_core::DeviceChoice`] as a libtorch device, and its
//!   name in reports;
//! * [`probabilities`]: a `[B, K]` probability tensor, on any device, as the host
//!   [`gauntlet_core::Probabilities`] the `Classifier` contract answers;
//! * [`scoring`]: HotFlip word-flip scoring on the device, and [`bf16_filter`], the table it
//!   reads with the bf16 filter of the CPU path;
//! * [`allocator`]: the C allocator's settings for a process that runs libtorch.

pub mod allocator;
pub mod bf16_filter;
pub mod device;
pub mod scoring;

use gauntlet_core::Probabilities;
use tch::{Device, Kind, TchError, Tensor};

/// Brings `[B, K]` class probabilities (any device, any float kind) to the host, row-major.
pub fn probabilities(probs: &Tensor) -> Result<Probabilities, TchError> {
    let probs = probs
        .f_detach()?
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?;
    let classes = probs.size().last().copied().unwrap_or(0) as usize;
    let values = Vec::<f32>::try_from(probs.f_flatten(0, -1)?)?;
    Ok(Probabilities { classes, values })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn probabilities_come_back_row_major() {
        let t = Tensor::from_slice(&[0.25f32, 0.75, 0.5, 0.5]).view([2, 2]);
        let p = probabilities(&t).unwrap();
        assert_eq!(p.classes, 2);
        assert_eq!(p.values, [0.25, 0.75, 0.5, 0.5]);
        assert_eq!(p.row(1), [0.5, 0.5]);
    }
}
