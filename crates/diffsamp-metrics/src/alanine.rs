//! Alanine dipeptide (ACE-ALA-NME, 22 atoms, rows `[22, 3]` flattened to 66 values, nm):
//! backbone torsions φ/ψ, torsion-marginal KL, the C7ax/αL (φ > 0) population, and chirality.
//!
//! Atom indices follow `shared/data/aldp_topology.json` (= the atom order of
//! `aldp_300K_val_nm.npy`): ACE H1 0, CH3 1, H2 2, H3 3, C 4, O 5; ALA N 6, H 7, CA 8, HA 9,
//! CB 10, HB1–3 11–13, C 14, O 15; NME N 16, H 17, C 18, H1–3 19–21.
//!
//! - φ = C(ACE) 4 – N 6 – CA 8 – C 14, ψ = N 6 – CA 8 – C 14 – N(NME) 16, IUPAC sign,
//!   in (−π, π] ([`crate::dihedral`]).
//! - Torsion KL (REFERENCE §5): 200 equal bins on [−π, π], smoothing ε = 1e-5 added to every
//!   cell probability before renormalising ([`crate::kl_divergence`]); the direction is
//!   **KL(reference ‖ generated)**, which penalises generated samples that miss reference mass.
//! - Chirality: the improper ζ = CA 8 – N 6 – C 14 – CB 10 (the Cα–N–C′–Cβ virtual torsion).
//!   L-alanine has ζ > 0 (about +34°); D-alanine, its mirror image, has ζ < 0. The force field
//!   is mirror-symmetric, so samplers can produce either; [`d_fraction`] reports it and
//!   [`to_l_form`] mirrors D rows (x → −x) into L.

use crate::dihedral::dihedrals;
use crate::histogram::{kl_divergence, Histogram};
use crate::{MetricsError, Result};
use std::f64::consts::PI;

/// Atoms of alanine dipeptide.
pub const N_ATOMS: usize = 22;
/// Values per configuration (22 atoms × 3).
pub const DIM: usize = 3 * N_ATOMS;
/// φ: C(ACE)–N–CA–C.
pub const PHI_ATOMS: [usize; 4] = [4, 6, 8, 14];
/// ψ: N–CA–C–N(NME).
pub const PSI_ATOMS: [usize; 4] = [6, 8, 14, 16];
/// Chirality improper ζ: CA–N–C–CB; positive for L-alanine.
pub const CHIRALITY_ATOMS: [usize; 4] = [8, 6, 14, 10];
/// Bins of the torsion histograms (REFERENCE §5).
pub const TORSION_BINS: usize = 200;
/// Smoothing of the torsion histograms (REFERENCE §5).
pub const TORSION_EPS: f64 = 1e-5;

/// φ of every row of `xs` (`[n, 66]`).
pub fn phi(xs: &[f64]) -> Result<Vec<f64>> {
    dihedrals(xs, DIM, PHI_ATOMS)
}

/// ψ of every row of `xs` (`[n, 66]`).
pub fn psi(xs: &[f64]) -> Result<Vec<f64>> {
    dihedrals(xs, DIM, PSI_ATOMS)
}

/// The chirality improper ζ (CA–N–C–CB) of every row: > 0 for L, < 0 for D.
pub fn chirality_improper(xs: &[f64]) -> Result<Vec<f64>> {
    dihedrals(xs, DIM, CHIRALITY_ATOMS)
}

/// KL(reference ‖ generated) of 200-bin histograms of one torsion on [−π, π], ε = 1e-5.
pub fn torsion_kl(reference: &[f64], generated: &[f64]) -> Result<f64> {
    let p = Histogram::from_samples(reference, -PI, PI, TORSION_BINS)?;
    let q = Histogram::from_samples(generated, -PI, PI, TORSION_BINS)?;
    kl_divergence(&p, &q, TORSION_EPS)
}

/// A fraction of samples with its binomial standard error sqrt(p(1 − p)/n) (which assumes
/// independent samples; correlated MCMC output has a larger error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Population {
    /// The fraction p.
    pub fraction: f64,
    /// sqrt(p(1 − p)/n).
    pub std_error: f64,
    /// Number of samples n.
    pub n: usize,
}

impl Population {
    /// The fraction of `flags` that are true.
    pub fn from_flags(flags: impl IntoIterator<Item = bool>) -> Result<Self> {
        let (mut k, mut n) = (0usize, 0usize);
        for f in flags {
            n += 1;
            k += usize::from(f);
        }
        if n == 0 {
            return Err(MetricsError::Empty { what: "population" });
        }
        let p = k as f64 / n as f64;
        Ok(Self {
            fraction: p,
            std_error: (p * (1.0 - p) / n as f64).sqrt(),
            n,
        })
    }

    /// The fraction of `flags` (in sampling order) with a batch-means standard error: the
    /// sequence is cut into `n_batches` contiguous batches of equal length (a remainder of
    /// fewer than `n_batches` trailing flags is dropped from the error, not from the fraction)
    /// and the error is the sample standard deviation of the batch fractions over
    /// sqrt(n_batches). Unlike the binomial error this stays valid for correlated MCMC/MD
    /// output when batches are longer than the correlation time.
    pub fn from_flags_batched(flags: &[bool], n_batches: usize) -> Result<Self> {
        if n_batches < 2 || n_batches > flags.len() {
            return Err(MetricsError::InvalidParameter {
                name: "n_batches",
                value: n_batches.to_string(),
                reason: "must be at least 2 and at most the number of samples",
            });
        }
        let mut pop = Self::from_flags(flags.iter().copied())?;
        let len = flags.len() / n_batches;
        let means: Vec<f64> = flags
            .chunks_exact(len)
            .take(n_batches)
            .map(|b| b.iter().filter(|&&f| f).count() as f64 / len as f64)
            .collect();
        let m = means.iter().sum::<f64>() / n_batches as f64;
        let var = means.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n_batches - 1) as f64;
        pop.std_error = (var / n_batches as f64).sqrt();
        Ok(pop)
    }

    /// (p_self − p_other) / sqrt(se_self² + se_other²): the difference in units of its
    /// standard error (0 when both errors vanish and the fractions agree, ±inf otherwise).
    pub fn z_score(&self, other: &Population) -> f64 {
        let d = self.fraction - other.fraction;
        let se = self.std_error.hypot(other.std_error);
        if se == 0.0 {
            if d == 0.0 {
                0.0
            } else {
                d.signum() * f64::INFINITY
            }
        } else {
            d / se
        }
    }
}

/// The C7ax/αL population: the fraction of torsions `phi` with φ > 0.
pub fn positive_phi_population(phi: &[f64]) -> Result<Population> {
    crate::data::check_finite("phi", phi)?;
    Population::from_flags(phi.iter().map(|&f| f > 0.0))
}

/// Fraction of D-alanine configurations (ζ < 0) among the rows of `xs`, with its s.e.
pub fn d_fraction(xs: &[f64]) -> Result<Population> {
    let zeta = chirality_improper(xs)?;
    Population::from_flags(zeta.iter().map(|&z| z < 0.0))
}

/// The mirror image x → −x of every row (inversion through the origin: an improper
/// transformation, so L ↔ D and (φ, ψ) → (−φ, −ψ)).
pub fn mirror(xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|v| -v).collect()
}

/// Every D row (ζ < 0) of `xs` replaced by its mirror image, so all rows are L; returns the
/// new buffer and how many rows were mirrored.
pub fn to_l_form(xs: &[f64]) -> Result<(Vec<f64>, usize)> {
    let zeta = chirality_improper(xs)?;
    let mut out = xs.to_vec();
    let mut flipped = 0;
    for (row, z) in out.chunks_exact_mut(DIM).zip(zeta) {
        if z < 0.0 {
            row.iter_mut().for_each(|v| *v = -*v);
            flipped += 1;
        }
    }
    Ok((out, flipped))
}

/// The alanine-dipeptide torsion metrics of generated samples against reference samples.
#[derive(Debug, Clone, PartialEq)]
pub struct AlanineComparison {
    /// KL(ref ‖ gen) of the φ marginals (200 bins, ε = 1e-5).
    pub kl_phi: f64,
    /// KL(ref ‖ gen) of the ψ marginals.
    pub kl_psi: f64,
    /// φ > 0 population of the reference.
    pub pop_ref: Population,
    /// φ > 0 population of the generated samples.
    pub pop_gen: Population,
    /// D fraction of the reference.
    pub d_ref: Population,
    /// D fraction of the generated samples.
    pub d_gen: Population,
}

/// Torsion KLs, φ > 0 populations and D fractions of `generated` vs `reference`
/// (both `[n, 66]`, any n). The samples are compared as given (no mirroring); apply
/// [`to_l_form`] first to compare chirality-corrected samples.
pub fn compare(reference: &[f64], generated: &[f64]) -> Result<AlanineComparison> {
    let (phi_r, psi_r) = (phi(reference)?, psi(reference)?);
    let (phi_g, psi_g) = (phi(generated)?, psi(generated)?);
    Ok(AlanineComparison {
        kl_phi: torsion_kl(&phi_r, &phi_g)?,
        kl_psi: torsion_kl(&psi_r, &psi_g)?,
        pop_ref: positive_phi_population(&phi_r)?,
        pop_gen: positive_phi_population(&phi_g)?,
        d_ref: d_fraction(reference)?,
        d_gen: d_fraction(generated)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dihedral::dihedral;

    fn norm(v: [f64; 3]) -> [f64; 3] {
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        v.map(|x| x / n)
    }

    fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    }

    /// The point d at distance r from c, angle b–c–d = θ and dihedral a–b–c–d = τ.
    fn place(a: [f64; 3], b: [f64; 3], c: [f64; 3], r: f64, theta: f64, tau: f64) -> [f64; 3] {
        let bc = norm([c[0] - b[0], c[1] - b[1], c[2] - b[2]]);
        let n = norm(cross([b[0] - a[0], b[1] - a[1], b[2] - a[2]], bc));
        let m = cross(n, bc);
        let d2 = [
            -r * theta.cos(),
            r * theta.sin() * tau.cos(),
            r * theta.sin() * tau.sin(),
        ];
        [0, 1, 2].map(|i| c[i] + bc[i] * d2[0] + m[i] * d2[1] + n[i] * d2[2])
    }

    /// A 22-atom configuration with the given φ, ψ and chirality improper ζ (the atoms not
    /// involved are at arbitrary fixed positions).
    fn config(phi: f64, psi: f64, zeta: f64) -> Vec<f64> {
        let mut x: Vec<f64> = (0..DIM).map(|k| 0.05 * (k as f64).sin()).collect();
        let set = |x: &mut Vec<f64>, i: usize, p: [f64; 3]| x[3 * i..3 * i + 3].copy_from_slice(&p);
        let c0 = [0.0, 0.0, 0.0];
        let n = [0.133, 0.0, 0.0];
        let ca = [0.2, 0.12, 0.0];
        let c = place(c0, n, ca, 0.152, 1.94, phi);
        let n2 = place(n, ca, c, 0.133, 2.03, psi);
        let cb = place(ca, n, c, 0.25, 1.2, zeta);
        for (i, p) in [(4, c0), (6, n), (8, ca), (14, c), (16, n2), (10, cb)] {
            set(&mut x, i, p);
        }
        x
    }

    #[test]
    fn placed_configurations_have_the_requested_torsions() {
        let x = config(-1.3, 2.7, 0.6);
        let a = |i: usize| [x[3 * i], x[3 * i + 1], x[3 * i + 2]];
        assert!((dihedral(a(4), a(6), a(8), a(14)) + 1.3).abs() < 1e-12);
        assert!((phi(&x).unwrap()[0] + 1.3).abs() < 1e-12);
        assert!((psi(&x).unwrap()[0] - 2.7).abs() < 1e-12);
        assert!((chirality_improper(&x).unwrap()[0] - 0.6).abs() < 1e-12);
    }

    #[test]
    fn mirror_flips_torsions_and_chirality() {
        let l = config(-1.3, 2.7, 0.6);
        let d = mirror(&l);
        assert!((phi(&d).unwrap()[0] - 1.3).abs() < 1e-12);
        assert!((psi(&d).unwrap()[0] + 2.7).abs() < 1e-12);
        assert!((chirality_improper(&d).unwrap()[0] + 0.6).abs() < 1e-12);
        assert_eq!(mirror(&d), l);
    }

    #[test]
    fn d_fraction_and_to_l_form() {
        let mut xs = config(-1.3, 2.7, 0.6);
        xs.extend(config(1.0, -0.5, 0.6));
        xs.extend(mirror(&config(-2.0, 0.3, 0.6)));
        let d = d_fraction(&xs).unwrap();
        assert_eq!(d.n, 3);
        assert!((d.fraction - 1.0 / 3.0).abs() < 1e-15);
        assert!((d.std_error - (2.0f64 / 27.0).sqrt()).abs() < 1e-15);
        let (l, flipped) = to_l_form(&xs).unwrap();
        assert_eq!(flipped, 1);
        assert_eq!(d_fraction(&l).unwrap().fraction, 0.0);
        assert_eq!(l[..2 * DIM], xs[..2 * DIM]);
        assert!((phi(&l).unwrap()[2] + 2.0).abs() < 1e-12);
        assert!(d_fraction(&xs[..DIM - 1]).is_err());
    }

    #[test]
    fn positive_phi_population_and_binomial_error() {
        let phis = [-2.0, -1.0, 0.9, -0.1, 1.2, -3.0, -2.5, 0.0];
        let p = positive_phi_population(&phis).unwrap();
        assert_eq!(p.n, 8);
        assert_eq!(p.fraction, 0.25);
        assert!((p.std_error - (0.25f64 * 0.75 / 8.0).sqrt()).abs() < 1e-15);
        assert!(positive_phi_population(&[]).is_err());
        assert!(positive_phi_population(&[f64::NAN]).is_err());
        let q = Population {
            fraction: 0.35,
            std_error: 0.0,
            n: 1,
        };
        assert!((p.z_score(&q) + 0.1 / p.std_error).abs() < 1e-12);
    }

    #[test]
    fn batch_means_standard_error() {
        // first half true, second half false, 2 batches: batch means 1 and 0, sample variance
        // ½, s.e. sqrt(½ / 2) = ½.
        let flags: Vec<bool> = (0..10).map(|i| i < 5).collect();
        let p = Population::from_flags_batched(&flags, 2).unwrap();
        assert_eq!(p.fraction, 0.5);
        assert!((p.std_error - 0.5).abs() < 1e-15);
        // a period-4 pattern seen in batches of 4 (plus a dropped remainder): zero error
        let flags: Vec<bool> = (0..42).map(|i| i % 4 == 1).collect();
        let p = Population::from_flags_batched(&flags, 10).unwrap();
        assert_eq!(p.fraction, 11.0 / 42.0);
        assert_eq!(p.std_error, 0.0);
        assert!(Population::from_flags_batched(&flags, 1).is_err());
        assert!(Population::from_flags_batched(&flags[..3], 4).is_err());
    }

    #[test]
    fn torsion_kl_closed_forms() {
        let grid: Vec<f64> = (0..TORSION_BINS)
            .map(|k| -PI + (k as f64 + 0.5) * 2.0 * PI / TORSION_BINS as f64)
            .collect();
        assert_eq!(torsion_kl(&grid, &grid).unwrap(), 0.0);
        // reference all in one bin, generated uniform over the 200 bins; 202 cells with the
        // two outside ones, each smoothed by ε and renormalised.
        let reference = vec![grid[17]; 50];
        let kl = torsion_kl(&reference, &grid).unwrap();
        let e = TORSION_EPS;
        let z = 1.0 + 202.0 * e;
        let (p_hit, p_miss) = ((1.0 + e) / z, e / z);
        let (q_in, q_out) = ((1.0 / 200.0 + e) / z, e / z);
        let want = p_hit * (p_hit / q_in).ln()
            + 199.0 * p_miss * (p_miss / q_in).ln()
            + 2.0 * p_miss * (p_miss / q_out).ln();
        assert!((kl - want).abs() < 1e-12, "{kl} vs {want}");
        // ≈ ln 200 up to O(200 ε ln ε) from the smoothing
        assert!((kl - 200f64.ln()).abs() < 2.0 * 200.0 * e * (1.0 / e).ln());
        // the endpoint π lies in the last (closed) bin, not outside
        assert_eq!(torsion_kl(&[PI], &[PI - 1e-9]).unwrap(), 0.0);
    }

    #[test]
    fn compare_of_identical_sets() {
        let mut xs = Vec::new();
        for k in 0..10 {
            let t = -2.7 + 0.6 * k as f64;
            xs.extend(config(t, -t, if k % 5 == 0 { -0.5 } else { 0.5 }));
        }
        let c = compare(&xs, &xs).unwrap();
        assert_eq!((c.kl_phi, c.kl_psi), (0.0, 0.0));
        assert_eq!(c.pop_ref, c.pop_gen);
        assert!((c.pop_ref.fraction - 0.5).abs() < 1e-15);
        assert!((c.d_gen.fraction - 0.2).abs() < 1e-15);
    }
}
