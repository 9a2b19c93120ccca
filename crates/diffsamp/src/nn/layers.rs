//! Shared building blocks: PyTorch-style initialised linear layers and test helpers.

use tch::nn::{self, Init, Linear, LinearConfig, Path};

/// A linear layer y = W x + b with W `[out, fan_in_inputs]`, initialised like PyTorch's
/// `nn.Linear`: W, b ~ U(−1/√fan_in, 1/√fan_in). `fan_in` may exceed `inputs` when the layer is
/// one block of a larger factorised layer (it then gets the larger layer's init scale).
pub(crate) fn linear(
    path: Path,
    inputs: usize,
    outputs: usize,
    fan_in: usize,
    bias: bool,
) -> Linear {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::linear(
        path,
        inputs as i64,
        outputs as i64,
        LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias,
        },
    )
}

/// A linear layer without bias, W ~ Xavier-uniform with `gain`:
/// U(−b, b), b = gain · √(6 / (fan_in + fan_out)).
pub(crate) fn linear_xavier(path: Path, inputs: usize, outputs: usize, gain: f64) -> Linear {
    let bound = gain * (6.0 / (inputs + outputs) as f64).sqrt();
    nn::linear(
        path,
        inputs as i64,
        outputs as i64,
        LinearConfig {
            ws_init: Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: None,
            bias: false,
        },
    )
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Mutex, MutexGuard};
    use tch::nn::VarStore;
    use tch::{Kind, Tensor};

    static TORCH_RNG: Mutex<()> = Mutex::new(());

    /// Serialises tests that seed and draw from libtorch's global generator (tests run on
    /// parallel threads; without the lock their draws interleave).
    pub fn torch_rng() -> MutexGuard<'static, ()> {
        TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Overwrites every variable of `vs` with N(0, scale²) draws (seeded through libtorch), so
    /// symmetry tests see O(1) outputs instead of the tiny initial ones.
    pub fn randomise(vs: &VarStore, seed: i64, scale: f64) {
        tch::manual_seed(seed);
        let mut names: Vec<_> = vs.variables().into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (_, mut v) in names {
                let r = Tensor::randn(v.size(), (Kind::Float, v.device())) * scale;
                v.copy_(&r);
            }
        });
    }

    /// Sorted parameter names of a var store.
    pub fn names(vs: &VarStore) -> Vec<String> {
        let mut n: Vec<String> = vs.variables().into_keys().collect();
        n.sort();
        n
    }
}
