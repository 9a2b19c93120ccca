//! The TOML configuration of an Adjoint Sampling run (`configs/<system>_as*.toml`).
//!
//! ```toml
//! system = "dw4"
//! epochs = 300
//! checkpoint_every = 10
//!
//! [network.egnn]          # or [network.mlp] for vector targets
//! n_layers = 3
//! hidden = 64
//! coords_range = 3.0
//! aggregation = "sum"
//!
//! [training]              # TrainerSettings
//! nfe = 100
//! samples_per_epoch = 256
//! steps_per_epoch = 50
//! batch_size = 256
//! buffer_size = 10000
//! learning_rate = 1e-3
//! grad_clip = 100.0
//! seed = 0
//! [training.schedule]
//! sigma_min = 1e-3
//! sigma_max = 1.5
//!
//! [evaluation]
//! reference = "val_split_DW4.npy"   # a file, "exact" or "mcmc"
//! every = 50
//! ```
//!
//! Every table rejects unknown keys; [`AsConfig::validate`] checks ranges and names the key
//! (`training.batch_size`, `evaluation.reference`, ...).

use crate::energy::registry::{self, System};
use crate::energy::Particles;
use crate::error::{Error, Result};
use crate::methods::adjoint_sampling::TrainerSettings;
use crate::nn::{EgnnConfig, MlpConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The control network of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkConfig {
    /// E(n)-equivariant GNN (particle systems).
    Egnn(EgnnConfig),
    /// MLP with Fourier time features (vector targets).
    Mlp(MlpConfig),
}

/// Where the evaluation's reference samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReferenceSource {
    /// Exact i.i.d. samples of the system's sampler (GMM, Many-Well, MoS).
    Exact,
    /// MCMC samples of the system's preset, drawn once and cached in the run directory.
    Mcmc,
    /// A `.npy` file.
    File(PathBuf),
}

/// Periodic and final evaluation against reference samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSettings {
    /// `"exact"`, `"mcmc"`, or a `.npy` path: absolute, relative to the working directory, or
    /// a file name in the shared data directory (`$DIFFSAMP_SHARED_DATA`, `../shared/data`).
    pub reference: String,
    /// Evaluate every this many epochs (0: only at the end).
    #[serde(default)]
    pub every: usize,
    /// Generated samples of a periodic evaluation (≥ 1).
    #[serde(default = "default_periodic_samples")]
    pub n_samples: usize,
    /// Generated samples of the final evaluation (published protocol: 2000 vs 2000).
    #[serde(default = "default_final_samples")]
    pub final_n_samples: usize,
    /// Grid points of the evaluation rollouts (default: the training `nfe`).
    #[serde(default)]
    pub nfe: Option<usize>,
    /// Seed of the evaluation rollouts and subsampling (independent of training).
    #[serde(default)]
    pub seed: u64,
    /// ε of the Sinkhorn metrics for vector targets (0: skip them).
    #[serde(default = "default_sinkhorn_epsilon")]
    pub sinkhorn_epsilon: f64,
    /// The final evaluation also scores the importance-resampled samples when their effective
    /// sample size (Σw)²/Σw² is at least this (default 100). Below it a handful of samples would
    /// fill the resampled set: its figures mean little, and the Sinkhorn metrics of such a set
    /// converge very slowly (20 min on a degenerate MoS-50 set against 45 s).
    #[serde(default = "default_min_resampled_ess")]
    pub min_resampled_ess: f64,
}

fn default_periodic_samples() -> usize {
    500
}
fn default_final_samples() -> usize {
    2000
}
fn default_sinkhorn_epsilon() -> f64 {
    1e-3
}
fn default_min_resampled_ess() -> f64 {
    crate::sde::importance::MIN_USEFUL_ESS
}

/// A whole Adjoint Sampling run: target, network, training loop, evaluation, bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsConfig {
    /// Target system (see `diffsamp systems`).
    pub system: String,
    /// Outer iterations (paper: 5000 DW-4, 4000 LJ).
    pub epochs: usize,
    /// Write a checkpoint every this many epochs (≥ 1); always at the end.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// libtorch intra-op threads (default: the CLI's `--threads`, else all cores). Runs are
    /// bit-reproducible for a fixed thread count.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Tensor device: "cpu", "cuda" or "cuda:N".
    #[serde(default = "default_device")]
    pub device: String,
    pub network: NetworkConfig,
    pub training: TrainerSettings,
    pub evaluation: EvaluationSettings,
}

fn default_checkpoint_every() -> usize {
    10
}
fn default_device() -> String {
    "cpu".into()
}

fn bad<T>(key: &str, why: impl Into<String>) -> Result<T> {
    Err(Error::Config {
        key: key.to_string(),
        why: why.into(),
    })
}

fn in_table<T>(table: &str, r: Result<T>) -> Result<T> {
    r.map_err(|e| e.within(table))
}

/// The registered energy `name` for a config's `system` key; an unknown name is an error on
/// that key listing the known systems.
pub fn registered_energy(name: &str) -> Result<Box<dyn crate::energy::Energy>> {
    registry::by_name(name).or_else(|_| {
        bad(
            "system",
            format!(
                "unknown system '{name}' (known: {})",
                registry::known_systems().join(", ")
            ),
        )
    })
}

impl NetworkConfig {
    /// Checks the network's own settings (errors keyed `network.egnn.*` / `network.mlp.*`) and
    /// that an EGNN is asked only of a particle system (`system` names the target in the
    /// error).
    pub fn validate_for(&self, system: &str, points: Option<Particles>) -> Result<()> {
        match self {
            NetworkConfig::Egnn(c) => {
                in_table("network.egnn", c.validate())?;
                if points.is_none() {
                    return bad(
                        "network",
                        format!(
                            "an EGNN needs a particle system or a molecule; '{system}' is a vector target (use [network.mlp])"
                        ),
                    );
                }
                Ok(())
            }
            NetworkConfig::Mlp(c) => in_table("network.mlp", c.validate()),
        }
    }
}

impl AsConfig {
    /// Parses a TOML config; `origin` names it in errors. Unknown keys and wrong types are
    /// errors naming the key; call [`AsConfig::validate`] for ranges.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        crate::io::from_toml(text, origin)
    }

    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg = Self::from_toml(&text, path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML (what a run directory's `config.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an AsConfig always serialises")
    }

    /// Checks every range, the system, the network/system fit, and that the reference can be
    /// found; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let system = registered_energy(&self.system)?;
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        if self.threads == Some(0) {
            return bad("threads", "must be at least 1");
        }
        if let Err(why) = crate::nn::device::parse_device(&self.device) {
            return bad("device", why);
        }
        self.network
            .validate_for(&self.system, system.point_cloud())?;
        if let NetworkConfig::Mlp(c) = &self.network {
            if c.periodic != system.periodic() {
                let why = if system.periodic() {
                    format!(
                        "'{}' lives on the torus of angles: set periodic = true",
                        self.system
                    )
                } else {
                    format!(
                        "'{}' is not an angle target: periodic must be false",
                        self.system
                    )
                };
                return bad("network.mlp.periodic", why);
            }
        }
        in_table("training", self.training.validate())?;
        let ev = &self.evaluation;
        if ev.n_samples == 0 {
            return bad("evaluation.n_samples", "must be at least 1");
        }
        if ev.final_n_samples == 0 {
            return bad("evaluation.final_n_samples", "must be at least 1");
        }
        if ev.nfe.is_some_and(|n| n < 2) {
            return bad("evaluation.nfe", "must be at least 2");
        }
        if !(ev.min_resampled_ess.is_finite() && ev.min_resampled_ess >= 0.0) {
            return bad("evaluation.min_resampled_ess", "must be ≥ 0 and finite");
        }
        if !(ev.sinkhorn_epsilon.is_finite() && ev.sinkhorn_epsilon >= 0.0) {
            return bad("evaluation.sinkhorn_epsilon", "must be ≥ 0 and finite");
        }
        self.reference_source()?;
        Ok(())
    }

    /// Resolves `evaluation.reference`: "exact" needs an exact sampler, a file must exist.
    pub fn reference_source(&self) -> Result<ReferenceSource> {
        let key = "evaluation.reference";
        match self.evaluation.reference.as_str() {
            "exact" => {
                let sys = registry::system(&self.system)?;
                if sys.exact.is_none() {
                    return bad(
                        key,
                        format!(
                            "system '{}' has no exact sampler; use \"mcmc\" or a file",
                            self.system
                        ),
                    );
                }
                Ok(ReferenceSource::Exact)
            }
            "mcmc" => Ok(ReferenceSource::Mcmc),
            name => Ok(ReferenceSource::File(crate::io::resolve_data_file(
                name, key,
            )?)),
        }
    }

    /// The target system of the config.
    pub fn system(&self) -> Result<System> {
        Ok(registry::system(&self.system)?)
    }

    /// Grid points of evaluation rollouts.
    pub fn eval_nfe(&self) -> usize {
        self.evaluation.nfe.unwrap_or(self.training.nfe)
    }

    /// Whether `other` describes the same run, i.e. differs at most in `epochs` (a finished
    /// run can be extended by raising it), `checkpoint_every`, `threads` and `device` (a run
    /// may move to another machine; it is then no longer bit-identical to an unmoved one).
    pub fn same_run_as(&self, other: &AsConfig) -> bool {
        let strip = |c: &AsConfig| AsConfig {
            epochs: 0,
            checkpoint_every: 0,
            threads: None,
            device: String::new(),
            ..c.clone()
        };
        strip(self) == strip(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DW4: &str = r#"
system = "dw4"
epochs = 3
[network.egnn]
n_layers = 2
hidden = 16
coords_range = 3.0
aggregation = "sum"
[training]
nfe = 20
samples_per_epoch = 32
steps_per_epoch = 2
batch_size = 16
buffer_size = 64
learning_rate = 1e-3
grad_clip = 100.0
seed = 0
[training.schedule]
sigma_min = 1e-3
sigma_max = 1.5
[evaluation]
reference = "mcmc"
"#;

    fn parse(text: &str) -> Result<AsConfig> {
        let c = AsConfig::from_toml(text, Path::new("test.toml"))?;
        c.validate()?;
        Ok(c)
    }

    fn config_key(r: Result<AsConfig>) -> String {
        match r {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_config_round_trips_through_toml() {
        let c = parse(DW4).unwrap();
        assert_eq!(c.checkpoint_every, 10);
        assert_eq!(c.evaluation.final_n_samples, 2000);
        let back = parse(&c.to_toml()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = parse(&DW4.replace("hidden = 16", "hidden = 16\nwidth = 3")).unwrap_err();
        assert!(e.to_string().contains("width"), "{e}");
        let e = parse(&DW4.replace("batch_size = 16", "batch_size = \"big\"")).unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
        let e = parse(&DW4.replace("epochs = 3", "epochs = 3\nepoch = 4")).unwrap_err();
        assert!(e.to_string().contains("epoch"), "{e}");
    }

    #[test]
    fn ranges_are_checked_with_the_table_in_the_key() {
        let k = config_key(parse(&DW4.replace("batch_size = 16", "batch_size = 0")));
        assert_eq!(k, "training.batch_size");
        let k = config_key(parse(&DW4.replace("sigma_min = 1e-3", "sigma_min = 2.0")));
        assert_eq!(k, "training.schedule.sigma_max");
        let k = config_key(parse(&DW4.replace("hidden = 16", "hidden = 0")));
        assert_eq!(k, "network.egnn.hidden");
        assert_eq!(
            config_key(parse(&DW4.replace("epochs = 3", "epochs = 0"))),
            "epochs"
        );
        assert_eq!(
            config_key(parse(&DW4.replace("\"dw4\"", "\"dw5\""))),
            "system"
        );
    }

    #[test]
    fn the_reference_must_exist_and_fit_the_system() {
        let missing = DW4.replace("\"mcmc\"", "\"no_such_file.npy\"");
        assert_eq!(config_key(parse(&missing)), "evaluation.reference");
        let exact = DW4.replace("\"mcmc\"", "\"exact\"");
        assert_eq!(config_key(parse(&exact)), "evaluation.reference");
    }

    #[test]
    fn an_egnn_on_a_vector_target_is_refused() {
        let k = config_key(parse(&DW4.replace("\"dw4\"", "\"gmm40\"")));
        assert_eq!(k, "network");
    }

    #[test]
    fn only_epochs_may_change_between_a_run_and_its_resume() {
        let a = parse(DW4).unwrap();
        let mut b = a.clone();
        b.epochs = 10;
        b.threads = Some(7);
        assert!(a.same_run_as(&b));
        b.training.learning_rate = 5e-4;
        assert!(!a.same_run_as(&b));
    }
}
