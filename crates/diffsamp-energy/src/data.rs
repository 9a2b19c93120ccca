//! Locating the shared reference data and reading `.npy` arrays (float32 or float64) as f64.

use crate::EnergyError;
use std::path::{Path, PathBuf};

/// Environment variable that overrides [`shared_data_dir`].
pub const SHARED_DATA_ENV: &str = "DIFFSAMP_SHARED_DATA";

/// Directory holding the shared reference data (published validation splits, ...).
///
/// `$DIFFSAMP_SHARED_DATA` when set and non-empty, else `<workspace>/../shared/data`
/// (resolved from this crate's manifest directory at compile time).
pub fn shared_data_dir() -> PathBuf {
    match std::env::var_os(SHARED_DATA_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")),
    }
}

/// `shared_data_dir()/file`, or [`EnergyError::Data`] naming the full path when it does not
/// exist (tests use this to fail loudly instead of skipping).
pub fn shared_data_file(file: &str) -> Result<PathBuf, EnergyError> {
    let path = shared_data_dir().join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EnergyError::Data {
            path,
            why: format!("file not found (set {SHARED_DATA_ENV} to the shared data directory)"),
        })
    }
}

/// A dense C-order array read from a `.npy` file, converted to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Shape as written in the file.
    pub shape: Vec<usize>,
    /// Elements, row-major (C order), length = product of `shape`.
    pub data: Vec<f64>,
}

impl NpyArray {
    /// Number of rows (first axis; 1 for a 0-d array).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row (product of all axes but the first).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// Reads a little- or big-endian float32/float64 C-order `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, EnergyError> {
    let bytes = std::fs::read(path).map_err(|e| EnergyError::Data {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a float32/float64 C-order `.npy` file; `origin` only labels errors.
pub fn parse_npy(bytes: &[u8], origin: &Path) -> Result<NpyArray, EnergyError> {
    let err = |why: String| EnergyError::Data {
        path: origin.to_path_buf(),
        why,
    };
    let file = npyz::NpyFile::new(bytes).map_err(|e| err(e.to_string()))?;
    if file.order() != npyz::Order::C {
        return Err(err("Fortran-order arrays are not supported".into()));
    }
    let shape: Vec<usize> = file.shape().iter().map(|&s| s as usize).collect();
    let dtype = file.dtype();
    let data: Vec<f64> = match file.try_data::<f64>() {
        Ok(reader) => reader
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        Err(file) => match file.try_data::<f32>() {
            Ok(reader) => reader
                .map(|v| v.map(f64::from))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?,
            Err(_) => {
                return Err(err(format!(
                    "dtype {} is neither float32 nor float64",
                    dtype.descr()
                )))
            }
        },
    };
    if data.len() != shape.iter().product::<usize>() {
        return Err(err(format!("{} elements for shape {shape:?}", data.len())));
    }
    Ok(NpyArray { shape, data })
}

/// Parses an `.npy` file embedded in the crate that must be a `[rows, cols]` matrix.
/// Only used on files shipped with the crate, so a failure is an internal bug.
pub(crate) fn embedded_matrix(bytes: &[u8], name: &str, rows: usize, cols: usize) -> Vec<f64> {
    let arr = parse_npy(bytes, Path::new(name))
        .unwrap_or_else(|e| panic!("embedded data {name} is corrupt: {e}"));
    assert_eq!(
        arr.shape,
        vec![rows, cols],
        "embedded data {name} has an unexpected shape"
    );
    arr.data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal version-1 `.npy` file.
    fn npy_bytes(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reads_float32_and_float64() {
        let vals = [1.5f64, -2.25, 3.0, 0.125];
        let p64: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p32: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        for bytes in [
            npy_bytes("<f8", "(2, 2)", &p64),
            npy_bytes("<f4", "(2, 2)", &p32),
        ] {
            let a = parse_npy(&bytes, Path::new("mem")).unwrap();
            assert_eq!(a.shape, vec![2, 2]);
            assert_eq!(a.data, vals.to_vec());
            assert_eq!((a.rows(), a.row_len()), (2, 2));
        }
    }

    #[test]
    fn rejects_integers_and_garbage() {
        let bytes = npy_bytes("<i4", "(2,)", &[0u8; 8]);
        let e = parse_npy(&bytes, Path::new("ints.npy")).unwrap_err();
        assert!(e.to_string().contains("ints.npy"), "{e}");
        assert!(parse_npy(b"not an npy file", Path::new("x")).is_err());
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let e = read_npy(Path::new("/nonexistent/dir/x.npy")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/x.npy"), "{e}");
        let e = shared_data_file("definitely_not_there.npy").unwrap_err();
        assert!(e.to_string().contains("definitely_not_there.npy"), "{e}");
    }
}
