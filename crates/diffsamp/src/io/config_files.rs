//! Config files shared by every run type: TOML parsing and data-file lookup.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Parses a TOML config; `origin` names it in errors (unknown keys and wrong types are
/// reported by serde with the key).
pub fn from_toml<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Format {
        path: origin.to_path_buf(),
        why: e.to_string(),
    })
}

/// Resolves a data file named by config key `key`: an existing path (absolute or relative to
/// the working directory), else a file name in the shared data directory
/// (`$DIFFSAMP_SHARED_DATA`, `../shared/data`). A missing file is an error naming the key and
/// both places looked at.
pub fn resolve_data_file(name: &str, key: &str) -> Result<PathBuf> {
    let given = PathBuf::from(name);
    if given.is_file() {
        return Ok(given);
    }
    let shared = crate::energy::data::shared_data_dir().join(name);
    if given.is_relative() && shared.is_file() {
        return Ok(shared);
    }
    Err(Error::Config {
        key: key.into(),
        why: format!(
            "reference file '{name}' not found (looked at {} and {})",
            given.display(),
            shared.display()
        ),
    })
}
