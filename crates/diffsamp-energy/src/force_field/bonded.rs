//! Bonded terms: harmonic bonds, harmonic angles and periodic torsions (OpenMM conventions).
//!
//! - bond: ½ k (r − d)²
//! - angle: ½ k (θ − θ₀)²
//! - torsion: k (1 + cos(n φ − φ₀)), φ the IUPAC dihedral of p1-p2-p3-p4.

use super::geom::{add_pair, add_to, cross, dot, pos, scale, sub};

/// HarmonicBondForce entry.
#[derive(Clone, Debug)]
pub(crate) struct Bond {
    pub p: [usize; 2],
    /// Equilibrium length (nm).
    pub d: f64,
    /// Force constant (kJ/mol/nm²).
    pub k: f64,
}

/// HarmonicAngleForce entry.
#[derive(Clone, Debug)]
pub(crate) struct Angle {
    pub p: [usize; 3],
    /// Equilibrium angle (rad).
    pub a: f64,
    /// Force constant (kJ/mol/rad²).
    pub k: f64,
}

/// PeriodicTorsionForce entry.
#[derive(Clone, Debug)]
pub(crate) struct Torsion {
    pub p: [usize; 4],
    pub periodicity: f64,
    /// Phase (rad).
    pub phase: f64,
    /// Barrier (kJ/mol).
    pub k: f64,
}

/// Σ bonds, adding ∇ into `grad`.
pub(crate) fn bonds(bonds: &[Bond], x: &[f64], grad: &mut [f64]) -> f64 {
    let mut e = 0.0;
    for b in bonds {
        let d = sub(pos(x, b.p[0]), pos(x, b.p[1]));
        let r = dot(d, d).sqrt();
        let dr = r - b.d;
        e += 0.5 * b.k * dr * dr;
        add_pair(grad, b.p[0], b.p[1], d, r, b.k * dr);
    }
    e
}

/// Σ angles, adding ∇ into `grad`.
pub(crate) fn angles(angles: &[Angle], x: &[f64], grad: &mut [f64]) -> f64 {
    let mut e = 0.0;
    for a in angles {
        let [i, j, k] = a.p;
        let xj = pos(x, j);
        let u = sub(pos(x, i), xj);
        let v = sub(pos(x, k), xj);
        let (lu, lv) = (dot(u, u).sqrt(), dot(v, v).sqrt());
        let c = dot(u, v);
        let s = dot(cross(u, v), cross(u, v)).sqrt();
        let theta = s.atan2(c);
        let dt = theta - a.a;
        e += 0.5 * a.k * dt * dt;
        let de = a.k * dt;
        let cos = c / (lu * lv);
        let sin = (s / (lu * lv)).max(1e-12);
        // dθ/dx_i = (cosθ û − v̂) / (|u| sinθ), dθ/dx_k symmetric, dθ/dx_j = −(sum).
        let gi: [f64; 3] =
            std::array::from_fn(|c3| de * (cos * u[c3] / lu - v[c3] / lv) / (lu * sin));
        let gk: [f64; 3] =
            std::array::from_fn(|c3| de * (cos * v[c3] / lv - u[c3] / lu) / (lv * sin));
        add_to(grad, i, gi);
        add_to(grad, k, gk);
        add_to(grad, j, std::array::from_fn(|c3| -gi[c3] - gk[c3]));
    }
    e
}

/// Σ periodic torsions, adding ∇ into `grad`.
pub(crate) fn torsions(torsions: &[Torsion], x: &[f64], grad: &mut [f64]) -> f64 {
    let mut e = 0.0;
    for t in torsions {
        let [p1, p2, p3, p4] = t.p;
        let b1 = sub(pos(x, p2), pos(x, p1));
        let b2 = sub(pos(x, p3), pos(x, p2));
        let b3 = sub(pos(x, p4), pos(x, p3));
        let n1 = cross(b1, b2);
        let n2 = cross(b2, b3);
        let lb2 = dot(b2, b2).sqrt();
        let phi = (lb2 * dot(b1, n2)).atan2(dot(n1, n2));
        let arg = t.periodicity * phi - t.phase;
        e += t.k * (1.0 + arg.cos());
        let de = -t.k * t.periodicity * arg.sin();
        // Blondel–Karplus gradients of φ.
        let g1 = scale(-lb2 / dot(n1, n1), n1);
        let g4 = scale(lb2 / dot(n2, n2), n2);
        let f12 = dot(b1, b2) / (lb2 * lb2);
        let f32 = dot(b3, b2) / (lb2 * lb2);
        let g2: [f64; 3] = std::array::from_fn(|c| f32 * g4[c] - (1.0 + f12) * g1[c]);
        let g3: [f64; 3] = std::array::from_fn(|c| f12 * g1[c] - (1.0 + f32) * g4[c]);
        add_to(grad, p1, scale(de, g1));
        add_to(grad, p2, scale(de, g2));
        add_to(grad, p3, scale(de, g3));
        add_to(grad, p4, scale(de, g4));
    }
    e
}
