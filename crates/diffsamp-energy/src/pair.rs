//! Exact sampling of a two-particle system by radial quadrature (e.g. `dw2`: one pair of DW-4).

use crate::{Energy, EnergyError, ExactSampler, LogPartition, Particles};
use rand::Rng;
use rand_distr::StandardNormal;

/// Quadrature of a translation- and rotation-invariant energy of two particles in s ≤ 3
/// dimensions, which depends on the pair distance d alone: E(x) = u(‖x_1 − x_2‖).
///
/// On the zero-COM subspace (x_2 = −x_1, free dimension s) the distance d = ‖x_1 − x_2‖ has
/// density ∝ d^{s−1} e^{−u(d)} and the direction is uniform, and
/// Z = 2^{−s/2} |S^{s−1}| ∫_0^∞ d^{s−1} e^{−u(d)} dd
/// (the subspace vector (x_1, −x_1) has norm d/√2; |S^{s−1}| = 2, 2π, 4π), the convention of
/// the samplers' importance weights. The integral runs over `points` cells of [0, d_max]
/// (midpoint rule, which is also the sampling law: a cell by its mass, then uniform in it).
#[derive(Clone, Debug)]
pub struct PairQuadrature<E> {
    energy: E,
    layout: Particles,
    d_max: f64,
    /// Cumulative cell masses, normalised to end at 1.
    cdf: Vec<f64>,
    log_z: f64,
    mean_energy: f64,
}

impl<E: Energy> PairQuadrature<E> {
    /// The quadrature of `energy` (two particles, s ≤ 3) on `points` ≥ 1000 cells of
    /// [0, `d_max`]. Fails when the energy is not a two-particle system, or when the density at
    /// d_max is not negligible (more than 10⁻¹² of its peak): the cut-off would lose mass.
    pub fn new(energy: E, d_max: f64, points: usize) -> Result<Self, EnergyError> {
        let layout = match energy.particles() {
            Some(p) if p.n == 2 && p.spatial <= 3 => p,
            _ => {
                return Err(EnergyError::InvalidParameter {
                    name: "energy",
                    value: energy.name().to_string(),
                    why: "pair quadrature needs two particles in at most 3 dimensions",
                })
            }
        };
        if !(d_max.is_finite() && d_max > 0.0) || points < 1000 {
            return Err(EnergyError::InvalidParameter {
                name: "d_max",
                value: format!("{d_max} ({points} points)"),
                why: "need a positive cut-off and at least 1000 points",
            });
        }
        let s = layout.spatial as i32;
        let h = d_max / points as f64;
        let u: Vec<f64> = (0..points)
            .map(|i| pair_energy(&energy, layout, (i as f64 + 0.5) * h))
            .collect();
        let log_density = |i: usize, u: f64| (s - 1) as f64 * ((i as f64 + 0.5) * h).ln() - u;
        let peak = u
            .iter()
            .enumerate()
            .map(|(i, &v)| log_density(i, v))
            .fold(f64::NEG_INFINITY, f64::max);
        let tail = log_density(points - 1, u[points - 1]);
        if !peak.is_finite() || tail - peak > -(1e12f64.ln()) {
            return Err(EnergyError::InvalidParameter {
                name: "d_max",
                value: d_max.to_string(),
                why: "the pair density is not negligible at the cut-off",
            });
        }
        let w: Vec<f64> = u
            .iter()
            .enumerate()
            .map(|(i, &v)| (log_density(i, v) - peak).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mean_energy = w.iter().zip(&u).map(|(w, u)| w * u).sum::<f64>() / total;
        let mut acc = 0.0;
        let cdf = w
            .iter()
            .map(|v| {
                acc += v / total;
                acc
            })
            .collect();
        let sphere = match s {
            1 => 2.0,
            2 => std::f64::consts::TAU,
            _ => 4.0 * std::f64::consts::PI,
        };
        let log_z =
            -0.5 * s as f64 * std::f64::consts::LN_2 + sphere.ln() + peak + (total * h).ln();
        Ok(Self {
            energy,
            layout,
            d_max,
            cdf,
            log_z,
            mean_energy,
        })
    }

    /// ⟨E⟩ under p* by the same quadrature.
    pub fn mean_energy(&self) -> f64 {
        self.mean_energy
    }

    /// P(d < r) under p* by the same quadrature (to the nearest cell edge).
    pub fn distance_cdf(&self, r: f64) -> f64 {
        let cells = (r / self.d_max * self.cdf.len() as f64).round() as usize;
        match cells {
            0 => 0.0,
            c => self.cdf[c.min(self.cdf.len()) - 1],
        }
    }

    /// The wrapped energy.
    pub fn inner(&self) -> &E {
        &self.energy
    }
}

/// u(d): the energy of the two particles at ±(d/2) e_1.
fn pair_energy<E: Energy>(energy: &E, layout: Particles, d: f64) -> f64 {
    let mut x = vec![0.0; layout.dim()];
    x[0] = 0.5 * d;
    x[layout.spatial] = -0.5 * d;
    energy.energy(&x)
}

impl<E: Energy> Energy for PairQuadrature<E> {
    fn name(&self) -> &str {
        self.energy.name()
    }

    fn dim(&self) -> usize {
        self.energy.dim()
    }

    fn particles(&self) -> Option<Particles> {
        Some(self.layout)
    }

    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.energy.energy_grad(x, grad)
    }

    fn energy(&self, x: &[f64]) -> f64 {
        self.energy.energy(x)
    }
}

impl<E: Energy> ExactSampler for PairQuadrature<E> {
    /// d from the cell masses (then uniform within the cell), a uniform direction n, and
    /// x_1 = (d/2) n, x_2 = −x_1.
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        let s = self.layout.spatial;
        let h = self.d_max / self.cdf.len() as f64;
        let mut out = Vec::with_capacity(n * 2 * s);
        for _ in 0..n {
            let u: f64 = rng.random();
            let cell = self.cdf.partition_point(|&c| c < u);
            let d = (cell.min(self.cdf.len() - 1) as f64 + rng.random::<f64>()) * h;
            let dir: Vec<f64> = loop {
                let v: Vec<f64> = (0..s).map(|_| rng.sample(StandardNormal)).collect();
                let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
                if norm > 1e-12 {
                    break v.iter().map(|a| a / norm).collect();
                }
            };
            out.extend(dir.iter().map(|a| 0.5 * d * a));
            out.extend(dir.iter().map(|a| -0.5 * d * a));
        }
        out
    }
}

impl<E: Energy> LogPartition for PairQuadrature<E> {
    fn log_z(&self) -> f64 {
        self.log_z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;
    use crate::{DoubleWell, HarmonicParticles};

    fn dw2() -> PairQuadrature<DoubleWell> {
        PairQuadrature::new(DoubleWell::dw2(), 12.0, 120_000).unwrap()
    }

    #[test]
    fn log_z_matches_a_cartesian_quadrature_and_the_harmonic_closed_form() {
        // Z = 2^{−s/2} ∫_{R^s} e^{−u(‖r‖)} dr on a Cartesian grid of the relative vector r.
        let q = dw2();
        let (n, l) = (1200, 12.0);
        let h = 2.0 * l / n as f64;
        let mut z = 0.0;
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (-l + (i as f64 + 0.5) * h, -l + (j as f64 + 0.5) * h);
                let d = (a * a + b * b).sqrt();
                z += (-pair_energy(q.inner(), Particles { n: 2, spatial: 2 }, d)).exp();
            }
        }
        let log_z = (0.5 * z * h * h).ln();
        assert!((q.log_z() - log_z).abs() < 1e-4, "{} vs {log_z}", q.log_z());
        // Harmonic pairs have a closed form in every dimension.
        for s in 1..=3 {
            let h = HarmonicParticles::new("h2", 2, s, 0.8).unwrap();
            let q = PairQuadrature::new(h.clone(), 15.0, 20_000).unwrap();
            assert!(
                (q.log_z() - h.log_z()).abs() < 1e-6,
                "s = {s}: {} vs {}",
                q.log_z(),
                h.log_z()
            );
            // ⟨E⟩ = s / 2.
            assert!((q.mean_energy() - 0.5 * s as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn samples_follow_the_pair_distance_law() {
        let q = dw2();
        let n = 40_000;
        let xs = q.sample(n, &mut rng(4));
        let mut short = 0usize;
        let mut e_sum = 0.0;
        let mut e_sq = 0.0;
        for x in xs.chunks_exact(4) {
            assert!((x[0] + x[2]).abs() < 1e-12 && (x[1] + x[3]).abs() < 1e-12);
            let d = ((x[0] - x[2]).powi(2) + (x[1] - x[3]).powi(2)).sqrt();
            short += usize::from(d < 4.0);
            let e = Energy::energy(&q, x);
            e_sum += e;
            e_sq += e * e;
        }
        let p = q.distance_cdf(4.0);
        assert!((p - 0.3246).abs() < 1e-3, "P(d < 4) = {p}");
        let frac = short as f64 / n as f64;
        let se = (p * (1.0 - p) / n as f64).sqrt();
        assert!((frac - p).abs() < 5.0 * se, "{frac} vs {p}");
        let mean = e_sum / n as f64;
        let sd = (e_sq / n as f64 - mean * mean).sqrt();
        assert!(
            (mean - q.mean_energy()).abs() < 5.0 * sd / (n as f64).sqrt(),
            "{mean} vs {}",
            q.mean_energy()
        );
    }

    #[test]
    fn bad_systems_and_cut_offs_are_named() {
        let err = PairQuadrature::new(DoubleWell::dw4(), 12.0, 10_000).unwrap_err();
        assert!(err.to_string().contains("two particles"), "{err}");
        let err = PairQuadrature::new(DoubleWell::dw2(), 5.0, 10_000).unwrap_err();
        assert!(err.to_string().contains("cut-off"), "{err}");
        let err = PairQuadrature::new(DoubleWell::dw2(), 12.0, 10).unwrap_err();
        assert!(err.to_string().contains("d_max"), "{err}");
    }
}
