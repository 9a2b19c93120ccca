//! Many-Well targets (products of 1-D quartic double wells): many-well-5 and many-well-32.

use crate::{Energy, EnergyError, ExactSampler, LogPartition};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A 1-D quartic double well V(x) = x⁴ + βx² + γx + δ with one minimum on each side of 0,
/// its log normaliser log ∫ exp(−V) and an exact rejection sampler.
///
/// # Envelope (proof of the rejection bound)
/// At a critical point m (V'(m) = 4m³ + 2βm + γ = 0),
/// V(x) − V(m) = (x − m)² [(x + m)² + 2m² + β].
/// For x on the same side of 0 as m, (x + m)² ≥ m², so V(x) − V(m) ≥ κ (x − m)² with
/// κ = 3m² + β (required > 0). With the two minima m₋ < 0 < m₊ this gives, for every x,
/// exp(−V(x)) ≤ Σ_± exp(−V(m_±) − κ_± (x − m_±)²) = M g(x),
/// where g is the two-component Gaussian mixture with means m_±, variances 1/(2κ_±) and
/// weights ∝ A_± = exp(−V(m_±)) √(π/κ_±), and M = A₊ + A₋. Proposals x ~ g are accepted with
/// probability exp(−V(x)) / Σ_± exp(−V(m_±) − κ_± (x − m_±)²) ≤ 1; the acceptance rate is
/// Z/M (≈ 0.51 for (x² − 4)², ≈ 0.6 for the many-well-32 factor).
#[derive(Clone, Debug)]
pub struct QuarticWell {
    beta: f64,
    gamma: f64,
    delta: f64,
    /// Minima [m₋, m₊].
    minima: [f64; 2],
    /// Curvature bounds [κ₋, κ₊].
    kappa: [f64; 2],
    /// V(m₋), V(m₊).
    v_min: [f64; 2],
    /// Probability of proposing from the m₊ component, A₊ / (A₊ + A₋).
    p_plus: f64,
    log_z: f64,
}

impl QuarticWell {
    /// V(x) = x⁴ + βx² + γx + δ. Fails unless V has a local minimum on each side of 0 with
    /// κ_± = 3m_±² + β > 0 (true for the many-well factors; β < 0 and small |γ|).
    pub fn new(beta: f64, gamma: f64, delta: f64) -> Result<Self, EnergyError> {
        for (name, v) in [("beta", beta), ("gamma", gamma), ("delta", delta)] {
            if !v.is_finite() {
                return Err(EnergyError::InvalidParameter {
                    name,
                    value: v.to_string(),
                    why: "must be finite",
                });
            }
        }
        let bad = |why| EnergyError::InvalidParameter {
            name: "beta",
            value: format!("{beta} (gamma = {gamma})"),
            why,
        };
        if beta >= 0.0 {
            return Err(bad("a double well needs beta < 0"));
        }
        // V' is convex for x > √(−β/6), so Newton from a point right of the largest root
        // decreases monotonically onto it (mirror image on the left).
        let start = 2.0 * ((-beta / 2.0).sqrt() + gamma.abs().cbrt() + 1.0);
        let dv = |x: f64| 4.0 * x * x * x + 2.0 * beta * x + gamma;
        let ddv = |x: f64| 12.0 * x * x + 2.0 * beta;
        let newton = |mut x: f64| {
            for _ in 0..200 {
                let step = dv(x) / ddv(x);
                x -= step;
                if step.abs() <= 1e-15 * x.abs().max(1.0) {
                    break;
                }
            }
            x
        };
        let minima = [newton(-start), newton(start)];
        if !(minima[0] < 0.0 && minima[1] > 0.0) {
            return Err(bad("V needs one local minimum on each side of 0"));
        }
        let kappa = minima.map(|m| 3.0 * m * m + beta);
        if !(kappa[0] > 0.0 && kappa[1] > 0.0) {
            return Err(bad(
                "curvature bound 3m² + beta must be positive at both minima",
            ));
        }
        let v = |x: f64| x * x * x * x + beta * x * x + gamma * x + delta;
        let v_min = minima.map(v);
        // log A_± = −V(m_±) + ½ log(π/κ_±); p₊ = A₊ / (A₊ + A₋).
        let log_a = [0, 1].map(|i| -v_min[i] + 0.5 * (std::f64::consts::PI / kappa[i]).ln());
        let p_plus = 1.0 / (1.0 + (log_a[0] - log_a[1]).exp());
        let mut well = Self {
            beta,
            gamma,
            delta,
            minima,
            kappa,
            v_min,
            p_plus,
            log_z: 0.0,
        };
        well.log_z = well.quadrature_log_z();
        Ok(well)
    }

    /// V(x) = x⁴ + βx² + γx + δ.
    #[inline]
    pub fn potential(&self, x: f64) -> f64 {
        let x2 = x * x;
        x2 * x2 + self.beta * x2 + self.gamma * x + self.delta
    }

    /// V'(x) = 4x³ + 2βx + γ.
    #[inline]
    pub fn derivative(&self, x: f64) -> f64 {
        4.0 * x * x * x + 2.0 * self.beta * x + self.gamma
    }

    /// The two local minima [m₋, m₊].
    pub fn minima(&self) -> [f64; 2] {
        self.minima
    }

    /// log ∫ exp(−V(x)) dx.
    pub fn log_z(&self) -> f64 {
        self.log_z
    }

    /// log of the envelope M g(x) = Σ_± exp(−V(m_±) − κ_± (x − m_±)²) (see the type docs).
    fn log_envelope(&self, x: f64) -> f64 {
        let l = [0, 1].map(|i| -self.v_min[i] - self.kappa[i] * (x - self.minima[i]).powi(2));
        let m = l[0].max(l[1]);
        m + ((l[0] - m).exp() + (l[1] - m).exp()).ln()
    }

    /// One exact draw from exp(−V(x)) / Z by rejection from the two-Gaussian envelope.
    pub fn sample(&self, rng: &mut dyn rand::RngCore) -> f64 {
        loop {
            let i = usize::from(rng.random::<f64>() < self.p_plus);
            let z: f64 = StandardNormal.sample(rng);
            let x = self.minima[i] + z / (2.0 * self.kappa[i]).sqrt();
            let log_accept = -self.potential(x) - self.log_envelope(x);
            // u ∈ [0, 1): accept iff u < exp(log_accept).
            if rng.random::<f64>() < log_accept.exp() {
                return x;
            }
        }
    }

    /// log Z by the trapezoid rule (spectrally accurate for this smooth, fast-decaying
    /// integrand) on [m₋ − L₋, m₊ + L₊] with κ_± L_±² = 80, so the neglected tails are below
    /// e⁻⁸⁰ relative to the peak.
    fn quadrature_log_z(&self) -> f64 {
        let lo = self.minima[0] - (80.0 / self.kappa[0]).sqrt();
        let hi = self.minima[1] + (80.0 / self.kappa[1]).sqrt();
        let shift = self.v_min[0].min(self.v_min[1]);
        let n = 20_000;
        let h = (hi - lo) / n as f64;
        let mut s = 0.0;
        for k in 0..=n {
            let w = if k == 0 || k == n { 0.5 } else { 1.0 };
            s += w * (-(self.potential(lo + k as f64 * h) - shift)).exp();
        }
        (s * h).ln() - shift
    }
}

/// Sum of independent quartic wells, optionally each paired with a standard Gaussian
/// coordinate:
/// - unpaired: E(x) = Σ_{w} V(x_w), d = n_wells;
/// - paired: E(x) = Σ_{w} [V(x_{2w}) + ½ x_{2w+1}²], d = 2 n_wells (pairs are consecutive).
///
/// log Z = n_wells · (log Z_V + 𝟙(paired) · ½ log 2π); exact samples factor likewise.
#[derive(Clone, Debug)]
pub struct ManyWell {
    name: String,
    well: QuarticWell,
    n_wells: usize,
    paired: bool,
}

impl ManyWell {
    /// Builds a many-well target from one 1-D `well` repeated `n_wells` (≥ 1) times.
    pub fn new(
        name: impl Into<String>,
        well: QuarticWell,
        n_wells: usize,
        paired: bool,
    ) -> Result<Self, EnergyError> {
        if n_wells == 0 {
            return Err(EnergyError::InvalidParameter {
                name: "n_wells",
                value: "0".into(),
                why: "need at least one well",
            });
        }
        Ok(Self {
            name: name.into(),
            well,
            n_wells,
            paired,
        })
    }

    /// `"many-well-5"`: E = Σ_{i=1..5} (x_i² − 4)², 32 modes at (±2, …, ±2);
    /// log Z = 5 log ∫ exp(−(x² − 4)²) dx ≈ −0.54106.
    pub fn many_well_5() -> Self {
        let well = QuarticWell::new(-8.0, 0.0, 16.0).expect("(x²−4)² is a valid double well");
        Self::new("many-well-5", well, 5, false).expect("5 wells")
    }

    /// `"many-well-32"`: 16 independent pairs (x₁, x₂) = (x_{2w}, x_{2w+1}), each
    /// E = x₁⁴ − 6x₁² − 0.5x₁ + 0.5x₂²; log Z ≈ 164.6957.
    pub fn many_well_32() -> Self {
        let well = QuarticWell::new(-6.0, -0.5, 0.0).expect("valid double well");
        Self::new("many-well-32", well, 16, true).expect("16 wells")
    }

    /// The 1-D double-well factor.
    pub fn well(&self) -> &QuarticWell {
        &self.well
    }

    /// Number of double-well factors.
    pub fn n_wells(&self) -> usize {
        self.n_wells
    }

    /// The 2^n_wells local minima (each double-well coordinate at m₋ or m₊, Gaussian partners
    /// at 0), row-major `[2^n_wells, dim]`; `None` when there are more than 1024.
    pub fn modes(&self) -> Option<Vec<f64>> {
        if self.n_wells > 10 {
            return None;
        }
        let d = self.dim();
        let stride = 1 + usize::from(self.paired);
        let mut out = vec![0.0; (1 << self.n_wells) * d];
        for (code, row) in out.chunks_exact_mut(d).enumerate() {
            for w in 0..self.n_wells {
                row[w * stride] = self.well.minima[(code >> w) & 1];
            }
        }
        Some(out)
    }

    fn stride(&self) -> usize {
        1 + usize::from(self.paired)
    }
}

impl Energy for ManyWell {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.n_wells * self.stride()
    }

    /// ∂E/∂x_{well} = V'(x), ∂E/∂x_{partner} = x.
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim());
        debug_assert_eq!(grad.len(), self.dim());
        let mut e = 0.0;
        for (xw, gw) in x
            .chunks_exact(self.stride())
            .zip(grad.chunks_exact_mut(self.stride()))
        {
            e += self.well.potential(xw[0]);
            gw[0] = self.well.derivative(xw[0]);
            if self.paired {
                e += 0.5 * xw[1] * xw[1];
                gw[1] = xw[1];
            }
        }
        e
    }

    fn energy(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim());
        x.chunks_exact(self.stride())
            .map(|xw| {
                let partner = if self.paired {
                    0.5 * xw[1] * xw[1]
                } else {
                    0.0
                };
                self.well.potential(xw[0]) + partner
            })
            .sum()
    }
}

impl LogPartition for ManyWell {
    /// n_wells · (log Z_V + 𝟙(paired) · ½ log 2π).
    fn log_z(&self) -> f64 {
        let partner = if self.paired {
            0.5 * (2.0 * std::f64::consts::PI).ln()
        } else {
            0.0
        };
        self.n_wells as f64 * (self.well.log_z() + partner)
    }
}

impl ExactSampler for ManyWell {
    /// Each double-well coordinate by rejection ([`QuarticWell::sample`]), each partner
    /// from N(0, 1).
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * self.dim());
        for _ in 0..n * self.n_wells {
            out.push(self.well.sample(rng));
            if self.paired {
                out.push(StandardNormal.sample(rng));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// (∫ exp(−V), ∫ x exp(−V), ∫ x² exp(−V), ∫ x⁴ exp(−V)) by composite Simpson on [−6, 6]
    /// (independent of the implementation's trapezoid rule).
    fn moments(v: impl Fn(f64) -> f64) -> [f64; 4] {
        let n = 24_000;
        [0, 1, 2, 4].map(|p| simpson(|x| x.powi(p) * (-v(x)).exp(), -6.0, 6.0, n))
    }

    #[test]
    fn log_z_matches_published_values() {
        let mw5 = ManyWell::many_well_5();
        let z1 = moments(|x| (x * x - 4.0).powi(2))[0];
        assert!(
            (5.0 * z1.ln() - (-0.54106)).abs() < 1e-4,
            "{}",
            5.0 * z1.ln()
        );
        assert!((mw5.log_z() - (-0.54106)).abs() < 1e-4, "{}", mw5.log_z());
        assert!((mw5.log_z() - 5.0 * z1.ln()).abs() < 1e-9);

        let mw32 = ManyWell::many_well_32();
        let z1 = moments(|x| x.powi(4) - 6.0 * x * x - 0.5 * x)[0];
        let z2 = simpson(|y| (-0.5 * y * y).exp(), -12.0, 12.0, 4000);
        let quad = 16.0 * (z1.ln() + z2.ln());
        assert!((quad - 164.6957).abs() < 1e-4, "{quad}");
        assert!((mw32.log_z() - 164.6957).abs() < 1e-4, "{}", mw32.log_z());
        assert!((mw32.log_z() - quad).abs() < 1e-8);
    }

    #[test]
    fn energy_values_and_layout() {
        let mw5 = ManyWell::many_well_5();
        assert_eq!(mw5.dim(), 5);
        let x = [2.0, -2.0, 0.0, 1.0, 3.0];
        let want = 0.0 + 0.0 + 16.0 + 9.0 + 25.0;
        assert!((mw5.energy(&x) - want).abs() < 1e-12);
        let mw32 = ManyWell::many_well_32();
        assert_eq!(mw32.dim(), 32);
        let mut x = vec![0.0; 32];
        x[0] = 1.0; // first pair's double-well coordinate
        x[1] = 2.0; // its Gaussian partner
        let want = 1.0 - 6.0 - 0.5 + 0.5 * 4.0;
        assert!((mw32.energy(&x) - want).abs() < 1e-12);
        assert_eq!(mw32.well().minima().len(), 2);
        assert!(mw32.particles().is_none());
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut r = rng(30);
        for e in [ManyWell::many_well_5(), ManyWell::many_well_32()] {
            for _ in 0..5 {
                let x = normal_vec(&mut r, e.dim(), 0.0, 2.0);
                assert_grad_fd(&e, &x, 1e-6);
            }
        }
    }

    #[test]
    fn envelope_bounds_the_density() {
        // The rejection sampler is exact only if exp(−V) ≤ M g everywhere.
        for well in [
            ManyWell::many_well_5().well().clone(),
            ManyWell::many_well_32().well().clone(),
            QuarticWell::new(-5.0, 1.3, 0.0).unwrap(),
        ] {
            for k in 0..=200_000 {
                let x = -10.0 + k as f64 * 1e-4;
                let gap = -well.potential(x) - well.log_envelope(x);
                assert!(gap <= 1e-12, "envelope violated at x = {x}: {gap}");
            }
        }
    }

    #[test]
    fn mw5_sampler_matches_quadrature_moments() {
        let mw5 = ManyWell::many_well_5();
        let n = 20_000;
        let xs = mw5.sample(n, &mut rng(31));
        assert_eq!(xs.len(), 5 * n);
        let [z, _, m2, m4] = moments(|x| (x * x - 4.0).powi(2));
        let (ex2, ex4) = (m2 / z, m4 / z);
        let count = xs.len() as f64;
        let mean_x2 = xs.iter().map(|x| x * x).sum::<f64>() / count;
        let se = ((ex4 - ex2 * ex2) / count).sqrt();
        assert!(
            (mean_x2 - ex2).abs() < 5.0 * se,
            "E[x²] {mean_x2} vs {ex2} (se {se})"
        );
        // Symmetric factor: E[x] = 0 with sd √(E[x²]/count); each sign ≈ ½ per coordinate.
        let mean_x = xs.iter().sum::<f64>() / count;
        assert!(mean_x.abs() < 5.0 * (ex2 / count).sqrt(), "E[x] {mean_x}");
        let frac_pos = xs.iter().filter(|x| **x > 0.0).count() as f64 / count;
        assert!(
            (frac_pos - 0.5).abs() < 5.0 * (0.25 / count).sqrt(),
            "{frac_pos}"
        );
    }

    #[test]
    fn mw32_sampler_matches_quadrature_moments() {
        let mw32 = ManyWell::many_well_32();
        let n = 5_000;
        let xs = mw32.sample(n, &mut rng(32));
        assert_eq!(xs.len(), 32 * n);
        let [z, m1, m2, _] = moments(|x| x.powi(4) - 6.0 * x * x - 0.5 * x);
        let (ex, ex2) = (m1 / z, m2 / z);
        let wells: Vec<f64> = xs.iter().step_by(2).copied().collect();
        let partners: Vec<f64> = xs.iter().skip(1).step_by(2).copied().collect();
        let count = wells.len() as f64;
        let mean = wells.iter().sum::<f64>() / count;
        let se = ((ex2 - ex * ex) / count).sqrt();
        // The tilt −0.5x makes the right well heavier: E[x₁] ≈ 0.8, not 0.
        assert!(ex > 0.3, "{ex}");
        assert!(
            (mean - ex).abs() < 5.0 * se,
            "E[x1] {mean} vs {ex} (se {se})"
        );
        let var_p = partners.iter().map(|y| y * y).sum::<f64>() / count;
        // E[x₂²] = 1, Var(x₂²) = 2.
        assert!(
            (var_p - 1.0).abs() < 5.0 * (2.0 / count).sqrt(),
            "E[x2²] {var_p}"
        );
    }

    #[test]
    fn modes_of_mw5_are_the_32_minima() {
        let mw5 = ManyWell::many_well_5();
        let modes = mw5.modes().unwrap();
        assert_eq!(modes.len(), 32 * 5);
        for m in modes.chunks_exact(5) {
            assert!(m.iter().all(|v| (v.abs() - 2.0).abs() < 1e-12), "{m:?}");
            assert!(mw5.energy(m).abs() < 1e-12);
        }
        let mut rows: Vec<Vec<i64>> = modes
            .chunks_exact(5)
            .map(|m| m.iter().map(|v| v.round() as i64).collect())
            .collect();
        rows.sort();
        rows.dedup();
        assert_eq!(rows.len(), 32);
        assert!(ManyWell::many_well_32().modes().is_none());
    }

    #[test]
    fn rejects_bad_wells() {
        assert!(QuarticWell::new(1.0, 0.0, 0.0).is_err()); // single well
        assert!(QuarticWell::new(-1.0, 5.0, 0.0).is_err()); // tilt removes a well
        assert!(QuarticWell::new(f64::NAN, 0.0, 0.0).is_err());
        let w = QuarticWell::new(-8.0, 0.0, 0.0).unwrap();
        assert!(ManyWell::new("x", w, 0, false).is_err());
    }
}
