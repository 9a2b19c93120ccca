//! Weighted isotropic Gaussian mixtures: the exactly solvable case of reward fine-tuning.
//!
//! For p(x) = Σ_i w_i N(x; μ_i, s_i² I) everything Adjoint Matching touches is closed form:
//! exact samples, the flow-matching velocity of the linear interpolant, and the tilt
//! p(x) exp(λ r(x)) / Z for a linear or quadratic reward (again such a mixture).

use crate::error::{Error, Result};
use crate::methods::adjoint_matching::Reward;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::Tensor;

/// p(x) = Σ_i w_i N(x; μ_i, s_i² I) in `dim` dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct IsotropicMixture {
    dim: usize,
    /// Normalised weights w_i.
    weights: Vec<f64>,
    /// Means, row-major `[n_components, dim]`.
    means: Vec<f64>,
    /// Standard deviations s_i.
    stds: Vec<f64>,
}

impl IsotropicMixture {
    /// A mixture from (unnormalised, non-negative, not all zero) `weights`, `means`
    /// `[weights.len(), dim]` row-major and `stds` (> 0).
    pub fn new(weights: Vec<f64>, means: Vec<f64>, stds: Vec<f64>, dim: usize) -> Result<Self> {
        let k = weights.len();
        if k == 0 || dim == 0 || means.len() != k * dim || stds.len() != k {
            return Err(Error::Shape(format!(
                "mixture: {k} weights, {} means, {} stds in dimension {dim}",
                means.len(),
                stds.len()
            )));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::Shape(
                "mixture weights must be finite and ≥ 0".into(),
            ));
        }
        if means.iter().any(|m| !m.is_finite()) || stds.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::Shape(
                "mixture means must be finite and stds finite and > 0".into(),
            ));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(Error::Shape("mixture weights sum to zero".into()));
        }
        Ok(Self {
            dim,
            weights: weights.iter().map(|w| w / total).collect(),
            means,
            stds,
        })
    }

    /// N(0, I) in `dim` dimensions (the flow-matching source as a one-component mixture).
    pub fn standard_normal(dim: usize) -> Self {
        Self::new(vec![1.0], vec![0.0; dim], vec![1.0], dim).expect("valid standard normal")
    }

    /// The registered equal-weight mixture `gmm` as an [`IsotropicMixture`].
    pub fn from_gmm(gmm: &crate::energy::GaussianMixture) -> Self {
        use crate::energy::Energy;
        let k = gmm.n_components();
        Self::new(
            vec![1.0; k],
            gmm.means().to_vec(),
            vec![gmm.std(); k],
            gmm.dim(),
        )
        .expect("a registered mixture is valid")
    }

    /// The mixture behind a registered system name (`gmm40`, `gmm40-fab`, `gmm40-50`), if any.
    pub fn registered(name: &str) -> Option<Self> {
        use crate::energy::GaussianMixture as G;
        match name {
            "gmm40" => Some(Self::from_gmm(&G::gmm40())),
            "gmm40-fab" => Some(Self::from_gmm(&G::gmm40_fab())),
            "gmm40-50" => Some(Self::from_gmm(&G::gmm40_50())),
            _ => None,
        }
    }

    /// Dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    /// Normalised weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Mean of component i.
    pub fn mean(&self, i: usize) -> &[f64] {
        &self.means[i * self.dim..(i + 1) * self.dim]
    }

    /// Standard deviations.
    pub fn stds(&self) -> &[f64] {
        &self.stds
    }

    /// `n` exact samples, row-major `[n, dim]`.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f64> {
        let mut cdf = Vec::with_capacity(self.weights.len());
        let mut acc = 0.0;
        for w in &self.weights {
            acc += w;
            cdf.push(acc);
        }
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let u: f64 = rng.random::<f64>() * acc;
            let i = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
            for &m in self.mean(i) {
                let z: f64 = StandardNormal.sample(rng);
                out.push(m + self.stds[i] * z);
            }
        }
        out
    }

    /// log w_i + log N(x; μ_i, s_i² I) for every component.
    fn component_log_densities(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim as f64;
        (0..self.n_components())
            .map(|i| {
                let s2 = self.stds[i] * self.stds[i];
                let r2: f64 = x
                    .iter()
                    .zip(self.mean(i))
                    .map(|(a, m)| (a - m).powi(2))
                    .sum();
                self.weights[i].ln()
                    - 0.5 * d * (2.0 * std::f64::consts::PI * s2).ln()
                    - r2 / (2.0 * s2)
            })
            .collect()
    }

    /// log p(x) for one point x `[dim]`.
    pub fn log_density(&self, x: &[f64]) -> f64 {
        log_sum_exp(&self.component_log_densities(x))
    }

    /// The component of highest posterior responsibility for x `[dim]`.
    pub fn assign(&self, x: &[f64]) -> usize {
        let l = self.component_log_densities(x);
        (0..l.len())
            .max_by(|&a, &b| l[a].total_cmp(&l[b]))
            .expect("at least one component")
    }

    /// Fractions of the rows of `x` (`[n, dim]`) assigned to each component by
    /// [`IsotropicMixture::assign`].
    pub fn assigned_fractions(&self, x: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.n_components()];
        let n = x.len() / self.dim;
        for row in x.chunks_exact(self.dim) {
            counts[self.assign(row)] += 1;
        }
        counts.iter().map(|&c| c as f64 / n.max(1) as f64).collect()
    }

    /// The tilted mixture ∝ p(x) exp(λ r(x)) for a linear or quadratic reward (`None` for
    /// other rewards). Per component N(μ, s² I):
    ///
    /// linear r = wᵀx:  μ' = μ + λ s² w,  log w' = log w + λ wᵀμ + ½ λ² s² ‖w‖²;
    /// quadratic r = −(k/2)‖x − c‖², a = λk:  s'² = s² / (1 + a s²),  μ' = s'² (μ / s² + a c),
    /// log w' = log w − (d/2) log(1 + a s²) − a ‖μ − c‖² / (2 (1 + a s²)).
    ///
    /// Errors if the tilt is not normalisable (1 + λ k s² ≤ 0).
    pub fn tilt(&self, reward: &Reward, lambda: f64) -> Result<Option<IsotropicMixture>> {
        let d = self.dim as f64;
        let k = self.n_components();
        let (mut logw, mut means, mut stds) = (vec![0.0; k], self.means.clone(), self.stds.clone());
        match reward {
            Reward::Linear { weights: w } => {
                let w2: f64 = w.iter().map(|v| v * v).sum();
                for i in 0..k {
                    let s2 = self.stds[i] * self.stds[i];
                    let wm: f64 = w.iter().zip(self.mean(i)).map(|(a, b)| a * b).sum();
                    logw[i] = self.weights[i].ln() + lambda * wm + 0.5 * lambda * lambda * s2 * w2;
                    for (j, m) in means[i * self.dim..(i + 1) * self.dim]
                        .iter_mut()
                        .enumerate()
                    {
                        *m += lambda * s2 * w[j];
                    }
                }
            }
            Reward::Quadratic { center, curvature } => {
                let a = lambda * curvature;
                for i in 0..k {
                    let s2 = self.stds[i] * self.stds[i];
                    let q = 1.0 + a * s2;
                    if q <= 0.0 {
                        return Err(Error::Config {
                            key: "lambda".into(),
                            why: format!(
                                "the tilt by λ = {lambda} of curvature {curvature} is not \
                                 normalisable (1 + λ k s² = {q} ≤ 0)"
                            ),
                        });
                    }
                    let r2: f64 = self
                        .mean(i)
                        .iter()
                        .zip(center)
                        .map(|(m, c)| (m - c).powi(2))
                        .sum();
                    logw[i] = self.weights[i].ln() - 0.5 * d * q.ln() - a * r2 / (2.0 * q);
                    let s2n = s2 / q;
                    stds[i] = s2n.sqrt();
                    for (j, m) in means[i * self.dim..(i + 1) * self.dim]
                        .iter_mut()
                        .enumerate()
                    {
                        *m = s2n * (*m / s2 + a * center[j]);
                    }
                }
            }
            _ => return Ok(None),
        }
        let top = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights = logw.iter().map(|l| (l - top).exp()).collect();
        Ok(Some(IsotropicMixture::new(weights, means, stds, self.dim)?))
    }

    /// The exact flow-matching velocity of the linear interpolant X_t = (1−t) X_0 + t X_1,
    /// X_0 ~ N(0, I), X_1 ~ p:
    ///
    /// v_t(x) = Σ_i π_i(x) [μ_i + (t s_i² − (1−t)) (x − t μ_i) / v_i],  v_i = (1−t)² + t² s_i²,
    /// π_i ∝ w_i N(x; t μ_i, v_i I).
    ///
    /// Differentiable in x (libtorch autograd). Shapes: t `[batch]`, x `[batch, dim]`.
    pub fn velocity(&self, t: &Tensor, x: &Tensor) -> Tensor {
        let (kind, device) = (x.kind(), x.device());
        let k = self.n_components() as i64;
        let d = self.dim as i64;
        let mu = Tensor::from_slice(&self.means)
            .view([1, k, d])
            .to_kind(kind)
            .to_device(device);
        let s2 = Tensor::from_slice(&self.stds.iter().map(|s| s * s).collect::<Vec<_>>())
            .view([1, k])
            .to_kind(kind)
            .to_device(device);
        let logw = Tensor::from_slice(&self.weights.iter().map(|w| w.ln()).collect::<Vec<_>>())
            .view([1, k])
            .to_kind(kind)
            .to_device(device);
        let t = t.to_kind(kind).view([-1, 1]); // [B, 1]
        let one_minus: Tensor = 1.0 - &t;
        let var = one_minus.square() + t.square() * &s2; // [B, K]
        let diff = x.unsqueeze(1) - t.unsqueeze(2) * &mu; // [B, K, d]
        let r2 = diff.square().sum_dim_intlist([2].as_slice(), false, kind); // [B, K]
        let logits: Tensor = logw - 0.5 * (d as f64) * var.log() - r2 / (2.0 * &var);
        let pi = logits.softmax(1, kind); // [B, K]
        let coef = (&t * &s2 - &one_minus) / &var; // [B, K]
        let inner = mu + coef.unsqueeze(2) * diff; // [B, K, d]
        (pi.unsqueeze(2) * inner).sum_dim_intlist([1].as_slice(), false, kind)
    }
}

/// log Σ exp(v_i), stable.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn two_modes() -> IsotropicMixture {
        IsotropicMixture::new(vec![0.3, 0.7], vec![-2.0, 0.0, 1.5, 1.0], vec![0.5, 0.8], 2).unwrap()
    }

    /// ∫ f(x) p(x) exp(λ r(x)) dx on a grid in 2-D, normalised: the tilt by brute force.
    fn grid_tilt_moments(p: &IsotropicMixture, r: &Reward, lambda: f64) -> (f64, [f64; 2]) {
        let (lo, hi, n) = (-8.0, 8.0, 801);
        let dx = (hi - lo) / (n - 1) as f64;
        let (mut z, mut m) = (0.0, [0.0; 2]);
        let mut mass_left = 0.0;
        for i in 0..n {
            for j in 0..n {
                let x = [lo + i as f64 * dx, lo + j as f64 * dx];
                let (rv, _) = r.value_and_grad(&x).unwrap();
                let w = (p.log_density(&x) + lambda * rv).exp();
                z += w;
                m[0] += w * x[0];
                m[1] += w * x[1];
                if x[0] < 0.0 {
                    mass_left += w;
                }
            }
        }
        (mass_left / z, [m[0] / z, m[1] / z])
    }

    fn tilt_moments(t: &IsotropicMixture) -> [f64; 2] {
        let mut m = [0.0; 2];
        for i in 0..t.n_components() {
            for (c, v) in m.iter_mut().enumerate() {
                *v += t.weights()[i] * t.mean(i)[c];
            }
        }
        m
    }

    #[test]
    fn closed_form_tilts_match_quadrature() {
        let p = two_modes();
        for (reward, lambda) in [
            (
                Reward::Linear {
                    weights: vec![1.0, -0.5],
                },
                0.8,
            ),
            (
                Reward::Quadratic {
                    center: vec![1.0, 2.0],
                    curvature: 0.7,
                },
                1.5,
            ),
        ] {
            let tilt = p.tilt(&reward, lambda).unwrap().unwrap();
            let (_, m_grid) = grid_tilt_moments(&p, &reward, lambda);
            let m = tilt_moments(&tilt);
            for c in 0..2 {
                assert!(
                    (m[c] - m_grid[c]).abs() < 1e-6,
                    "{reward:?}: {m:?} vs {m_grid:?}"
                );
            }
            // Densities agree up to the normalisation: log p_tilt − log p − λ r is constant.
            let offs: Vec<f64> = [[0.0, 0.0], [1.0, -1.0], [-2.5, 0.7]]
                .iter()
                .map(|x| {
                    tilt.log_density(x)
                        - p.log_density(x)
                        - lambda * reward.value_and_grad(x).unwrap().0
                })
                .collect();
            assert!((offs[0] - offs[1]).abs() < 1e-9 && (offs[0] - offs[2]).abs() < 1e-9);
        }
    }

    #[test]
    fn a_non_normalisable_tilt_is_an_error_naming_lambda() {
        let r = Reward::Quadratic {
            center: vec![0.0, 0.0],
            curvature: 1.0,
        };
        let e = two_modes().tilt(&r, -10.0).unwrap_err();
        assert!(matches!(e, Error::Config { key, .. } if key == "lambda"));
    }

    #[test]
    fn exact_velocity_is_the_conditional_mean_of_x1_minus_x0() {
        // Monte Carlo: E[X1 − X0 | X_t ≈ x] by kernel regression at a few (t, x).
        let p = two_modes();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 400_000;
        let x1 = p.sample(n, &mut rng);
        let x0: Vec<f64> = (0..2 * n)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        for (t, x) in [(0.3, [0.0, 0.5]), (0.7, [-1.0, 0.2]), (0.9, [1.2, 0.9])] {
            let bw: f64 = 0.08;
            let (mut s, mut acc) = (0.0, [0.0; 2]);
            for i in 0..n {
                let xt = [
                    (1.0 - t) * x0[2 * i] + t * x1[2 * i],
                    (1.0 - t) * x0[2 * i + 1] + t * x1[2 * i + 1],
                ];
                let r2 = (xt[0] - x[0]).powi(2) + (xt[1] - x[1]).powi(2);
                let k = (-r2 / (2.0 * bw * bw)).exp();
                s += k;
                acc[0] += k * (x1[2 * i] - x0[2 * i]);
                acc[1] += k * (x1[2 * i + 1] - x0[2 * i + 1]);
            }
            let v = p.velocity(
                &Tensor::from_slice(&[t]),
                &Tensor::from_slice(&x).view([1, 2]),
            );
            let v: Vec<f64> = Vec::try_from(v.flatten(0, -1)).unwrap();
            for c in 0..2 {
                assert!(
                    (v[c] - acc[c] / s).abs() < 0.12,
                    "t {t}: exact {v:?} vs kernel {:?}",
                    [acc[0] / s, acc[1] / s]
                );
            }
        }
        // N(0, I): v = (2t − 1) x / ((1 − t)² + t²).
        let g = IsotropicMixture::standard_normal(3);
        let x = Tensor::from_slice(&[0.5f64, -1.0, 2.0]).view([1, 3]);
        let v: Vec<f64> =
            Vec::try_from(g.velocity(&Tensor::from_slice(&[0.8]), &x).flatten(0, -1)).unwrap();
        let f = (2.0 * 0.8 - 1.0) / (0.2f64 * 0.2 + 0.64);
        for (a, b) in v.iter().zip([0.5 * f, -f, 2.0 * f]) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn sampling_and_assignment_reproduce_the_weights() {
        let p = two_modes();
        let n = 20_000;
        let x = p.sample(n, &mut ChaCha8Rng::seed_from_u64(1));
        let f = p.assigned_fractions(&x);
        // s.e. sqrt(0.21 / n) ≈ 0.0032; the modes barely overlap.
        assert!((f[0] - 0.3).abs() < 0.015, "{f:?}");
    }

    #[test]
    fn bad_mixtures_are_refused() {
        assert!(IsotropicMixture::new(vec![1.0], vec![0.0], vec![1.0], 2).is_err());
        assert!(IsotropicMixture::new(vec![1.0], vec![0.0, 0.0], vec![0.0], 2).is_err());
        assert!(IsotropicMixture::new(vec![-1.0], vec![0.0, 0.0], vec![1.0], 2).is_err());
        assert!(IsotropicMixture::new(vec![0.0], vec![0.0, 0.0], vec![1.0], 2).is_err());
    }
}
