//! The memoryless noise schedule of a flow-matching model and its Euler–Maruyama rollout
//! (REFERENCE §2.1).
//!
//! For the linear interpolant X_t = (1−t) X_0 + t X_1 the SDE
//! dX = b_t(X) dt + σ(t) dB,  b_t(x) = 2 v_t(x) − x / t,  σ(t) = √(2(1−t)/t)
//! has the same marginals as the flow ODE and makes X_1 independent of X_0 ("memoryless").
//! On the grid t_k = k h, h = 1/K, the time is offset by h to avoid t = 0:
//! σ_k = √(2(1 − t_k + h)/(t_k + h)),  b_k(x) = 2 v(t_k, x) − x / (t_k + h).
//! A fine-tuned model v_θ = v_base + δ_θ has drift b_k + σ_k u_k with u_k = 2 δ_θ(t_k, x) / σ_k.

use crate::error::{Error, Result};
use crate::nn::Control;
use crate::sde::NoiseSource;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The memoryless schedule on K uniform steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memoryless {
    /// Number K ≥ 2 of Euler–Maruyama steps (paper: 40).
    pub steps: usize,
}

/// The states X_0 … X_K of a batch of rollouts and the per-sample control cost.
#[derive(Debug)]
pub struct Trajectory {
    /// K + 1 tensors `[batch, dim]` (f32, no gradient).
    pub states: Vec<Tensor>,
    /// ½ Σ_k h ‖u_k‖² per sample `[batch]`: the path-space KL of the controlled process from
    /// the base process, an upper bound on KL(p_θ ‖ p_base) (zero for the base itself).
    pub control_cost: Tensor,
}

impl Memoryless {
    /// A schedule of `steps` ≥ 2 steps.
    pub fn new(steps: usize) -> Result<Self> {
        if steps < 2 {
            return Err(Error::Config {
                key: "steps".into(),
                why: format!("the memoryless rollout needs at least 2 steps, got {steps}"),
            });
        }
        Ok(Self { steps })
    }

    /// Step size h = 1/K (also the time offset).
    pub fn h(&self) -> f64 {
        1.0 / self.steps as f64
    }

    /// t_k = k h.
    pub fn time(&self, k: usize) -> f64 {
        k as f64 * self.h()
    }

    /// σ_k = √(2(1 − t_k + h)/(t_k + h)).
    pub fn sigma(&self, k: usize) -> f64 {
        let (t, h) = (self.time(k), self.h());
        (2.0 * (1.0 - t + h) / (t + h)).sqrt()
    }

    /// A `[batch]` tensor holding t_k, of the kind and device of `like`.
    pub fn time_tensor(&self, k: usize, like: &Tensor) -> Tensor {
        Tensor::full([like.size()[0]], self.time(k), (like.kind(), like.device()))
    }

    /// Base drift b_k(x) = 2 v_base(t_k, x) − x / (t_k + h).
    pub fn base_drift(&self, base: &dyn Control, k: usize, x: &Tensor) -> Tensor {
        let t = self.time_tensor(k, x);
        2.0 * base.control(&t, x) - x / (self.time(k) + self.h())
    }

    /// Simulates from X_0 = `x0` `[batch, dim]` without gradients:
    /// X_{k+1} = X_k + h (b_k(X_k) + 2 δ(t_k, X_k)) + √h σ_k ε_k, the last step without noise.
    /// `residual` = δ_θ (None: the base process).
    pub fn rollout(
        &self,
        base: &dyn Control,
        residual: Option<&dyn Control>,
        x0: Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Trajectory {
        tch::no_grad(|| {
            let h = self.h();
            let shape = x0.size();
            let mut cost = Tensor::zeros([shape[0]], (x0.kind(), x0.device()));
            let mut states = Vec::with_capacity(self.steps + 1);
            let mut x = x0;
            for k in 0..self.steps {
                let mut drift = self.base_drift(base, k, &x);
                if let Some(r) = residual {
                    let delta = r.control(&self.time_tensor(k, &x), &x);
                    let u2 = delta
                        .square()
                        .sum_dim_intlist([1].as_slice(), false, x.kind())
                        * (4.0 / (self.sigma(k) * self.sigma(k)));
                    cost += u2 * (0.5 * h);
                    drift += 2.0 * delta;
                }
                let mut next = &x + drift * h;
                if k + 1 < self.steps {
                    let eps = noise.standard_normal(&shape, x.kind(), x.device());
                    next += eps * (h.sqrt() * self.sigma(k));
                }
                states.push(x);
                x = next;
            }
            states.push(x);
            Trajectory {
                states,
                control_cost: cost,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::adjoint_matching::IsotropicMixture;
    use crate::sde::HostNoise;
    use tch::{Device, Kind};

    #[test]
    fn schedule_values() {
        let m = Memoryless::new(40).unwrap();
        assert_eq!(m.h(), 0.025);
        assert!((m.sigma(0) - (2.0 * 1.025 / 0.025f64).sqrt()).abs() < 1e-12);
        assert!((m.sigma(40) - (2.0 * 0.025 / 1.025f64).sqrt()).abs() < 1e-12);
        assert!(Memoryless::new(1).is_err());
    }

    /// The base memoryless SDE with the exact velocity of a mixture reproduces the mixture
    /// (same marginals as the flow ODE), up to the O(h) error of the K-step discretisation.
    #[test]
    fn base_rollout_with_the_exact_velocity_samples_the_data_distribution() {
        let p = IsotropicMixture::new(
            vec![0.25, 0.75],
            vec![-2.0, 0.0, 2.0, 1.0],
            vec![0.5, 0.5],
            2,
        )
        .unwrap();
        let base = |t: &Tensor, x: &Tensor| p.velocity(t, x);
        let mut noise = HostNoise::seeded(4);
        let n = 20_000;
        let x0 = noise.standard_normal(&[n, 2], Kind::Float, Device::Cpu);
        let m = Memoryless::new(100).unwrap();
        let traj = m.rollout(&base, None, x0, &mut noise);
        assert_eq!(traj.states.len(), 101);
        assert_eq!(traj.control_cost.abs().max().double_value(&[]), 0.0);
        let x1: Vec<f64> =
            Vec::try_from(traj.states[100].to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let f = p.assigned_fractions(&x1);
        // s.e. of the fraction sqrt(0.1875 / n) ≈ 0.003; discretisation adds ~0.01.
        assert!((f[0] - 0.25).abs() < 0.025, "weights {f:?}");
        // Component spread: the right mode's x-coordinates have variance 0.25.
        let right: Vec<f64> = x1
            .chunks_exact(2)
            .filter(|r| p.assign(r) == 1)
            .map(|r| r[0])
            .collect();
        let mean = right.iter().sum::<f64>() / right.len() as f64;
        let var = right.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / right.len() as f64;
        assert!((mean - 2.0).abs() < 0.05, "mean {mean}");
        assert!((var - 0.25).abs() < 0.05, "variance {var}");
    }
}
