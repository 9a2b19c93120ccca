//! Mixing diagnostics: autocorrelation time, effective sample size and split-R̂.

use diffsamp_metrics::SortedFinite;
use serde::{Deserialize, Serialize};

/// Mixing diagnostics of the target-temperature energy over the sampling phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Integrated autocorrelation time τ of E per chain, in kernel steps, `[n_chains]`.
    pub energy_iat_steps: Vec<f64>,
    /// Multi-chain effective sample size of E over every sampling step of every chain.
    pub energy_ess: f64,
    /// Split-R̂ of E over the chains (≈ 1 when the chains agree; > 1.01 is suspicious).
    pub energy_split_rhat: f64,
    /// thinning / median τ: ≳ 1 means the kept samples are nearly independent.
    pub thinning_over_iat: f64,
    /// Standard error of the mean energy from the spread of the per-chain means over the
    /// sampling phase, sd(chain means)/√M (chains are independent, so this holds whatever
    /// the autocorrelation; rough with few chains). NaN with one chain.
    pub energy_mean_se: f64,
}

impl Diagnostics {
    /// Diagnostics of per-chain energy traces (one value per step) kept every `thinning` steps.
    pub fn from_traces(traces: &[Vec<f64>], thinning: usize) -> Self {
        let energy_iat_steps: Vec<f64> =
            traces.iter().map(|t| integrated_autocorr_time(t)).collect();
        let median = SortedFinite::new(energy_iat_steps.iter().copied())
            .nearest(0.5)
            .unwrap_or(f64::NAN);
        Diagnostics {
            energy_mean_se: chain_means_se(traces),
            energy_ess: effective_sample_size(traces),
            energy_split_rhat: split_rhat(traces),
            thinning_over_iat: thinning as f64 / median,
            energy_iat_steps,
        }
    }
}

/// sd(chain means)/√M over M traces (NaN for M < 2 or an empty trace).
pub fn chain_means_se(traces: &[Vec<f64>]) -> f64 {
    let m = traces.len();
    if m < 2 || traces.iter().any(Vec::is_empty) {
        return f64::NAN;
    }
    let means: Vec<f64> = traces
        .iter()
        .map(|t| t.iter().sum::<f64>() / t.len() as f64)
        .collect();
    let mu = means.iter().sum::<f64>() / m as f64;
    let var = means.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (m as f64 - 1.0);
    (var / m as f64).sqrt()
}

/// In-place radix-2 complex FFT (`re.len()` a power of two); `inverse` uses e^{+2πi kn/N}
/// without the 1/N factor.
fn fft(re: &mut [f64], im: &mut [f64], inverse: bool) {
    let n = re.len();
    debug_assert!(n.is_power_of_two() && im.len() == n);
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let ang = sign * 2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Biased autocovariance γ(t) = (1/N) Σ_{i<N−t} (x_i − x̄)(x_{i+t} − x̄), t = 0..N−1, by FFT.
pub fn autocovariance(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let m = (2 * n).next_power_of_two();
    let mut re = vec![0.0; m];
    let mut im = vec![0.0; m];
    for (r, v) in re.iter_mut().zip(x) {
        *r = v - mean;
    }
    fft(&mut re, &mut im, false);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    fft(&mut re, &mut im, true);
    re.truncate(n);
    let scale = 1.0 / (m as f64 * n as f64);
    re.iter_mut().for_each(|v| *v *= scale);
    re
}

/// Multi-chain effective sample size (Vehtari et al. 2021, without rank normalisation) of
/// equal-length traces (longer ones are truncated to the shortest):
///
/// ρ̂_t = 1 − (W − mean_m γ_m(t)) / var⁺,  var⁺ = (N−1)/N · W + B/N,
/// τ = −1 + 2 Σ_k P_k with P_k = ρ̂_{2k} + ρ̂_{2k+1} summed while positive and made monotone
/// (Geyer's initial monotone sequence), ESS = M N / τ.
///
/// NaN when fewer than 4 steps per chain or zero variance.
pub fn effective_sample_size(traces: &[Vec<f64>]) -> f64 {
    let m = traces.len();
    let n = traces.iter().map(Vec::len).min().unwrap_or(0);
    if m == 0 || n < 4 {
        return f64::NAN;
    }
    let nf = n as f64;
    let acovs: Vec<Vec<f64>> = traces.iter().map(|t| autocovariance(&t[..n])).collect();
    let means: Vec<f64> = traces
        .iter()
        .map(|t| t[..n].iter().sum::<f64>() / nf)
        .collect();
    let w = acovs.iter().map(|a| a[0] * nf / (nf - 1.0)).sum::<f64>() / m as f64;
    let b_over_n = if m > 1 {
        let mu = means.iter().sum::<f64>() / m as f64;
        means.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (m as f64 - 1.0)
    } else {
        0.0
    };
    let var_plus = (nf - 1.0) / nf * w + b_over_n;
    if var_plus.is_nan() || var_plus <= 0.0 {
        return f64::NAN;
    }
    let rho = |t: usize| -> f64 {
        if t == 0 {
            return 1.0;
        }
        let mean_acov = acovs.iter().map(|a| a[t]).sum::<f64>() / m as f64;
        1.0 - (w - mean_acov) / var_plus
    };
    let mut tau = -1.0;
    let mut prev = f64::INFINITY;
    let mut k = 0;
    while 2 * k + 1 < n {
        let p = rho(2 * k) + rho(2 * k + 1);
        if p <= 0.0 {
            break;
        }
        let p = p.min(prev);
        tau += 2.0 * p;
        prev = p;
        k += 1;
    }
    let total = m as f64 * nf;
    let tau = tau.max(1.0 / total.log10());
    total / tau
}

/// Integrated autocorrelation time τ = N / ESS of a single trace (in steps); NaN when the
/// trace is too short or constant.
pub fn integrated_autocorr_time(trace: &[f64]) -> f64 {
    let ess = effective_sample_size(std::slice::from_ref(&trace.to_vec()));
    trace.len() as f64 / ess
}

/// Split-R̂ (Gelman et al., BDA3 §11.4): every trace is cut into two halves (truncated to
/// the shortest, an odd middle element dropped), and with n the half length, W the mean
/// within-half variance and B/n the variance of the half means,
/// R̂ = sqrt(((n−1)/n · W + B/n) / W). NaN with fewer than 4 steps per chain.
pub fn split_rhat(traces: &[Vec<f64>]) -> f64 {
    let n_full = traces.iter().map(Vec::len).min().unwrap_or(0);
    let n = n_full / 2;
    if traces.is_empty() || n < 2 {
        return f64::NAN;
    }
    let halves: Vec<&[f64]> = traces
        .iter()
        .flat_map(|t| [&t[..n], &t[n_full - n..n_full]])
        .collect();
    let nf = n as f64;
    let mut means = Vec::with_capacity(halves.len());
    let mut w = 0.0;
    for h in &halves {
        let mu = h.iter().sum::<f64>() / nf;
        w += h.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (nf - 1.0);
        means.push(mu);
    }
    let j = halves.len() as f64;
    w /= j;
    let grand = means.iter().sum::<f64>() / j;
    let b_over_n = means.iter().map(|v| (v - grand) * (v - grand)).sum::<f64>() / (j - 1.0);
    (((nf - 1.0) / nf * w + b_over_n) / w).sqrt()
}

/// Mean and population standard deviation (1/n) of `v`.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mu = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mu) * (a - mu)).sum::<f64>() / n;
    (mu, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn ar1(phi: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = 0.0;
        (0..n)
            .map(|_| {
                x = phi * x + rng.sample::<f64, _>(rand_distr::StandardNormal);
                x
            })
            .collect()
    }

    #[test]
    fn fft_autocovariance_matches_the_direct_sum() {
        let x = ar1(0.5, 37, 1);
        let a = autocovariance(&x);
        let mu = x.iter().sum::<f64>() / 37.0;
        for t in [0, 1, 5, 36] {
            let direct: f64 = (0..37 - t)
                .map(|i| (x[i] - mu) * (x[i + t] - mu))
                .sum::<f64>()
                / 37.0;
            assert!(
                (a[t] - direct).abs() < 1e-10,
                "lag {t}: {} vs {direct}",
                a[t]
            );
        }
    }

    /// AR(1) with coefficient φ has τ = (1 + φ)/(1 − φ) = 9 for φ = 0.8.
    #[test]
    fn iat_of_an_ar1_process() {
        let traces: Vec<Vec<f64>> = (0..8).map(|s| ar1(0.8, 20_000, s)).collect();
        let ess = effective_sample_size(&traces);
        let tau = 8.0 * 20_000.0 / ess;
        assert!((tau - 9.0).abs() < 0.9, "tau {tau}");
        let tau1 = integrated_autocorr_time(&traces[0]);
        assert!((tau1 - 9.0).abs() < 2.0, "tau1 {tau1}");
    }

    #[test]
    fn split_rhat_detects_disagreeing_chains() {
        let good: Vec<Vec<f64>> = (0..4).map(|s| ar1(0.5, 4000, s)).collect();
        let r = split_rhat(&good);
        assert!((r - 1.0).abs() < 0.01, "{r}");
        let mut bad = good.clone();
        bad[0].iter_mut().for_each(|v| *v += 3.0);
        assert!(split_rhat(&bad) > 1.2);
    }
}
