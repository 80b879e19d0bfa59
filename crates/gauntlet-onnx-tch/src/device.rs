//! Resolution of the user's [`DeviceChoice`] to a libtorch device (the same rules as the
//! native backend: `auto` is CUDA when libtorch sees one, `cuda` without one is an error).

use gauntlet_core::DeviceChoice;
use tch::Device;

use crate::error::GraphError;

/// The libtorch device for a device choice.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device, GraphError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(GraphError::Device(
            "--device cuda was requested but libtorch sees no CUDA device; use --device cpu or auto".into(),
        )),
    }
}
