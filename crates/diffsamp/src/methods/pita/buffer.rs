//! The sample buffer of a PITA ladder: every sample collected so far (MCMC at the highest
//! temperature, then each annealing stage), with its inverse temperature and its true energy
//! and gradient, evaluated once when it enters.

use crate::error::{Error, Result};
use crate::io::{read_npy, write_npy};
use std::path::Path;

/// Samples `[n, d]` with β `[n]`, E `[n]` (target units, kT at T = 1) and ∇E `[n, d]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleBuffer {
    pub dim: usize,
    pub x: Vec<f64>,
    pub beta: Vec<f64>,
    pub energy: Vec<f64>,
    pub grad: Vec<f64>,
}

const FILES: [&str; 4] = [
    "buffer_x.npy",
    "buffer_beta.npy",
    "buffer_energy.npy",
    "buffer_grad.npy",
];

impl SampleBuffer {
    /// An empty buffer of `dim`-dimensional samples.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            ..Self::default()
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.beta.len()
    }

    /// Whether the buffer holds no sample.
    pub fn is_empty(&self) -> bool {
        self.beta.is_empty()
    }

    /// Adds the samples `x` `[n, d]` of inverse temperature β with energies and gradients;
    /// rows whose energy or gradient is not finite are left out (their count is returned).
    pub fn push(&mut self, x: &[f64], beta: f64, energy: &[f64], grad: &[f64]) -> Result<usize> {
        let d = self.dim;
        let n = energy.len();
        if x.len() != n * d || grad.len() != n * d {
            return Err(Error::Shape(format!(
                "buffer: {} coordinates, {} energies, {} gradient entries for dimension {d}",
                x.len(),
                n,
                grad.len()
            )));
        }
        let mut dropped = 0;
        for i in 0..n {
            let g = &grad[i * d..(i + 1) * d];
            if !energy[i].is_finite() || g.iter().any(|v| !v.is_finite()) {
                dropped += 1;
                continue;
            }
            self.x.extend_from_slice(&x[i * d..(i + 1) * d]);
            self.grad.extend_from_slice(g);
            self.energy.push(energy[i]);
            self.beta.push(beta);
        }
        Ok(dropped)
    }

    /// Writes the four arrays into `dir` (`buffer_*.npy`, f64).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (n, d) = (self.len(), self.dim);
        write_npy(&dir.join(FILES[0]), &[n, d], &self.x, true)?;
        write_npy(&dir.join(FILES[1]), &[n], &self.beta, true)?;
        write_npy(&dir.join(FILES[2]), &[n], &self.energy, true)?;
        write_npy(&dir.join(FILES[3]), &[n, d], &self.grad, true)
    }

    /// Reads a buffer written by [`SampleBuffer::save`]; shapes must agree with `dim`.
    pub fn load(dir: &Path, dim: usize) -> Result<Self> {
        let read = |name: &str, cols: usize| -> Result<Vec<f64>> {
            let path = dir.join(name);
            let a = read_npy(&path)?;
            let ok = match cols {
                0 => a.shape.len() == 1,
                c => a.shape.len() == 2 && a.shape[1] == c,
            };
            if !ok {
                return Err(Error::Format {
                    path,
                    why: format!("shape {:?} does not fit dimension {dim}", a.shape),
                });
            }
            Ok(a.data)
        };
        let b = Self {
            dim,
            x: read(FILES[0], dim)?,
            beta: read(FILES[1], 0)?,
            energy: read(FILES[2], 0)?,
            grad: read(FILES[3], dim)?,
        };
        let n = b.beta.len();
        if b.energy.len() != n || b.x.len() != n * dim || b.grad.len() != n * dim {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: "buffer arrays of different lengths".into(),
            });
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_drops_non_finite_rows_and_round_trips() {
        let mut b = SampleBuffer::new(2);
        let dropped = b
            .push(
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                0.5,
                &[1.0, f64::NAN, 3.0],
                &[0.1, 0.2, 0.3, 0.4, 0.5, f64::INFINITY],
            )
            .unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(b.len(), 1);
        assert_eq!(b.x, vec![1.0, 2.0]);
        assert!(b.push(&[1.0], 1.0, &[1.0], &[1.0, 2.0]).is_err());
        let dir = std::env::temp_dir().join(format!("diffsamp-pita-buffer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        b.save(&dir).unwrap();
        assert_eq!(SampleBuffer::load(&dir, 2).unwrap(), b);
        let err = SampleBuffer::load(&dir, 3).unwrap_err().to_string();
        assert!(err.contains("buffer_x.npy"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
