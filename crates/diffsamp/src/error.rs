//! The library's error type.

use std::path::PathBuf;

/// Errors of the `diffsamp` library; each names the file, key or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what was expected.
    #[error("{path}: {why}")]
    Format { path: PathBuf, why: String },
    /// Array shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A configuration value that is invalid.
    #[error("invalid config: {key}: {why}")]
    Config { key: String, why: String },
    #[error(transparent)]
    Energy(#[from] diffsamp_energy::EnergyError),
    #[error(transparent)]
    Metrics(#[from] diffsamp_metrics::MetricsError),
    #[error(transparent)]
    Mcmc(#[from] diffsamp_mcmc::McmcError),
    /// A plot could not be drawn.
    #[error("plot {path}: {why}")]
    Plot { path: PathBuf, why: String },
}

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Prefixes the key of a [`Error::Config`] with the table it sits in
    /// (`batch_size` → `training.batch_size`); other errors pass unchanged.
    pub fn within(self, table: &str) -> Self {
        match self {
            Error::Config { key, why } => Error::Config {
                key: format!("{table}.{key}"),
                why,
            },
            other => other,
        }
    }
}
