//! diffsamp: diffusion-based samplers for Boltzmann densities p(x) ∝ exp(−E(x)).
//!
//! Time convention (all methods): t = 0 is the start / noise side, t = 1 the sample.
pub mod error;
pub mod evaluate;
pub mod geometry;
pub mod io;
pub mod methods;
pub mod nn;
pub mod report;
pub mod sde;

pub use diffsamp_energy as energy;
pub use diffsamp_mcmc as mcmc;
pub use diffsamp_metrics as metrics;
pub use error::{Error, Result};
