//! TOML configs of flow-matching pretraining and Adjoint Matching fine-tuning runs.
//!
//! ```toml
//! # pretraining (diffsamp flow pretrain)      # fine-tuning (diffsamp flow finetune)
//! target = "gmm40"                            base = "runs/base"   # or gaussian:D, exact:SYSTEM
//! steps = 20000                               reward = "quadratic:0,0;k=0.05"
//! checkpoint_every = 1000                     iterations = 1000
//! [network]     # MlpConfig                   [network]   # the residual δ_θ
//! [training]    # PretrainSettings            [training]  # FinetuneSettings (lambda, adjoint…)
//! [evaluation]  # FlowEvaluation              [evaluation]
//! ```
//!
//! Every table rejects unknown keys; `validate` checks ranges and names the key.

use crate::error::{Error, Result};
use crate::methods::adjoint_matching::{FinetuneSettings, OdeSolver, PretrainSettings};
use crate::nn::MlpConfig;
use serde::{Deserialize, Serialize};

/// Periodic and final evaluation of a flow run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowEvaluation {
    /// Evaluate every this many steps / iterations (0: only at the end).
    #[serde(default)]
    pub every: usize,
    /// Samples of a periodic evaluation.
    #[serde(default = "default_periodic")]
    pub n_samples: usize,
    /// Samples of the final evaluation.
    #[serde(default = "default_final")]
    pub final_n_samples: usize,
    /// ODE steps of flow sampling.
    #[serde(default = "default_ode_steps")]
    pub ode_steps: usize,
    /// ODE integrator.
    #[serde(default = "default_solver")]
    pub solver: OdeSolver,
    /// Seed of evaluation sampling (independent of training).
    #[serde(default)]
    pub seed: u64,
    /// ε of the Sinkhorn divergence against exact samples (0: skip it).
    #[serde(default = "default_eps")]
    pub sinkhorn_epsilon: f64,
}

fn default_periodic() -> usize {
    1000
}
fn default_final() -> usize {
    2000
}
fn default_ode_steps() -> usize {
    100
}
fn default_solver() -> OdeSolver {
    OdeSolver::Heun
}
fn default_eps() -> f64 {
    1e-2
}
fn default_checkpoint_every() -> usize {
    100
}
fn default_device() -> String {
    "cpu".into()
}

impl Default for FlowEvaluation {
    fn default() -> Self {
        Self {
            every: 0,
            n_samples: default_periodic(),
            final_n_samples: default_final(),
            ode_steps: default_ode_steps(),
            solver: default_solver(),
            seed: 0,
            sinkhorn_epsilon: default_eps(),
        }
    }
}

impl FlowEvaluation {
    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::Config {
                key: format!("evaluation.{key}"),
                why: why.into(),
            })
        };
        if self.n_samples < 2 || self.final_n_samples < 2 {
            return bad(
                "n_samples",
                "n_samples and final_n_samples must be at least 2",
            );
        }
        if self.ode_steps == 0 {
            return bad("ode_steps", "must be at least 1");
        }
        if !(self.sinkhorn_epsilon.is_finite() && self.sinkhorn_epsilon >= 0.0) {
            return bad("sinkhorn_epsilon", "must be ≥ 0 and finite");
        }
        Ok(())
    }
}

fn common(checkpoint_every: usize, threads: Option<usize>, device: &str) -> Result<()> {
    let bad = |key: &str, why: String| {
        Err(Error::Config {
            key: key.into(),
            why,
        })
    };
    if checkpoint_every == 0 {
        return bad("checkpoint_every", "must be at least 1".into());
    }
    if threads == Some(0) {
        return bad("threads", "must be at least 1".into());
    }
    if let Err(why) = crate::nn::device::parse_device(device) {
        return bad("device", why);
    }
    Ok(())
}

pub use crate::io::from_toml;

/// A flow-matching pretraining run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// A registered system with an exact sampler (see `diffsamp systems`), or a `.npy` file of
    /// training samples `[n, dim]`.
    pub target: String,
    /// Adam steps.
    pub steps: usize,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub network: MlpConfig,
    #[serde(default)]
    pub training: PretrainSettings,
    #[serde(default)]
    pub evaluation: FlowEvaluation,
}

impl PretrainConfig {
    /// Defaults for `target`: an MLP of 3 × 128 whose input scale `length_scale` is the
    /// target's overall standard deviation (estimated from 2000 exact samples of a registered
    /// system; 1 for files).
    pub fn for_target(target: &str) -> Self {
        let length_scale = crate::energy::registry::system(target)
            .ok()
            .and_then(|s| {
                let dim = s.energy.dim();
                let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
                let x = s.exact?.sample(2000, &mut rng);
                let n = (x.len() / dim) as f64;
                let var: f64 = (0..dim)
                    .map(|c| {
                        let col: Vec<f64> = x.iter().skip(c).step_by(dim).copied().collect();
                        let m = col.iter().sum::<f64>() / n;
                        col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n
                    })
                    .sum::<f64>()
                    / dim as f64;
                Some(var.sqrt().max(1.0))
            })
            .unwrap_or(1.0);
        Self {
            target: target.into(),
            steps: 5000,
            checkpoint_every: 500,
            threads: None,
            device: default_device(),
            network: MlpConfig {
                n_frequencies: 8,
                max_frequency: 4.0,
                length_scale,
                ..MlpConfig::default()
            },
            training: PretrainSettings::default(),
            evaluation: FlowEvaluation::default(),
        }
    }

    /// Checks every range; errors name the key.
    pub fn validate(&self) -> Result<()> {
        common(self.checkpoint_every, self.threads, &self.device)?;
        if self.steps == 0 {
            return Err(Error::Config {
                key: "steps".into(),
                why: "must be at least 1".into(),
            });
        }
        self.network.validate().map_err(|e| e.within("network"))?;
        self.training.validate().map_err(|e| e.within("training"))?;
        self.evaluation.validate()
    }

    /// The same run up to `steps`, `checkpoint_every`, `threads`, `device`.
    pub fn same_run_as(&self, other: &Self) -> bool {
        let norm = |c: &Self| Self {
            steps: 0,
            checkpoint_every: 1,
            threads: None,
            device: String::new(),
            ..c.clone()
        };
        norm(self) == norm(other)
    }
}

fn finetune_network() -> MlpConfig {
    MlpConfig {
        n_frequencies: 8,
        max_frequency: 4.0,
        ..MlpConfig::default()
    }
}

/// An Adjoint Matching fine-tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The base flow model: a pretraining run directory, `gaussian:D` (N(0, I) in D
    /// dimensions, exact velocity) or `exact:SYSTEM` (exact velocity of a registered mixture).
    pub base: String,
    /// Reward spec (see [`crate::methods::adjoint_matching::Reward`]).
    pub reward: String,
    /// Fine-tuning iterations.
    pub iterations: usize,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default = "default_device")]
    pub device: String,
    /// The residual network δ_θ (default: 3 × 128 with 8 Fourier frequencies up to 4).
    #[serde(default = "finetune_network")]
    pub network: MlpConfig,
    #[serde(default)]
    pub training: FinetuneSettings,
    #[serde(default)]
    pub evaluation: FlowEvaluation,
}

impl FinetuneConfig {
    /// Defaults for a base and reward.
    pub fn new(base: &str, reward: &str) -> Self {
        Self {
            base: base.into(),
            reward: reward.into(),
            iterations: 1000,
            checkpoint_every: default_checkpoint_every(),
            threads: None,
            device: default_device(),
            network: finetune_network(),
            training: FinetuneSettings::default(),
            evaluation: FlowEvaluation::default(),
        }
    }

    /// Checks every range; errors name the key (reward and base are checked on open).
    pub fn validate(&self) -> Result<()> {
        common(self.checkpoint_every, self.threads, &self.device)?;
        if self.iterations == 0 {
            return Err(Error::Config {
                key: "iterations".into(),
                why: "must be at least 1".into(),
            });
        }
        self.network.validate().map_err(|e| e.within("network"))?;
        self.training.validate().map_err(|e| e.within("training"))?;
        self.evaluation.validate()
    }

    /// The same run up to `iterations`, `checkpoint_every`, `threads`, `device`.
    pub fn same_run_as(&self, other: &Self) -> bool {
        let norm = |c: &Self| Self {
            iterations: 0,
            checkpoint_every: 1,
            threads: None,
            device: String::new(),
            ..c.clone()
        };
        norm(self) == norm(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A config file that names only a few keys gets the same defaults as the CLI flags.
    #[test]
    fn partial_finetune_config_takes_the_cli_defaults() {
        let text = "base = \"gaussian:2\"\nreward = \"linear:1,0\"\niterations = 7\n\
                    [training]\nsteps = 200\nseed = 3\n";
        let c: FinetuneConfig = from_toml(text, Path::new("c.toml")).unwrap();
        let mut expect = FinetuneConfig::new("gaussian:2", "linear:1,0");
        expect.iterations = 7;
        expect.training.steps = 200;
        expect.training.seed = 3;
        assert_eq!(c, expect);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let bad = "base = \"gaussian:2\"\nreward = \"linear:1,0\"\niterations = 7\n\
                   [training]\nstep = 200\n";
        let e = from_toml::<FinetuneConfig>(bad, Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("step"), "{e}");
        let mut c = FinetuneConfig::new("gaussian:2", "linear:1,0");
        c.training.steps = 1;
        assert!(c.validate().unwrap_err().to_string().contains("steps"));
    }
}
