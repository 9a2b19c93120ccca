//! One-dimensional W2 between two samples of scalars (energy W2): exact OT by sorting.
//!
//! In 1-D the optimal coupling is monotone, so
//!
//!   W2²(a, b) = ∫₀¹ (F_a⁻¹(t) − F_b⁻¹(t))² dt
//!
//! with F⁻¹ the empirical quantile functions (step functions). For equal sizes this is
//! (1/N) Σ_k (a_(k) − b_(k))² over the sorted samples; for unequal sizes the integral is
//! evaluated exactly over the merged breakpoints {i/n} ∪ {j/m}.
//!
//! Conventions: Adjoint Sampling reports the energy W2 = sqrt(W2²) (REFERENCE §5); the DEM
//! family reports W2² itself. Both are returned; say which one a table uses.

use crate::data::check_finite;
use crate::{MetricsError, Result};

/// Both conventions of the 1-D W2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct W2OneDim {
    /// W2 = sqrt(W2²) (AS convention).
    pub w2: f64,
    /// W2² = ∫₀¹ (F_a⁻¹ − F_b⁻¹)² dt (DEM convention for energies).
    pub w2_squared: f64,
}

/// Exact 1-D W2 between the empirical distributions of `a` and `b` (any sizes ≥ 1, uniform
/// weights): W2² = ∫₀¹ (F_a⁻¹(t) − F_b⁻¹(t))² dt. Errors on empty or non-finite input.
pub fn wasserstein2_1d(a: &[f64], b: &[f64]) -> Result<W2OneDim> {
    if a.is_empty() {
        return Err(MetricsError::Empty { what: "1-D W2 a" });
    }
    if b.is_empty() {
        return Err(MetricsError::Empty { what: "1-D W2 b" });
    }
    check_finite("1-D W2 a", a)?;
    check_finite("1-D W2 b", b)?;
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (n, m) = (a.len() as u128, b.len() as u128);
    let w2_squared = if n == m {
        a.iter()
            .zip(&b)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            / a.len() as f64
    } else {
        // Breakpoints in units of 1/(n·m): a's quantile steps at (i+1)·m, b's at (j+1)·n.
        let (mut i, mut j) = (0usize, 0usize);
        let mut prev: u128 = 0;
        let mut acc = 0.0;
        let total = n * m;
        while prev < total {
            let next_a = (i as u128 + 1) * m;
            let next_b = (j as u128 + 1) * n;
            let next = next_a.min(next_b);
            let diff = a[i] - b[j];
            acc += diff * diff * (next - prev) as f64;
            prev = next;
            if next_a == next {
                i += 1;
            }
            if next_b == next {
                j += 1;
            }
        }
        acc / total as f64
    };
    Ok(W2OneDim {
        w2: w2_squared.sqrt(),
        w2_squared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    #[test]
    fn exact_on_hand_examples() {
        // Sorted [0,1] vs [1,3]: ((0−1)² + (1−3)²)/2 = 2.5.
        let r = wasserstein2_1d(&[1.0, 0.0], &[3.0, 1.0]).unwrap();
        assert_eq!(r.w2_squared, 2.5);
        assert_eq!(r.w2, 2.5f64.sqrt());
        // [0,1] vs [0]: half the mass moves by 1 → 0.5.
        assert_eq!(
            wasserstein2_1d(&[0.0, 1.0], &[0.0]).unwrap().w2_squared,
            0.5
        );
        // [0,1,2] vs [0,3]: intervals [0,⅓]:0, [⅓,½]:1, [½,⅔]:4, [⅔,1]:1 → 1/6+4/6+2/6 = 7/6.
        let r = wasserstein2_1d(&[2.0, 0.0, 1.0], &[3.0, 0.0]).unwrap();
        assert!((r.w2_squared - 7.0 / 6.0).abs() < 1e-15);
        // Symmetric in its arguments.
        let s = wasserstein2_1d(&[3.0, 0.0], &[2.0, 0.0, 1.0]).unwrap();
        assert!((r.w2_squared - s.w2_squared).abs() < 1e-15);
        // Replicating a sample does not change its distribution.
        let r = wasserstein2_1d(&[0.0, 5.0, 0.0, 5.0], &[1.0, 2.0]).unwrap();
        assert!((r.w2_squared - (1.0 + 9.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn gaussian_samples_match_closed_form() {
        // W2²(N(μ1,σ1²), N(μ2,σ2²)) = (μ1−μ2)² + (σ1−σ2)².
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let (mu1, s1, mu2, s2) = (0.0, 1.0, 0.5, 2.0);
        for (n, m) in [(100_000usize, 100_000usize), (100_000, 70_001)] {
            let a: Vec<f64> = (0..n)
                .map(|_| mu1 + s1 * rng.sample::<f64, _>(StandardNormal))
                .collect();
            let b: Vec<f64> = (0..m)
                .map(|_| mu2 + s2 * rng.sample::<f64, _>(StandardNormal))
                .collect();
            let exact: f64 = (mu1 - mu2) * (mu1 - mu2) + (s1 - s2) * (s1 - s2);
            let got = wasserstein2_1d(&a, &b).unwrap().w2;
            // First-order error of W2 is dominated by the sampling error of the mean and
            // standard deviation differences: sd ≈ sqrt((σ1²+σ2²)(1/n + 1/m)); allow 6 sd.
            let tol = 6.0 * ((s1 * s1 + s2 * s2) * (1.0 / n as f64 + 1.0 / m as f64)).sqrt();
            assert!(
                (got - exact.sqrt()).abs() < tol,
                "n={n} m={m}: {got} vs {} (tol {tol})",
                exact.sqrt()
            );
        }
    }

    #[test]
    fn rejects_empty_and_non_finite() {
        assert!(matches!(
            wasserstein2_1d(&[], &[1.0]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            wasserstein2_1d(&[1.0], &[f64::NAN]),
            Err(MetricsError::NonFinite { index: 0, .. })
        ));
    }
}
