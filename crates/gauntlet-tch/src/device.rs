//! The user's [`DeviceChoice`] as a libtorch device: `auto` is CUDA when libtorch sees a
//! GPU, else the CPU; `cuda` without a GPU is an error, never a silent fallback.

use gauntlet_core::DeviceChoice;
use tch::Device;

/// `--device cuda` on a machine where libtorch sees no CUDA device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--device cuda was requested but libtorch sees no CUDA device; use --device cpu or auto")]
pub struct NoCuda;

/// The libtorch device for a device choice.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, NoCuda> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(NoCuda),
    }
}

/// A short name for reports and manifests (`cpu`, `cuda:0`).
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
