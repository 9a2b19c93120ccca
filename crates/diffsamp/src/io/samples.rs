//! Sample sets: `[N, dim]` or `[N, particles, spatial]` arrays checked against a system.

use super::npy::read_npy;
use crate::error::{Error, Result};
use diffsamp_energy::Energy;
use std::path::Path;

/// Samples of one system, row-major `[n, dim]`, all rows finite.
#[derive(Clone, Debug)]
pub struct Samples {
    pub data: Vec<f64>,
    pub n: usize,
    pub dim: usize,
    /// Rows dropped at load time because they held NaN or ±inf.
    pub non_finite_dropped: usize,
}

impl Samples {
    /// Row `i` of the sample set.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The first `n` rows (all when `n` ≥ the number of rows).
    pub fn truncated(&self, n: usize) -> Samples {
        let n = n.min(self.n);
        Samples {
            data: self.data[..n * self.dim].to_vec(),
            n,
            dim: self.dim,
            non_finite_dropped: self.non_finite_dropped,
        }
    }

    /// Builds a sample set from rows, dropping (and counting) non-finite rows.
    pub fn from_rows(data: Vec<f64>, dim: usize) -> Result<Samples> {
        let f = diffsamp_metrics::filter_finite(&data, dim)?;
        Ok(Samples {
            data: f.data,
            n: f.kept,
            dim,
            non_finite_dropped: f.removed,
        })
    }
}

/// Loads samples of `energy` from a `.npy` file of shape `[N, dim]` or, for particle systems,
/// `[N, particles, spatial]`. Particle systems are moved to the zero-COM subspace. Rows with
/// NaN/inf are dropped and counted. A shape that does not match the system is an error that
/// names the file, the shape found and the one expected.
pub fn load_samples(path: &Path, energy: &dyn Energy) -> Result<Samples> {
    let arr = read_npy(path)?;
    let dim = energy.dim();
    let ok = match (arr.shape.as_slice(), energy.particles()) {
        ([_, d], _) => *d == dim,
        ([_, n, s], Some(p)) => *n == p.n && *s == p.spatial,
        // Molecules (no particle symmetry in the sampler) stored as [N, atoms, 3].
        ([_, n, s], None) => n * s == dim,
        _ => false,
    };
    if !ok {
        let expected = match energy.particles() {
            Some(p) => format!("[N, {dim}] or [N, {}, {}]", p.n, p.spatial),
            None => format!("[N, {dim}] (or [N, a, b] with a·b = {dim})"),
        };
        return Err(Error::Format {
            path: path.to_path_buf(),
            why: format!(
                "shape {:?} does not fit system '{}': expected {expected}",
                arr.shape,
                energy.name()
            ),
        });
    }
    let mut s = Samples::from_rows(arr.data, dim)?;
    if s.n == 0 {
        return Err(Error::Format {
            path: path.to_path_buf(),
            why: format!("no finite samples ({} rows dropped)", s.non_finite_dropped),
        });
    }
    if let Some(p) = energy.particles() {
        p.remove_com_batch(&mut s.data);
    }
    Ok(s)
}
