//! Sample sets: `[N, dim]` or `[N, particles, spatial]` arrays checked against a system.

use super::npy::read_npy;
use crate::error::{Error, Result};
use crate::sde::importance::{resample_rows, ImportanceReport};
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

/// An error naming `path` unless `shape` is `[N, dim]` or, for particle systems,
/// `[N, particles, spatial]` (molecules: `[N, a, b]` with a·b = dim).
fn check_shape(path: &Path, shape: &[usize], energy: &dyn Energy) -> Result<()> {
    let dim = energy.dim();
    let ok = match (shape, energy.particles()) {
        ([_, d], _) => *d == dim,
        ([_, n, s], Some(p)) => *n == p.n && *s == p.spatial,
        // Molecules (no particle symmetry in the sampler) stored as [N, atoms, 3].
        ([_, n, s], None) => n * s == dim,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let expected = match energy.particles() {
        Some(p) => format!("[N, {dim}] or [N, {}, {}]", p.n, p.spatial),
        None => format!("[N, {dim}] (or [N, a, b] with a·b = {dim})"),
    };
    Err(Error::Format {
        path: path.to_path_buf(),
        why: format!(
            "shape {:?} does not fit system '{}': expected {expected}",
            shape,
            energy.name()
        ),
    })
}

/// Loads samples of `energy` from a `.npy` file of shape `[N, dim]` or, for particle systems,
/// `[N, particles, spatial]`. Particle systems are moved to the zero-COM subspace. Rows with
/// NaN/inf are dropped and counted. A shape that does not match the system is an error that
/// names the file, the shape found and the one expected.
///
/// A target on internal coordinates of a molecule ([`Energy::embedding`], e.g. torsions) also
/// accepts Cartesian configurations of that molecule (`[N, atoms · 3]` or `[N, atoms, 3]`),
/// converted row by row to its coordinates.
pub fn load_samples(path: &Path, energy: &dyn Energy) -> Result<Samples> {
    let arr = read_npy(path)?;
    let dim = energy.dim();
    let row: usize = arr.shape.iter().skip(1).product();
    let data = match energy.embedding() {
        Some(emb) if arr.shape.len() >= 2 && row == emb.cartesian_dim() => arr
            .data
            .chunks_exact(row)
            .flat_map(|x| {
                if x.iter().all(|v| v.is_finite()) {
                    emb.internal_of(x)
                } else {
                    vec![f64::NAN; dim]
                }
            })
            .collect(),
        _ => {
            check_shape(path, &arr.shape, energy)?;
            arr.data
        }
    };
    let mut s = Samples::from_rows(data, dim)?;
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

/// Loads samples as [`load_samples`] does, together with their importance log-weights (a `.npy`
/// of shape `[N]` written by `diffsamp sample --log-weights`), and returns `n_out` rows drawn by
/// systematic importance resampling (seeded by `seed`), with the weights' summary
/// (`log_z_exact` when the target's normaliser is known). Rows of weight zero (log w = −∞)
/// are never drawn; a non-finite row with a positive weight, or a count that differs between
/// the two files, is an error naming the files.
pub fn load_resampled(
    samples: &Path,
    log_weights: &Path,
    energy: &dyn Energy,
    n_out: usize,
    seed: u64,
    log_z_exact: Option<f64>,
) -> Result<(Samples, ImportanceReport)> {
    let raw = load_samples_unfiltered(samples, energy)?;
    let w = read_npy(log_weights)?;
    let dim = energy.dim();
    let n = raw.len() / dim;
    if w.shape.as_slice() != [n] {
        return Err(Error::Format {
            path: log_weights.to_path_buf(),
            why: format!(
                "shape {:?} does not match the {n} samples of {}: expected [{n}]",
                w.shape,
                samples.display()
            ),
        });
    }
    if let Some(i) = (0..n).find(|&i| {
        w.data[i] != f64::NEG_INFINITY && raw[i * dim..(i + 1) * dim].iter().any(|v| !v.is_finite())
    }) {
        return Err(Error::Format {
            path: log_weights.to_path_buf(),
            why: format!(
                "sample {i} of {} is not finite but has a positive weight",
                samples.display()
            ),
        });
    }
    let report = ImportanceReport::from_log_weights(&w.data, log_z_exact)?;
    let rows = resample_rows(&raw, dim, &w.data, n_out, seed)?;
    let mut s = Samples::from_rows(rows, dim)?;
    if let Some(p) = energy.particles() {
        p.remove_com_batch(&mut s.data);
    }
    Ok((s, report))
}

/// The rows of a samples file checked for shape, non-finite rows kept (row-major `[N, dim]`).
fn load_samples_unfiltered(path: &Path, energy: &dyn Energy) -> Result<Vec<f64>> {
    let arr = read_npy(path)?;
    check_shape(path, &arr.shape, energy)?;
    Ok(arr.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics as m;

    #[test]
    fn a_torsional_target_reads_cartesian_configurations_as_its_angles() {
        let energy = crate::energy::by_name("aldp-phi-psi").unwrap();
        let path = diffsamp_energy::data::shared_data_file("aldp_300K_val_nm.npy").unwrap();
        let s = load_samples(&path, energy.as_ref()).unwrap();
        assert_eq!((s.n, s.dim), (5000, 2));
        let cart = read_npy(&path).unwrap();
        let phi = m::alanine::phi(&cart.data[..66 * 10]).unwrap();
        let psi = m::alanine::psi(&cart.data[..66 * 10]).unwrap();
        for i in 0..10 {
            assert!((s.row(i)[0] - phi[i]).abs() < 1e-9 && (s.row(i)[1] - psi[i]).abs() < 1e-9);
        }
        // Rows that are neither angles nor the molecule's coordinates are refused.
        let bad = std::env::temp_dir().join(format!("diffsamp-tors-{}.npy", std::process::id()));
        crate::io::write_npy(&bad, &[3, 5], &[0.0; 15], false).unwrap();
        let e = load_samples(&bad, energy.as_ref()).unwrap_err();
        assert!(e.to_string().contains("aldp-phi-psi"), "{e}");
        std::fs::remove_file(&bad).unwrap();
    }
}
