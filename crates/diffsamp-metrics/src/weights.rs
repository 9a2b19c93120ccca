//! Importance-weight diagnostics from log-weights: ESS, normalised ESS, log Z estimate and its ELBO lower bound.
//!
//! Inputs are log-weights log w_i = log p̃(x_i) − log q(x_i) (unnormalised target over
//! proposal). Everything is computed in log space, so weights spanning hundreds of orders of
//! magnitude are fine. log w = −∞ is a valid zero weight; NaN and +∞ are errors.

use crate::{MetricsError, Result};

/// The usual summary of a set of importance weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightSummary {
    /// Number of weights N.
    pub n: usize,
    /// ESS = (Σ w)² / Σ w² ∈ [1, N].
    pub ess: f64,
    /// ESS / N ∈ [1/N, 1].
    pub normalized_ess: f64,
    /// log Ẑ = logsumexp(log w) − ln N (unbiased in Z, biased low in log Z).
    pub log_z: f64,
    /// ELBO = mean(log w) ≤ E[log Ẑ] ≤ log Z (Jensen).
    pub elbo: f64,
}

fn check(log_w: &[f64]) -> Result<()> {
    if log_w.is_empty() {
        return Err(MetricsError::Empty {
            what: "log-weights",
        });
    }
    if let Some(index) = log_w.iter().position(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(MetricsError::NonFinite {
            what: "log-weights (NaN or +inf)",
            index,
            value: log_w[index],
        });
    }
    if log_w.iter().all(|v| *v == f64::NEG_INFINITY) {
        return Err(MetricsError::InvalidParameter {
            name: "log-weights",
            value: "all -inf".into(),
            reason: "at least one weight must be positive",
        });
    }
    Ok(())
}

/// logsumexp(s · log w) = log Σ_i w_i^s, stable (max subtracted); input checked.
fn logsumexp_scaled(log_w: &[f64], s: f64) -> f64 {
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max) * s;
    let sum: f64 = log_w.iter().map(|&l| (s * l - m).exp()).sum();
    m + sum.ln()
}

/// Effective sample size ESS = (Σ_i w_i)² / Σ_i w_i² = exp(2 lse(log w) − lse(2 log w)).
pub fn effective_sample_size(log_w: &[f64]) -> Result<f64> {
    check(log_w)?;
    let ess = (2.0 * logsumexp_scaled(log_w, 1.0) - logsumexp_scaled(log_w, 2.0)).exp();
    Ok(ess.clamp(1.0, log_w.len() as f64))
}

/// Normalised ESS = ESS / N ∈ [1/N, 1].
pub fn normalized_ess(log_w: &[f64]) -> Result<f64> {
    Ok(effective_sample_size(log_w)? / log_w.len() as f64)
}

/// Importance-sampling estimate log Ẑ = log((1/N) Σ_i w_i) = logsumexp(log w) − ln N.
pub fn log_z_estimate(log_w: &[f64]) -> Result<f64> {
    check(log_w)?;
    Ok(logsumexp_scaled(log_w, 1.0) - (log_w.len() as f64).ln())
}

/// ELBO-style lower bound (1/N) Σ_i log w_i (−∞ if any weight is zero).
pub fn elbo(log_w: &[f64]) -> Result<f64> {
    check(log_w)?;
    Ok(log_w.iter().sum::<f64>() / log_w.len() as f64)
}

/// All of the above at once.
pub fn summarize_log_weights(log_w: &[f64]) -> Result<WeightSummary> {
    let ess = effective_sample_size(log_w)?;
    let n = log_w.len();
    Ok(WeightSummary {
        n,
        ess,
        normalized_ess: ess / n as f64,
        log_z: log_z_estimate(log_w)?,
        elbo: elbo(log_w)?,
    })
}

/// A self-normalised importance-sampling estimate of E_p[f] from samples of q.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedMean {
    /// μ̂ = Σ_i w_i f_i / Σ_i w_i.
    pub mean: f64,
    /// Delta-method standard error sqrt(Σ_i w_i² (f_i − μ̂)²) / Σ_i w_i (with equal weights:
    /// the plain standard error with divisor N).
    pub se: f64,
    /// ESS = (Σ w)² / Σ w².
    pub ess: f64,
}

/// Self-normalised importance estimate of E_p[f] from values `f_i` = f(x_i), x_i ~ q, and
/// log-weights log w_i = log p̃(x_i) − log q(x_i); `values` and `log_w` have one entry per
/// sample, and every value with a positive weight must be finite.
pub fn weighted_mean(log_w: &[f64], values: &[f64]) -> Result<WeightedMean> {
    check(log_w)?;
    if values.len() != log_w.len() {
        return Err(MetricsError::InvalidParameter {
            name: "values",
            value: format!("{} values for {} log-weights", values.len(), log_w.len()),
            reason: "one value per weight",
        });
    }
    let m = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|&l| (l - m).exp()).collect();
    if let Some(index) = values
        .iter()
        .zip(&w)
        .position(|(v, &wi)| wi > 0.0 && !v.is_finite())
    {
        return Err(MetricsError::NonFinite {
            what: "values",
            index,
            value: values[index],
        });
    }
    let sum: f64 = w.iter().sum();
    let mean = w
        .iter()
        .zip(values)
        .filter(|(&wi, _)| wi > 0.0)
        .map(|(wi, v)| wi * v)
        .sum::<f64>()
        / sum;
    let var: f64 = w
        .iter()
        .zip(values)
        .filter(|(&wi, _)| wi > 0.0)
        .map(|(wi, v)| (wi * (v - mean)).powi(2))
        .sum();
    Ok(WeightedMean {
        mean,
        se: var.sqrt() / sum,
        ess: sum * sum / w.iter().map(|wi| wi * wi).sum::<f64>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    #[test]
    fn equal_weights_give_n() {
        let lw = vec![-1234.5; 1000];
        let s = summarize_log_weights(&lw).unwrap();
        assert!((s.ess - 1000.0).abs() < 1e-9);
        assert!((s.normalized_ess - 1.0).abs() < 1e-12);
        assert!((s.log_z + 1234.5).abs() < 1e-9);
        assert!((s.elbo + 1234.5).abs() < 1e-9);
    }

    #[test]
    fn one_dominant_weight_gives_one() {
        let mut lw = vec![0.0; 1000];
        lw[17] = 800.0; // e^800 overflows f64: only the log-space path survives this.
        assert!((effective_sample_size(&lw).unwrap() - 1.0).abs() < 1e-12);
        let mut lw = vec![f64::NEG_INFINITY; 10];
        lw[3] = 0.5;
        assert_eq!(effective_sample_size(&lw).unwrap(), 1.0);
        assert!((log_z_estimate(&lw).unwrap() - (0.5 - 10f64.ln())).abs() < 1e-12);
        assert_eq!(elbo(&lw).unwrap(), f64::NEG_INFINITY);
    }

    #[test]
    fn log_z_of_known_importance_sampling_problem() {
        // Target p̃(x) = 3 exp(−x²/(2·0.8²)) ⇒ Z = 3·sqrt(2π)·0.8; proposal q = N(0, 1).
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let n = 200_000;
        let s = 0.8f64;
        let log_two_pi = (2.0 * std::f64::consts::PI).ln();
        let lw: Vec<f64> = (0..n)
            .map(|_| {
                let x: f64 = rng.sample(StandardNormal);
                let log_p = 3f64.ln() - x * x / (2.0 * s * s);
                let log_q = -0.5 * x * x - 0.5 * log_two_pi;
                log_p - log_q
            })
            .collect();
        let log_z = 3f64.ln() + 0.5 * log_two_pi + s.ln();
        let sum = summarize_log_weights(&lw).unwrap();
        // w = 3 sqrt(2π) exp(−x²(1/s² − 1)/2) is bounded; its relative sd is
        // sqrt(E[w²]/Z² − 1) = sqrt(1/(s·sqrt(2 − s²)) − 1) ≈ 0.27, so sd(log Ẑ) ≈ 0.27/sqrt(N).
        let tol = 6.0 * 0.27 / (n as f64).sqrt();
        assert!((sum.log_z - log_z).abs() < tol, "{} vs {log_z}", sum.log_z);
        assert!(sum.elbo < sum.log_z);
        // ESS/N → Z²/(N E[w²]) = s·sqrt(2 − s²).
        let ness = s * (2.0 - s * s).sqrt();
        assert!(
            (sum.normalized_ess - ness).abs() < 0.01,
            "{}",
            sum.normalized_ess
        );
    }

    #[test]
    fn rejects_bad_weights() {
        assert!(effective_sample_size(&[]).is_err());
        assert!(matches!(
            log_z_estimate(&[0.0, f64::NAN]),
            Err(MetricsError::NonFinite { index: 1, .. })
        ));
        assert!(elbo(&[f64::INFINITY]).is_err());
        assert!(effective_sample_size(&[f64::NEG_INFINITY; 3]).is_err());
    }

    #[test]
    fn weighted_mean_of_a_tilted_gaussian() {
        // q = N(0, 1), p ∝ q · exp(a x) = N(a, 1): E_p[x] = a, and the spread of the estimate
        // over seeds matches the reported standard error.
        let a = 0.5;
        let n = 4000;
        let (mut z, mut ses) = (Vec::new(), Vec::new());
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
            let lw: Vec<f64> = x.iter().map(|v| a * v).collect();
            let e = weighted_mean(&lw, &x).unwrap();
            // ESS/N → exp(−a²).
            assert!(
                (e.ess / n as f64 - (-a * a).exp()).abs() < 0.05,
                "{}",
                e.ess
            );
            z.push((e.mean - a) / e.se);
            ses.push(e.se);
        }
        let mean_z = z.iter().sum::<f64>() / z.len() as f64;
        let var_z = z.iter().map(|v| (v - mean_z).powi(2)).sum::<f64>() / (z.len() - 1) as f64;
        // 40 standardised errors: mean within 4/sqrt(40) of 0, variance within [0.5, 1.6]
        // (the 0.1 % tails of χ²₃₉ / 39).
        assert!(mean_z.abs() < 4.0 / 40f64.sqrt(), "mean z {mean_z}");
        assert!((0.5..1.6).contains(&var_z), "var z {var_z}");
    }

    #[test]
    fn weighted_mean_with_equal_weights_is_the_sample_mean() {
        let v = [1.0, 2.0, 4.0, 9.0];
        let e = weighted_mean(&[3.0; 4], &v).unwrap();
        assert!((e.mean - 4.0).abs() < 1e-12);
        let se = (v.iter().map(|x| (x - 4.0f64).powi(2)).sum::<f64>()).sqrt() / 4.0;
        assert!((e.se - se).abs() < 1e-12);
        assert!((e.ess - 4.0).abs() < 1e-12);
        // A zero weight ignores its value, even a NaN one; a weighted NaN is an error.
        let e = weighted_mean(&[0.0, f64::NEG_INFINITY], &[2.0, f64::NAN]).unwrap();
        assert_eq!(e.mean, 2.0);
        assert!(weighted_mean(&[0.0, 0.0], &[2.0, f64::NAN]).is_err());
        assert!(weighted_mean(&[0.0], &[1.0, 2.0]).is_err());
    }
}
