//! Diagnostics of a trained PITA model against the true energy.

use crate::energy::{energies_batch, Energy};
use crate::error::{Error, Result};
use crate::mcmc::diagnostics::mean_std;
use crate::methods::pita::smc::{energy_at, Diffused};
use rand::Rng;
use rand_distr::StandardNormal;
use tch::{Kind, Tensor};

/// How a learned energy E_θ(x, σ) tracks the true one in units of kT, βU(x), on a set of
/// configurations (rows where either is non-finite are dropped).
#[derive(Clone, Debug)]
pub struct EnergyFit {
    /// βU of the kept rows.
    pub beta_u: Vec<f64>,
    /// E_θ(x, σ) of the kept rows.
    pub model: Vec<f64>,
    /// Least-squares slope of E_θ on βU, cov(βU, E_θ) / var(βU): 1 where the model spaces the
    /// configurations as the target does; below 1 where it is too flat, so that its annealed
    /// density exp(−γ E_θ) is hotter than the target at γβ.
    pub slope: f64,
}

impl EnergyFit {
    /// Fits E_θ(x, σ) of `model` at the rows of x `[n, d]` against `beta_u` (n values),
    /// evaluating the model in chunks of 500 rows without gradients.
    pub fn new(model: &dyn Diffused, x: &Tensor, sigma: f64, beta_u: &[f64]) -> Result<Self> {
        let n = x.size()[0];
        if x.dim() != 2 || n as usize != beta_u.len() {
            return Err(Error::Shape(format!(
                "energy fit: {} true energies for configurations of shape {:?}",
                beta_u.len(),
                x.size()
            )));
        }
        let model_e = Vec::<f64>::try_from(energy_at(model, x, sigma, 500).to_kind(Kind::Double))
            .map_err(|e| Error::Shape(format!("energy fit: {e}")))?;
        let (beta_u, model): (Vec<f64>, Vec<f64>) = beta_u
            .iter()
            .zip(&model_e)
            .filter(|(u, m)| u.is_finite() && m.is_finite())
            .map(|(&u, &m)| (u, m))
            .unzip();
        let slope = slope(&beta_u, &model);
        Ok(Self {
            beta_u,
            model,
            slope,
        })
    }

    /// Mean βU and mean E_θ over the kept rows.
    pub fn means(&self) -> (f64, f64) {
        (mean_std(&self.beta_u).0, mean_std(&self.model).0)
    }

    /// The fit over the rows of several fits together.
    pub fn pooled(fits: &[EnergyFit]) -> Self {
        let beta_u: Vec<f64> = fits.iter().flat_map(|f| f.beta_u.iter().copied()).collect();
        let model: Vec<f64> = fits.iter().flat_map(|f| f.model.iter().copied()).collect();
        let slope = slope(&beta_u, &model);
        Self {
            beta_u,
            model,
            slope,
        }
    }
}

/// Least-squares slope of y on x, cov(x, y) / var(x) (NaN for fewer than two distinct x).
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let (mx, my) = (mean_std(x).0, mean_std(y).0);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    cov / var
}

/// The energy cost of stopping a reverse SDE at noise level σ without a denoising step.
#[derive(Clone, Debug)]
pub struct NoiseFloor {
    /// The noise level σ.
    pub sigma: f64,
    /// Energy-W2 of the noised configurations against the clean ones.
    pub energy_w2: f64,
    /// Mean energy of the noised configurations.
    pub mean_energy: f64,
}

impl NoiseFloor {
    /// Adds N(0, σ² I) noise to exact samples `rows` (`[n, d]` row-major; the centre of mass
    /// removed again for particle systems, as the sampler does) and compares their energies
    /// with `clean`, the energies of other exact samples. A sampler whose output is p ∗ N(0, σ²)
    /// cannot do better than this energy-W2. For a harmonic target whose free coordinates have
    /// variance v, the noised energies are those of the clean ones times 1 + σ²/v.
    pub fn measure(
        energy: &dyn Energy,
        rows: &[f64],
        clean: &[f64],
        sigma: f64,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(Error::Config {
                key: "sigma".into(),
                why: format!("{sigma} must be a non-negative noise level"),
            });
        }
        if !rows.len().is_multiple_of(energy.dim()) {
            return Err(Error::Shape(format!(
                "noise floor: {} values are not rows of {}",
                rows.len(),
                energy.dim()
            )));
        }
        let mut x: Vec<f64> = rows
            .iter()
            .map(|v| v + sigma * rng.sample::<f64, _>(StandardNormal))
            .collect();
        if let Some(p) = energy.particles() {
            p.remove_com_batch(&mut x);
        }
        let e = energies_batch(energy, &x)?;
        let energy_w2 = crate::metrics::wasserstein2_1d(&e, clean)?.w2;
        Ok(Self {
            sigma,
            energy_w2,
            mean_energy: mean_std(&e).0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::pita::exact::DiffusedMixture;
    use crate::nn::layers::testing::torch_rng;
    use tch::Device;

    /// For p = N(0, s² I) the diffused energy is |x|²/(2(s² + σ²)) + c and βU = |x|²/(2 s²),
    /// so the slope is s²/(s² + σ²) on any configurations: 0.8 for s = 1, σ = 0.5, and 1 in
    /// the limit σ → 0. Rows with a non-finite βU are dropped; a length mismatch is an error.
    #[test]
    fn slope_of_a_diffused_gaussian_is_its_variance_ratio() {
        let _rng = torch_rng();
        tch::manual_seed(3);
        let p = DiffusedMixture::new(vec![1.0], vec![vec![0.0; 3]], vec![1.0]).unwrap();
        let x = Tensor::randn([400, 3], (Kind::Float, Device::Cpu)) * 1.5;
        let mut u: Vec<f64> = Vec::<f64>::try_from(
            (x.square().sum_dim_intlist(1, false, Kind::Float) / 2.0).to_kind(Kind::Double),
        )
        .unwrap();
        u[7] = f64::INFINITY;
        for (sigma, want) in [(0.5, 0.8), (1e-3, 1.0 / (1.0 + 1e-6))] {
            let fit = EnergyFit::new(&p, &x, sigma, &u).unwrap();
            assert_eq!(fit.beta_u.len(), 399);
            assert!((fit.slope - want).abs() < 1e-4, "σ {sigma}: {}", fit.slope);
        }
        let a = EnergyFit::new(&p, &x.narrow(0, 0, 200), 0.5, &u[..200]).unwrap();
        let b = EnergyFit::new(&p, &x.narrow(0, 200, 200), 0.5, &u[200..]).unwrap();
        let pooled = EnergyFit::pooled(&[a, b]);
        assert_eq!(pooled.beta_u.len(), 399);
        assert!((pooled.slope - 0.8).abs() < 1e-4, "{}", pooled.slope);
        let err = EnergyFit::new(&p, &x, 0.5, &u[..10]).unwrap_err();
        assert!(err.to_string().contains("10 true energies"), "{err}");
    }

    /// harmonic-4's free coordinates are N(0, 1): noised by σ they are N(0, 1 + σ²), so the
    /// energies scale by a = 1 + σ², the mean from 3 to 3a and the energy-W2 against clean
    /// samples is |a − 1| √⟨E²⟩ = σ² √12 (E ~ χ²₆/2: ⟨E²⟩ = 3 + 9).
    #[test]
    fn the_noise_floor_of_a_harmonic_system_is_its_closed_form() {
        use crate::energy::harmonic::HarmonicParticles;
        use crate::energy::ExactSampler;
        use rand::SeedableRng;
        let system = HarmonicParticles::harmonic4();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 20_000;
        let rows = system.sample(n, &mut rng);
        let clean = energies_batch(&system, &system.sample(n, &mut rng)).unwrap();
        for sigma in [0.0, 0.5, 1.0] {
            let f = NoiseFloor::measure(&system, &rows, &clean, sigma, &mut rng).unwrap();
            let a: f64 = 1.0 + sigma * sigma;
            // E is a χ²₆/2 times a: standard deviation a√3, so the mean is within 4 a √(3/n).
            let mean_tol = 4.0 * a * (3.0 / n as f64).sqrt();
            assert!(
                (f.mean_energy - 3.0 * a).abs() < mean_tol,
                "σ {sigma}: {f:?}"
            );
            // Two empirical quantile functions of n points each: a few a √(3/n) apart.
            let w2 = (a - 1.0) * 12f64.sqrt();
            assert!(
                (f.energy_w2 - w2).abs() < 3.0 * mean_tol,
                "σ {sigma}: {f:?}, want {w2}"
            );
        }
        let e = NoiseFloor::measure(&system, &rows, &clean, -0.1, &mut rng).unwrap_err();
        assert!(e.to_string().contains("sigma"), "{e}");
        let e = NoiseFloor::measure(&system, &rows[1..], &clean, 0.1, &mut rng).unwrap_err();
        assert!(e.to_string().contains("not rows of 8"), "{e}");
    }
}
