//! Where the network runs: burn's `flex` backend on the CPU (the default, and the only one
//! in the default build), or a GPU through burn's CubeCL backends, each behind a cargo
//! feature of this crate:
//!
//! | setting | cargo feature | burn device |
//! |---|---|---|
//! | `cpu` | (always) | `Device::flex()`, with the detector's own convolution |
//! | `wgpu` | `gpu-wgpu` | `Device::wgpu(DefaultDevice)`: Vulkan, Metal or DirectX, as the machine offers |
//! | `cuda` | `gpu-cuda` | `Device::cuda(0)`: NVIDIA, through the CUDA driver loaded at run time |
//!
//! A GPU backend that this build lacks, or that finds no usable device, is not an error:
//! [`open`] falls back to the CPU and says why, for the caller to log.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};

/// A backend to run the network on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// burn's `flex`, on the CPU.
    #[default]
    Cpu,
    /// A GPU through wgpu (cargo feature `gpu-wgpu`).
    Wgpu,
    /// An NVIDIA GPU through CUDA (cargo feature `gpu-cuda`).
    Cuda,
}

impl Backend {
    /// The backends this build can run.
    pub fn compiled() -> Vec<Backend> {
        let mut all = vec![Backend::Cpu];
        if cfg!(feature = "gpu-wgpu") {
            all.push(Backend::Wgpu);
        }
        if cfg!(feature = "gpu-cuda") {
            all.push(Backend::Cuda);
        }
        all
    }

    pub fn is_gpu(self) -> bool {
        self != Backend::Cpu
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Backend::Cpu),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            other => Err(format!("unknown detector backend {other:?}: expected cpu, wgpu or cuda")),
        }
    }
}

/// The device a detector runs on.
#[derive(Debug, Clone)]
pub struct Opened {
    pub device: Device,
    /// The backend in use: the one asked for, or `Cpu` after a fallback.
    pub backend: Backend,
    /// Why the backend asked for is not the one in use.
    pub fallback: Option<String>,
}

/// Opens `wanted`, or the CPU with the reason when it cannot be had.
pub fn open(wanted: Backend) -> Opened {
    let cpu = |why: String| Opened { device: Device::flex(), backend: Backend::Cpu, fallback: Some(why) };
    let device = match wanted {
        Backend::Cpu => return Opened { device: Device::flex(), backend: Backend::Cpu, fallback: None },
        Backend::Wgpu => wgpu_device(),
        Backend::Cuda => cuda_device(),
    };
    match device {
        Err(missing) => cpu(missing),
        Ok(device) => match works(&device) {
            Ok(()) => Opened { device, backend: wanted, fallback: None },
            Err(e) => cpu(format!("the {wanted} backend has no usable device: {e}")),
        },
    }
}

#[cfg(feature = "gpu-wgpu")]
fn wgpu_device() -> Result<Device, String> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "gpu-wgpu"))]
fn wgpu_device() -> Result<Device, String> {
    Err("this build has no wgpu backend (build with the cargo feature gpu-wgpu)".into())
}

#[cfg(feature = "gpu-cuda")]
fn cuda_device() -> Result<Device, String> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "gpu-cuda"))]
fn cuda_device() -> Result<Device, String> {
    Err("this build has no CUDA backend (build with the cargo feature gpu-cuda)".into())
}

/// A small computation on the device, read back: a device that cannot start (no adapter,
/// no driver) panics inside burn, and that is caught here rather than in a worker.
fn works(device: &Device) -> Result<(), String> {
    let device = device.clone();
    let outcome = std::panic::catch_unwind(move || {
        let t: Tensor<1> = Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device);
        (t * 2.0).into_data().try_into_vec::<f32>()
    });
    match outcome {
        Ok(Ok(values)) if values == [2.0, 4.0, 6.0] => Ok(()),
        Ok(Ok(values)) => Err(format!("a test computation gave {values:?}")),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "it failed to start".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_parse_and_print() {
        for b in [Backend::Cpu, Backend::Wgpu, Backend::Cuda] {
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
        assert_eq!(" CUDA ".parse::<Backend>(), Ok(Backend::Cuda));
        assert!("tpu".parse::<Backend>().expect_err("refused").contains("cpu, wgpu or cuda"));
    }

    #[test]
    fn the_cpu_opens_and_a_gpu_this_build_lacks_falls_back_to_it_saying_why() {
        let cpu = open(Backend::Cpu);
        assert_eq!((cpu.backend, cpu.fallback), (Backend::Cpu, None));
        for gpu in [Backend::Wgpu, Backend::Cuda] {
            if Backend::compiled().contains(&gpu) {
                continue;
            }
            let opened = open(gpu);
            assert_eq!(opened.backend, Backend::Cpu);
            let why = opened.fallback.expect("a reason");
            assert!(why.contains("cargo feature gpu-"), "{why}");
        }
    }
}
