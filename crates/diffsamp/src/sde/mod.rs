//! Stochastic differential equations: noise schedules, seeded Gaussian noise, Euler–Maruyama
//! and the path-space importance weights of its rollouts.
//!
//! Time convention: t = 0 is the start (point mass at the origin, noise side), t = 1 the sample.
pub mod euler_maruyama;
pub mod importance;
pub mod noise;
pub mod schedule;
pub mod space;
pub mod torus;

pub use euler_maruyama::{power_grid, remove_com, uniform_grid, EulerMaruyama, Rollout};
pub use noise::{HostNoise, NoiseSource, TorchNoise};
pub use schedule::{BridgeCoefficients, Geometric, Schedule};
pub use space::StateSpace;
