//! Normalised isotropic equal-weight Gaussian mixtures (GMM-40 in 2-D and 50-D).

use crate::data::embedded_matrix;
use crate::{Energy, EnergyError, ExactSampler, LogPartition};
use rand_distr::{Distribution, StandardNormal};

const MEANS_JAX_D2: &[u8] = include_bytes!("../data/gmm40_means_jax_d2.npy");
const MEANS_JAX_D50: &[u8] = include_bytes!("../data/gmm40_means_jax_d50.npy");
const MEANS_FAB: &[u8] = include_bytes!("../data/gmm40_means_fab_torchseed0.npy");

/// p(x) = (1/K) Σ_k N(x; μ_k, σ² I) in d dimensions, E(x) = −log p(x) (so log Z = 0):
///
/// E(x) = −LSE_k[−‖x − μ_k‖² / (2σ²)] + log K + (d/2) log(2πσ²),
/// ∇E(x) = Σ_k w_k(x) (x − μ_k) / σ², w_k = softmax_k(−‖x − μ_k‖² / (2σ²)).
#[derive(Clone, Debug)]
pub struct GaussianMixture {
    name: String,
    dim: usize,
    n_components: usize,
    std: f64,
    means: Vec<f64>,
    /// log K + (d/2) log(2πσ²).
    log_norm: f64,
}

impl GaussianMixture {
    /// A mixture named `name` with `means` row-major `[n_components, dim]` and common standard
    /// deviation `std`. Fails on empty/mis-shaped or non-finite means, or std ≤ 0.
    pub fn new(
        name: impl Into<String>,
        means: Vec<f64>,
        n_components: usize,
        dim: usize,
        std: f64,
    ) -> Result<Self, EnergyError> {
        let name = name.into();
        if n_components == 0 || dim == 0 || means.len() != n_components * dim {
            return Err(EnergyError::Shape {
                energy: name,
                what: "means",
                len: means.len(),
                expected: n_components * dim,
            });
        }
        if let Some(v) = means.iter().find(|v| !v.is_finite()) {
            return Err(EnergyError::InvalidParameter {
                name: "means",
                value: v.to_string(),
                why: "means must be finite",
            });
        }
        if !(std.is_finite() && std > 0.0) {
            return Err(EnergyError::InvalidParameter {
                name: "std",
                value: std.to_string(),
                why: "standard deviation must be finite and > 0",
            });
        }
        let log_norm = (n_components as f64).ln()
            + 0.5 * dim as f64 * (2.0 * std::f64::consts::PI * std * std).ln();
        Ok(Self {
            name,
            dim,
            n_components,
            std,
            means,
            log_norm,
        })
    }

    /// `"gmm40"`: 40 components in 2-D, σ = 1, sampling-benchmark means
    /// (`gmm40_means_jax_d2.npy`).
    pub fn gmm40() -> Self {
        let means = embedded_matrix(MEANS_JAX_D2, "gmm40_means_jax_d2.npy", 40, 2);
        Self::new("gmm40", means, 40, 2, 1.0).expect("embedded GMM-40 means are valid")
    }

    /// `"gmm40-50"`: 40 components in 50-D, σ = 1 (`gmm40_means_jax_d50.npy`).
    pub fn gmm40_50() -> Self {
        let means = embedded_matrix(MEANS_JAX_D50, "gmm40_means_jax_d50.npy", 40, 50);
        Self::new("gmm40-50", means, 40, 50, 1.0).expect("embedded GMM-40 d50 means are valid")
    }

    /// `"gmm40-fab"`: 40 components in 2-D, σ = softplus(1) = ln(1 + e) ≈ 1.3133, DEM/FAB
    /// means (`gmm40_means_fab_torchseed0.npy`).
    pub fn gmm40_fab() -> Self {
        let means = embedded_matrix(MEANS_FAB, "gmm40_means_fab_torchseed0.npy", 40, 2);
        let std = std::f64::consts::E.ln_1p();
        Self::new("gmm40-fab", means, 40, 2, std).expect("embedded GMM-40 FAB means are valid")
    }

    /// Component means, row-major `[n_components, dim]`.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// Number of components K.
    pub fn n_components(&self) -> usize {
        self.n_components
    }

    /// Common standard deviation σ.
    pub fn std(&self) -> f64 {
        self.std
    }
}

impl Energy for GaussianMixture {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// One pass over the components with a running log-sum-exp; the weighted sum
    /// Σ_k exp(l_k − m)(x − μ_k) accumulates directly in `grad` and is rescaled whenever the
    /// running maximum m grows, so nothing is allocated.
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim);
        debug_assert_eq!(grad.len(), self.dim);
        let half_prec = 0.5 / (self.std * self.std);
        grad.fill(0.0);
        let mut m = f64::NEG_INFINITY;
        let mut s = 0.0;
        for mu in self.means.chunks_exact(self.dim) {
            let r2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
            let l = -half_prec * r2;
            if l > m {
                let scale = (m - l).exp();
                s *= scale;
                grad.iter_mut().for_each(|g| *g *= scale);
                m = l;
            }
            let w = (l - m).exp();
            s += w;
            for ((g, a), b) in grad.iter_mut().zip(x).zip(mu) {
                *g += w * (a - b);
            }
        }
        let norm = 1.0 / (s * self.std * self.std);
        grad.iter_mut().for_each(|g| *g *= norm);
        -(m + s.ln()) + self.log_norm
    }

    fn energy(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim);
        let half_prec = 0.5 / (self.std * self.std);
        let mut m = f64::NEG_INFINITY;
        let mut s = 0.0;
        for mu in self.means.chunks_exact(self.dim) {
            let r2: f64 = x.iter().zip(mu).map(|(a, b)| (a - b) * (a - b)).sum();
            let l = -half_prec * r2;
            if l > m {
                s *= (m - l).exp();
                m = l;
            }
            s += (l - m).exp();
        }
        -(m + s.ln()) + self.log_norm
    }
}

impl LogPartition for GaussianMixture {
    /// 0: E is the negative log of a normalised density.
    fn log_z(&self) -> f64 {
        0.0
    }
}

impl ExactSampler for GaussianMixture {
    /// k ~ U{0..K−1}, x = μ_k + σ z, z ~ N(0, I).
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        use rand::Rng;
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let k = rng.random_range(0..self.n_components);
            let mu = &self.means[k * self.dim..(k + 1) * self.dim];
            for &m in mu {
                let z: f64 = StandardNormal.sample(rng);
                out.push(m + self.std * z);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn embedded_means_have_expected_shape_and_spread() {
        for (g, d) in [
            (GaussianMixture::gmm40(), 2),
            (GaussianMixture::gmm40_50(), 50),
            (GaussianMixture::gmm40_fab(), 2),
        ] {
            assert_eq!(g.dim(), d);
            assert_eq!(g.means().len(), 40 * d);
            // Means are spread out (not all zero / not garbage).
            let max = g.means().iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(max > 5.0 && max < 100.0, "{}: max |mean| {max}", g.name());
        }
        assert!((GaussianMixture::gmm40_fab().std() - 1.3132616875182228).abs() < 1e-12);
    }

    #[test]
    fn single_component_is_a_gaussian() {
        let g = GaussianMixture::new("g", vec![1.0, -2.0], 1, 2, 0.5).unwrap();
        let x = [0.3, 0.4];
        let r2 = 0.7f64.powi(2) + 2.4f64.powi(2);
        let want = r2 / (2.0 * 0.25) + (2.0 * std::f64::consts::PI * 0.25).ln();
        assert!((g.energy(&x) - want).abs() < 1e-12);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut r = rng(20);
        for g in [
            GaussianMixture::gmm40(),
            GaussianMixture::gmm40_fab(),
            GaussianMixture::gmm40_50(),
        ] {
            for i in 0..5 {
                // Points near a mean (several components matter) and far away.
                let k = (7 * i) % 40;
                let mu = &g.means()[k * g.dim()..(k + 1) * g.dim()];
                let x: Vec<f64> = mu
                    .iter()
                    .zip(normal_vec(&mut r, g.dim(), 0.0, 3.0))
                    .map(|(m, z)| m + z)
                    .collect();
                assert_grad_fd(&g, &x, 1e-6);
            }
        }
    }

    #[test]
    fn far_points_stay_finite() {
        // Without log-sum-exp, exp(−‖x−μ‖²/2) underflows to 0 and E becomes +∞.
        let g = GaussianMixture::gmm40();
        let x = [1e3, -1e3];
        let mut grad = [0.0; 2];
        let e = g.energy_grad(&x, &mut grad);
        assert!(e.is_finite() && e > 1e5, "{e}");
        assert!(grad.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn normalised_in_2d_by_quadrature() {
        for g in [GaussianMixture::gmm40(), GaussianMixture::gmm40_fab()] {
            // Tensor-product trapezoid rule on a box covering all means ± 10σ.
            let lo = g.means().iter().fold(f64::INFINITY, |m, v| m.min(*v)) - 10.0 * g.std();
            let hi = g.means().iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v)) + 10.0 * g.std();
            let n = 600;
            let h = (hi - lo) / n as f64;
            let mut z = 0.0;
            for a in 0..=n {
                for b in 0..=n {
                    z += (-g.energy(&[lo + a as f64 * h, lo + b as f64 * h])).exp();
                }
            }
            z *= h * h;
            assert!((z - 1.0).abs() < 1e-6, "{}: ∫exp(−E) = {z}", g.name());
            assert_eq!(g.log_z(), 0.0);
        }
    }

    #[test]
    fn exact_sampler_covers_modes_uniformly() {
        let g = GaussianMixture::gmm40();
        let n = 40_000;
        let xs = g.sample(n, &mut rng(21));
        assert_eq!(xs.len(), 2 * n);
        // Assign each sample to its nearest mean (means are far apart relative to σ = 1,
        // so almost all samples are assigned to their own component).
        let mut counts = [0usize; 40];
        for x in xs.chunks_exact(2) {
            let k = (0..40)
                .min_by(|&a, &b| {
                    let da =
                        (x[0] - g.means()[2 * a]).powi(2) + (x[1] - g.means()[2 * a + 1]).powi(2);
                    let db =
                        (x[0] - g.means()[2 * b]).powi(2) + (x[1] - g.means()[2 * b + 1]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            counts[k] += 1;
        }
        // Binomial(n, 1/40): sd = sqrt(n p (1−p)) ≈ 31; allow 5 sd (plus overlap slack).
        let p = 1.0 / 40.0;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        for (k, &c) in counts.iter().enumerate() {
            assert!(
                (c as f64 - n as f64 * p).abs() < 5.0 * sd,
                "mode {k}: {c} samples, expected {}",
                n as f64 * p
            );
        }
        // Within-mode spread in 50-D: E‖x − μ_k‖² = d σ² = 50.
        let g50 = GaussianMixture::gmm40_50();
        let m = 4000;
        let xs = g50.sample(m, &mut rng(22));
        let mut sq = 0.0;
        for x in xs.chunks_exact(50) {
            let best = g50
                .means()
                .chunks_exact(50)
                .map(|mu| x.iter().zip(mu).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            sq += best;
        }
        // ‖x − μ‖² ~ χ²_50: mean 50, sd 10; mean of m has sd 10/√m.
        let mean = sq / m as f64;
        assert!(
            (mean - 50.0).abs() < 5.0 * 10.0 / (m as f64).sqrt(),
            "{mean}"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(GaussianMixture::new("g", vec![0.0; 3], 2, 2, 1.0).is_err());
        assert!(GaussianMixture::new("g", vec![0.0; 4], 2, 2, 0.0).is_err());
        assert!(GaussianMixture::new("g", vec![f64::NAN; 4], 2, 2, 1.0).is_err());
    }
}
