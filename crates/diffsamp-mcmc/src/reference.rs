//! Reference-sample driver: configuration, presets per system, and the warm-up/sampling loop.

use crate::chain::{Ensemble, EnsembleSpec};
use crate::diagnostics::{mean_std, Diagnostics};
use crate::error::McmcError;
use crate::init::InitConfig;
use crate::kernel::{Kernel, KernelKind};
use crate::parallel_tempering::PtConfig;
use crate::progress::{Observer, Progress, Stage};
use diffsamp_energy::Energy;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Settings of a reference MCMC run. Missing keys take the [`Default`] values; unknown keys
/// are rejected when deserialising.
///
/// The run: `n_chains` independent chains (each with a temperature ladder when `pt` is set)
/// take `warmup` steps while adapting their step sizes, then step sizes are frozen and the
/// target-temperature state of every chain is kept every `thinning` steps until `n_samples`
/// samples are collected (the last round keeps only the first chains it needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferenceConfig {
    /// `"mala"` or `"hmc"` (default MALA).
    pub kernel: KernelKind,
    /// HMC leapfrog steps per proposal, ≥ 1 (default 10; ignored by MALA).
    pub leapfrog_steps: usize,
    /// Independent chains, ≥ 1 (default 64).
    pub n_chains: usize,
    /// Warm-up steps with step-size adaptation, discarded (default 2000; 0 = no adaptation).
    pub warmup: usize,
    /// Steps between kept samples, ≥ 1 (default 100).
    pub thinning: usize,
    /// Samples to return, ≥ 1 (default 2000).
    pub n_samples: usize,
    /// Initial step size ε₀ at T = 1, > 0 (default 0.05; replica k starts at ε₀ √T_k).
    pub step_size: f64,
    /// Target mean acceptance in (0, 1) of the adaptation; unset = kernel default
    /// (0.574 MALA, 0.75 HMC).
    pub target_accept: Option<f64>,
    /// Parallel tempering; unset = a single replica at T = 1.
    pub pt: Option<PtConfig>,
    /// Run seed; chain c draws from ChaCha8 stream c of this seed.
    pub seed: u64,
    /// Initialisation of every replica.
    pub init: InitConfig,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            kernel: KernelKind::Mala,
            leapfrog_steps: 10,
            n_chains: 64,
            warmup: 2000,
            thinning: 100,
            n_samples: 2000,
            step_size: 0.05,
            target_accept: None,
            pt: None,
            seed: 0,
            init: InitConfig::default(),
        }
    }
}

impl ReferenceConfig {
    /// Checks every field's range; the error names the offending key.
    pub fn validate(&self) -> Result<(), McmcError> {
        if self.leapfrog_steps == 0 {
            return Err(McmcError::invalid(
                "leapfrog_steps",
                0,
                "HMC needs at least one leapfrog step",
            ));
        }
        if self.n_chains == 0 {
            return Err(McmcError::invalid("n_chains", 0, "need at least one chain"));
        }
        if self.thinning == 0 {
            return Err(McmcError::invalid("thinning", 0, "must be ≥ 1"));
        }
        if self.n_samples == 0 {
            return Err(McmcError::invalid("n_samples", 0, "must be ≥ 1"));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(McmcError::invalid(
                "step_size",
                self.step_size,
                "must be finite and > 0",
            ));
        }
        if let Some(a) = self.target_accept {
            if !(a > 0.0 && a < 1.0) {
                return Err(McmcError::invalid(
                    "target_accept",
                    a,
                    "must lie strictly between 0 and 1",
                ));
            }
        }
        if let Some(pt) = &self.pt {
            pt.validate()?;
        }
        self.init.validate()
    }

    /// The target acceptance actually used (config value or the kernel default).
    pub fn target_accept(&self) -> f64 {
        self.target_accept
            .unwrap_or_else(|| self.kernel.default_target_accept())
    }

    /// The temperature ladder: `[1.0]` without tempering.
    pub fn temperatures(&self) -> Vec<f64> {
        self.pt
            .as_ref()
            .map_or_else(|| vec![1.0], PtConfig::temperatures)
    }

    /// Sampling rounds ⌈n_samples / n_chains⌉ (each round is `thinning` steps).
    pub fn sampling_rounds(&self) -> usize {
        self.n_samples.div_ceil(self.n_chains)
    }
}

/// Names accepted by [`default_config_for`].
pub const PRESETS: &[&str] = &["dw4", "lj13", "lj55"];

/// Preset reference settings for a system (tuned to reach the published-split accuracy
/// targets within minutes on two cores; `n_samples` and `seed` are meant to be overridden).
///
/// - `dw4`: MALA with 4-level tempering to T = 4 (the pair double wells have ≈ 4.4 kT
///   barriers), 128 chains, 2000 warm-up steps, thinning 100 (≈ 1.8 M evaluations for 2000
///   samples, < 1 s).
/// - `lj13`: HMC (L = 10), 128 chains, 1000 warm-up steps, thinning 100, no tempering
///   (≈ 3.3 M evaluations, a few seconds). Tempering is deliberately off: in the harmonic
///   trap the cluster evaporates above T ≈ 1.3, so a ladder would straddle a first-order
///   transition; HMC alone decorrelates E in 10–45 steps.
/// - `lj55`: HMC (L = 10) with 8-level tempering to T = 2 (swap rates ≈ 0.33), 16 chains,
///   5000 warm-up steps (the cluster energy keeps relaxing slowly for a few thousand steps),
///   thinning 50 (≈ 14.4 M evaluations, about 1.5 minutes on two cores).
pub fn default_config_for(system: &str) -> Result<ReferenceConfig, McmcError> {
    let base = ReferenceConfig::default();
    match system {
        "dw4" => Ok(ReferenceConfig {
            kernel: KernelKind::Mala,
            n_chains: 128,
            warmup: 2000,
            thinning: 100,
            step_size: 0.3,
            pt: Some(PtConfig {
                n_temps: 4,
                t_max: 4.0,
                swap_every: 1,
            }),
            init: InitConfig {
                scale: 2.0,
                min_spacing: 1.0,
                minimise_steps: 0,
                minimise_step: 0.05,
            },
            ..base
        }),
        "lj13" => Ok(ReferenceConfig {
            kernel: KernelKind::Hmc,
            leapfrog_steps: 10,
            n_chains: 128,
            warmup: 1000,
            thinning: 100,
            step_size: 0.02,
            pt: None,
            init: InitConfig {
                scale: 1.0,
                min_spacing: 0.9,
                minimise_steps: 50,
                minimise_step: 0.05,
            },
            ..base
        }),
        "lj55" => Ok(ReferenceConfig {
            kernel: KernelKind::Hmc,
            leapfrog_steps: 10,
            n_chains: 16,
            warmup: 5000,
            thinning: 50,
            step_size: 0.01,
            pt: Some(PtConfig {
                n_temps: 8,
                t_max: 2.0,
                swap_every: 1,
            }),
            init: InitConfig {
                scale: 1.9,
                min_spacing: 0.9,
                minimise_steps: 100,
                minimise_step: 0.05,
            },
            ..base
        }),
        other => Err(McmcError::UnknownPreset {
            name: other.to_string(),
            known: PRESETS.join(", "),
        }),
    }
}

/// Output of [`run_reference`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceResult {
    /// Dimension of one sample.
    pub dim: usize,
    /// Samples at T = 1, `[n_samples, dim]` row-major; sample r comes from chain
    /// r mod n_chains at sampling round ⌊r / n_chains⌋.
    pub samples: Vec<f64>,
    /// E of each sample, `[n_samples]`.
    pub energies: Vec<f64>,
    /// Every energy+gradient evaluation (initialisation, warm-up, sampling, all replicas).
    pub energy_evals: u64,
    /// Temperature ladder, `[n_temps]` (`[1.0]` without tempering).
    pub temperatures: Vec<f64>,
    /// Mean acceptance probability per temperature during sampling, `[n_temps]`.
    pub acceptance: Vec<f64>,
    /// Frozen step sizes, `[n_chains, n_temps]` row-major.
    pub step_sizes: Vec<f64>,
    /// Swap acceptance rate per neighbouring pair during sampling, `[n_temps − 1]`.
    pub swap_rates: Vec<f64>,
    /// Proposals rejected for a non-finite energy or gradient (warm-up and sampling).
    pub rejected_non_finite: u64,
    /// Mixing diagnostics of E at T = 1 over the sampling phase.
    pub diagnostics: Diagnostics,
    /// Wall-clock duration of the run in seconds.
    pub wall_seconds: f64,
}

impl ReferenceResult {
    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.energies.len()
    }

    /// Mean and (population) standard deviation of the sample energies.
    pub fn energy_mean_std(&self) -> (f64, f64) {
        mean_std(&self.energies)
    }
}

/// Runs the reference sampler on `energy` with `config`, reporting progress to `observer`.
///
/// Warm-up takes `config.warmup` steps in about 100 blocks (one progress report each); the
/// sampling phase reports after each round of `thinning` steps.
pub fn run_reference(
    energy: &dyn Energy,
    config: &ReferenceConfig,
    observer: &mut dyn Observer,
) -> Result<ReferenceResult, McmcError> {
    config.validate()?;
    let start = Instant::now();
    let temperatures = config.temperatures();
    let spec = EnsembleSpec {
        kernel: Kernel::new(config.kernel, config.leapfrog_steps),
        temperatures: temperatures.clone(),
        swap_every: config.pt.as_ref().map_or(1, |p| p.swap_every),
        n_chains: config.n_chains,
        step_size: config.step_size,
        target_accept: config.target_accept(),
        init: config.init.clone(),
        seed: config.seed,
    };
    let mut ens = Ensemble::new(energy, spec)?;

    let block = (config.warmup / 100).max(1);
    let mut done = 0;
    while done < config.warmup {
        let b = block.min(config.warmup - done);
        ens.run(b);
        done += b;
        observer.observe(&Progress {
            stage: Stage::Warmup,
            step: done,
            total: config.warmup,
            acceptance: ens.acceptance()[0],
            mean_energy: ens.mean_target_energy(),
            samples: 0,
            energy_evals: ens.energy_evals(),
        });
    }
    let warmup_non_finite = ens.non_finite();
    ens.end_warmup();
    ens.set_recording(true);

    let dim = energy.dim();
    let n = config.n_samples;
    let rounds = config.sampling_rounds();
    let mut samples = Vec::with_capacity(n * dim);
    let mut energies = Vec::with_capacity(n);
    for round in 0..rounds {
        ens.run(config.thinning);
        for c in ens.chains() {
            if energies.len() == n {
                break;
            }
            samples.extend_from_slice(&c.target().x);
            energies.push(c.target().energy);
        }
        observer.observe(&Progress {
            stage: Stage::Sampling,
            step: (round + 1) * config.thinning,
            total: rounds * config.thinning,
            acceptance: ens.acceptance()[0],
            mean_energy: ens.mean_target_energy(),
            samples: energies.len(),
            energy_evals: ens.energy_evals(),
        });
    }
    let traces = ens.take_traces();
    Ok(ReferenceResult {
        dim,
        samples,
        energies,
        energy_evals: ens.energy_evals(),
        temperatures,
        acceptance: ens.acceptance(),
        step_sizes: ens.step_sizes(),
        swap_rates: ens.swap_stats().rates(),
        rejected_non_finite: warmup_non_finite + ens.non_finite(),
        diagnostics: Diagnostics::from_traces(&traces, config.thinning),
        wall_seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: McmcError) -> &'static str {
        match err {
            McmcError::InvalidConfig { field, .. } => field,
            other => panic!("expected InvalidConfig, got {other}"),
        }
    }

    #[test]
    fn defaults_and_presets_are_valid() {
        ReferenceConfig::default().validate().unwrap();
        for name in PRESETS {
            default_config_for(name).unwrap().validate().unwrap();
        }
        let err = default_config_for("lj7").unwrap_err();
        assert!(err.to_string().contains("lj13"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let base = ReferenceConfig::default();
        let cases: Vec<(ReferenceConfig, &str)> = vec![
            (
                ReferenceConfig {
                    n_chains: 0,
                    ..base.clone()
                },
                "n_chains",
            ),
            (
                ReferenceConfig {
                    thinning: 0,
                    ..base.clone()
                },
                "thinning",
            ),
            (
                ReferenceConfig {
                    n_samples: 0,
                    ..base.clone()
                },
                "n_samples",
            ),
            (
                ReferenceConfig {
                    leapfrog_steps: 0,
                    ..base.clone()
                },
                "leapfrog_steps",
            ),
            (
                ReferenceConfig {
                    step_size: -1.0,
                    ..base.clone()
                },
                "step_size",
            ),
            (
                ReferenceConfig {
                    step_size: f64::NAN,
                    ..base.clone()
                },
                "step_size",
            ),
            (
                ReferenceConfig {
                    target_accept: Some(1.0),
                    ..base.clone()
                },
                "target_accept",
            ),
            (
                ReferenceConfig {
                    pt: Some(PtConfig {
                        n_temps: 1,
                        ..PtConfig::default()
                    }),
                    ..base.clone()
                },
                "pt.n_temps",
            ),
            (
                ReferenceConfig {
                    pt: Some(PtConfig {
                        t_max: 0.5,
                        ..PtConfig::default()
                    }),
                    ..base.clone()
                },
                "pt.t_max",
            ),
            (
                ReferenceConfig {
                    pt: Some(PtConfig {
                        swap_every: 0,
                        ..PtConfig::default()
                    }),
                    ..base.clone()
                },
                "pt.swap_every",
            ),
            (
                ReferenceConfig {
                    init: InitConfig {
                        scale: 0.0,
                        ..InitConfig::default()
                    },
                    ..base.clone()
                },
                "init.scale",
            ),
            (
                ReferenceConfig {
                    init: InitConfig {
                        min_spacing: -1.0,
                        ..InitConfig::default()
                    },
                    ..base.clone()
                },
                "init.min_spacing",
            ),
        ];
        for (cfg, want) in cases {
            let err = cfg.validate().unwrap_err();
            let msg = err.to_string();
            assert_eq!(field_of(err), want);
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn toml_round_trip_and_partial_configs() {
        let cfg: ReferenceConfig =
            toml::from_str("kernel = \"hmc\"\nleapfrog_steps = 7\nseed = 3\n[pt]\nn_temps = 4\n")
                .unwrap();
        assert_eq!(cfg.kernel, KernelKind::Hmc);
        assert_eq!(cfg.leapfrog_steps, 7);
        assert_eq!(cfg.pt.as_ref().unwrap().n_temps, 4);
        assert_eq!(cfg.pt.as_ref().unwrap().t_max, PtConfig::default().t_max);
        assert_eq!(cfg.n_chains, ReferenceConfig::default().n_chains);
        assert_eq!(cfg.target_accept(), 0.75);
        let lj55 = default_config_for("lj55").unwrap();
        let text = toml::to_string(&lj55).unwrap();
        let back: ReferenceConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, lj55);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for text in [
            "n_chain = 4\n",
            "[pt]\nn_temp = 3\n",
            "[init]\nspacing = 1.0\n",
            "kernel = \"nuts\"\n",
        ] {
            let err = toml::from_str::<ReferenceConfig>(text).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("unknown field") || msg.contains("unknown variant"),
                "{text:?}: {msg}"
            );
        }
    }
}
