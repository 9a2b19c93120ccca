//! Stochastic differential equations: noise schedules, seeded Gaussian noise and Euler–Maruyama.
//!
//! Time convention: t = 0 is the start (point mass at the origin, noise side), t = 1 the sample.
pub mod euler_maruyama;
pub mod noise;
pub mod schedule;

pub use euler_maruyama::{remove_com, uniform_grid, EulerMaruyama, Rollout};
pub use noise::{HostNoise, NoiseSource, TorchNoise};
pub use schedule::{BridgeCoefficients, Geometric, Schedule};
