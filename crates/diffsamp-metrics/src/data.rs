//! Shapes of flat sample buffers, input validation, NaN/inf row filtering and COM removal.

use crate::{MetricsError, Result};

/// Layout of one particle-system configuration: `[n_particles, spatial_dim]` row-major, so a
/// row has `dim = n_particles · spatial_dim` values and particle `i` is
/// `row[i·spatial_dim .. (i+1)·spatial_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticleLayout {
    /// Number of particles n (4 for DW-4, 13 / 55 for LJ-13 / LJ-55).
    pub n_particles: usize,
    /// Spatial dimension of one particle (2 or 3).
    pub spatial_dim: usize,
}

impl ParticleLayout {
    /// A layout of `n_particles` particles in `spatial_dim` dimensions.
    pub fn new(n_particles: usize, spatial_dim: usize) -> Self {
        Self {
            n_particles,
            spatial_dim,
        }
    }

    /// Row dimension `n_particles · spatial_dim`.
    pub fn dim(&self) -> usize {
        self.n_particles * self.spatial_dim
    }

    /// Errors unless both sizes are positive.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.n_particles == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "n_particles",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if self.spatial_dim == 0 {
            return Err(MetricsError::InvalidParameter {
                name: "spatial_dim",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

/// Number of rows of a flat `[n, dim]` buffer; errors on `dim = 0`, a length that is not a
/// multiple of `dim`, or no rows.
pub(crate) fn rows(what: &'static str, xs: &[f64], dim: usize) -> Result<usize> {
    if dim == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "dim",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if xs.len() % dim != 0 {
        return Err(MetricsError::NotMultiple {
            what,
            len: xs.len(),
            dim,
        });
    }
    if xs.is_empty() {
        return Err(MetricsError::Empty { what });
    }
    Ok(xs.len() / dim)
}

/// Errors on the first NaN or infinite value of `xs`.
pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MetricsError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
    }
}

/// Rows and finiteness together: the usual check of a sample buffer.
pub(crate) fn checked_rows(what: &'static str, xs: &[f64], dim: usize) -> Result<usize> {
    let n = rows(what, xs, dim)?;
    check_finite(what, xs)?;
    Ok(n)
}

/// Errors unless `layout.dim() == dim`.
pub(crate) fn check_layout(layout: ParticleLayout, dim: usize) -> Result<()> {
    layout.validate()?;
    if layout.dim() != dim {
        return Err(MetricsError::LayoutMismatch {
            dim,
            n_particles: layout.n_particles,
            spatial_dim: layout.spatial_dim,
        });
    }
    Ok(())
}

/// The rows of a sample buffer that are entirely finite, and how many were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredRows {
    /// Finite rows, flat `[kept, dim]`, in their original order.
    pub data: Vec<f64>,
    /// Number of rows kept.
    pub kept: usize,
    /// Number of rows dropped because they held a NaN or ±inf.
    pub removed: usize,
}

/// Drops every row of `xs` (`[n, dim]`) that holds a NaN or ±inf and counts them, so callers
/// can report e.g. "12 of 2000 generated samples diverged" and evaluate the rest.
pub fn filter_finite(xs: &[f64], dim: usize) -> Result<FilteredRows> {
    if dim == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "dim",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    if xs.len() % dim != 0 {
        return Err(MetricsError::NotMultiple {
            what: "filter_finite input",
            len: xs.len(),
            dim,
        });
    }
    let mut data = Vec::with_capacity(xs.len());
    let mut removed = 0;
    for row in xs.chunks_exact(dim) {
        if row.iter().all(|v| v.is_finite()) {
            data.extend_from_slice(row);
        } else {
            removed += 1;
        }
    }
    let kept = data.len() / dim;
    Ok(FilteredRows {
        data,
        kept,
        removed,
    })
}

/// Subtracts the centre of mass (equal masses) from every configuration in place:
/// x_i ← x_i − (1/n) Σ_k x_k for each row.
pub fn remove_com_in_place(xs: &mut [f64], layout: ParticleLayout) -> Result<()> {
    layout.validate()?;
    let dim = layout.dim();
    if xs.len() % dim != 0 {
        return Err(MetricsError::NotMultiple {
            what: "remove_com input",
            len: xs.len(),
            dim,
        });
    }
    for row in xs.chunks_exact_mut(dim) {
        centre_row(row, layout.spatial_dim);
    }
    Ok(())
}

/// A copy of `xs` (`[n, n_particles·spatial_dim]`) with each configuration's centre of mass
/// removed; see [`remove_com_in_place`].
pub fn remove_com(xs: &[f64], layout: ParticleLayout) -> Result<Vec<f64>> {
    let mut out = xs.to_vec();
    remove_com_in_place(&mut out, layout)?;
    Ok(out)
}

/// Centres one configuration `[n_particles, spatial_dim]` in place.
pub(crate) fn centre_row(row: &mut [f64], spatial_dim: usize) {
    let n = row.len() / spatial_dim;
    if n == 0 {
        return;
    }
    let mut com = [0.0f64; 8];
    let mut com_vec;
    let com: &mut [f64] = if spatial_dim <= 8 {
        &mut com[..spatial_dim]
    } else {
        com_vec = vec![0.0; spatial_dim];
        &mut com_vec
    };
    for p in row.chunks_exact(spatial_dim) {
        for (c, v) in com.iter_mut().zip(p) {
            *c += v;
        }
    }
    for c in com.iter_mut() {
        *c /= n as f64;
    }
    for p in row.chunks_exact_mut(spatial_dim) {
        for (v, c) in p.iter_mut().zip(com.iter()) {
            *v -= c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_finite_drops_and_counts_bad_rows() {
        let xs = [1.0, 2.0, f64::NAN, 0.0, 3.0, 4.0, 5.0, f64::INFINITY];
        let f = filter_finite(&xs, 2).unwrap();
        assert_eq!(f.data, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((f.kept, f.removed), (2, 2));
        assert!(matches!(
            filter_finite(&xs[..3], 2),
            Err(MetricsError::NotMultiple { len: 3, dim: 2, .. })
        ));
    }

    #[test]
    fn remove_com_centres_each_row() {
        let layout = ParticleLayout::new(2, 2);
        let xs = [1.0, 1.0, 3.0, 5.0, -1.0, 0.0, 1.0, 0.0];
        let c = remove_com(&xs, layout).unwrap();
        assert_eq!(c, vec![-1.0, -2.0, 1.0, 2.0, -1.0, 0.0, 1.0, 0.0]);
        assert!(matches!(
            remove_com(&xs[..6], ParticleLayout::new(2, 2)),
            Err(MetricsError::NotMultiple { .. })
        ));
    }

    #[test]
    fn checks_name_the_sizes() {
        let e = rows("samples a", &[1.0; 7], 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "samples a: length 7 is not a multiple of the row dimension 3"
        );
        let e = check_layout(ParticleLayout::new(13, 3), 40).unwrap_err();
        assert!(e.to_string().contains("39 does not match row dimension 40"));
        let e = checked_rows("x", &[0.0, f64::NAN], 1).unwrap_err();
        assert!(matches!(e, MetricsError::NonFinite { index: 1, .. }));
    }
}
