//! Adjoint Sampling (Havens et al. 2025): reciprocal adjoint matching with a replay buffer.
pub mod config;
pub mod log_variance;
pub mod loss;
pub mod replay_buffer;
pub mod run;
pub mod trainer;

pub use config::{AsConfig, EvaluationSettings, NetworkConfig, ReferenceSource};
pub use log_variance::{log_variance_loss, path_log_weights, PathBatch};
pub use loss::{ram_loss, sample_bridge, terminal_adjoint, BridgeSample};
pub use replay_buffer::{BufferBatch, ReplayBuffer};
pub use run::{FinalSummary, Run, RunEvent};
pub use trainer::{EpochReport, Trainer, TrainerSettings};
