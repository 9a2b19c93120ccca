//! Reference samples of a molecule by replica-exchange Langevin dynamics (BAOAB, see
//! [`crate::langevin`]): the settings that reproduce the shared 300 K alanine-dipeptide set
//! (docs/reference_samples.md).

use crate::langevin::{run_remd, Langevin, RemdConfig, RemdResult};
use crate::parallel_tempering::geometric_ladder;
use crate::progress::Observer;
use crate::McmcError;
use diffsamp_energy::{Energy, ForceFieldEnergy};
use serde::{Deserialize, Serialize};

/// Settings of a molecular-dynamics reference run. Missing keys take the [`Default`] values
/// (5 replicas 300–1200 K, 1 fs, friction 1/ps, an exchange every 100 steps, 200 warm-up
/// rounds, the target replica recorded after every round); unknown keys are rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MdReferenceConfig {
    /// Replicas, ≥ 1, on the geometric ladder T_k = T₀ · t_max^(k/(K−1)).
    pub n_temperatures: usize,
    /// Highest temperature relative to the target, > 1 when there are several replicas.
    pub t_max: f64,
    /// Time step in femtoseconds, > 0.
    pub dt_fs: f64,
    /// Langevin friction γ in 1/ps, ≥ 0.
    pub friction_per_ps: f64,
    /// BAOAB steps of every replica between exchange rounds, ≥ 1.
    pub steps_per_exchange: usize,
    /// Exchange rounds discarded as warm-up.
    pub warmup_rounds: usize,
    /// Record the target replica every this many rounds, ≥ 1.
    pub record_every: usize,
    /// Samples to record, ≥ 1.
    pub n_samples: usize,
    /// Seed: replica k draws from ChaCha8 stream k.
    pub seed: u64,
}

impl Default for MdReferenceConfig {
    fn default() -> Self {
        Self {
            n_temperatures: 5,
            t_max: 4.0,
            dt_fs: 1.0,
            friction_per_ps: 1.0,
            steps_per_exchange: 100,
            warmup_rounds: 200,
            record_every: 1,
            n_samples: 2000,
            seed: 0,
        }
    }
}

impl MdReferenceConfig {
    /// Checks every range; the error names the key.
    pub fn validate(&self) -> Result<(), McmcError> {
        if self.n_temperatures == 0 {
            return Err(McmcError::invalid("n_temperatures", 0, "must be ≥ 1"));
        }
        if self.n_temperatures > 1 && !(self.t_max.is_finite() && self.t_max > 1.0) {
            return Err(McmcError::invalid(
                "t_max",
                self.t_max,
                "must be finite and > 1 with several replicas",
            ));
        }
        if !(self.dt_fs.is_finite() && self.dt_fs > 0.0) {
            return Err(McmcError::invalid("dt_fs", self.dt_fs, "must be > 0"));
        }
        if !(self.friction_per_ps.is_finite() && self.friction_per_ps >= 0.0) {
            return Err(McmcError::invalid(
                "friction_per_ps",
                self.friction_per_ps,
                "must be ≥ 0",
            ));
        }
        for (key, v) in [
            ("steps_per_exchange", self.steps_per_exchange),
            ("record_every", self.record_every),
            ("n_samples", self.n_samples),
        ] {
            if v == 0 {
                return Err(McmcError::invalid(key, 0, "must be ≥ 1"));
            }
        }
        Ok(())
    }

    /// The replica ladder T_k / T₀.
    pub fn temperatures(&self) -> Vec<f64> {
        geometric_ladder(self.n_temperatures, self.t_max)
    }

    /// Simulated time per replica in ps, warm-up included.
    pub fn simulated_ps(&self) -> f64 {
        let rounds = self.warmup_rounds + self.n_samples * self.record_every;
        rounds as f64 * self.steps_per_exchange as f64 * self.dt_fs * 1e-3
    }
}

/// Runs replica-exchange Langevin dynamics of `energy` (its masses, kT at its temperature)
/// from `x0` (`[atoms, 3]`, nm) and returns the target-temperature samples.
pub fn run_md_reference(
    energy: &ForceFieldEnergy,
    cfg: &MdReferenceConfig,
    x0: &[f64],
    observer: &mut dyn Observer,
) -> Result<RemdResult, McmcError> {
    cfg.validate()?;
    if x0.len() != energy.dim() {
        return Err(McmcError::invalid(
            "x0",
            x0.len(),
            format!("a start of {} coordinates is needed", energy.dim()),
        ));
    }
    let langevin = Langevin::new(
        cfg.dt_fs * 1e-3,
        cfg.friction_per_ps,
        energy.kt(),
        energy.field().masses(),
        3,
    )?;
    let remd = RemdConfig {
        temperatures: cfg.temperatures(),
        steps_per_exchange: cfg.steps_per_exchange,
        warmup_rounds: cfg.warmup_rounds,
        n_samples: cfg.n_samples,
        record_every: cfg.record_every,
        seed: cfg.seed,
    };
    run_remd(energy, &langevin, &remd, x0, observer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Progress;
    use diffsamp_energy::data::{read_npy, shared_data_file};

    #[test]
    fn short_run_records_finite_samples_and_reports_progress() {
        let energy = ForceFieldEnergy::aldp(300.0).unwrap();
        let x0 = read_npy(&shared_data_file("aldp/X100.npy").unwrap()).unwrap();
        let cfg = MdReferenceConfig {
            n_temperatures: 2,
            t_max: 1.5,
            steps_per_exchange: 10,
            warmup_rounds: 3,
            n_samples: 4,
            record_every: 2,
            ..MdReferenceConfig::default()
        };
        let mut seen: Vec<(crate::Stage, usize, usize)> = Vec::new();
        let mut obs = |p: &Progress| seen.push((p.stage, p.step, p.total));
        let res = run_md_reference(&energy, &cfg, &x0.data[..66], &mut obs).unwrap();
        assert_eq!(res.energies.len(), 4);
        assert_eq!(res.samples.len(), 4 * 66);
        assert!(res.energies.iter().all(|e| e.is_finite()));
        // 2 replicas × (3 + 8 rounds) × 10 steps, plus one initial evaluation each.
        assert_eq!(res.energy_evals, 2 * 11 * 10 + 2);
        assert_eq!(seen.len(), 11);
        assert_eq!(seen[2], (crate::Stage::Warmup, 3, 3));
        assert_eq!(seen[10], (crate::Stage::Sampling, 8, 8));
        assert!((cfg.simulated_ps() - 11.0 * 10.0 * 1e-3).abs() < 1e-12);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let energy = ForceFieldEnergy::aldp(300.0).unwrap();
        for (cfg, key) in [
            (
                MdReferenceConfig {
                    n_temperatures: 0,
                    ..Default::default()
                },
                "n_temperatures",
            ),
            (
                MdReferenceConfig {
                    t_max: 0.5,
                    ..Default::default()
                },
                "t_max",
            ),
            (
                MdReferenceConfig {
                    dt_fs: f64::NAN,
                    ..Default::default()
                },
                "dt_fs",
            ),
            (
                MdReferenceConfig {
                    record_every: 0,
                    ..Default::default()
                },
                "record_every",
            ),
        ] {
            let err = run_md_reference(&energy, &cfg, &[0.0; 66], &mut crate::Silent)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = run_md_reference(&energy, &Default::default(), &[0.0; 6], &mut crate::Silent)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x0"), "{err}");
        let parsed: Result<MdReferenceConfig, _> = toml::from_str("n_temps = 3");
        assert!(parsed.unwrap_err().to_string().contains("n_temps"));
    }
}
