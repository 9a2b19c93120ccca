//! The flat torus [−π, π)^d of torsional targets (REFERENCE §1.6): wrapping, the wrapped normal
//! law of the base process, and the lifts that its bridge starts from.
//!
//! The base SDE dX = σ(t) dB runs on the real line and is wrapped: X_t mod 2π. Its law at time t
//! is the wrapped normal WN(0, h²(t)), density Σ_k N(x + 2πk; 0, h²(t)); the sum keeps the lifts
//! |k| ≤ [`LIFTS`], or as many more as reach 8 standard deviations for a wider normal.

use std::f64::consts::{PI, TAU};
use tch::Tensor;

/// Lifts k ∈ [−LIFTS, LIFTS] kept at least in the wrapped-normal sums.
pub const LIFTS: i32 = 6;

/// x mod 2π in [−π, π).
pub fn wrap(x: f64) -> f64 {
    (x + PI).rem_euclid(TAU) - PI
}

/// [`wrap`] elementwise on a tensor.
pub fn wrap_tensor(x: &Tensor) -> Tensor {
    // `remainder` takes the sign of the divisor, so (x + π) mod 2π lies in [0, 2π).
    (x + PI).remainder(TAU) - PI
}

/// The lifts k = −K..=K kept for variance `var`: K = LIFTS, or more when the normal is so
/// wide that lifts beyond 8 standard deviations would be cut.
fn lift_range(var: f64) -> std::ops::RangeInclusive<i32> {
    let k = ((8.0 * var.sqrt() + PI) / TAU).ceil() as i32;
    let k = k.max(LIFTS);
    -k..=k
}

/// Log-weights −(x + 2πk)²/(2 var) of the lifts k of [`lift_range`], and their maximum.
fn lift_log_weights(x: f64, var: f64) -> (Vec<(i32, f64)>, f64) {
    let w: Vec<(i32, f64)> = lift_range(var)
        .map(|k| {
            let y = x + TAU * k as f64;
            (k, -y * y / (2.0 * var))
        })
        .collect();
    let max = w.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
    (w, max)
}

/// log WN(x; 0, var) = log Σ_k N(x + 2πk; 0, var), one coordinate.
pub fn wrapped_normal_log_density(x: f64, var: f64) -> f64 {
    let (w, max) = lift_log_weights(x, var);
    let sum: f64 = w.iter().map(|(_, l)| (l - max).exp()).sum();
    max + sum.ln() - 0.5 * (TAU * var).ln()
}

/// d/dx log WN(x; 0, var) = −Σ_k p_k (x + 2πk)/var, with p_k ∝ N(x + 2πk; 0, var).
pub fn wrapped_normal_score(x: f64, var: f64) -> f64 {
    let (w, max) = lift_log_weights(x, var);
    let (mut num, mut den) = (0.0, 0.0);
    for &(k, l) in &w {
        let p = (l - max).exp();
        num += p * (x + TAU * k as f64);
        den += p;
    }
    -num / (den * var)
}

/// The lift x + 2πk of x with k drawn ∝ N(x + 2πk; 0, var) by inverting the CDF at `u` ∈ [0, 1).
pub fn sample_lift(x: f64, var: f64, u: f64) -> f64 {
    let (w, max) = lift_log_weights(x, var);
    let p: Vec<f64> = w.iter().map(|(_, l)| (l - max).exp()).collect();
    let mut target = u * p.iter().sum::<f64>();
    for (pk, (k, _)) in p.iter().zip(&w) {
        if target < *pk {
            return x + TAU * *k as f64;
        }
        target -= pk;
    }
    x + TAU * w.last().map_or(0, |(k, _)| *k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn wrap_maps_into_the_fundamental_domain() {
        for (x, w) in [
            (0.5, 0.5),
            (PI, -PI),
            (-PI, -PI),
            (7.0, 7.0 - TAU),
            (-7.0, -7.0 + TAU),
        ] {
            assert!((wrap(x) - w).abs() < 1e-12, "{x}");
        }
        let t = Tensor::from_slice(&[0.5f64, PI + 0.1, -PI - 0.1, 20.0]);
        let got: Vec<f64> = Vec::try_from(&wrap_tensor(&t)).unwrap();
        for (g, x) in got.iter().zip([0.5, PI + 0.1, -PI - 0.1, 20.0]) {
            assert!((g - wrap(x)).abs() < 1e-12);
        }
    }

    #[test]
    fn wrapped_normal_is_a_density_and_its_score_is_the_derivative() {
        for var in [0.01, 1.0, PI * PI] {
            let n = 4000;
            let h = TAU / n as f64;
            let z: f64 = (0..n)
                .map(|i| wrapped_normal_log_density(-PI + (i as f64 + 0.5) * h, var).exp() * h)
                .sum();
            assert!((z - 1.0).abs() < 1e-10, "var {var}: ∫ = {z}");
            for x in [-3.0, -0.4, 0.0, 1.3, 3.1] {
                let e = 1e-6;
                let fd = (wrapped_normal_log_density(x + e, var)
                    - wrapped_normal_log_density(x - e, var))
                    / (2.0 * e);
                let s = wrapped_normal_score(x, var);
                assert!((fd - s).abs() < 1e-5 * (1.0 + s.abs()), "var {var}, x {x}");
            }
        }
        // Small variance: the plain normal; large: close to uniform (score → 0).
        assert!((wrapped_normal_score(0.3, 0.01) + 30.0).abs() < 1e-9);
        assert!(wrapped_normal_score(1.0, 100.0).abs() < 1e-6);
    }

    #[test]
    fn lifts_follow_their_normal_weights() {
        let (x, var) = (2.5, 9.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 40_000;
        let mut up = 0usize; // lift to x − 2π (k = −1)
        for _ in 0..n {
            let y = sample_lift(x, var, rng.random());
            assert!(((y - x) / TAU - ((y - x) / TAU).round()).abs() < 1e-12);
            if ((y - x) / TAU).round() as i32 == -1 {
                up += 1;
            }
        }
        let (w, max) = lift_log_weights(x, var);
        let total: f64 = w.iter().map(|(_, l)| (l - max).exp()).sum();
        let p = w
            .iter()
            .find(|(k, _)| *k == -1)
            .map(|(_, l)| (l - max).exp())
            .unwrap()
            / total;
        let f = up as f64 / n as f64;
        assert!(
            (f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt(),
            "{f} vs {p}"
        );
    }
}
