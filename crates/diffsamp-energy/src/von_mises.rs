//! A product of von Mises factors on the flat torus: an exactly sampleable periodic target with
//! a known normaliser, to test samplers on the torus.

use crate::{Energy, EnergyError, ExactSampler, LogPartition};
use rand::Rng;
use std::f64::consts::PI;

/// E(τ) = −Σ_i κ_i cos(m_i (τ_i − μ_i)) on [−π, π)^d, with concentrations κ_i ≥ 0 and
/// integer harmonics m_i ≥ 1 (m_i modes per coordinate, evenly spaced, one of them at μ_i).
/// Each factor integrates to 2π I₀(κ_i) whatever m_i, so log Z = Σ_i ln(2π I₀(κ_i)).
#[derive(Clone, Debug)]
pub struct TorusVonMises {
    name: String,
    kappa: Vec<f64>,
    mu: Vec<f64>,
    harmonic: Vec<u32>,
}

/// The modified Bessel function I₀(κ) = Σ_k (κ/2)^{2k} / (k!)², summed until the terms vanish
/// (a handful of lines: no maintained crate offers it without a large dependency).
fn bessel_i0(kappa: f64) -> f64 {
    let q = 0.25 * kappa * kappa;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 0.0);
    while term > 1e-17 * sum {
        k += 1.0;
        term *= q / (k * k);
        sum += term;
    }
    sum
}

impl TorusVonMises {
    /// A target named `name` with one factor per entry of `kappa`, `mu`, `harmonic` (equal
    /// lengths ≥ 1, κ finite and ≥ 0, μ finite, m ≥ 1).
    pub fn new(
        name: &str,
        kappa: Vec<f64>,
        mu: Vec<f64>,
        harmonic: Vec<u32>,
    ) -> Result<Self, EnergyError> {
        let bad = |name, value: String, why| EnergyError::InvalidParameter { name, value, why };
        if kappa.is_empty() || kappa.len() != mu.len() || kappa.len() != harmonic.len() {
            return Err(bad(
                "kappa",
                format!("{} / {} / {}", kappa.len(), mu.len(), harmonic.len()),
                "kappa, mu and harmonic need one equal, positive number of entries",
            ));
        }
        if let Some(k) = kappa.iter().find(|k| !(k.is_finite() && **k >= 0.0)) {
            return Err(bad("kappa", k.to_string(), "must be finite and >= 0"));
        }
        if let Some(m) = mu.iter().find(|m| !m.is_finite()) {
            return Err(bad("mu", m.to_string(), "must be finite"));
        }
        if harmonic.contains(&0) {
            return Err(bad("harmonic", "0".into(), "must be at least 1"));
        }
        Ok(Self {
            name: name.to_string(),
            kappa,
            mu,
            harmonic,
        })
    }

    /// The registered 2-D target `torus-2`: κ = (2, 3), μ = (1, 0), m = (1, 2) — one mode in
    /// τ₁ and two in τ₂, at 0 and at ±π, across the wrap of the torus.
    pub fn torus2() -> Self {
        Self::new("torus-2", vec![2.0, 3.0], vec![1.0, 0.0], vec![1, 2]).expect("valid")
    }
}

impl Energy for TorusVonMises {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.kappa.len()
    }

    fn periodic(&self) -> bool {
        true
    }

    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = 0.0;
        for i in 0..x.len() {
            let m = self.harmonic[i] as f64;
            let (s, c) = (m * (x[i] - self.mu[i])).sin_cos();
            e -= self.kappa[i] * c;
            grad[i] = self.kappa[i] * m * s;
        }
        e
    }
}

impl LogPartition for TorusVonMises {
    fn log_z(&self) -> f64 {
        self.kappa
            .iter()
            .map(|&k| (2.0 * PI * bessel_i0(k)).ln())
            .sum()
    }
}

impl ExactSampler for TorusVonMises {
    /// Each coordinate by rejection from the uniform law on [−π, π), accepted with
    /// probability exp(κ (cos(m(τ − μ)) − 1)).
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n {
            for i in 0..self.dim() {
                let m = self.harmonic[i] as f64;
                loop {
                    let t: f64 = rng.random_range(-PI..PI);
                    let accept = (self.kappa[i] * ((m * (t - self.mu[i])).cos() - 1.0)).exp();
                    if rng.random::<f64>() < accept {
                        out.push(t);
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_grad_fd, rng};

    #[test]
    fn normaliser_matches_quadrature() {
        let t = TorusVonMises::torus2();
        let n = 2000;
        let h = 2.0 * PI / n as f64;
        let mut z = 0.0;
        for a in 0..n {
            for b in 0..n {
                let x = [-PI + (a as f64 + 0.5) * h, -PI + (b as f64 + 0.5) * h];
                z += (-t.energy(&x)).exp() * h * h;
            }
        }
        assert!(
            (z.ln() - t.log_z()).abs() < 1e-9,
            "{} vs {}",
            z.ln(),
            t.log_z()
        );
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-15);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let t = TorusVonMises::torus2();
        for x in [[0.3, -2.0], [3.0, 3.1], [-1.0, 0.5]] {
            assert_grad_fd(&t, &x, 1e-6);
        }
    }

    #[test]
    fn exact_samples_have_the_circular_moments() {
        // E[cos(m(τ − μ))] = I₁(κ)/I₀(κ): 0.697775 (κ = 2), 0.809985 (κ = 3).
        let t = TorusVonMises::torus2();
        let n = 20_000;
        let xs = t.sample(n, &mut rng(9));
        assert!(xs.iter().all(|v| (-PI..PI).contains(v)));
        let mean = |i: usize| {
            let m = t.harmonic[i] as f64;
            xs.chunks_exact(2)
                .map(|r| (m * (r[i] - t.mu[i])).cos())
                .sum::<f64>()
                / n as f64
        };
        // sd of cos(·) ≤ 0.5 here, so 4 s.e. ≤ 0.015.
        assert!((mean(0) - 0.697_775).abs() < 0.015, "{}", mean(0));
        assert!((mean(1) - 0.809_985).abs() < 0.015, "{}", mean(1));
        // Half of τ₂'s mass is in the mode at ±π.
        let far = xs.chunks_exact(2).filter(|r| r[1].abs() > PI / 2.0).count() as f64 / n as f64;
        assert!((far - 0.5).abs() < 4.0 * (0.25 / n as f64).sqrt(), "{far}");
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = TorusVonMises::new("t", vec![1.0], vec![0.0, 1.0], vec![1]).unwrap_err();
        assert!(e.to_string().contains("kappa"), "{e}");
        let e = TorusVonMises::new("t", vec![-1.0], vec![0.0], vec![1]).unwrap_err();
        assert!(e.to_string().contains("kappa"), "{e}");
        let e = TorusVonMises::new("t", vec![1.0], vec![0.0], vec![0]).unwrap_err();
        assert!(e.to_string().contains("harmonic"), "{e}");
    }
}
