//! NumPy `.npy` files: float32/float64 in C order read into `f64`; samples written as float32.

use crate::error::{Error, Result};
use npyz::WriterBuilder;
use std::path::Path;

pub use diffsamp_energy::data::NpyArray;

/// Reads a float32 or float64 C-order `.npy` file into f64 (other dtypes, Fortran order,
/// truncated or corrupt files are errors naming the path).
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    Ok(diffsamp_energy::data::read_npy(path)?)
}

/// Writes `data` with `shape` as a float32 `.npy` file (samples) — or float64 when `f64_out`.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64], f64_out: bool) -> Result<()> {
    let expected: usize = shape.iter().product();
    if expected != data.len() {
        return Err(Error::Shape(format!(
            "writing {}: shape {shape:?} needs {expected} values, got {}",
            path.display(),
            data.len()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let w = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, e);
    if f64_out {
        let mut writer = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(w)
            .begin_nd()
            .map_err(io)?;
        writer.extend(data.iter().copied()).map_err(io)?;
        writer.finish().map_err(io)?;
    } else {
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(w)
            .begin_nd()
            .map_err(io)?;
        writer.extend(data.iter().map(|&v| v as f32)).map_err(io)?;
        writer.finish().map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_f32_and_f64() {
        let dir = std::env::temp_dir().join(format!("diffsamp-npy-{}", std::process::id()));
        let data = vec![1.5, -2.25, 3.0, 4.0, 5.0, 6.0];
        for f64_out in [false, true] {
            let p = dir.join(format!("a{f64_out}.npy"));
            write_npy(&p, &[2, 3], &data, f64_out).unwrap();
            let a = read_npy(&p).unwrap();
            assert_eq!(a.shape, vec![2, 3]);
            assert_eq!(a.data, data);
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn corrupt_and_missing_files_are_named_errors() {
        let dir = std::env::temp_dir().join(format!("diffsamp-npy-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.npy");
        let e = read_npy(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.npy"), "{e}");

        let garbage = dir.join("garbage.npy");
        std::fs::write(&garbage, b"definitely not numpy").unwrap();
        let e = read_npy(&garbage).unwrap_err().to_string();
        assert!(e.contains("garbage.npy"), "{e}");

        let good = dir.join("trunc.npy");
        write_npy(&good, &[10, 3], &vec![1.0; 30], true).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&good, &bytes[..bytes.len() - 16]).unwrap();
        let e = read_npy(&good).unwrap_err().to_string();
        assert!(e.contains("trunc.npy"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
