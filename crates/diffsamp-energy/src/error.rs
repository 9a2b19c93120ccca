//! Errors of the energy crate.

use std::path::PathBuf;

/// What can go wrong when building or evaluating an energy.
#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    /// A batch slice whose length is not a multiple of the energy's dimension, or output
    /// buffers of the wrong length.
    #[error("{energy}: {what} has length {len}, expected {expected}")]
    Shape {
        energy: String,
        what: &'static str,
        len: usize,
        expected: usize,
    },
    /// No energy of that name exists.
    #[error("unknown system '{name}'; known systems: {known}")]
    UnknownSystem { name: String, known: String },
    /// An impossible parameter (non-positive temperature, ...).
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    /// A data file (GMM means, ...) is missing or malformed.
    #[error("cannot read {path}: {why}")]
    Data { path: PathBuf, why: String },
}
