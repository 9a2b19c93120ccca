//! Harmonic pair potential of identical particles: the exactly sampleable particle system.
//!
//! It checks the particle machinery (zero-COM subspace, equivariant control, aligned W2,
//! importance weights with the free dimension) against closed forms, which none of the
//! benchmark particle systems (DW-4, LJ-13, LJ-55) has.

use crate::{Energy, EnergyError, ExactSampler, LogPartition, Particles};
use rand_distr::{Distribution, StandardNormal};

/// E(x) = (k/2) Σ_{i<j} ‖x_i − x_j‖² = (k n / 2) Σ_i ‖x_i − x̄‖² for n particles in
/// `spatial` dimensions, translation-, rotation- and permutation-invariant.
///
/// On the zero-COM subspace (free dimension d' = (n − 1) · spatial, with the metric of the
/// embedding) p* is N(0, I / (k n)): E is χ²_{d'} / 2 distributed (⟨E⟩ = d'/2) and
/// log Z = (d'/2) log(2π / (k n)), the convention of the samplers' importance weights.
#[derive(Clone, Debug)]
pub struct HarmonicParticles {
    layout: Particles,
    k: f64,
    name: String,
}

impl HarmonicParticles {
    /// A harmonic system named `name` of `n` particles in `spatial` dimensions with spring
    /// constant `k`. Fails on fewer than 2 particles, a zero spatial dimension or a `k` that
    /// is not positive and finite.
    pub fn new(
        name: impl Into<String>,
        n: usize,
        spatial: usize,
        k: f64,
    ) -> Result<Self, EnergyError> {
        let layout = Particles::checked(n, spatial)?;
        if !(k.is_finite() && k > 0.0) {
            return Err(EnergyError::InvalidParameter {
                name: "k",
                value: k.to_string(),
                why: "the spring constant must be positive and finite",
            });
        }
        Ok(Self {
            layout,
            k,
            name: name.into(),
        })
    }

    /// `harmonic-4`: 4 particles in 2-D (DW-4's layout) with k = 1/4, so that every free
    /// coordinate has unit variance (k n = 1) and ⟨E⟩ = 3.
    pub fn harmonic4() -> Self {
        Self::new("harmonic-4", 4, 2, 0.25).expect("valid constants")
    }

    /// The free dimension d' = (n − 1) · spatial.
    pub fn free_dim(&self) -> usize {
        (self.layout.n - 1) * self.layout.spatial
    }

    /// k n: the precision of every free coordinate.
    fn precision(&self) -> f64 {
        self.k * self.layout.n as f64
    }
}

impl Energy for HarmonicParticles {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.layout.dim()
    }

    fn particles(&self) -> Option<Particles> {
        Some(self.layout)
    }

    /// ∇_{x_i} E = k Σ_{j≠i} (x_i − x_j) = k n (x_i − x̄).
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim());
        debug_assert_eq!(grad.len(), self.dim());
        let c = self.layout.com(x);
        let kn = self.precision();
        let mut sq = 0.0;
        for (xi, gi) in x
            .chunks_exact(self.layout.spatial)
            .zip(grad.chunks_exact_mut(self.layout.spatial))
        {
            for ((x, g), c) in xi.iter().zip(gi).zip(&c) {
                let d = x - c;
                sq += d * d;
                *g = kn * d;
            }
        }
        0.5 * kn * sq
    }
}

impl ExactSampler for HarmonicParticles {
    /// z ~ N(0, I_{n·spatial}), its COM removed (an isotropic Gaussian on the zero-COM
    /// subspace), scaled by 1/√(k n).
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        let scale = self.precision().sqrt().recip();
        let mut out: Vec<f64> = (0..n * self.dim())
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                scale * z
            })
            .collect();
        self.layout.remove_com_batch(&mut out);
        out
    }
}

impl LogPartition for HarmonicParticles {
    /// (d'/2) log(2π / (k n)).
    fn log_z(&self) -> f64 {
        0.5 * self.free_dim() as f64 * (2.0 * std::f64::consts::PI / self.precision()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn pair_sum_and_com_forms_agree_and_the_gradient_matches_finite_differences() {
        let h = HarmonicParticles::new("h3", 3, 3, 0.7).unwrap();
        let mut r = rng(1);
        for _ in 0..5 {
            let x = normal_vec(&mut r, 9, 0.3, 1.5);
            let pairs: f64 = (0..3)
                .flat_map(|i| ((i + 1)..3).map(move |j| (i, j)))
                .map(|(i, j)| {
                    (0..3)
                        .map(|c| (x[3 * i + c] - x[3 * j + c]).powi(2))
                        .sum::<f64>()
                })
                .sum();
            assert!((h.energy(&x) - 0.35 * pairs).abs() < 1e-12 * (1.0 + pairs));
            assert_grad_fd(&h, &x, 1e-7);
        }
        // Translation-invariant: a shifted configuration has the same energy.
        let x = normal_vec(&mut r, 9, 0.0, 1.0);
        let shifted: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + [2.0, -1.0, 0.5][i % 3])
            .collect();
        assert!((h.energy(&x) - h.energy(&shifted)).abs() < 1e-12);
    }

    #[test]
    fn exact_samples_are_centred_with_chi_square_energies() {
        let h = HarmonicParticles::harmonic4();
        assert_eq!((h.dim(), h.free_dim()), (8, 6));
        let n = 20_000;
        let xs = h.sample(n, &mut rng(7));
        assert_eq!(xs.len(), n * 8);
        for x in xs.chunks_exact(8) {
            assert!(h.layout.com(x).iter().all(|c| c.abs() < 1e-12));
        }
        // E ~ χ²_6 / 2: mean 3, variance 3. Five standard errors of the mean of n draws.
        let e: Vec<f64> = xs.chunks_exact(8).map(|x| h.energy(x)).collect();
        let mean = e.iter().sum::<f64>() / n as f64;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        assert!(
            (mean - 3.0).abs() < 5.0 * (3.0 / n as f64).sqrt(),
            "mean {mean}"
        );
        // Var of the sample variance of a Gamma(3, 1) law: (μ₄ − σ⁴)/n with μ₄ = 3σ⁴(1 + 2/3).
        let var_se = ((5.0 * 9.0 - 9.0) / n as f64).sqrt();
        assert!((var - 3.0).abs() < 5.0 * var_se, "var {var}");
    }

    #[test]
    fn log_z_is_the_gaussian_integral_over_the_free_subspace() {
        // Two particles on a line: x = (u, −u) has ‖x‖ = √2 |u|; along the unit vector
        // (1, −1)/√2 the coordinate is s = √2 u and E = k (2u)² / 2 = k s², so
        // Z = ∫ exp(−k s²) ds = √(π / k).
        let h = HarmonicParticles::new("h2", 2, 1, 1.3).unwrap();
        assert!((h.log_z() - (std::f64::consts::PI / 1.3).sqrt().ln()).abs() < 1e-12);
        let x = [0.4, -0.4];
        let s2 = 2.0 * 0.4f64.powi(2);
        assert!((h.energy(&x) - 1.3 * s2).abs() < 1e-12);
        // harmonic-4: (6/2) log 2π.
        let lz = HarmonicParticles::harmonic4().log_z();
        assert!((lz - 3.0 * (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
    }

    #[test]
    fn invalid_parameters_are_named() {
        for (n, s, k, key) in [
            (1, 2, 1.0, "n_particles"),
            (3, 0, 1.0, "spatial"),
            (3, 2, 0.0, "k"),
            (3, 2, f64::NAN, "k"),
        ] {
            let err = HarmonicParticles::new("h", n, s, k).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
