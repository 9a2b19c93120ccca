//! Small test energies with known moments shared by the integration tests.
#![allow(dead_code)]

use diffsamp_energy::{Energy, Particles};

/// E(x) = ½ (x − m)ᵀ A (x − m): a correlated Gaussian with mean m and covariance A⁻¹.
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// Precision, `[d, d]` row-major, symmetric positive definite.
    pub precision: Vec<f64>,
}

impl Gaussian {
    /// A 5-D Gaussian with a tridiagonal-plus-corner precision (condition number ≈ 10).
    pub fn five_d() -> Self {
        let d = 5;
        let diag = [1.0, 2.0, 4.0, 1.5, 0.8];
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = diag[i];
        }
        let off = [
            (0, 1, 0.6),
            (1, 2, -0.9),
            (2, 3, 0.7),
            (3, 4, 0.4),
            (0, 4, 0.3),
        ];
        for &(i, j, v) in &off {
            a[i * d + j] = v;
            a[j * d + i] = v;
        }
        Gaussian {
            mean: vec![1.0, -2.0, 0.5, 0.0, 3.0],
            precision: a,
        }
    }

    /// Σ = A⁻¹.
    pub fn covariance(&self) -> Vec<f64> {
        invert(&self.precision, self.mean.len())
    }
}

/// Inverse of a `[d, d]` row-major SPD matrix by Gauss–Jordan elimination.
pub fn invert(a: &[f64], d: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; d * d];
    for i in 0..d {
        inv[i * d + i] = 1.0;
    }
    for c in 0..d {
        let p = m[c * d + c];
        for k in 0..d {
            m[c * d + k] /= p;
            inv[c * d + k] /= p;
        }
        for r in 0..d {
            if r != c {
                let f = m[r * d + c];
                for k in 0..d {
                    m[r * d + k] -= f * m[c * d + k];
                    inv[r * d + k] -= f * inv[c * d + k];
                }
            }
        }
    }
    inv
}

impl Energy for Gaussian {
    fn name(&self) -> &str {
        "gaussian"
    }
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let d = self.mean.len();
        let r: Vec<f64> = x.iter().zip(&self.mean).map(|(a, b)| a - b).collect();
        let mut e = 0.0;
        for i in 0..d {
            let g: f64 = (0..d).map(|j| self.precision[i * d + j] * r[j]).sum();
            grad[i] = g;
            e += 0.5 * r[i] * g;
        }
        e
    }
}

/// 1-D tilted double well E(x) = h (x² − 1)² + c x.
pub struct DoubleWell1d {
    pub h: f64,
    pub c: f64,
}

impl DoubleWell1d {
    /// Exact probability of x < 0 by Simpson quadrature on [−4, 4].
    pub fn left_weight(&self) -> f64 {
        let n = 200_000;
        let (a, b) = (-4.0, 4.0);
        let hstep = (b - a) / n as f64;
        let (mut left, mut total) = (0.0, 0.0);
        for i in 0..=n {
            let x = a + i as f64 * hstep;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let p = w * (-self.e(x)).exp();
            total += p;
            if i < n / 2 {
                left += p;
            } else if i == n / 2 {
                left += 0.5 * p;
            }
        }
        left / total
    }

    fn e(&self, x: f64) -> f64 {
        self.h * (x * x - 1.0).powi(2) + self.c * x
    }
}

impl Energy for DoubleWell1d {
    fn name(&self) -> &str {
        "double-well-1d"
    }
    fn dim(&self) -> usize {
        1
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let v = x[0];
        grad[0] = 4.0 * self.h * v * (v * v - 1.0) + self.c;
        self.e(v)
    }
}

/// n particles in 3-D: springs Σ_{i<j} (r_ij − 1)² plus ½‖x_0‖² on particle 0. The last term
/// is *not* translation invariant, so its gradient has a COM component the samplers must
/// project away to stay in the zero-COM subspace.
pub struct Springs {
    pub n: usize,
}

impl Energy for Springs {
    fn name(&self) -> &str {
        "springs"
    }
    fn dim(&self) -> usize {
        3 * self.n
    }
    fn particles(&self) -> Option<Particles> {
        Some(Particles {
            n: self.n,
            spatial: 3,
        })
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut e = 0.0;
        for i in 0..self.n {
            for j in i + 1..self.n {
                let d: Vec<f64> = (0..3).map(|k| x[3 * i + k] - x[3 * j + k]).collect();
                let r = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                e += (r - 1.0).powi(2);
                let f = 2.0 * (r - 1.0) / r;
                for k in 0..3 {
                    grad[3 * i + k] += f * d[k];
                    grad[3 * j + k] -= f * d[k];
                }
            }
        }
        for k in 0..3 {
            e += 0.5 * x[k] * x[k];
            grad[k] += x[k];
        }
        e
    }
}

/// Standard normal in 1-D inside a hard wall: E = x²/2 for |x| < 1, +∞ outside.
pub struct Walled;

impl Energy for Walled {
    fn name(&self) -> &str {
        "walled"
    }
    fn dim(&self) -> usize {
        1
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        grad[0] = x[0];
        if x[0].abs() < 1.0 {
            0.5 * x[0] * x[0]
        } else {
            f64::INFINITY
        }
    }
}

/// An energy that is NaN everywhere.
pub struct AlwaysNan;

impl Energy for AlwaysNan {
    fn name(&self) -> &str {
        "always-nan"
    }
    fn dim(&self) -> usize {
        2
    }
    fn energy_grad(&self, _x: &[f64], grad: &mut [f64]) -> f64 {
        grad.iter_mut().for_each(|g| *g = f64::NAN);
        f64::NAN
    }
}

/// Mean over chains of per-chain averages of `f(sample)` and its standard error across
/// chains (chains are independent, so this is exact whatever the autocorrelation):
/// returns (mean, se). Sample r belongs to chain r mod n_chains.
pub fn chain_batch_mean(
    samples: &[f64],
    dim: usize,
    n_chains: usize,
    f: impl Fn(&[f64]) -> f64,
) -> (f64, f64) {
    let mut sums = vec![0.0; n_chains];
    let mut counts = vec![0usize; n_chains];
    for (r, x) in samples.chunks_exact(dim).enumerate() {
        sums[r % n_chains] += f(x);
        counts[r % n_chains] += 1;
    }
    let means: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c > 0)
        .map(|(s, &c)| s / c as f64)
        .collect();
    let m = means.len() as f64;
    let mu = means.iter().sum::<f64>() / m;
    let var = means.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (m - 1.0);
    (mu, (var / m).sqrt())
}

/// Particles with individual harmonic tethers E = ½ Σ_i w_i ‖x_i‖²: not translation invariant,
/// so its gradient has a COM component. Restricted to the zero-COM subspace the target is a
/// Gaussian whose per-axis covariance over particles is C = V (Vᵀ W V)⁻¹ Vᵀ, V an orthonormal
/// (Helmert) basis of 1^⊥; the coordinates of different axes are independent.
pub struct Tethered {
    pub weights: Vec<f64>,
    pub spatial: usize,
}

impl Tethered {
    /// C, `[n, n]` row-major.
    pub fn subspace_covariance(&self) -> Vec<f64> {
        let n = self.weights.len();
        let m = n - 1;
        // Helmert basis: column k (k = 1..n−1) = (1, …, 1, −k, 0, …)/sqrt(k(k+1)).
        let mut v = vec![0.0; n * m];
        for k in 1..n {
            let norm = ((k * (k + 1)) as f64).sqrt();
            for i in 0..k {
                v[i * m + (k - 1)] = 1.0 / norm;
            }
            v[k * m + (k - 1)] = -(k as f64) / norm;
        }
        let mut vwv = vec![0.0; m * m];
        for a in 0..m {
            for b in 0..m {
                vwv[a * m + b] = (0..n)
                    .map(|i| v[i * m + a] * self.weights[i] * v[i * m + b])
                    .sum();
            }
        }
        let inv = invert(&vwv, m);
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc = 0.0;
                for a in 0..m {
                    for b in 0..m {
                        acc += v[i * m + a] * inv[a * m + b] * v[j * m + b];
                    }
                }
                c[i * n + j] = acc;
            }
        }
        c
    }
}

impl Energy for Tethered {
    fn name(&self) -> &str {
        "tethered"
    }
    fn dim(&self) -> usize {
        self.weights.len() * self.spatial
    }
    fn particles(&self) -> Option<Particles> {
        Some(Particles {
            n: self.weights.len(),
            spatial: self.spatial,
        })
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            for k in 0..self.spatial {
                let v = x[i * self.spatial + k];
                e += 0.5 * w * v * v;
                grad[i * self.spatial + k] = w * v;
            }
        }
        e
    }
}
