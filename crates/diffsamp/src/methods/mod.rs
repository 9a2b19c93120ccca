//! Sampling methods built on the shared SDE, network and energy pieces.
pub mod adjoint_matching;
pub mod adjoint_sampling;
pub mod pita;
