//! Errors of the MCMC crate.

use diffsamp_energy::EnergyError;

/// What can go wrong when configuring or running a reference sampler.
///
/// Non-finite energies met *during* sampling are not errors: they are rejected proposals,
/// counted in the result. Only a non-finite starting point is fatal.
#[derive(Debug, thiserror::Error)]
pub enum McmcError {
    /// A configuration value outside its valid range; `field` is the dotted key
    /// (`"pt.n_temps"`, `"thinning"`, ...).
    #[error("invalid config: `{field}` = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// The initial state of a chain has a non-finite energy or gradient even after the
    /// initialisation retries.
    #[error(
        "initialisation failed for {energy}: chain {chain}, replica {replica} has energy {value} \
         (non-finite energy or gradient at the starting point)"
    )]
    NonFiniteInit {
        energy: String,
        chain: usize,
        replica: usize,
        value: f64,
    },
    /// No preset exists for that system name.
    #[error("no reference preset for system '{name}'; known presets: {known}")]
    UnknownPreset { name: String, known: String },
    /// An error from the energy crate.
    #[error(transparent)]
    Energy(#[from] EnergyError),
}

impl McmcError {
    /// Shorthand for [`McmcError::InvalidConfig`].
    pub(crate) fn invalid(
        field: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        McmcError::InvalidConfig {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
