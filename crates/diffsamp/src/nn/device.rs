//! Choice of libtorch device and CPU thread count.
use tch::Device;

/// The device named by `spec`: `"cpu"`, `"cuda"` (first GPU) or `"cuda:N"`; `"auto"` picks CUDA
/// when libtorch was built with it and a GPU is visible, else the CPU.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    match spec {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" => Ok(Device::Cuda(0)),
        s => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device '{s}' (expected cpu, auto, cuda or cuda:N)")),
    }
}

/// Prepares libtorch for a run: parses `device` (errors name the key `device`, also when a
/// GPU is asked for but libtorch sees none), sets `threads` intra-op threads (default: the
/// size of the current rayon pool, i.e. all cores unless the CLI's `--threads` narrowed it)
/// and keeps freed memory in the process (see [`crate::nn::alloc`]).
///
/// The default matters on a shared machine: libtorch's OpenMP workers spin at every barrier,
/// so two 2-thread runs on 2 cores ran an MLP epoch 15–150× slower than one run alone.
pub fn configure(device: &str, threads: Option<usize>) -> crate::Result<Device> {
    let bad = |why: String| crate::Error::Config {
        key: "device".into(),
        why,
    };
    let d = parse_device(device).map_err(bad)?;
    if d.is_cuda() && !tch::Cuda::is_available() {
        return Err(bad(format!(
            "'{device}' asked for, but this libtorch build sees no CUDA GPU (README, \"GPU\")"
        )));
    }
    let threads = threads.unwrap_or_else(rayon::current_num_threads);
    tch::set_num_threads(threads as i32);
    crate::nn::alloc::retain_freed_memory();
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn double_backward_matches_closed_form() {
        // f(x) = Σ x³; ∇f = 3x²; ∂/∂x Σ(∇f) = 6x.
        let x = Tensor::from_slice(&[0.5f64, -1.0, 2.0]).set_requires_grad(true);
        let f = x.pow_tensor_scalar(3).sum(Kind::Double);
        let g = Tensor::run_backward(&[&f], &[&x], true, true)[0].shallow_clone();
        let gg =
            Tensor::run_backward(&[&g.sum(Kind::Double)], &[&x], false, false)[0].shallow_clone();
        let got: Vec<f64> = Vec::try_from(&gg).unwrap();
        assert_eq!(got, vec![3.0, -6.0, 12.0]);
    }

    #[test]
    fn parses_devices() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("cuda:1").unwrap(), Device::Cuda(1));
        assert!(parse_device("gpu").is_err());
    }
}
