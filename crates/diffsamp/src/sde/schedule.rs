//! Noise schedules σ(t) of zero-drift base SDEs dX = σ(t) dB and their base bridges.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Coefficients of the base bridge X_t | X_1 of a zero-drift SDE started at the point mass 0:
/// X_t | X_1 ~ N(`mean_coef` · X_1, `var` · I) (REFERENCE §1.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BridgeCoefficients {
    /// h²(t) / h²(1).
    pub mean_coef: f64,
    /// h²(t) α²(t) / h²(1).
    pub var: f64,
}

/// A noise schedule σ(t) on t ∈ [0, 1] of the base process dX_t = σ(t) dB_t, X_0 = 0.
///
/// One implementation per schedule, shared by the simulator and the loss.
pub trait Schedule: Send + Sync {
    /// Diffusion coefficient σ(t).
    fn sigma(&self, t: f64) -> f64;

    /// h²(t) = ∫₀ᵗ σ(s)² ds: the variance per coordinate of the base process at time t.
    fn h2(&self, t: f64) -> f64;

    /// α²(t) = ∫ₜ¹ σ(s)² ds = h²(1) − h²(t).
    fn alpha2(&self, t: f64) -> f64 {
        self.h2(1.0) - self.h2(t)
    }

    /// h²(1): the variance per coordinate of the base terminal marginal p₁^base = N(0, h²(1) I).
    fn h2_terminal(&self) -> f64 {
        self.h2(1.0)
    }

    /// Base bridge X_t | X_1: mean h²(t)/h²(1) · X_1, variance h²(t) α²(t) / h²(1).
    fn bridge(&self, t: f64) -> BridgeCoefficients {
        let h2_1 = self.h2_terminal();
        let h2_t = self.h2(t);
        BridgeCoefficients {
            mean_coef: h2_t / h2_1,
            var: (h2_t * self.alpha2(t) / h2_1).max(0.0),
        }
    }
}

/// Geometric (variance-exploding) schedule of Adjoint Sampling (REFERENCE §1.1), r = σ_max/σ_min:
///
/// σ(t) = σ_min · r^(1−t) · √(2 ln r),  h²(t) = σ_max² (1 − r^(−2t)),
/// α²(t) = σ_max² (r^(−2t) − r^(−2)),  h²(1) = σ_max² − σ_min².
///
/// σ is largest at t = 0 and decays to σ_min √(2 ln r) at t = 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometric {
    /// σ_min > 0 (paper: 1e-3).
    pub sigma_min: f64,
    /// σ_max > σ_min (paper: 2 for LJ, 1.5 for DW-4, 1 for molecules).
    pub sigma_max: f64,
}

impl Default for Geometric {
    /// The LJ-13 / LJ-55 setting: σ_min = 1e-3, σ_max = 2.
    fn default() -> Self {
        Self {
            sigma_min: 1e-3,
            sigma_max: 2.0,
        }
    }
}

impl Geometric {
    /// A validated schedule (see [`Geometric::validate`]).
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        let s = Self {
            sigma_min,
            sigma_max,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks 0 < σ_min < σ_max < ∞; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::Config {
                key: key.to_string(),
                why,
            })
        };
        if !(self.sigma_min.is_finite() && self.sigma_min > 0.0) {
            return bad(
                "sigma_min",
                format!("must be positive and finite, got {}", self.sigma_min),
            );
        }
        if !self.sigma_max.is_finite() {
            return bad(
                "sigma_max",
                format!("must be finite, got {}", self.sigma_max),
            );
        }
        if self.sigma_min >= self.sigma_max {
            return bad(
                "sigma_max",
                format!(
                    "must exceed sigma_min ({} >= {})",
                    self.sigma_min, self.sigma_max
                ),
            );
        }
        Ok(())
    }

    /// ln r with r = σ_max / σ_min.
    fn ln_r(&self) -> f64 {
        (self.sigma_max / self.sigma_min).ln()
    }
}

impl Schedule for Geometric {
    fn sigma(&self, t: f64) -> f64 {
        let ln_r = self.ln_r();
        self.sigma_min * ((1.0 - t) * ln_r).exp() * (2.0 * ln_r).sqrt()
    }

    fn h2(&self, t: f64) -> f64 {
        // σ_max² (1 − r^(−2t)), via expm1 for accuracy at small t.
        -self.sigma_max * self.sigma_max * (-2.0 * t * self.ln_r()).exp_m1()
    }

    fn alpha2(&self, t: f64) -> f64 {
        let ln_r = self.ln_r();
        // σ_max² (r^(−2t) − r^(−2)) = σ_max² r^(−2t) (1 − r^(−2(1−t))).
        -self.sigma_max
            * self.sigma_max
            * (-2.0 * t * ln_r).exp()
            * (-2.0 * (1.0 - t) * ln_r).exp_m1()
    }

    fn h2_terminal(&self) -> f64 {
        self.sigma_max * self.sigma_max - self.sigma_min * self.sigma_min
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// Composite Simpson rule of f on [a, b] with n (even) intervals.
    fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        let h = (b - a) / n as f64;
        let mut s = f(a) + f(b);
        for i in 1..n {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    }

    fn schedules() -> Vec<Geometric> {
        vec![
            Geometric::new(1e-3, 2.0).unwrap(),
            Geometric::new(1e-3, 1.5).unwrap(),
            Geometric::new(0.01 * std::f64::consts::PI, std::f64::consts::PI).unwrap(),
        ]
    }

    #[test]
    fn h2_and_alpha2_match_quadrature_of_sigma_squared() {
        for s in schedules() {
            let sq = |u: f64| s.sigma(u).powi(2);
            for &t in &[0.0, 0.013, 0.25, 0.5, 0.77, 0.999, 1.0] {
                let h2 = simpson(sq, 0.0, t, 20_000);
                let a2 = simpson(sq, t, 1.0, 20_000);
                let tol = 1e-8 * s.h2_terminal();
                assert!((s.h2(t) - h2).abs() < tol, "h2({t}) {} vs {h2}", s.h2(t));
                assert!(
                    (s.alpha2(t) - a2).abs() < tol,
                    "alpha2({t}) {} vs {a2}",
                    s.alpha2(t)
                );
                assert!((s.h2(t) + s.alpha2(t) - s.h2_terminal()).abs() < 1e-12);
            }
            assert_eq!(s.h2(0.0), 0.0);
            assert!(s.alpha2(1.0).abs() < 1e-15);
            let sm = s.sigma_max * s.sigma_max - s.sigma_min * s.sigma_min;
            assert!((s.h2(1.0) - sm).abs() < 1e-12);
        }
    }

    #[test]
    fn sigma_decays_from_t0_to_t1() {
        let s = Geometric::default();
        let ln_r = (2.0f64 / 1e-3).ln();
        assert!((s.sigma(0.0) - 2.0 * (2.0 * ln_r).sqrt()).abs() < 1e-12);
        assert!((s.sigma(1.0) - 1e-3 * (2.0 * ln_r).sqrt()).abs() < 1e-15);
        assert!(s.sigma(0.3) > s.sigma(0.6));
    }

    #[test]
    fn bridge_moments_match_gaussian_conditioning() {
        // (X_t, X_1) is jointly Gaussian with Var X_t = h²(t), Var X_1 = h²(1), Cov = h²(t);
        // conditioning gives mean h²(t)/h²(1) X_1 and variance h²(t) − h²(t)²/h²(1).
        for s in schedules() {
            for &t in &[0.1, 0.5, 0.9] {
                let b = s.bridge(t);
                let (h2t, h21) = (s.h2(t), s.h2_terminal());
                assert!((b.mean_coef - h2t / h21).abs() < 1e-14);
                assert!((b.var - (h2t - h2t * h2t / h21)).abs() < 1e-12);
            }
            let b0 = s.bridge(0.0);
            let b1 = s.bridge(1.0);
            assert_eq!((b0.mean_coef, b0.var), (0.0, 0.0));
            assert!((b1.mean_coef - 1.0).abs() < 1e-15 && b1.var.abs() < 1e-15);
        }
    }

    #[test]
    fn simulated_base_process_has_the_schedule_covariance() {
        // Zero-drift Euler–Maruyama from 0 (exact in distribution for dX = σ dB with the
        // step variance ∫σ² taken exactly): empirical Cov(X_t, X_1) ≈ h²(t), Var X_1 ≈ h²(1),
        // and the regression slope of X_t on X_1 equals the bridge mean coefficient.
        let s = Geometric::new(1e-3, 1.5).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (n_paths, n_steps, k) = (20_000usize, 50usize, 20usize);
        let t_k = k as f64 / n_steps as f64;
        let (mut sxt, mut sx1, mut sxt1, mut sx11) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n_paths {
            let mut x = 0.0;
            let mut xt = 0.0;
            for j in 0..n_steps {
                let (a, b) = (j as f64 / n_steps as f64, (j + 1) as f64 / n_steps as f64);
                let z: f64 = StandardNormal.sample(&mut rng);
                x += (s.h2(b) - s.h2(a)).sqrt() * z;
                if j + 1 == k {
                    xt = x;
                }
            }
            sxt += xt;
            sx1 += x;
            sxt1 += xt * x;
            sx11 += x * x;
        }
        let n = n_paths as f64;
        let cov = sxt1 / n - sxt / n * sx1 / n;
        let var1 = sx11 / n - (sx1 / n).powi(2);
        // Standard errors ≈ h²(1)·√(2/n) ≈ 0.02 relative; use 5 %.
        assert!((var1 / s.h2_terminal() - 1.0).abs() < 0.05, "{var1}");
        assert!(
            (cov / s.h2(t_k) - 1.0).abs() < 0.05,
            "{cov} vs {}",
            s.h2(t_k)
        );
        assert!((cov / var1 / s.bridge(t_k).mean_coef - 1.0).abs() < 0.05);
    }

    #[test]
    fn validate_rejects_bad_sigmas() {
        assert!(Geometric::new(1e-3, 1.0).is_ok());
        for (lo, hi, key) in [
            (1.0, 1.0, "sigma_max"),
            (2.0, 1.0, "sigma_max"),
            (0.0, 1.0, "sigma_min"),
            (-1.0, 1.0, "sigma_min"),
            (1e-3, f64::INFINITY, "sigma_max"),
        ] {
            match Geometric::new(lo, hi) {
                Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("({lo}, {hi}) gave {other:?}"),
            }
        }
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let ok: Geometric = toml::from_str("sigma_min = 0.001\nsigma_max = 2.0").unwrap();
        assert_eq!(ok, Geometric::default());
        assert!(toml::from_str::<Geometric>("sigma_min = 0.001\nsigma_mx = 2.0").is_err());
    }
}
