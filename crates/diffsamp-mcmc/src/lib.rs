//! Reference MCMC samplers: MALA and HMC kernels, parallel tempering, and the driver that
//! produces reference samples of a target p*(x) ∝ exp(−E(x)) with mixing diagnostics.
//!
//! Layers: [`kernel`] (state, one MH step: [`mala`], [`hmc`]) → [`adapt`] (step size) →
//! [`chain`] (a ladder of replicas with its own RNG stream; rayon over chains) →
//! [`parallel_tempering`] (swaps) → [`reference`](mod@reference) (config, presets, warm-up/sampling loop).
//! Particle systems are sampled in the zero-centre-of-mass subspace throughout.
//!
//! Separately, [`langevin`] holds underdamped Langevin dynamics (BAOAB, per-atom masses, no
//! Metropolis correction) and replica exchange over a temperature ladder, for molecular
//! targets such as alanine dipeptide (`examples/aldp_reference.rs`).

pub mod adapt;
pub mod chain;
pub mod diagnostics;
pub mod error;
pub mod hmc;
pub mod init;
pub mod kernel;
pub mod langevin;
pub mod mala;
pub mod md_reference;
pub mod parallel_tempering;
pub mod progress;
pub mod reference;

pub use chain::{Chain, Ensemble, EnsembleSpec, Replica, ReplicaStats};
pub use diagnostics::Diagnostics;
pub use error::McmcError;
pub use init::InitConfig;
pub use kernel::{ChainState, Kernel, KernelKind, StepOutcome, Workspace};
pub use langevin::{run_remd, Langevin, LangevinState, RemdConfig, RemdResult};
pub use md_reference::{run_md_reference, MdReferenceConfig};
pub use parallel_tempering::{geometric_ladder, PtConfig, SwapStats};
pub use progress::{Observer, Progress, Silent, Stage};
pub use reference::{default_config_for, run_reference, ReferenceConfig, ReferenceResult, PRESETS};
