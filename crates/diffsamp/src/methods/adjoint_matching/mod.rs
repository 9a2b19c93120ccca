//! Adjoint Matching (REFERENCE §2): flow-matching pretraining, the memoryless conversion, the
//! lean and basic adjoints, reward fine-tuning, and the exactly solvable Gaussian-mixture case.
pub mod adjoint;
pub mod config;
pub mod finetune;
pub mod flow;
pub mod loss;
pub mod memoryless;
pub mod mixture;
pub mod pretrain;
pub mod reward;
pub mod run;

pub use adjoint::{adjoints, AdjointMethod};
pub use config::{FinetuneConfig, FlowEvaluation, PretrainConfig};
pub use finetune::{Base, FineTuner, FinetuneSettings, IterationReport, TargetAdjoint};
pub use flow::{flow_matching_loss, integrate, OdeSolver};
pub use loss::{per_sample_loss, LossSteps, RunningClip};
pub use memoryless::{Memoryless, Trajectory};
pub use mixture::IsotropicMixture;
pub use pretrain::{load_frozen, DataSource, PretrainSettings, Pretrainer};
pub use reward::Reward;
pub use run::{FinetuneReport, FinetuneRun, FlowEvent, PretrainReport, PretrainRun};
