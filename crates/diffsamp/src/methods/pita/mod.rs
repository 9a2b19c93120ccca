//! PITA: progressive inference-time annealing (REFERENCE §3). Diffusion models trained at a
//! high temperature are annealed to the next lower one by a Feynman–Kac reweighted reverse
//! SDE with sequential Monte Carlo; the new samples (true energies evaluated once) join the
//! buffer, training continues, down to the target temperature.
pub mod buffer;
pub mod config;
pub mod diagnostics;
pub mod edm;
pub mod exact;
pub mod fence;
pub mod loss;
pub mod model;
pub mod run;
pub mod smc;

pub use config::PitaConfig;
pub use run::{Draw, PitaEvent, PitaRun, PitaSummary, StageLine, TrainLine};
