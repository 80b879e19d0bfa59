//! Resolution of the user's [`DeviceChoice`] to a libtorch device.

use gauntlet_core::DeviceChoice;
use tch::Device;

use crate::error::ModelsError;

/// `auto` is CUDA when libtorch sees a GPU, else the CPU; `cuda` without a GPU is an error.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, ModelsError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(ModelsError::Device(
            "--device cuda was requested but libtorch sees no CUDA device; use --device cpu or auto".into(),
        )),
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
