//! Mode coverage of mixture targets: nearest-centre assignment, per-mode counts, modes covered, TVD to uniform weights.

use rayon::prelude::*;

use crate::data::checked_rows;
use crate::{MetricsError, Result};

/// When a mode counts as covered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CoverageThreshold {
    /// At least this many samples (≥ 1).
    Count(usize),
    /// At least max(1, ⌈f · N/k⌉) samples: a fraction f of the count each of the k modes gets
    /// under equal weights with N samples.
    FractionOfUniform(f64),
}

/// Settings of [`mode_coverage`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeCoverageConfig {
    /// A sample is assigned to its nearest centre only if within this Euclidean distance;
    /// `None` (default) assigns every sample. For GMM-40 (std 1) a radius of 3–4 stds is a
    /// natural choice.
    pub radius: Option<f64>,
    /// Coverage threshold. Default `FractionOfUniform(0.1)`: a mode is covered when it holds
    /// at least a tenth of its equal share (and ≥ 1 sample), so a few stray samples do not
    /// count as coverage while a mode held at 10 % of its weight still does.
    pub threshold: CoverageThreshold,
}

impl Default for ModeCoverageConfig {
    fn default() -> Self {
        Self {
            radius: None,
            threshold: CoverageThreshold::FractionOfUniform(0.1),
        }
    }
}

/// Mode-coverage report.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeCoverage {
    /// Samples assigned to each mode.
    pub counts: Vec<usize>,
    /// Samples farther than the radius from every centre.
    pub unassigned: usize,
    /// Number of modes with `counts ≥ min_count`.
    pub covered: usize,
    /// The resolved minimal count.
    pub min_count: usize,
    /// TVD between the empirical distribution over {modes} ∪ {unassigned} and the uniform
    /// distribution over the k modes: ½ (Σ_m |c_m/N − 1/k| + unassigned/N) ∈ [0, 1].
    pub tvd_to_uniform: f64,
}

/// Assigns each sample (`[N, d]`) to its nearest centre (`centres`: `[k, d]`), within
/// `config.radius` if set, and reports per-mode counts, modes covered and the TVD of the mode
/// weights to uniform.
pub fn mode_coverage(
    samples: &[f64],
    centres: &[f64],
    dim: usize,
    config: &ModeCoverageConfig,
) -> Result<ModeCoverage> {
    let n = checked_rows("mode coverage samples", samples, dim)?;
    let k = checked_rows("mode centres", centres, dim)?;
    if let Some(r) = config.radius {
        if !(r.is_finite() && r > 0.0) {
            return Err(MetricsError::InvalidParameter {
                name: "radius",
                value: r.to_string(),
                reason: "must be finite and > 0",
            });
        }
    }
    let min_count = match config.threshold {
        CoverageThreshold::Count(c) if c >= 1 => c,
        CoverageThreshold::FractionOfUniform(f) if f.is_finite() && f >= 0.0 => {
            ((f * n as f64 / k as f64).ceil() as usize).max(1)
        }
        other => {
            return Err(MetricsError::InvalidParameter {
                name: "threshold",
                value: format!("{other:?}"),
                reason: "Count must be ≥ 1, FractionOfUniform finite and ≥ 0",
            })
        }
    };
    let r2 = config.radius.map(|r| r * r);
    let assigned: Vec<Option<usize>> = samples
        .par_chunks(dim)
        .map(|x| {
            let (mut best, mut arg) = (f64::INFINITY, 0);
            for (m, c) in centres.chunks_exact(dim).enumerate() {
                let d2: f64 = x.iter().zip(c).map(|(p, q)| (p - q) * (p - q)).sum();
                if d2 < best {
                    best = d2;
                    arg = m;
                }
            }
            match r2 {
                Some(r2) if best > r2 => None,
                _ => Some(arg),
            }
        })
        .collect();
    let mut counts = vec![0usize; k];
    let mut unassigned = 0;
    for a in assigned {
        match a {
            Some(m) => counts[m] += 1,
            None => unassigned += 1,
        }
    }
    let covered = counts.iter().filter(|&&c| c >= min_count).count();
    let (nf, kf) = (n as f64, k as f64);
    let tvd_to_uniform = 0.5
        * (counts
            .iter()
            .map(|&c| (c as f64 / nf - 1.0 / kf).abs())
            .sum::<f64>()
            + unassigned as f64 / nf);
    Ok(ModeCoverage {
        counts,
        unassigned,
        covered,
        min_count,
        tvd_to_uniform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn centres() -> Vec<f64> {
        // Four well-separated modes in 2-D.
        vec![-10.0, -10.0, -10.0, 10.0, 10.0, -10.0, 10.0, 10.0]
    }

    #[test]
    fn balanced_samples_cover_all_modes() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let c = centres();
        let n = 4000;
        let xs: Vec<f64> = (0..n)
            .flat_map(|i| {
                let m = i % 4;
                let (cx, cy) = (c[2 * m], c[2 * m + 1]);
                let dx: f64 = rng.sample(StandardNormal);
                let dy: f64 = rng.sample(StandardNormal);
                [cx + dx, cy + dy]
            })
            .collect();
        let r = mode_coverage(&xs, &c, 2, &ModeCoverageConfig::default()).unwrap();
        assert_eq!(r.counts, vec![1000; 4]);
        assert_eq!((r.covered, r.unassigned, r.min_count), (4, 0, 100));
        assert_eq!(r.tvd_to_uniform, 0.0);
    }

    #[test]
    fn collapsed_sampler_is_reported() {
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let c = centres();
        // 990 samples on mode 3, 10 on mode 0, plus 0 elsewhere; 20 far outliers.
        let mut xs = Vec::new();
        for i in 0..1000 {
            let m = if i < 10 { 0 } else { 3 };
            let dx: f64 = rng.sample(StandardNormal);
            xs.extend([c[2 * m] + dx, c[2 * m + 1] + rng.random::<f64>()]);
        }
        xs.extend(std::iter::repeat_n([0.0, 0.0], 20).flatten());
        let cfg = ModeCoverageConfig {
            radius: Some(5.0),
            ..Default::default()
        };
        let r = mode_coverage(&xs, &c, 2, &cfg).unwrap();
        assert_eq!(r.counts, vec![10, 0, 0, 990]);
        assert_eq!(r.unassigned, 20);
        // min_count = ⌈0.1 · 1020 / 4⌉ = 26: the 10 stray samples on mode 0 do not count.
        assert_eq!((r.min_count, r.covered), (26, 1));
        let n = 1020.0;
        let exact =
            0.5 * ((10.0 / n - 0.25f64).abs() + 0.5 + (990.0 / n - 0.25f64).abs() + 20.0 / n);
        assert!((r.tvd_to_uniform - exact).abs() < 1e-15);
        let one = ModeCoverageConfig {
            radius: Some(5.0),
            threshold: CoverageThreshold::Count(1),
        };
        assert_eq!(mode_coverage(&xs, &c, 2, &one).unwrap().covered, 2);
    }

    #[test]
    fn rejects_bad_arguments() {
        let c = centres();
        assert!(mode_coverage(&[0.0; 3], &c, 2, &ModeCoverageConfig::default()).is_err());
        let bad = ModeCoverageConfig {
            radius: Some(-1.0),
            ..Default::default()
        };
        assert!(mode_coverage(&[0.0; 4], &c, 2, &bad).is_err());
        let bad = ModeCoverageConfig {
            threshold: CoverageThreshold::Count(0),
            ..Default::default()
        };
        assert!(mode_coverage(&[0.0; 4], &c, 2, &bad).is_err());
    }
}
