//! 1-D histograms (energies, interatomic distances, torsions), total variation and KL between histograms on common bins.

use crate::data::{check_finite, check_layout, checked_rows};
use crate::{MetricsError, ParticleLayout, Result};

/// A histogram of scalars on `bins` equal-width bins covering [lo, hi]; values outside are
/// counted in `underflow` / `overflow` (the last bin is closed: x = hi falls in it).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    lo: f64,
    hi: f64,
    counts: Vec<u64>,
    underflow: u64,
    overflow: u64,
}

impl Histogram {
    /// An empty histogram; errors unless lo < hi are finite and bins ≥ 1.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Result<Self> {
        if bins == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "bins",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(MetricsError::InvalidParameter {
                name: "histogram range",
                value: format!("[{lo}, {hi}]"),
                reason: "needs finite lo < hi",
            });
        }
        Ok(Self {
            lo,
            hi,
            counts: vec![0; bins],
            underflow: 0,
            overflow: 0,
        })
    }

    /// Histogram of `samples` on [lo, hi] with `bins` bins; errors on non-finite samples.
    pub fn from_samples(samples: &[f64], lo: f64, hi: f64, bins: usize) -> Result<Self> {
        let mut h = Self::new(lo, hi, bins)?;
        check_finite("histogram samples", samples)?;
        for &x in samples {
            h.push(x);
        }
        Ok(h)
    }

    /// Histogram of `samples` on their own range [min, max] (widened by 0.5 on each side
    /// when all samples are equal).
    pub fn auto(samples: &[f64], bins: usize) -> Result<Self> {
        let (lo, hi) = range_of(&[samples])?;
        Self::from_samples(samples, lo, hi, bins)
    }

    /// Adds one value; errors on NaN/inf.
    pub fn add(&mut self, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(MetricsError::NonFinite {
                what: "histogram value",
                index: 0,
                value: x,
            });
        }
        self.push(x);
        Ok(())
    }

    fn push(&mut self, x: f64) {
        if x < self.lo {
            self.underflow += 1;
        } else if x > self.hi {
            self.overflow += 1;
        } else {
            let bins = self.counts.len();
            let k = (((x - self.lo) / self.bin_width()) as usize).min(bins - 1);
            self.counts[k] += 1;
        }
    }

    /// Lower edge of the first bin.
    pub fn lo(&self) -> f64 {
        self.lo
    }

    /// Upper edge of the last bin.
    pub fn hi(&self) -> f64 {
        self.hi
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.counts.len()
    }

    /// Bin width (hi − lo) / bins.
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }

    /// The bins + 1 edges lo, lo + w, …, hi.
    pub fn edges(&self) -> Vec<f64> {
        let w = self.bin_width();
        (0..=self.bins())
            .map(|k| {
                if k == self.bins() {
                    self.hi
                } else {
                    self.lo + k as f64 * w
                }
            })
            .collect()
    }

    /// Bin centres lo + (k + ½) w.
    pub fn centers(&self) -> Vec<f64> {
        let w = self.bin_width();
        (0..self.bins())
            .map(|k| self.lo + (k as f64 + 0.5) * w)
            .collect()
    }

    /// Counts per bin.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Values below lo.
    pub fn underflow(&self) -> u64 {
        self.underflow
    }

    /// Values above hi.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// All values added, in range or not.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.underflow + self.overflow
    }

    /// p_k = count_k / total (all values, so the bins sum to the in-range fraction).
    pub fn probabilities(&self) -> Vec<f64> {
        let t = self.total().max(1) as f64;
        self.counts.iter().map(|&c| c as f64 / t).collect()
    }

    /// Density estimate p_k / w (integrates to the in-range fraction over [lo, hi]).
    pub fn density(&self) -> Vec<f64> {
        let w = self.bin_width();
        self.probabilities().into_iter().map(|p| p / w).collect()
    }

    /// Same bin edges (lo, hi, bins) as `other`.
    pub fn same_bins(&self, other: &Histogram) -> bool {
        self.lo == other.lo && self.hi == other.hi && self.bins() == other.bins()
    }

    /// Probabilities of the bins followed by the underflow and overflow cells.
    fn cells(&self) -> Result<Vec<f64>> {
        let t = self.total();
        if t == 0 {
            return Err(MetricsError::Empty {
                what: "histogram (no values)",
            });
        }
        let t = t as f64;
        Ok(self
            .counts
            .iter()
            .chain([&self.underflow, &self.overflow])
            .map(|&c| c as f64 / t)
            .collect())
    }
}

/// The common range [min, max] of several samples (widened when degenerate).
fn range_of(samples: &[&[f64]]) -> Result<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for s in samples {
        check_finite("histogram samples", s)?;
        for &x in s.iter() {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if lo > hi {
        return Err(MetricsError::Empty {
            what: "histogram samples",
        });
    }
    if lo == hi {
        return Ok((lo - 0.5, hi + 0.5));
    }
    Ok((lo, hi))
}

/// Histograms of two samples on common bins spanning both ([min, max] of the union), e.g. for
/// energy histograms of generated vs reference samples.
pub fn common_histograms(a: &[f64], b: &[f64], bins: usize) -> Result<(Histogram, Histogram)> {
    if a.is_empty() {
        return Err(MetricsError::Empty {
            what: "histogram sample a",
        });
    }
    if b.is_empty() {
        return Err(MetricsError::Empty {
            what: "histogram sample b",
        });
    }
    let (lo, hi) = range_of(&[a, b])?;
    Ok((
        Histogram::from_samples(a, lo, hi, bins)?,
        Histogram::from_samples(b, lo, hi, bins)?,
    ))
}

fn check_same_bins(p: &Histogram, q: &Histogram) -> Result<()> {
    if !p.same_bins(q) {
        return Err(MetricsError::InvalidParameter {
            name: "histogram bins",
            value: format!(
                "[{}, {}]/{} vs [{}, {}]/{}",
                p.lo,
                p.hi,
                p.bins(),
                q.lo,
                q.hi,
                q.bins()
            ),
            reason: "both histograms must share their bin edges",
        });
    }
    Ok(())
}

/// Total variation distance between two histograms on the same bins:
/// TVD = ½ Σ_k |p_k − q_k|, with the underflow and overflow counted as two more cells, so
/// 0 ≤ TVD ≤ 1.
pub fn total_variation(p: &Histogram, q: &Histogram) -> Result<f64> {
    check_same_bins(p, q)?;
    let (pc, qc) = (p.cells()?, q.cells()?);
    Ok(0.5 * pc.iter().zip(&qc).map(|(a, b)| (a - b).abs()).sum::<f64>())
}

/// KL(p ‖ q) = Σ_k p̃_k ln(p̃_k / q̃_k) between two histograms on the same bins, smoothed as
/// p̃_k = (p_k + ε) / Σ_l (p_l + ε) (likewise q̃) over the bins and the two outside cells.
/// PITA's torsion marginals use 200 bins and ε = 1e-5 (REFERENCE §5).
pub fn kl_divergence(p: &Histogram, q: &Histogram, eps: f64) -> Result<f64> {
    check_same_bins(p, q)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(MetricsError::InvalidParameter {
            name: "eps",
            value: eps.to_string(),
            reason: "must be finite and ≥ 0",
        });
    }
    let smooth = |c: Vec<f64>| {
        let z: f64 = c.iter().map(|v| v + eps).sum();
        c.into_iter().map(|v| (v + eps) / z).collect::<Vec<_>>()
    };
    let (ps, qs) = (smooth(p.cells()?), smooth(q.cells()?));
    Ok(ps
        .iter()
        .zip(&qs)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, b)| a * (a / b).ln())
        .sum())
}

/// All interatomic distances d_kl = ‖x_k − x_l‖, k < l, of every configuration:
/// `[n, n_p(n_p − 1)/2]` row-major, pairs in the order (0,1), (0,2), …, (n_p−2, n_p−1).
pub fn interatomic_distances(xs: &[f64], layout: ParticleLayout) -> Result<Vec<f64>> {
    let dim = layout.dim();
    check_layout(layout, dim)?;
    checked_rows("interatomic distance input", xs, dim)?;
    let (np, d) = (layout.n_particles, layout.spatial_dim);
    let mut out = Vec::with_capacity(xs.len() / dim * np * np.saturating_sub(1) / 2);
    for row in xs.chunks_exact(dim) {
        for k in 0..np {
            for l in k + 1..np {
                let s: f64 = (0..d)
                    .map(|a| (row[k * d + a] - row[l * d + a]).powi(2))
                    .sum();
                out.push(s.sqrt());
            }
        }
    }
    Ok(out)
}

/// Interatomic-distance histograms of two sample sets on common bins and their TVD.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramComparison {
    /// Histogram of the first set.
    pub a: Histogram,
    /// Histogram of the second set (same bins).
    pub b: Histogram,
    /// ½ Σ_k |p_k − q_k|.
    pub tvd: f64,
}

/// Histograms of all i<j interatomic distances of `a` and `b` (`[n, dim]` each, sizes may
/// differ) on `bins` common bins spanning both, and their total variation distance.
pub fn distance_histogram_tvd(
    a: &[f64],
    b: &[f64],
    layout: ParticleLayout,
    bins: usize,
) -> Result<HistogramComparison> {
    let da = interatomic_distances(a, layout)?;
    let db = interatomic_distances(b, layout)?;
    let (ha, hb) = common_histograms(&da, &db, bins)?;
    let tvd = total_variation(&ha, &hb)?;
    Ok(HistogramComparison { a: ha, b: hb, tvd })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    #[test]
    fn bins_edges_and_density() {
        let h = Histogram::from_samples(&[0.0, 0.1, 0.5, 1.0, -1.0, 2.0], 0.0, 1.0, 4).unwrap();
        assert_eq!(h.counts(), &[2, 0, 1, 1]);
        assert_eq!((h.underflow(), h.overflow(), h.total()), (1, 1, 6));
        assert_eq!(h.edges(), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(h.centers()[0], 0.125);
        let integral: f64 = h.density().iter().map(|d| d * h.bin_width()).sum();
        assert!((integral - 4.0 / 6.0).abs() < 1e-15);
        assert!(Histogram::new(1.0, 1.0, 3).is_err());
        assert!(Histogram::new(0.0, 1.0, 0).is_err());
    }

    #[test]
    fn tvd_and_kl_on_known_histograms() {
        let p = Histogram::from_samples(&[0.1, 0.1, 0.6, 0.6], 0.0, 1.0, 2).unwrap();
        let q = Histogram::from_samples(&[0.1, 0.6, 0.6, 0.6], 0.0, 1.0, 2).unwrap();
        // p = (½, ½), q = (¼, ¾): TVD = ½(¼ + ¼) = ¼.
        assert!((total_variation(&p, &q).unwrap() - 0.25).abs() < 1e-15);
        assert_eq!(total_variation(&p, &p).unwrap(), 0.0);
        let kl = kl_divergence(&p, &q, 0.0).unwrap();
        let exact = 0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl - exact).abs() < 1e-12);
        let other = Histogram::new(0.0, 2.0, 2).unwrap();
        assert!(total_variation(&p, &other).is_err());
        // Disjoint supports: TVD 1.
        let r = Histogram::from_samples(&[5.0], 0.0, 1.0, 2).unwrap();
        assert!((total_variation(&p, &r).unwrap() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn interatomic_distances_of_a_triangle() {
        // 3-4-5 right triangle in 2-D.
        let x = [0.0, 0.0, 3.0, 0.0, 0.0, 4.0];
        let d = interatomic_distances(&x, ParticleLayout::new(3, 2)).unwrap();
        assert_eq!(d, vec![3.0, 4.0, 5.0]);
    }

    #[test]
    fn distance_tvd_small_for_same_distribution_large_for_different() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let layout = ParticleLayout::new(13, 3);
        let mut sample = |n: usize, s: f64| -> Vec<f64> {
            (0..n * 39)
                .map(|_| s * rng.sample::<f64, _>(StandardNormal))
                .collect()
        };
        let (a, b, c) = (sample(400, 1.0), sample(400, 1.0), sample(400, 1.5));
        let same = distance_histogram_tvd(&a, &b, layout, 50).unwrap().tvd;
        let diff = distance_histogram_tvd(&a, &c, layout, 50).unwrap().tvd;
        // 31 200 distances per set over 50 bins: sampling TVD ≈ ½ Σ sqrt(2 p_k / n) ~ 0.03.
        assert!(same < 0.06, "{same}");
        assert!(diff > 0.2, "{diff}");
    }
}
