//! The configuration of a PITA run (TOML, unknown keys rejected, ranges checked with the key
//! named).

use crate::error::{Error, Result};
use crate::mcmc::md_reference::MdReferenceConfig;
use crate::mcmc::reference::ReferenceConfig;
use crate::methods::adjoint_sampling::config::registered_energy;
use crate::methods::pita::edm::Edm;
use crate::methods::pita::loss::LossConfig;
use crate::methods::pita::model::NetworkConfig;
use crate::methods::pita::smc::SmcConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn bad<T>(key: &str, why: impl Into<String>) -> Result<T> {
    Err(Error::Config {
        key: key.into(),
        why: why.into(),
    })
}

/// Checks an MCMC table at `key` whose chains run at one temperature: its own ranges, and no
/// `pt` (`pt_why` says why).
fn single_temperature_mcmc(m: &ReferenceConfig, key: &str, pt_why: &str) -> Result<()> {
    m.validate().map_err(|e| Error::Config {
        key: key.into(),
        why: e.to_string(),
    })?;
    if m.pt.is_some() {
        return bad(&format!("{key}.pt"), pt_why);
    }
    Ok(())
}

/// The initial samples at the highest temperature of the ladder: MCMC, or, for a force field,
/// Langevin dynamics (exactly one of the two).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialConfig {
    /// The MCMC run (its `n_samples` samples start the buffer; its `pt` must be unset: the
    /// chain runs at the ladder's first temperature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcmc: Option<ReferenceConfig>,
    /// Molecular dynamics from the first frame of `aldp/X100.npy` (force fields only): BAOAB
    /// Langevin at the first temperature (with replicas above it when `n_temperatures` > 1);
    /// its `n_samples` samples start the buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md: Option<MdReferenceConfig>,
}

/// Network training, per stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Adam steps at the first temperature.
    pub steps_first: usize,
    /// Adam steps at every later temperature (after its samples join the buffer).
    pub steps_per_stage: usize,
    /// Batch size (≥ 1), drawn uniformly from the buffer entries that `batches_from` names.
    pub batch_size: usize,
    /// Which buffer entries a batch is drawn from: `"all"` temperatures reached so far, or the
    /// `"current"` (newest) one only, as the published code does (each temperature has its own
    /// buffer there). With `"all"`, the newest temperature is a fifth of the data by T = 1.5.
    #[serde(default)]
    pub batches_from: BatchSource,
    /// Adam learning rate (1e-3).
    pub learning_rate: f64,
    /// Gradient-norm bound (0.5).
    pub grad_clip: f64,
    /// Apply `grad_clip` to the score and the energy network separately instead of to their
    /// joint gradient. The joint clip lets the energy losses' large gradients shrink the score
    /// network's steps (docs/RESULTS.md, PITA).
    #[serde(default)]
    pub clip_per_network: bool,
    /// EMA decay of the generating weights (0.999).
    pub ema_decay: f64,
    /// Random rotations of x_0 (and ∇E) as augmentation (particle systems).
    #[serde(default = "yes")]
    pub rotations: bool,
    /// Save a checkpoint every this many steps (≥ 1).
    pub checkpoint_every: usize,
    /// Append a line to train.jsonl every this many steps (≥ 1).
    #[serde(default = "log_every")]
    pub log_every: usize,
    /// Loss weights and masks.
    #[serde(default)]
    pub loss: LossConfig,
}

/// The buffer entries a training batch is drawn from ([`TrainingConfig::batches_from`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSource {
    /// Every temperature reached so far.
    #[default]
    All,
    /// The stage's own temperature only.
    Current,
}

fn yes() -> bool {
    true
}
fn log_every() -> usize {
    50
}

/// Final evaluation at the target temperature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// A `.npy` path: absolute, relative to the working directory, or a file name in the
    /// shared data directory; or `"none"` (no reference: energies and plots only).
    pub reference: String,
    /// Samples of each set (published protocol: 2000 vs 2000).
    #[serde(default = "final_n")]
    pub n_samples: usize,
    /// Seed of the subsampling.
    #[serde(default)]
    pub seed: u64,
    /// Also draw MCMC references (`n_samples` each, cached in the run directory; not counted
    /// as the method's energy evaluations) at every temperature above the target, and compare
    /// each stage's energies with them.
    #[serde(default)]
    pub tempered_references: bool,
    /// The sampler of the tempered references; unset = the initial sampler (`initial.mcmc`
    /// or `initial.md`). The initial sampler is sized to equilibrate the first, hottest
    /// temperature cheaply, which can leave the colder ones far from equilibrium (LJ-13:
    /// docs/RESULTS.md, PITA); a reference is worth a longer chain. Its `n_samples` is
    /// replaced by `evaluation.n_samples`, its `seed` by one derived from `evaluation.seed`
    /// and the temperature; `pt` must be unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_mcmc: Option<ReferenceConfig>,
}

fn final_n() -> usize {
    2000
}

/// A whole PITA run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitaConfig {
    /// Registered system (its energy in kT units at T = 1).
    pub system: String,
    /// Temperature ladder relative to the system's, strictly decreasing, ending at 1
    /// (LJ-13: 4, 3, 2, 1.5, 1.2, 1; alanine dipeptide 1200 → 300 K: 4, 2.5198, 1.8517, 1).
    pub temperatures: Vec<f64>,
    /// Run seed (networks, batches, noise, SMC).
    pub seed: u64,
    /// libtorch threads (default: the CLI's `--threads`, else all cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// `"cpu"`, `"cuda"` or `"cuda:N"`.
    #[serde(default = "cpu")]
    pub device: String,
    pub network: NetworkConfig,
    #[serde(default)]
    pub edm: Edm,
    pub initial: InitialConfig,
    pub training: TrainingConfig,
    pub smc: SmcConfig,
    /// Resample the annealed population once against the true energy,
    /// log w = −β_{i+1} E(x) + γ E_θ(x, σ_min) (REFERENCE §3.4, LJ).
    #[serde(default = "yes")]
    pub final_resample: bool,
    /// Truncated importance weights for the final resampling: log w is capped at this
    /// quantile of the population (unset: plain weights, as published). Caps the dominance of
    /// a few samples when the model's energy is poor; clashing samples still get weight ≈ 0.
    #[serde(default)]
    pub final_resample_clamp: Option<f64>,
    /// Drop the stage's new samples whose true energy lies above Q₃ + k (Q₃ − Q₁) of the
    /// population, or is not finite, before they join the buffer (unset: keep all). Removes
    /// clashes without reweighting the bulk ([`super::fence`]).
    #[serde(default)]
    pub final_energy_fence: Option<f64>,
    pub evaluation: EvaluationConfig,
}

fn cpu() -> String {
    "cpu".into()
}

impl PitaConfig {
    /// Parses TOML; unknown keys and wrong types are errors naming the key.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        crate::io::from_toml(text, origin)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let c = Self::from_toml(&text, path)?;
        c.validate()?;
        Ok(c)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a PitaConfig always serialises")
    }

    /// Checks every range; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let energy = registered_energy(&self.system)?;
        let t = &self.temperatures;
        if t.len() < 2 {
            return bad("temperatures", "need at least two (start and target)");
        }
        if t.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return bad("temperatures", format!("{t:?}: all must be positive"));
        }
        if t.windows(2).any(|w| w[1] >= w[0]) {
            return bad("temperatures", format!("{t:?} must decrease strictly"));
        }
        if (t[t.len() - 1] - 1.0).abs() > 1e-12 {
            return bad("temperatures", format!("{t:?} must end at the target, 1"));
        }
        if self.threads == Some(0) {
            return bad("threads", "must be at least 1");
        }
        if let Err(why) = crate::nn::device::parse_device(&self.device) {
            return bad("device", why);
        }
        self.network
            .validate_for(&self.system, energy.point_cloud())?;
        if energy.periodic() {
            return bad(
                "system",
                format!(
                    "'{}' lives on the torus of angles, which PITA's VE diffusion does not support",
                    self.system
                ),
            );
        }
        self.edm.validate().map_err(|e| e.within("edm"))?;
        match (&self.initial.mcmc, &self.initial.md) {
            (Some(m), None) => {
                single_temperature_mcmc(
                    m,
                    "initial.mcmc",
                    "the initial chain runs at the first temperature; remove pt",
                )?;
            }
            (None, Some(md)) => {
                md.validate().map_err(|e| Error::Config {
                    key: "initial.md".into(),
                    why: e.to_string(),
                })?;
                if crate::energy::registry::force_field(&self.system)?.is_none() {
                    return bad(
                        "initial.md",
                        format!(
                            "molecular dynamics needs a force field; '{}' is none (use [initial.mcmc])",
                            self.system
                        ),
                    );
                }
            }
            _ => {
                return bad(
                    "initial",
                    "set exactly one of [initial.mcmc] and [initial.md]",
                )
            }
        }
        let tr = &self.training;
        for (k, v) in [
            ("training.batch_size", tr.batch_size),
            ("training.checkpoint_every", tr.checkpoint_every),
            ("training.log_every", tr.log_every),
        ] {
            if v == 0 {
                return bad(k, "must be at least 1");
            }
        }
        if tr.steps_first == 0 {
            return bad("training.steps_first", "must be at least 1");
        }
        if !(tr.learning_rate.is_finite() && tr.learning_rate > 0.0) {
            return bad(
                "training.learning_rate",
                format!("{} must be positive", tr.learning_rate),
            );
        }
        if tr.grad_clip.is_nan() || tr.grad_clip <= 0.0 {
            return bad(
                "training.grad_clip",
                format!("{} must be positive", tr.grad_clip),
            );
        }
        if !(0.0..1.0).contains(&tr.ema_decay) {
            return bad(
                "training.ema_decay",
                format!("{} is not in [0, 1)", tr.ema_decay),
            );
        }
        tr.loss.validate().map_err(|e| e.within("training.loss"))?;
        self.smc.validate().map_err(|e| e.within("smc"))?;
        if let Some(q) = self.final_resample_clamp {
            if !(q > 0.0 && q <= 1.0) {
                return bad("final_resample_clamp", format!("{q} is not in (0, 1]"));
            }
        }
        if let Some(k) = self.final_energy_fence {
            if !(k.is_finite() && k >= 0.0) {
                return bad(
                    "final_energy_fence",
                    format!("{k} must be a finite number ≥ 0 (Tukey's k; 3 is usual)"),
                );
            }
        }
        if self.evaluation.n_samples == 0 {
            return bad("evaluation.n_samples", "must be at least 1");
        }
        if let Some(m) = &self.evaluation.reference_mcmc {
            single_temperature_mcmc(
                m,
                "evaluation.reference_mcmc",
                "each reference chain runs at its own temperature; remove pt",
            )?;
        }
        self.reference_path()?;
        Ok(())
    }

    /// The evaluation reference file, `None` for `"none"`; a missing file is an error.
    pub fn reference_path(&self) -> Result<Option<PathBuf>> {
        let name = self.evaluation.reference.as_str();
        if name == "none" {
            return Ok(None);
        }
        crate::io::resolve_data_file(name, "evaluation.reference").map(Some)
    }

    /// Whether `other` describes the same run: it may differ only in `threads`, `device` and
    /// the `evaluation` table (a finished run can be re-evaluated).
    pub fn same_run_as(&self, other: &PitaConfig) -> bool {
        let strip = |c: &PitaConfig| PitaConfig {
            threads: None,
            device: String::new(),
            evaluation: EvaluationConfig {
                reference: String::new(),
                n_samples: 0,
                seed: 0,
                tempered_references: false,
                reference_mcmc: None,
            },
            ..c.clone()
        };
        strip(self) == strip(other)
    }

    /// β_i = 1 / T_i.
    pub fn betas(&self) -> Vec<f64> {
        self.temperatures.iter().map(|t| 1.0 / t).collect()
    }
}
