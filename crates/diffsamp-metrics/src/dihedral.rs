//! Dihedral (torsion) angles of four points in 3-D.
//!
//! Convention (IUPAC–IUB 1970): for points p0–p1–p2–p3, look along the central bond p1 → p2;
//! the dihedral is the angle from the projection of the front bond (p1–p0) to that of the rear
//! bond (p2–p3), positive when that rotation is clockwise. Cis = 0, trans = ±π. Values lie in
//! (−π, π]: the one angle that `atan2` could return as −π is mapped to +π.
//!
//! Formula: with b1 = p1 − p0, b2 = p2 − p1, b3 = p3 − p2,
//! θ = atan2(|b2| b1·(b2 × b3), (b1 × b2)·(b2 × b3)).
//! Mirroring the four points (e.g. x → −x) flips the sign of θ.

use crate::data::checked_rows;
use crate::{MetricsError, Result};

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The dihedral angle p0–p1–p2–p3 in (−π, π] (IUPAC sign, see the module docs). Degenerate
/// input (collinear points) gives 0 (`atan2(0, 0)`) rather than NaN.
pub fn dihedral(p0: [f64; 3], p1: [f64; 3], p2: [f64; 3], p3: [f64; 3]) -> f64 {
    let b1 = sub(p1, p0);
    let b2 = sub(p2, p1);
    let b3 = sub(p3, p2);
    let n2 = cross(b2, b3);
    let y = dot(b2, b2).sqrt() * dot(b1, n2);
    let x = dot(cross(b1, b2), n2);
    let theta = y.atan2(x);
    if theta <= -std::f64::consts::PI {
        std::f64::consts::PI
    } else {
        theta
    }
}

/// The 3-D position of particle `i` in a flat row `[n_particles, 3]`.
fn atom(row: &[f64], i: usize) -> [f64; 3] {
    [row[3 * i], row[3 * i + 1], row[3 * i + 2]]
}

/// The dihedral over particles `atoms` of every row of `xs` (`[n, dim]`, rows of 3-D particles,
/// `dim` = 3 · particles). Errors on shape, non-finite values, or an atom index out of range.
pub fn dihedrals(xs: &[f64], dim: usize, atoms: [usize; 4]) -> Result<Vec<f64>> {
    if dim == 0 || dim % 3 != 0 {
        return Err(MetricsError::InvalidParameter {
            name: "dim",
            value: dim.to_string(),
            reason: "must be a positive multiple of 3 (3-D particles)",
        });
    }
    let n_particles = dim / 3;
    if let Some(&bad) = atoms.iter().find(|&&a| a >= n_particles) {
        return Err(MetricsError::InvalidParameter {
            name: "atom index",
            value: bad.to_string(),
            reason: "must be below the number of particles",
        });
    }
    checked_rows("dihedral samples", xs, dim)?;
    Ok(xs
        .chunks_exact(dim)
        .map(|r| {
            dihedral(
                atom(r, atoms[0]),
                atom(r, atoms[1]),
                atom(r, atoms[2]),
                atom(r, atoms[3]),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// p0 on +x, central bond along +z, p3 at angle θ in the xy-plane: dihedral θ.
    fn config(theta: f64) -> [[f64; 3]; 4] {
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 1.5],
            [2.0 * theta.cos(), 2.0 * theta.sin(), 1.5],
        ]
    }

    #[test]
    fn closed_form_angles() {
        for k in -11..=12 {
            let theta = k as f64 * PI / 12.0;
            let [a, b, c, d] = config(theta);
            let got = dihedral(a, b, c, d);
            let want = if k == -12 { PI } else { theta };
            assert!((got - want).abs() < 1e-12, "θ = {theta}: got {got}");
        }
        // cis = 0, trans = π exactly in (−π, π].
        let [a, b, c, d] = config(0.0);
        assert_eq!(dihedral(a, b, c, d), 0.0);
        let trans = dihedral(
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
            [-1.0, -0.0, 1.0],
        );
        assert_eq!(trans, PI);
    }

    #[test]
    fn iupac_sign_positive_is_clockwise_seen_along_the_central_bond() {
        // Looking along +z (from −z), the front bond points to +x and the rear bond to +y.
        // Seen from behind the xy-plane, +x → +y is a clockwise turn: +90°.
        let [a, b, c, d] = config(PI / 2.0);
        assert!((dihedral(a, b, c, d) - PI / 2.0).abs() < 1e-12);
    }

    #[test]
    fn invariant_under_rigid_motion_and_sign_flips_under_mirror() {
        let pts = config(1.1);
        // rotation about an arbitrary axis (Rodrigues) + translation
        let (ax, ang) = ([1.0f64, 2.0, -0.5], 0.7f64);
        let nrm = dot(ax, ax).sqrt();
        let k = ax.map(|v| v / nrm);
        let rot = |v: [f64; 3]| {
            let kxv = cross(k, v);
            let kv = dot(k, v);
            let (s, c) = ang.sin_cos();
            [0, 1, 2].map(|i| v[i] * c + kxv[i] * s + k[i] * kv * (1.0 - c) + [0.3, -2.0, 5.0][i])
        };
        let moved = pts.map(rot);
        let d0 = dihedral(pts[0], pts[1], pts[2], pts[3]);
        let d1 = dihedral(moved[0], moved[1], moved[2], moved[3]);
        assert!((d0 - d1).abs() < 1e-12);
        for mirror in [
            |v: [f64; 3]| [-v[0], v[1], v[2]],
            |v: [f64; 3]| [-v[0], -v[1], -v[2]],
        ] {
            let m = moved.map(mirror);
            let dm = dihedral(m[0], m[1], m[2], m[3]);
            assert!((dm + d0).abs() < 1e-12, "{dm} vs {d0}");
        }
        // reversing the order of the four points leaves the dihedral unchanged
        let rev = dihedral(pts[3], pts[2], pts[1], pts[0]);
        assert!((rev - d0).abs() < 1e-12);
    }

    #[test]
    fn batch_dihedrals_and_errors() {
        let mut xs = Vec::new();
        let thetas = [-2.0, 0.5, 3.0];
        for &t in &thetas {
            // particles stored in the order 3, 0, 1, 2 to exercise the index mapping
            let p = config(t);
            for i in [3, 0, 1, 2] {
                xs.extend_from_slice(&p[i]);
            }
        }
        let got = dihedrals(&xs, 12, [1, 2, 3, 0]).unwrap();
        for (g, t) in got.iter().zip(thetas) {
            assert!((g - t).abs() < 1e-12);
        }
        assert!(dihedrals(&xs, 12, [1, 2, 3, 4]).is_err());
        assert!(dihedrals(&xs, 10, [0, 1, 2, 3]).is_err());
        assert!(dihedrals(&xs[..11], 12, [0, 1, 2, 3]).is_err());
        let mut bad = xs.clone();
        bad[5] = f64::NAN;
        assert!(dihedrals(&bad, 12, [0, 1, 2, 3]).is_err());
    }
}
