//! Seeded sources of Gaussian and uniform noise for simulators and losses.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Where random draws come from. Every random draw of a run flows through one source, so a
/// run is reproducible from its seed.
pub trait NoiseSource {
    /// A tensor of i.i.d. N(0, 1) entries with the given `shape`, `kind` (Float or Double) and
    /// `device`.
    fn standard_normal(&mut self, shape: &[i64], kind: Kind, device: Device) -> Tensor;

    /// `n` i.i.d. U[0, 1) draws on the host.
    fn uniform(&mut self, n: usize) -> Vec<f64>;
}

/// Noise drawn on the host from a ChaCha8 stream and copied to the device: bit-for-bit
/// reproducible across threads and devices, and serialisable (its state is the RNG state).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostNoise {
    rng: ChaCha8Rng,
}

impl HostNoise {
    /// A source seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The underlying RNG (e.g. to derive other seeded draws from the same stream).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

impl NoiseSource for HostNoise {
    fn standard_normal(&mut self, shape: &[i64], kind: Kind, device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let t = if kind == Kind::Double {
            let v: Vec<f64> = (0..n).map(|_| self.rng.sample(StandardNormal)).collect();
            Tensor::from_slice(&v)
        } else {
            let v: Vec<f32> = (0..n).map(|_| self.rng.sample(StandardNormal)).collect();
            Tensor::from_slice(&v).to_kind(kind)
        };
        t.view(shape).to_device(device)
    }

    fn uniform(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rng.random::<f64>()).collect()
    }
}

/// Noise from libtorch's global generator (seed it with `tch::manual_seed`). Fastest on a GPU
/// (no host-to-device copies) but shared by every user of libtorch in the process.
#[derive(Clone, Copy, Debug, Default)]
pub struct TorchNoise;

impl NoiseSource for TorchNoise {
    fn standard_normal(&mut self, shape: &[i64], kind: Kind, device: Device) -> Tensor {
        Tensor::randn(shape, (kind, device))
    }

    fn uniform(&mut self, n: usize) -> Vec<f64> {
        let u = Tensor::rand([n as i64], (Kind::Double, Device::Cpu));
        Vec::<f64>::try_from(&u).expect("uniform draws to host")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_noise_is_reproducible_and_standard() {
        let mut a = HostNoise::seeded(3);
        let mut b = HostNoise::seeded(3);
        let x = a.standard_normal(&[200, 50], Kind::Float, Device::Cpu);
        let y = b.standard_normal(&[200, 50], Kind::Float, Device::Cpu);
        assert_eq!(x.size(), vec![200, 50]);
        assert!(x.equal(&y));
        let mean = x.mean(Kind::Double).double_value(&[]);
        let var = x.var(true).double_value(&[]);
        // 10 000 draws: s.e. of the mean 0.01, of the variance ≈ 0.014.
        assert!(
            mean.abs() < 0.04 && (var - 1.0).abs() < 0.06,
            "{mean} {var}"
        );
        let u = a.uniform(1000);
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
        let z = a.standard_normal(&[3], Kind::Double, Device::Cpu);
        assert_eq!(z.kind(), Kind::Double);
    }

    #[test]
    fn host_noise_state_round_trips_through_serde() {
        let mut a = HostNoise::seeded(11);
        a.uniform(5);
        let saved = serde_json::to_string(&a).unwrap();
        let mut b: HostNoise = serde_json::from_str(&saved).unwrap();
        assert_eq!(a.uniform(4), b.uniform(4));
    }
}
