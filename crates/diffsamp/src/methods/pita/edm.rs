//! VE diffusion with EDM preconditioning (σ_data = 1) and the ρ-schedule of PITA
//! (REFERENCE §3.2).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Noise levels of training and sampling.
///
/// Sampling schedule on t ∈ [0, 1] (t = 1 is pure noise):
/// σ(t) = (a + (1 − t)(b − a))^ρ, a = σ_max^{1/ρ}, b = σ_min^{1/ρ};  h(t) = σ², g² = dh/dt.
/// Training noise: ln σ ~ N(p_mean, p_std²).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edm {
    /// Smallest noise level σ_min > 0 (0.05 LJ, 0.01 peptides).
    pub sigma_min: f64,
    /// Largest noise level σ_max > σ_min (80).
    pub sigma_max: f64,
    /// Schedule exponent ρ > 0 (7).
    pub rho: f64,
    /// Mean of ln σ during training (−1.2).
    pub p_mean: f64,
    /// Standard deviation > 0 of ln σ during training (1.2).
    pub p_std: f64,
    /// Length unit of the diffusion model, in the system's units (1): the networks see
    /// y = x / `data_scale`, so that σ_data = 1 and the σ's above are in units of it. The
    /// published peptide runs use the data's spread, 0.164 nm, for alanine dipeptide (their
    /// σ_min = 0.01 is 0.0016 nm, below a bond's thermal spread). Buffer, energies and samples
    /// stay in the system's units.
    #[serde(default = "unit_scale")]
    pub data_scale: f64,
}

fn unit_scale() -> f64 {
    1.0
}

impl Default for Edm {
    fn default() -> Self {
        Self {
            sigma_min: 0.05,
            sigma_max: 80.0,
            rho: 7.0,
            p_mean: -1.2,
            p_std: 1.2,
            data_scale: 1.0,
        }
    }
}

/// The EDM coefficients of one batch of noise levels (σ_data = 1, h = σ²), all `[B, 1]`:
/// c_skip = 1/(1 + h), c_in = (1 + h)^{−1/2}, c_out = σ (1 + h)^{−1/2}, c_noise = ln σ / 4.
#[derive(Debug)]
pub struct Precondition {
    pub sigma: Tensor,
    pub h: Tensor,
    pub c_skip: Tensor,
    pub c_in: Tensor,
    pub c_out: Tensor,
    /// `[B]`.
    pub c_noise: Tensor,
}

impl Precondition {
    /// Coefficients of σ `[B]` (kept differentiable: ∂/∂σ flows through every coefficient).
    pub fn new(sigma: &Tensor) -> Self {
        let s = sigma.unsqueeze(1);
        let h = s.square();
        let one_h = &h + 1.0;
        let c_in = one_h.rsqrt();
        Self {
            c_skip: one_h.reciprocal(),
            c_out: &s * &c_in,
            c_in,
            c_noise: sigma.log() / 4.0,
            h,
            sigma: s,
        }
    }
}

impl Edm {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::Config {
                key: key.into(),
                why,
            })
        };
        if !(self.sigma_min.is_finite() && self.sigma_min > 0.0) {
            return bad("sigma_min", format!("{} must be positive", self.sigma_min));
        }
        if !(self.sigma_max.is_finite() && self.sigma_max > self.sigma_min) {
            return bad(
                "sigma_max",
                format!(
                    "{} must exceed sigma_min {}",
                    self.sigma_max, self.sigma_min
                ),
            );
        }
        if !(self.rho.is_finite() && self.rho > 0.0) {
            return bad("rho", format!("{} must be positive", self.rho));
        }
        if !self.p_mean.is_finite() {
            return bad("p_mean", "must be finite".into());
        }
        if !(self.p_std.is_finite() && self.p_std > 0.0) {
            return bad("p_std", format!("{} must be positive", self.p_std));
        }
        if !(self.data_scale.is_finite() && self.data_scale > 0.0) {
            return bad(
                "data_scale",
                format!("{} must be positive", self.data_scale),
            );
        }
        Ok(())
    }

    /// A configuration in the model's units, y = x / s (s = `data_scale`).
    pub fn to_model(&self, x: &Tensor) -> Tensor {
        x / self.data_scale
    }

    /// A configuration in the system's units, x = y · s.
    pub fn to_system(&self, y: &Tensor) -> Tensor {
        y * self.data_scale
    }

    /// A score in the model's units: ∇_y log p = s ∇_x log p (for p ∝ e^{−βU}, −β s ∇_x U).
    pub fn score_to_model(&self, score_x: &Tensor) -> Tensor {
        score_x * self.data_scale
    }

    fn ends(&self) -> (f64, f64) {
        (
            self.sigma_max.powf(1.0 / self.rho),
            self.sigma_min.powf(1.0 / self.rho),
        )
    }

    /// σ(t) = (a + (1 − t)(b − a))^ρ: σ(0) = σ_min, σ(1) = σ_max.
    pub fn sigma(&self, t: f64) -> f64 {
        let (a, b) = self.ends();
        (a + (1.0 - t) * (b - a)).powf(self.rho)
    }

    /// dσ/dt = ρ (a + (1 − t)(b − a))^{ρ−1} (a − b) > 0.
    pub fn dsigma_dt(&self, t: f64) -> f64 {
        let (a, b) = self.ends();
        self.rho * (a + (1.0 - t) * (b - a)).powf(self.rho - 1.0) * (a - b)
    }

    /// g²(t) = dh/dt = 2 σ dσ/dt.
    pub fn g2(&self, t: f64) -> f64 {
        2.0 * self.sigma(t) * self.dsigma_dt(t)
    }

    /// Training noise levels σ = exp(p_mean + p_std ε), ε ~ N(0, 1), from libtorch's
    /// generator, `[n]` of `options`.
    pub fn training_sigmas(&self, n: i64, options: (tch::Kind, tch::Device)) -> Tensor {
        (Tensor::randn([n], options) * self.p_std + self.p_mean).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn schedule_ends_and_derivatives() {
        let edm = Edm::default();
        assert!((edm.sigma(0.0) - 0.05).abs() < 1e-12);
        assert!((edm.sigma(1.0) - 80.0).abs() < 1e-9);
        for t in [0.05, 0.3, 0.7, 0.95] {
            let eps = 1e-6;
            let fd = (edm.sigma(t + eps) - edm.sigma(t - eps)) / (2.0 * eps);
            assert!(
                (fd - edm.dsigma_dt(t)).abs() < 1e-5 * fd.abs().max(1.0),
                "t {t}"
            );
            let h = |t: f64| edm.sigma(t).powi(2);
            let fd2 = (h(t + eps) - h(t - eps)) / (2.0 * eps);
            assert!((fd2 - edm.g2(t)).abs() < 1e-5 * fd2.abs().max(1.0), "t {t}");
        }
    }

    #[test]
    fn preconditioning_is_the_identity_at_zero_noise_and_skip_at_large() {
        let s = Tensor::from_slice(&[1e-4f64, 1.0, 100.0]);
        let p = Precondition::new(&s);
        let v = |t: &Tensor, i: i64| t.double_value(&[i, 0]);
        assert!((v(&p.c_skip, 0) - 1.0).abs() < 1e-7);
        assert!((v(&p.c_skip, 1) - 0.5).abs() < 1e-12);
        assert!((v(&p.c_out, 1) - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((v(&p.c_out, 2) - 1.0).abs() < 1e-4);
        assert!((p.c_noise.double_value(&[1])).abs() < 1e-12);
    }

    #[test]
    fn training_noise_is_log_normal() {
        let _rng = crate::nn::layers::testing::torch_rng();
        tch::manual_seed(0);
        let edm = Edm::default();
        let s = edm
            .training_sigmas(20000, (Kind::Double, Device::Cpu))
            .log();
        let mean = s.mean(Kind::Double).double_value(&[]);
        let std = s.std(true).double_value(&[]);
        // s.e. of the mean 1.2/√20000 ≈ 0.0085: 4 s.e.
        assert!((mean + 1.2).abs() < 0.034, "{mean}");
        assert!((std - 1.2).abs() < 0.03, "{std}");
    }

    #[test]
    fn unit_changes_invert_each_other_and_carry_the_score_by_the_chain_rule() {
        let edm = Edm {
            data_scale: 0.25,
            ..Edm::default()
        };
        let x = Tensor::from_slice(&[0.3f64, -1.2, 2.0]);
        let y = edm.to_model(&x);
        assert!((&y - &x * 4.0).abs().max().double_value(&[]) < 1e-12);
        assert!((edm.to_system(&y) - &x).abs().max().double_value(&[]) < 1e-12);
        // x ~ N(0, a²) makes y ~ N(0, (a/s)²): ∇_y log q(y) = −y s²/a² from ∇_x log p = −x/a².
        let a2 = 0.7;
        let score_y = edm.score_to_model(&(-&x / a2));
        let expected = -&y * (0.25 * 0.25) / a2;
        assert!((score_y - expected).abs().max().double_value(&[]) < 1e-12);
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Edm {
            sigma_max: 0.01,
            ..Edm::default()
        };
        assert!(e.validate().unwrap_err().to_string().contains("sigma_max"));
        let e = Edm {
            data_scale: 0.0,
            ..Edm::default()
        };
        assert!(e.validate().unwrap_err().to_string().contains("data_scale"));
    }
}
