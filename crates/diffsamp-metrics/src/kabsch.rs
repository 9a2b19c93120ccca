//! Optimal orthogonal alignment (Kabsch / orthogonal Procrustes, reflections allowed) of two point clouds.
//!
//! For clouds x, y ∈ ℝ^{n×d} with known correspondence, the orthogonal R minimising
//! Σ_i ‖x_i − R y_i‖² is R = U Vᵀ where H = Σ_i x_i y_iᵀ = U S Vᵀ (SVD of the d×d
//! cross-covariance). There is no det(R) = +1 correction: reflections are allowed, as in the
//! Adjoint Sampling evaluation. The rotation is about the origin: centre both clouds first
//! ([`crate::remove_com`]) for the rigid-body alignment.

use nalgebra::{DMatrix, Matrix2, Matrix3};

use crate::data::{check_finite, rows};
use crate::{MetricsError, Result};

/// Result of an orthogonal alignment of y onto x.
#[derive(Debug, Clone, PartialEq)]
pub struct Procrustes {
    /// R, `[d, d]` row-major, orthogonal (RᵀR = I).
    pub rotation: Vec<f64>,
    /// Aligned cost Σ_i ‖x_i − R y_i‖².
    pub cost: f64,
    /// det R = −1 (the optimum needs a reflection).
    pub is_reflection: bool,
}

/// Orthogonal Procrustes: R = argmin_{RᵀR = I} Σ_i ‖x_i − R y_i‖² for two clouds
/// `x`, `y` of shape `[n, spatial_dim]` (row-major, rows corresponding), R = U Vᵀ from the SVD
/// H = Σ_i x_i y_iᵀ = U S Vᵀ. Reflections allowed. Any `spatial_dim ≥ 1` (2 and 3 use
/// fixed-size SVDs).
pub fn orthogonal_procrustes(x: &[f64], y: &[f64], spatial_dim: usize) -> Result<Procrustes> {
    let n = rows("kabsch x", x, spatial_dim)?;
    let m = rows("kabsch y", y, spatial_dim)?;
    if n != m {
        return Err(MetricsError::ShapeMismatch {
            what: "kabsch point count of y (must equal that of x)",
            expected: n,
            got: m,
        });
    }
    check_finite("kabsch x", x)?;
    check_finite("kabsch y", y)?;
    let mut rotation = vec![0.0; spatial_dim * spatial_dim];
    procrustes_rotation(x, y, spatial_dim, &mut rotation);
    let cost = aligned_cost(x, y, spatial_dim, &rotation);
    let is_reflection = determinant(&rotation, spatial_dim) < 0.0;
    Ok(Procrustes {
        rotation,
        cost,
        is_reflection,
    })
}

/// Writes R = U Vᵀ (`[d, d]` row-major) into `out`; inputs assumed finite and of equal shape.
pub(crate) fn procrustes_rotation(x: &[f64], y: &[f64], d: usize, out: &mut [f64]) {
    match d {
        2 => {
            let mut h = Matrix2::<f64>::zeros();
            for (p, q) in x.chunks_exact(2).zip(y.chunks_exact(2)) {
                for a in 0..2 {
                    for b in 0..2 {
                        h[(a, b)] += p[a] * q[b];
                    }
                }
            }
            let svd = h.svd(true, true);
            let r = svd.u.expect("u requested") * svd.v_t.expect("v_t requested");
            for a in 0..2 {
                for b in 0..2 {
                    out[a * 2 + b] = r[(a, b)];
                }
            }
        }
        3 => {
            let mut h = Matrix3::<f64>::zeros();
            for (p, q) in x.chunks_exact(3).zip(y.chunks_exact(3)) {
                for a in 0..3 {
                    for b in 0..3 {
                        h[(a, b)] += p[a] * q[b];
                    }
                }
            }
            let svd = h.svd(true, true);
            let r = svd.u.expect("u requested") * svd.v_t.expect("v_t requested");
            for a in 0..3 {
                for b in 0..3 {
                    out[a * 3 + b] = r[(a, b)];
                }
            }
        }
        _ => {
            let mut h = DMatrix::<f64>::zeros(d, d);
            for (p, q) in x.chunks_exact(d).zip(y.chunks_exact(d)) {
                for a in 0..d {
                    for b in 0..d {
                        h[(a, b)] += p[a] * q[b];
                    }
                }
            }
            let svd = h.svd(true, true);
            let r = svd.u.expect("u requested") * svd.v_t.expect("v_t requested");
            for a in 0..d {
                for b in 0..d {
                    out[a * d + b] = r[(a, b)];
                }
            }
        }
    }
}

/// Σ_i ‖x_i − R y_i‖² for R `[d, d]` row-major.
pub(crate) fn aligned_cost(x: &[f64], y: &[f64], d: usize, r: &[f64]) -> f64 {
    let mut total = 0.0;
    for (p, q) in x.chunks_exact(d).zip(y.chunks_exact(d)) {
        for a in 0..d {
            let ry: f64 = (0..d).map(|b| r[a * d + b] * q[b]).sum();
            let diff = p[a] - ry;
            total += diff * diff;
        }
    }
    total
}

/// `out_i = R y_i` for every point of `y`.
pub(crate) fn rotate_points(y: &[f64], d: usize, r: &[f64], out: &mut [f64]) {
    for (q, o) in y.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        for a in 0..d {
            o[a] = (0..d).map(|b| r[a * d + b] * q[b]).sum();
        }
    }
}

fn determinant(r: &[f64], d: usize) -> f64 {
    DMatrix::from_row_slice(d, d, r).determinant()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// A Haar-random orthogonal d×d matrix (QR of a Gaussian matrix with sign fix), row-major;
    /// `reflect` forces det = −1, otherwise det = +1.
    pub(crate) fn random_orthogonal(rng: &mut ChaCha8Rng, d: usize, reflect: bool) -> Vec<f64> {
        let g = DMatrix::<f64>::from_fn(d, d, |_, _| rng.sample(StandardNormal));
        let qr = g.qr();
        let (mut q, r) = (qr.q(), qr.r());
        for k in 0..d {
            if r[(k, k)] < 0.0 {
                q.column_mut(k).neg_mut();
            }
        }
        let det = q.determinant();
        if (det < 0.0) != reflect {
            q.column_mut(0).neg_mut();
        }
        let mut out = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..d {
                out[a * d + b] = q[(a, b)];
            }
        }
        out
    }

    fn gaussian_cloud(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Vec<f64> {
        let mut x: Vec<f64> = (0..n * d).map(|_| rng.sample(StandardNormal)).collect();
        crate::data::centre_row(&mut x, d);
        x
    }

    #[test]
    fn recovers_random_rotation_and_reflection_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for d in [2usize, 3, 4] {
            for reflect in [false, true] {
                for _ in 0..20 {
                    let x = gaussian_cloud(&mut rng, 13, d);
                    let q = random_orthogonal(&mut rng, d, reflect);
                    // y = Qᵀ x, so the optimal R (R y ≈ x) is Q itself.
                    let mut qt = vec![0.0; d * d];
                    for a in 0..d {
                        for b in 0..d {
                            qt[a * d + b] = q[b * d + a];
                        }
                    }
                    let mut y = vec![0.0; x.len()];
                    rotate_points(&x, d, &qt, &mut y);
                    let p = orthogonal_procrustes(&x, &y, d).unwrap();
                    assert!(p.cost < 1e-20, "d={d} reflect={reflect} cost {}", p.cost);
                    assert_eq!(p.is_reflection, reflect);
                    for (a, b) in p.rotation.iter().zip(&q) {
                        assert!((a - b).abs() < 1e-10);
                    }
                }
            }
        }
    }

    #[test]
    fn optimal_against_random_orthogonal_matrices() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x = gaussian_cloud(&mut rng, 20, 3);
        let y = gaussian_cloud(&mut rng, 20, 3);
        let best = orthogonal_procrustes(&x, &y, 3).unwrap();
        let rt = &best.rotation;
        let ortho: f64 = (0..3)
            .flat_map(|a| (0..3).map(move |b| (a, b)))
            .map(|(a, b)| {
                let dot: f64 = (0..3).map(|k| rt[k * 3 + a] * rt[k * 3 + b]).sum();
                (dot - if a == b { 1.0 } else { 0.0 }).abs()
            })
            .sum();
        assert!(ortho < 1e-12);
        for reflect in [false, true] {
            for _ in 0..500 {
                let r = random_orthogonal(&mut rng, 3, reflect);
                assert!(aligned_cost(&x, &y, 3, &r) >= best.cost - 1e-12);
            }
        }
    }

    #[test]
    fn rejects_mismatched_clouds() {
        let e = orthogonal_procrustes(&[0.0; 6], &[0.0; 9], 3).unwrap_err();
        assert!(matches!(
            e,
            MetricsError::ShapeMismatch {
                expected: 2,
                got: 3,
                ..
            }
        ));
        assert!(orthogonal_procrustes(&[0.0; 5], &[0.0; 5], 3).is_err());
    }
}
