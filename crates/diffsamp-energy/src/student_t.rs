//! Normalised equal-weight mixtures of product Student-t distributions (MoS, d = 50 and 2).

use crate::data::embedded_matrix;
use crate::{Energy, EnergyError, ExactSampler, LogPartition};
use rand::Rng;
use rand_distr::{Distribution, StudentT};

const LOCS_JAX_D50: &[u8] = include_bytes!("../data/mos_locs_jax_d50.npy");
const LOCS_JAX_D2: &[u8] = include_bytes!("../data/mos_locs_jax_d2.npy");

/// p(x) = (1/K) Σ_k Π_i t_ν((x_i − μ_ki)/s)/s, with the 1-D Student-t density
/// t_ν(u) = Γ((ν+1)/2) / (Γ(ν/2) √(νπ)) (1 + u²/ν)^(−(ν+1)/2); E(x) = −log p(x), log Z = 0.
///
/// With l_k(x) = d·c − ((ν+1)/2) Σ_i ln(1 + u_ki²/ν), u_ki = (x_i − μ_ki)/s and
/// c = ln Γ((ν+1)/2) − ln Γ(ν/2) − ½ ln(νπ) − ln s:
/// E(x) = −LSE_k l_k(x) + ln K,
/// ∇_i E(x) = Σ_k w_k(x) (ν+1) u_ki / ((ν + u_ki²) s), w = softmax(l).
#[derive(Clone, Debug)]
pub struct StudentTMixture {
    name: String,
    dim: usize,
    n_components: usize,
    df: f64,
    scale: f64,
    locs: Vec<f64>,
    /// c above (per-coordinate log normaliser).
    log_c: f64,
    sampler: StudentT<f64>,
}

impl StudentTMixture {
    /// A mixture named `name` with locations row-major `[n_components, dim]`, degrees of
    /// freedom `df` > 0 and scale > 0. Fails on mis-shaped or non-finite input.
    pub fn new(
        name: impl Into<String>,
        locs: Vec<f64>,
        n_components: usize,
        dim: usize,
        df: f64,
        scale: f64,
    ) -> Result<Self, EnergyError> {
        let name = name.into();
        if n_components == 0 || dim == 0 || locs.len() != n_components * dim {
            return Err(EnergyError::Shape {
                energy: name,
                what: "locations",
                len: locs.len(),
                expected: n_components * dim,
            });
        }
        if let Some(v) = locs.iter().find(|v| !v.is_finite()) {
            return Err(EnergyError::InvalidParameter {
                name: "locations",
                value: v.to_string(),
                why: "locations must be finite",
            });
        }
        for (pname, v) in [("df", df), ("scale", scale)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(EnergyError::InvalidParameter {
                    name: pname,
                    value: v.to_string(),
                    why: "must be finite and > 0",
                });
            }
        }
        let log_c = ln_gamma(0.5 * (df + 1.0))
            - ln_gamma(0.5 * df)
            - 0.5 * (df * std::f64::consts::PI).ln()
            - scale.ln();
        let sampler = StudentT::new(df).map_err(|_| EnergyError::InvalidParameter {
            name: "df",
            value: df.to_string(),
            why: "rejected by the Student-t sampler",
        })?;
        Ok(Self {
            name,
            dim,
            n_components,
            df,
            scale,
            locs,
            log_c,
            sampler,
        })
    }

    /// `"mos50"`: 10 components in 50-D, ν = 2, s = 1, locations `mos_locs_jax_d50.npy`.
    pub fn mos50() -> Self {
        let locs = embedded_matrix(LOCS_JAX_D50, "mos_locs_jax_d50.npy", 10, 50);
        Self::new("mos50", locs, 10, 50, 2.0, 1.0).expect("embedded MoS locations are valid")
    }

    /// `"mos2"`: 10 components in 2-D, ν = 2, s = 1, locations `mos_locs_jax_d2.npy`.
    pub fn mos2() -> Self {
        let locs = embedded_matrix(LOCS_JAX_D2, "mos_locs_jax_d2.npy", 10, 2);
        Self::new("mos2", locs, 10, 2, 2.0, 1.0).expect("embedded MoS locations are valid")
    }

    /// Component locations, row-major `[n_components, dim]`.
    pub fn locations(&self) -> &[f64] {
        &self.locs
    }

    /// Number of components K.
    pub fn n_components(&self) -> usize {
        self.n_components
    }

    /// Degrees of freedom ν.
    pub fn df(&self) -> f64 {
        self.df
    }

    /// Scale s.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// l_k(x) for the component with locations `mu`.
    #[inline]
    fn log_component(&self, x: &[f64], mu: &[f64]) -> f64 {
        let inv_s = 1.0 / self.scale;
        let inv_df = 1.0 / self.df;
        let sum: f64 = x
            .iter()
            .zip(mu)
            .map(|(a, b)| {
                let u = (a - b) * inv_s;
                (u * u * inv_df).ln_1p()
            })
            .sum();
        self.dim as f64 * self.log_c - 0.5 * (self.df + 1.0) * sum
    }
}

/// ln Γ(x) for x > 0: shift up by the recurrence Γ(x+1) = xΓ(x) until x ≥ 15, then the
/// Stirling series ln Γ(z) ≈ (z − ½) ln z − z + ½ ln 2π + 1/(12z) − 1/(360z³) + 1/(1260z⁵)
/// − 1/(1680z⁷) (truncation error < 1/(1188 z⁹) ≈ 2e-14 at z = 15).
fn ln_gamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 15.0 {
        shift += x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)));
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

impl Energy for StudentTMixture {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    /// Running log-sum-exp over components; the weighted gradient accumulates in `grad` and
    /// is rescaled when the running maximum grows (no allocation).
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim);
        debug_assert_eq!(grad.len(), self.dim);
        grad.fill(0.0);
        let inv_s = 1.0 / self.scale;
        let coef = (self.df + 1.0) * inv_s;
        let mut m = f64::NEG_INFINITY;
        let mut s = 0.0;
        for mu in self.locs.chunks_exact(self.dim) {
            let l = self.log_component(x, mu);
            if l > m {
                let r = (m - l).exp();
                s *= r;
                grad.iter_mut().for_each(|g| *g *= r);
                m = l;
            }
            let w = (l - m).exp();
            s += w;
            for ((g, a), b) in grad.iter_mut().zip(x).zip(mu) {
                let u = (a - b) * inv_s;
                *g += w * coef * u / (self.df + u * u);
            }
        }
        let inv = 1.0 / s;
        grad.iter_mut().for_each(|g| *g *= inv);
        -(m + s.ln()) + (self.n_components as f64).ln()
    }

    fn energy(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim);
        let mut m = f64::NEG_INFINITY;
        let mut s = 0.0;
        for mu in self.locs.chunks_exact(self.dim) {
            let l = self.log_component(x, mu);
            if l > m {
                s *= (m - l).exp();
                m = l;
            }
            s += (l - m).exp();
        }
        -(m + s.ln()) + (self.n_components as f64).ln()
    }
}

impl LogPartition for StudentTMixture {
    /// 0: E is the negative log of a normalised density.
    fn log_z(&self) -> f64 {
        0.0
    }
}

impl ExactSampler for StudentTMixture {
    /// k ~ U{0..K−1}, x_i = μ_ki + s t_i, t_i ~ Student-t(ν) i.i.d.
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let k = rng.random_range(0..self.n_components);
            for &mu in &self.locs[k * self.dim..(k + 1) * self.dim] {
                let t: f64 = self.sampler.sample(rng);
                out.push(mu + self.scale * t);
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
    fn ln_gamma_known_values() {
        let pi = std::f64::consts::PI;
        for (x, want) in [
            (0.5, 0.5 * pi.ln()),
            (1.0, 0.0),
            (1.5, (0.5 * pi.sqrt()).ln()),
            (2.0, 0.0),
            (5.0, 24f64.ln()),
            (20.0, (1..20).map(|k| (k as f64).ln()).sum::<f64>()),
        ] {
            assert!(
                (ln_gamma(x) - want).abs() < 1e-13,
                "lnΓ({x}) = {}",
                ln_gamma(x)
            );
        }
    }

    #[test]
    fn one_component_df2_matches_closed_form() {
        // ν = 2: t₂(u) = (1 / (2√2)) (1 + u²/2)^(−3/2).
        let m = StudentTMixture::new("t", vec![0.5], 1, 1, 2.0, 1.0).unwrap();
        for x in [-3.0, 0.0, 0.5, 2.0, 40.0] {
            let u: f64 = x - 0.5;
            let p = (1.0 / (2.0 * 2f64.sqrt())) * (1.0 + u * u / 2.0).powf(-1.5);
            assert!((m.energy(&[x]) - (-p.ln())).abs() < 1e-12);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut r = rng(50);
        for e in [StudentTMixture::mos2(), StudentTMixture::mos50()] {
            for i in 0..5 {
                let k = (3 * i) % 10;
                let mu = &e.locations()[k * e.dim()..(k + 1) * e.dim()];
                let x: Vec<f64> = mu
                    .iter()
                    .zip(normal_vec(&mut r, e.dim(), 0.0, 2.0))
                    .map(|(m, z)| m + z)
                    .collect();
                assert_grad_fd(&e, &x, 1e-6);
            }
        }
        let scaled = StudentTMixture::new("t", vec![1.0, -1.0, 2.0, 0.0], 2, 2, 3.5, 0.7).unwrap();
        for _ in 0..5 {
            assert_grad_fd(&scaled, &normal_vec(&mut r, 2, 0.0, 1.5), 1e-6);
        }
    }

    #[test]
    fn mos2_is_normalised_by_quadrature() {
        // x = c + L tan θ per axis maps the heavy (|x|⁻³) tails onto a bounded θ box;
        // midpoint rule in θ with Jacobian L² sec²θ₁ sec²θ₂.
        let e = StudentTMixture::mos2();
        let loc = e.locations();
        let c = [0, 1].map(|a| (0..10).map(|k| loc[2 * k + a]).sum::<f64>() / 10.0);
        let l = 10.0;
        let n = 1500;
        let h = std::f64::consts::PI / n as f64;
        let theta = |i: usize| -std::f64::consts::FRAC_PI_2 + (i as f64 + 0.5) * h;
        let mut z = 0.0;
        for i in 0..n {
            let (t1, j1) = (theta(i).tan(), 1.0 / theta(i).cos().powi(2));
            for j in 0..n {
                let (t2, j2) = (theta(j).tan(), 1.0 / theta(j).cos().powi(2));
                let x = [c[0] + l * t1, c[1] + l * t2];
                z += (-e.energy(&x)).exp() * j1 * j2;
            }
        }
        z *= l * l * h * h;
        assert!((z - 1.0).abs() < 1e-5, "∫exp(−E) = {z}");
        assert_eq!(e.log_z(), 0.0);
    }

    #[test]
    fn sampler_matches_the_mixture_cdf() {
        // ν = 2 has a closed-form CDF: F(u) = ½ + u / (2√(2 + u²)).
        let e = StudentTMixture::mos50();
        let n = 20_000;
        let xs = e.sample(n, &mut rng(51));
        assert_eq!(xs.len(), 50 * n);
        let cdf = |u: f64| 0.5 + u / (2.0 * (2.0 + u * u).sqrt());
        for coord in [0, 17, 49] {
            for a in [-5.0, 0.0, 3.0, 8.0] {
                let want = (0..10)
                    .map(|k| cdf(a - e.locations()[k * 50 + coord]))
                    .sum::<f64>()
                    / 10.0;
                let got = xs
                    .iter()
                    .skip(coord)
                    .step_by(50)
                    .filter(|v| **v <= a)
                    .count() as f64
                    / n as f64;
                let sd = (want * (1.0 - want) / n as f64).sqrt().max(1e-4);
                assert!(
                    (got - want).abs() < 5.0 * sd,
                    "coord {coord}, a = {a}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn embedded_locations_and_bad_input() {
        assert_eq!(StudentTMixture::mos50().locations().len(), 500);
        assert_eq!(StudentTMixture::mos2().locations().len(), 20);
        assert!(StudentTMixture::new("t", vec![0.0; 3], 2, 2, 2.0, 1.0).is_err());
        assert!(StudentTMixture::new("t", vec![0.0; 4], 2, 2, 0.0, 1.0).is_err());
        assert!(StudentTMixture::new("t", vec![0.0; 4], 2, 2, 2.0, -1.0).is_err());
    }
}
