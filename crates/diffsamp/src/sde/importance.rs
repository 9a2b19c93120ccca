//! Path-space importance weights of a controlled Euler–Maruyama sampler: log Z, ESS and
//! importance resampling.
//!
//! The target path measure P* is the discrete base chain Q reweighted at the end by
//! e^{−E(X_1)} / q_1(X_1), where q_1 = N(0, H I) on the sampler's free subspace (d' = d, or
//! d − spatial for zero-COM particle systems) is Q's terminal law and H = Σ_k σ_k² Δt_k
//! ([`crate::sde::EulerMaruyama::base_variance`]). Its X_1-marginal is p ∝ e^{−E} exactly, on
//! any grid. A path X of the controlled chain P^u therefore carries the weight
//!
//! log w = −E(X_1) + ‖X_1‖² / (2H) + (d'/2) ln(2πH) + log dQ/dP^u(X),
//!
//! with log dQ/dP^u from [`crate::sde::EulerMaruyama::simulate_with_path_weights`]. Then
//! E_{P^u}[w] = Z = ∫ e^{−E} over the free subspace (unbiased), self-normalised weights give
//! consistent estimates of E_p[f], and w is constant exactly when the control is optimal for
//! the discrete chain. The paper's Adjoint Sampling does not use them; the trainer reports the
//! ESS of every epoch's new samples and, with `training.replay_weight_power`, draws its replay
//! minibatches by them.

use crate::error::{Error, Result};
use crate::metrics as m;
use crate::sde::StateSpace;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The shape and range checks shared by [`log_weights`] and [`log_weights_torus`].
fn check_inputs(
    x1: &[f64],
    dim: usize,
    energies: &[f64],
    log_base_ratio: &[f64],
    base_variance: f64,
    free_dim: usize,
) -> Result<()> {
    let n = energies.len();
    if dim == 0 || x1.len() != n * dim || log_base_ratio.len() != n {
        return Err(Error::Shape(format!(
            "importance weights: {} coordinates, {n} energies and {} path terms do not make \
             rows of dimension {dim}",
            x1.len(),
            log_base_ratio.len()
        )));
    }
    if !(base_variance.is_finite() && base_variance > 0.0) || free_dim == 0 || free_dim > dim {
        return Err(Error::Shape(format!(
            "importance weights: base variance {base_variance} must be positive and the free \
             dimension {free_dim} within 1..={dim}"
        )));
    }
    Ok(())
}

/// log w_i = −E_i + ‖x_i‖²/(2H) + (d'/2) ln(2πH) + ℓ_i for rows x_i of `x1` `[n, dim]`, with
/// energies E_i, the discrete base variance H = `base_variance`, the free dimension
/// d' = `free_dim` and ℓ_i = log dQ/dP^u of the path (`log_base_ratio`).
///
/// A row with a non-finite coordinate, energy or path term gets log w = −∞ (weight zero);
/// [`ImportanceReport::n_zero_weight`] counts them, so they are never dropped silently.
pub fn log_weights(
    x1: &[f64],
    dim: usize,
    energies: &[f64],
    log_base_ratio: &[f64],
    base_variance: f64,
    free_dim: usize,
) -> Result<Vec<f64>> {
    check_inputs(x1, dim, energies, log_base_ratio, base_variance, free_dim)?;
    let log_norm = 0.5 * free_dim as f64 * (2.0 * std::f64::consts::PI * base_variance).ln();
    Ok(x1
        .chunks_exact(dim)
        .zip(energies)
        .zip(log_base_ratio)
        .map(|((x, &e), &l)| {
            let r2: f64 = x.iter().map(|v| v * v).sum();
            let lw = -e + r2 / (2.0 * base_variance) + log_norm + l;
            if lw.is_finite() {
                lw
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect())
}

/// [`log_weights`] for a sampler on the flat torus [−π, π)^d: the base chain's terminal law is
/// the wrapped normal WN(0, H) in each coordinate, so
///
/// log w_i = −E_i − Σ_j log WN(x_ij; 0, H) + ℓ_i,
///
/// with ℓ_i the Girsanov sum of the unwrapped chain (the wrapped chain is its image, and the
/// wrapped base chain's terminal law is WN). Non-finite rows get log w = −∞ as there.
pub fn log_weights_torus(
    x1: &[f64],
    dim: usize,
    energies: &[f64],
    log_base_ratio: &[f64],
    base_variance: f64,
) -> Result<Vec<f64>> {
    check_inputs(x1, dim, energies, log_base_ratio, base_variance, dim)?;
    Ok(x1
        .chunks_exact(dim)
        .zip(energies)
        .zip(log_base_ratio)
        .map(|((x, &e), &l)| {
            let log_q: f64 = x
                .iter()
                .map(|&v| crate::sde::torus::wrapped_normal_log_density(v, base_variance))
                .sum();
            let lw = -e - log_q + l;
            if lw.is_finite() {
                lw
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect())
}

/// The log-weights of samples in `space`: [`log_weights_torus`] on the torus, else
/// [`log_weights`] with the free dimension d' = d − spatial for zero-COM point clouds, d in R^d.
pub fn log_weights_in(
    space: StateSpace,
    x1: &[f64],
    dim: usize,
    energies: &[f64],
    log_base_ratio: &[f64],
    base_variance: f64,
) -> Result<Vec<f64>> {
    match space {
        StateSpace::Torus => log_weights_torus(x1, dim, energies, log_base_ratio, base_variance),
        _ => {
            let free_dim = dim.saturating_sub(space.particles().map_or(0, |p| p.spatial));
            log_weights(x1, dim, energies, log_base_ratio, base_variance, free_dim)
        }
    }
}

/// The effective sample size below which an importance-resampled set is a handful of samples
/// repeated: its metrics mean little (and Sinkhorn converges very slowly on it).
pub const MIN_USEFUL_ESS: f64 = 100.0;

/// What a set of path-space importance weights says about a sampler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    /// Number of weighted samples N.
    pub n: usize,
    /// Samples with weight zero (non-finite coordinates, energy or path term).
    pub n_zero_weight: usize,
    /// log Ẑ = log((1/N) Σ w_i); Ẑ is unbiased for Z = ∫ e^{−E} over the free subspace.
    pub log_z_estimate: f64,
    /// Standard error of log Ẑ by the delta method: sd(w) / (√N · mean(w)).
    pub log_z_std_error: f64,
    /// The exact log Z when the target's normaliser is known.
    pub log_z_exact: Option<f64>,
    /// ELBO = mean(log w) ≤ log Z (over the positive weights).
    pub elbo: f64,
    /// ESS / N = (Σw)² / (N Σw²) ∈ [1/N, 1]: 1 for an optimal control.
    pub ess_fraction: f64,
}

impl ImportanceReport {
    /// ESS = (Σw)² / Σw² = `ess_fraction` · N.
    pub fn effective_sample_size(&self) -> f64 {
        self.ess_fraction * self.n as f64
    }

    /// Summarises log-weights `[N]` (−∞ = weight zero); `log_z_exact` when known.
    pub fn from_log_weights(log_w: &[f64], log_z_exact: Option<f64>) -> Result<Self> {
        let positive: Vec<f64> = log_w.iter().copied().filter(|v| v.is_finite()).collect();
        if positive.is_empty() {
            return Err(Error::Shape(format!(
                "all {} importance weights are zero (non-finite samples or energies)",
                log_w.len()
            )));
        }
        let s = m::summarize_log_weights(log_w)?;
        let n = log_w.len() as f64;
        // Moments of w / max w: mean μ and mean square, for the delta-method error.
        let max = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (mut sum, mut sum2) = (0.0, 0.0);
        for &l in &positive {
            let w = (l - max).exp();
            sum += w;
            sum2 += w * w;
        }
        let (mean, mean2) = (sum / n, sum2 / n);
        let var = (mean2 - mean * mean).max(0.0);
        Ok(Self {
            n: log_w.len(),
            n_zero_weight: log_w.len() - positive.len(),
            log_z_estimate: s.log_z,
            log_z_std_error: (var / n).sqrt() / mean,
            log_z_exact,
            elbo: positive.iter().sum::<f64>() / positive.len() as f64,
            ess_fraction: s.normalized_ess,
        })
    }
}

impl std::fmt::Display for ImportanceReport {
    /// One line: ESS, log Ẑ ± s.e. (and the exact value when known), zero weights.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ESS {:.1} % of {}, log Z {:.4} ± {:.4}",
            100.0 * self.ess_fraction,
            self.n,
            self.log_z_estimate,
            self.log_z_std_error
        )?;
        if let Some(z) = self.log_z_exact {
            write!(f, " (exact {z:.4})")?;
        }
        write!(f, ", ELBO {:.4}", self.elbo)?;
        if self.n_zero_weight > 0 {
            write!(f, ", {} zero weights", self.n_zero_weight)?;
        }
        Ok(())
    }
}

/// Systematic importance resampling: `n_out` rows of `x` `[n, dim]` drawn with probabilities
/// ∝ exp(`log_w`), one uniform offset u ~ U[0, 1) from `seed` and the rows whose cumulative
/// weight interval contains (u + i)/n_out. Each row appears ⌊n_out w_i⌋ or ⌈n_out w_i⌉ times.
pub fn resample_rows(
    x: &[f64],
    dim: usize,
    log_w: &[f64],
    n_out: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    if dim == 0 || x.len() != log_w.len() * dim {
        return Err(Error::Shape(format!(
            "resampling: {} coordinates do not make {} rows of dimension {dim}",
            x.len(),
            log_w.len()
        )));
    }
    let max = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() || log_w.iter().any(|v| v.is_nan()) {
        return Err(Error::Shape(
            "resampling needs finite log-weights with at least one positive weight".into(),
        ));
    }
    let w: Vec<f64> = log_w.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let u: f64 = rand_chacha::ChaCha8Rng::seed_from_u64(seed).random();
    let mut out = Vec::with_capacity(n_out * dim);
    let (mut row, mut cumulative) = (0, w[0] / total);
    for i in 0..n_out {
        let position = (u + i as f64) / n_out as f64;
        while cumulative < position && row + 1 < w.len() {
            row += 1;
            cumulative += w[row] / total;
        }
        out.extend_from_slice(&x[row * dim..(row + 1) * dim]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Particles;
    use crate::sde::{EulerMaruyama, Geometric, HostNoise, Schedule};
    use tch::{Device, Kind, Tensor};

    /// Rolls out `n` paths of `control` and returns (X_1 rows, log-weights) for the isotropic
    /// Gaussian target E = ‖x‖²/(2s²) on the free subspace, with or without the path term.
    fn gaussian_weights(
        em: &EulerMaruyama,
        schedule: &Geometric,
        control: &dyn crate::nn::Control,
        n: usize,
        s2: f64,
        seed: u64,
        with_path_term: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut noise = HostNoise::seeded(seed);
        let out = em.simulate_with_path_weights(schedule, control, n, &mut noise);
        let x: Vec<f64> = Vec::try_from(out.x1.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let ratio = out.log_base_ratio.expect("tracked");
        let mut l: Vec<f64> = Vec::try_from(ratio).unwrap();
        if !with_path_term {
            l.iter_mut().for_each(|v| *v = 0.0);
        }
        let e: Vec<f64> = x
            .chunks(em.dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>() / (2.0 * s2))
            .collect();
        let free = em.space.particles().map_or(em.dim, |p| em.dim - p.spatial);
        let lw = log_weights(&x, em.dim, &e, &l, em.base_variance(schedule), free).unwrap();
        (x, lw)
    }

    /// The optimal control for N(0, s² I) from the point mass: v*(t, x) = −k x / (1 + k α²(t)),
    /// k = 1/s² − 1/h²(1) (Doob h-transform of the base), scaled by `scale`.
    fn gaussian_control(schedule: Geometric, s2: f64, scale: f64) -> impl crate::nn::Control {
        let k = 1.0 / s2 - 1.0 / schedule.h2_terminal();
        move |t: &Tensor, x: &Tensor| {
            let t0 = t.double_value(&[0]);
            let alpha2 = schedule.h2_terminal() - schedule.h2(t0);
            x * (-scale * k / (1.0 + k * alpha2))
        }
    }

    fn gaussian_log_z(s2: f64, free_dim: usize) -> f64 {
        0.5 * free_dim as f64 * (2.0 * std::f64::consts::PI * s2).ln()
    }

    #[test]
    fn the_optimal_gaussian_control_has_nearly_constant_weights_and_the_right_log_z() {
        let schedule = Geometric::new(1e-3, 1.5).unwrap();
        let (s2, dim, n) = (0.5, 2, 4000);
        let em = EulerMaruyama {
            options: (Kind::Double, Device::Cpu),
            ..EulerMaruyama::uniform(1000, dim, None, Device::Cpu)
        };
        let control = gaussian_control(schedule, s2, 1.0);
        let (_, lw) = gaussian_weights(&em, &schedule, &control, n, s2, 3, true);
        let r = ImportanceReport::from_log_weights(&lw, None).unwrap();
        assert!(r.ess_fraction > 0.97, "{r:?}");
        let exact = gaussian_log_z(s2, dim);
        assert!(
            (r.log_z_estimate - exact).abs() < 4.0 * r.log_z_std_error + 1e-3,
            "{r:?} vs {exact}"
        );
    }

    #[test]
    fn a_poor_control_still_gives_an_unbiased_z_and_the_right_second_moment() {
        // Half the optimal control on a coarse grid: far from p, but the weights are exact for
        // the discrete chain, so Ẑ is unbiased and weighted moments are consistent.
        let schedule = Geometric::new(1e-3, 2.0).unwrap();
        let (s2, dim, n) = (0.7, 3, 20_000);
        let em = EulerMaruyama {
            options: (Kind::Double, Device::Cpu),
            ..EulerMaruyama::uniform(50, dim, None, Device::Cpu)
        };
        let control = gaussian_control(schedule, s2, 0.5);
        let (x, lw) = gaussian_weights(&em, &schedule, &control, n, s2, 11, true);
        let r = ImportanceReport::from_log_weights(&lw, Some(gaussian_log_z(s2, dim))).unwrap();
        assert!(
            r.ess_fraction < 0.95,
            "the control should be visibly off: {r:?}"
        );
        let exact = r.log_z_exact.unwrap();
        assert!(
            (r.log_z_estimate - exact).abs() < 4.0 * r.log_z_std_error,
            "{r:?} vs {exact}"
        );
        // Weighted E‖x‖²/d = s²: the estimate's s.d. is about s² √(2/(d · ESS)).
        let sq: Vec<f64> = x
            .chunks(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>() / dim as f64)
            .collect();
        let mean = m::weighted_mean(&lw, &sq).unwrap().mean;
        let tol = 4.0 * s2 * (2.0 / (dim as f64 * r.ess_fraction * n as f64)).sqrt();
        assert!((mean - s2).abs() < tol, "{mean} vs {s2} ± {tol}");
        // Without the Girsanov term the same samples give a clearly wrong Z.
        let (_, biased) = gaussian_weights(&em, &schedule, &control, n, s2, 11, false);
        let b = ImportanceReport::from_log_weights(&biased, None).unwrap();
        assert!(
            (b.log_z_estimate - exact).abs() > 10.0 * r.log_z_std_error,
            "{b:?}"
        );
    }

    #[test]
    fn particle_weights_live_on_the_zero_com_subspace() {
        // 3 particles in 2-D: 4 free coordinates. Z = (2π s²)^{4/2}; counting 6 would be off by
        // ln(2π s²) ≈ 1.3.
        let schedule = Geometric::new(1e-3, 1.5).unwrap();
        let p = Particles { n: 3, spatial: 2 };
        let (s2, n) = (0.8, 20_000);
        let em = EulerMaruyama {
            options: (Kind::Double, Device::Cpu),
            ..EulerMaruyama::uniform(100, p.dim(), Some(p), Device::Cpu)
        };
        let control = gaussian_control(schedule, s2, 0.7);
        let (_, lw) = gaussian_weights(&em, &schedule, &control, n, s2, 5, true);
        let r = ImportanceReport::from_log_weights(&lw, None).unwrap();
        let exact = gaussian_log_z(s2, 4);
        assert!(
            (r.log_z_estimate - exact).abs() < 4.0 * r.log_z_std_error,
            "{r:?} vs {exact}"
        );
    }

    #[test]
    fn systematic_resampling_keeps_counts_within_one_of_n_w() {
        let x: Vec<f64> = (0..5).map(|i| i as f64).collect();
        let p = [0.05, 0.4, 0.0, 0.3, 0.25];
        let log_w: Vec<f64> = p.iter().map(|v: &f64| v.ln()).collect();
        for seed in 0..20 {
            let out = resample_rows(&x, 1, &log_w, 100, seed).unwrap();
            for (i, pi) in p.iter().enumerate() {
                let count = out.iter().filter(|&&v| v == i as f64).count() as f64;
                assert!((count - 100.0 * pi).abs() <= 1.0, "row {i}: {count}");
            }
        }
    }

    #[test]
    fn log_weights_of_the_base_chain_against_its_own_terminal_law_are_log_z() {
        // E = ‖x‖²/(2H) on the free space of dimension d: the target is q_1 itself scaled by
        // Z = (2πH)^{d/2}, so with ℓ = 0 every weight equals log Z.
        let (h, d) = (2.5, 3);
        let x = [0.3, -1.0, 2.0, 0.0, 0.5, -0.7];
        let e: Vec<f64> = x
            .chunks(d)
            .map(|r| r.iter().map(|v| v * v).sum::<f64>() / (2.0 * h))
            .collect();
        let lw = log_weights(&x, d, &e, &[0.0, 0.0], h, d).unwrap();
        let log_z = 0.5 * d as f64 * (2.0 * std::f64::consts::PI * h).ln();
        for l in &lw {
            assert!((l - log_z).abs() < 1e-12);
        }
        let r = ImportanceReport::from_log_weights(&lw, Some(log_z)).unwrap();
        assert!((r.ess_fraction - 1.0).abs() < 1e-12 && r.log_z_std_error < 1e-12);
    }

    #[test]
    fn non_finite_rows_get_weight_zero_and_are_counted() {
        let lw = log_weights(
            &[0.0, f64::NAN, 1.0],
            1,
            &[0.0, 1.0, f64::INFINITY],
            &[0.0; 3],
            1.0,
            1,
        )
        .unwrap();
        assert!(lw[0].is_finite() && lw[1] == f64::NEG_INFINITY && lw[2] == f64::NEG_INFINITY);
        let r = ImportanceReport::from_log_weights(&lw, None).unwrap();
        assert_eq!((r.n, r.n_zero_weight), (3, 2));
        assert!(ImportanceReport::from_log_weights(&[f64::NEG_INFINITY], None).is_err());
    }

    #[test]
    fn shapes_and_parameters_are_checked() {
        assert!(log_weights(&[0.0; 3], 2, &[0.0], &[0.0], 1.0, 2).is_err());
        assert!(log_weights(&[0.0; 2], 2, &[0.0], &[0.0, 1.0], 1.0, 2).is_err());
        assert!(log_weights(&[0.0; 2], 2, &[0.0], &[0.0], 0.0, 2).is_err());
        assert!(log_weights(&[0.0; 2], 2, &[0.0], &[0.0], 1.0, 3).is_err());
        assert!(resample_rows(&[0.0; 3], 2, &[0.0], 4, 0).is_err());
        assert!(resample_rows(&[0.0; 2], 1, &[f64::NEG_INFINITY; 2], 4, 0).is_err());
    }

    #[test]
    fn torus_weights_are_constant_when_the_target_is_the_wrapped_base_law() {
        // Zero control on the torus: X_1 ~ WN(0, H) per coordinate. For E = −Σ log WN(x; H) + c
        // the target is the base chain's own terminal law, so log w = −c for every path; the
        // Gaussian term of R^d (or a wrong H) would leave a spread.
        let s = Geometric::new(0.01 * std::f64::consts::PI, std::f64::consts::PI).unwrap();
        let em = EulerMaruyama {
            options: (Kind::Double, Device::Cpu),
            ..EulerMaruyama::for_space(30, 2, crate::sde::StateSpace::Torus, Device::Cpu)
        };
        let zero = |_t: &Tensor, x: &Tensor| x.zeros_like();
        let out = em.simulate_with_path_weights(&s, &zero, 500, &mut HostNoise::seeded(3));
        let x: Vec<f64> = Vec::try_from(&out.x1.flatten(0, -1)).unwrap();
        let l: Vec<f64> = Vec::try_from(&out.log_base_ratio.unwrap()).unwrap();
        let h = em.base_variance(&s);
        let c = 1.5;
        let e: Vec<f64> = x
            .chunks_exact(2)
            .map(|r| {
                c - r
                    .iter()
                    .map(|&v| crate::sde::torus::wrapped_normal_log_density(v, h))
                    .sum::<f64>()
            })
            .collect();
        let lw = log_weights_torus(&x, 2, &e, &l, h).unwrap();
        assert!(lw.iter().all(|w| (w + c).abs() < 1e-9), "{:?}", &lw[..4]);
        let euclid = log_weights(&x, 2, &e, &l, h, 2).unwrap();
        let spread = euclid.iter().fold(0.0f64, |m, w| m.max((w + c).abs()));
        assert!(
            spread > 0.1,
            "the Gaussian term is wrong on the torus: {spread}"
        );
    }
}
