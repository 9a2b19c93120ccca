//! Molecules in torsion coordinates: bond lengths and angles frozen at a reference conformer,
//! the chosen torsions free on the flat torus [−π, π)^m (the torsional state space of
//! Adjoint Sampling, REFERENCE §1.6).
//!
//! Setting torsion m to τ_m rotates the atoms on the far side of its central bond j–k (the
//! part of the bond graph that holds k once the bond is cut) rigidly about the axis j → k by
//! τ_m minus its current value. Such a rotation leaves every other torsion unchanged (a
//! dihedral whose four atoms lie on one side is rigidly moved; one whose central bond is
//! j–k is the one set), so the torsions can be set in any order. The same rigid motion gives
//! the chain rule of the gradient: in the final configuration,
//!
//! ∂x_a/∂τ_m = û_m × (x_a − x_k)   for a on the moving side, 0 otherwise (û_m = unit j → k),
//!
//! so ∂E/∂τ_m = Σ_a ⟨û_m × (x_a − x_k), ∇_a E⟩.

use crate::{data, Energy, EnergyError, Molecule};
use diffsamp_metrics::dihedral;
use nalgebra::Vector3;

/// One free torsion: the dihedral i–j–k–l and the atoms that move when it is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torsion {
    /// The dihedral's atoms (i, j, k, l); its central bond is j–k.
    pub atoms: [usize; 4],
    /// The atoms on the k side of the bond j–k (k included).
    pub moving: Vec<usize>,
}

/// A Cartesian molecular energy seen as a function of a few torsions, all other internal
/// coordinates frozen at a reference conformer: E(τ) = E_cart(x(τ)), τ ∈ [−π, π)^m.
#[derive(Clone, Debug)]
pub struct TorsionalMolecule<E> {
    name: String,
    cartesian: E,
    reference: Vec<f64>,
    torsions: Vec<Torsion>,
}

fn atom(x: &[f64], a: usize) -> Vector3<f64> {
    Vector3::new(x[3 * a], x[3 * a + 1], x[3 * a + 2])
}

fn point(x: &[f64], a: usize) -> [f64; 3] {
    [x[3 * a], x[3 * a + 1], x[3 * a + 2]]
}

fn invalid(name: &'static str, value: String, why: &'static str) -> EnergyError {
    EnergyError::InvalidParameter { name, value, why }
}

impl<E: Energy> TorsionalMolecule<E> {
    /// The torsional view of `cartesian` (which must be a molecule, for its bonds) around the
    /// conformer `reference` (`[atoms · 3]`), with the dihedrals `torsions` free. Errors name
    /// a reference of the wrong length or with non-finite values, a dihedral whose atoms are
    /// not a bonded chain i–j–k–l, and a central bond in a ring (its sides cannot turn
    /// rigidly).
    pub fn new(
        name: &str,
        cartesian: E,
        reference: Vec<f64>,
        torsions: &[[usize; 4]],
    ) -> Result<Self, EnergyError> {
        let molecule: Molecule = cartesian.molecule().ok_or_else(|| {
            invalid(
                "cartesian",
                cartesian.name().to_string(),
                "a torsional view needs a molecule (its bonds)",
            )
        })?;
        let n = molecule.n_atoms();
        if reference.len() != 3 * n || cartesian.dim() != 3 * n {
            return Err(invalid(
                "reference",
                format!("{} coordinates", reference.len()),
                "the reference conformer must have 3 coordinates per atom of the molecule",
            ));
        }
        if reference.iter().any(|v| !v.is_finite()) {
            return Err(invalid(
                "reference",
                "non-finite".into(),
                "the reference conformer must be finite",
            ));
        }
        if torsions.is_empty() {
            return Err(invalid(
                "torsions",
                "[]".into(),
                "at least one torsion must be free",
            ));
        }
        let mut neighbours = vec![Vec::new(); n];
        for &[a, b] in molecule.bonds() {
            neighbours[a].push(b);
            neighbours[b].push(a);
        }
        let bonded = |a: usize, b: usize| a < n && neighbours[a].contains(&b);
        let mut free = Vec::with_capacity(torsions.len());
        for &q in torsions {
            let [i, j, k, l] = q;
            if !(bonded(i, j) && bonded(j, k) && bonded(k, l)) || i == k || j == l || i == l {
                return Err(invalid(
                    "torsions",
                    format!("{q:?}"),
                    "a torsion i-j-k-l needs the bonds i-j, j-k and k-l",
                ));
            }
            // The component of k once the bond j–k is cut.
            let mut seen = vec![false; n];
            let mut stack = vec![k];
            seen[k] = true;
            while let Some(a) = stack.pop() {
                for &b in &neighbours[a] {
                    let cut = a == k && b == j;
                    if !seen[b] && !cut {
                        seen[b] = true;
                        stack.push(b);
                    }
                }
            }
            if seen[j] {
                return Err(invalid(
                    "torsions",
                    format!("{q:?}"),
                    "the central bond lies in a ring, so its sides cannot turn rigidly",
                ));
            }
            let moving = (0..n).filter(|&a| seen[a]).collect();
            free.push(Torsion { atoms: q, moving });
        }
        Ok(Self {
            name: name.to_string(),
            cartesian,
            reference,
            torsions: free,
        })
    }

    /// The free torsions.
    pub fn torsions(&self) -> &[Torsion] {
        &self.torsions
    }

    /// The Cartesian energy.
    pub fn cartesian_energy(&self) -> &E {
        &self.cartesian
    }

    /// The reference conformer `[atoms · 3]`.
    pub fn reference(&self) -> &[f64] {
        &self.reference
    }

    /// The torsions (dihedral angles in (−π, π]) of one Cartesian configuration.
    pub fn torsions_of(&self, x: &[f64]) -> Vec<f64> {
        self.torsions
            .iter()
            .map(|t| {
                let [i, j, k, l] = t.atoms;
                dihedral(point(x, i), point(x, j), point(x, k), point(x, l))
            })
            .collect()
    }

    /// The conformer x(τ): the reference with torsion m set to `tau[m]` (any real value; angles
    /// are taken mod 2π) by a rigid rotation of its moving side.
    pub fn cartesian(&self, tau: &[f64]) -> Vec<f64> {
        debug_assert_eq!(tau.len(), self.torsions.len());
        let mut x = self.reference.clone();
        for (t, &target) in self.torsions.iter().zip(tau) {
            let [i, j, k, l] = t.atoms;
            let now = dihedral(point(&x, i), point(&x, j), point(&x, k), point(&x, l));
            let (s, c) = (target - now).sin_cos();
            let origin = atom(&x, k);
            let u = (origin - atom(&x, j)).normalize();
            // Rodrigues: v ← v cos δ + (u × v) sin δ + u ⟨u, v⟩ (1 − cos δ).
            for &a in &t.moving {
                let v = atom(&x, a) - origin;
                let r = origin + v * c + u.cross(&v) * s + u * (u.dot(&v) * (1.0 - c));
                x[3 * a..3 * a + 3].copy_from_slice(r.as_slice());
            }
        }
        x
    }
}

impl<E: Energy> Energy for TorsionalMolecule<E> {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.torsions.len()
    }

    fn periodic(&self) -> bool {
        true
    }

    fn embedding(&self) -> Option<&dyn Embedding> {
        Some(self)
    }

    fn energy_grad(&self, tau: &[f64], grad: &mut [f64]) -> f64 {
        let x = self.cartesian(tau);
        let mut gx = vec![0.0; x.len()];
        let e = self.cartesian.energy_grad(&x, &mut gx);
        for (g, t) in grad.iter_mut().zip(&self.torsions) {
            let k = atom(&x, t.atoms[2]);
            let u = (k - atom(&x, t.atoms[1])).normalize();
            *g = t
                .moving
                .iter()
                .map(|&a| u.cross(&(atom(&x, a) - k)).dot(&atom(&gx, a)))
                .sum();
        }
        e
    }

    fn energy(&self, tau: &[f64]) -> f64 {
        self.cartesian.energy(&self.cartesian(tau))
    }
}

/// Configurations of a target on internal coordinates, mapped to and from the Cartesian
/// configurations of the molecule they describe (so that Cartesian reference data and
/// structure files apply).
pub trait Embedding: Send + Sync {
    /// Dimension of a Cartesian configuration (3 · atoms).
    fn cartesian_dim(&self) -> usize;
    /// The Cartesian configuration of internal coordinates `q`.
    fn to_cartesian(&self, q: &[f64]) -> Vec<f64>;
    /// The internal coordinates of a Cartesian configuration `x`.
    fn internal_of(&self, x: &[f64]) -> Vec<f64>;
}

impl<E: Energy> Embedding for TorsionalMolecule<E> {
    fn cartesian_dim(&self) -> usize {
        self.reference.len()
    }
    fn to_cartesian(&self, q: &[f64]) -> Vec<f64> {
        self.cartesian(q)
    }
    fn internal_of(&self, x: &[f64]) -> Vec<f64> {
        self.torsions_of(x)
    }
}

/// Atom positions (nm, `[atoms · 3]`) of the `ATOM`/`HETATM` records of a PDB file (Å).
pub fn pdb_positions_nm(text: &str) -> Result<Vec<f64>, EnergyError> {
    let mut x = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !(line.starts_with("ATOM") || line.starts_with("HETATM")) {
            continue;
        }
        for range in [30..38, 38..46, 46..54] {
            let v: f64 = line
                .get(range)
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    invalid(
                        "pdb",
                        format!("line {}", n + 1),
                        "an ATOM record needs coordinates in columns 31-54",
                    )
                })?;
            x.push(v / 10.0);
        }
    }
    if x.is_empty() {
        return Err(invalid("pdb", "no atoms".into(), "no ATOM records found"));
    }
    Ok(x)
}

/// Backbone torsions of alanine dipeptide (atom order of `aldp/alanine-dipeptide.pdb`):
/// φ = C(ACE)–N–CA–C and ψ = N–CA–C–N(NME).
pub const ALDP_PHI_PSI: [[usize; 4]; 2] = [[4, 6, 8, 14], [6, 8, 14, 16]];

/// Alanine dipeptide (`cartesian`, e.g. Amber ff96 + OBC at 300 K) with φ and ψ free and every
/// other internal coordinate frozen at the idealised conformer of the shared
/// `aldp/alanine-dipeptide.pdb`.
pub fn aldp_phi_psi<E: Energy>(
    name: &str,
    cartesian: E,
) -> Result<TorsionalMolecule<E>, EnergyError> {
    let path = data::shared_data_file("aldp/alanine-dipeptide.pdb")?;
    let text = std::fs::read_to_string(&path).map_err(|e| EnergyError::Data {
        path: path.clone(),
        why: e.to_string(),
    })?;
    TorsionalMolecule::new(name, cartesian, pdb_positions_nm(&text)?, &ALDP_PHI_PSI)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rng;
    use crate::ForceFieldEnergy;
    use rand::Rng;
    use std::f64::consts::PI;

    fn aldp() -> TorsionalMolecule<ForceFieldEnergy> {
        aldp_phi_psi("aldp-phi-psi", ForceFieldEnergy::aldp(300.0).unwrap()).unwrap()
    }

    fn distances(x: &[f64]) -> Vec<f64> {
        let n = x.len() / 3;
        let mut d = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                d.push((atom(x, a) - atom(x, b)).norm());
            }
        }
        d
    }

    #[test]
    fn setting_torsions_reaches_them_and_keeps_each_side_rigid() {
        let t = aldp();
        assert_eq!(t.dim(), 2);
        // The idealised PDB conformer is fully extended: φ = ψ = 180°.
        let t0 = t.torsions_of(t.reference());
        assert!(
            t0.iter()
                .all(|v| (v.abs() - std::f64::consts::PI).abs() < 1e-2),
            "{t0:?}"
        );
        let bonds: Vec<[usize; 2]> = t.cartesian_energy().molecule().unwrap().bonds().to_vec();
        let bond_len = |x: &[f64]| -> Vec<f64> {
            bonds
                .iter()
                .map(|&[a, b]| (atom(x, a) - atom(x, b)).norm())
                .collect()
        };
        let mut r = rng(3);
        for _ in 0..20 {
            let tau = [r.random_range(-PI..PI), r.random_range(-PI..PI)];
            let x = t.cartesian(&tau);
            let got = t.torsions_of(&x);
            for (g, w) in got.iter().zip(&tau) {
                let d = (g - w).rem_euclid(std::f64::consts::TAU);
                assert!(
                    d.min(std::f64::consts::TAU - d) < 1e-10,
                    "{got:?} vs {tau:?}"
                );
            }
            for (a, b) in bond_len(&x).iter().zip(bond_len(t.reference())) {
                assert!((a - b).abs() < 1e-12);
            }
            // Within the ψ side (C, O, NME) every distance is that of the reference.
            let side: Vec<usize> = t.torsions()[1].moving.clone();
            let pick = |x: &[f64]| -> Vec<f64> { side.iter().flat_map(|&a| point(x, a)).collect() };
            for (a, b) in distances(&pick(&x))
                .iter()
                .zip(distances(&pick(t.reference())))
            {
                assert!((a - b).abs() < 1e-12);
            }
        }
        // Angles are periodic: τ and τ + 2π give the same conformer.
        let a = t.cartesian(&[0.3, -1.0]);
        let b = t.cartesian(&[0.3 + std::f64::consts::TAU, -1.0 - std::f64::consts::TAU]);
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-12));
    }

    #[test]
    fn torsion_gradient_matches_finite_differences() {
        let t = aldp();
        let mut r = rng(5);
        for _ in 0..10 {
            let tau = [r.random_range(-3.0..3.0), r.random_range(-3.0..3.0)];
            let mut g = [0.0; 2];
            let e = t.energy_grad(&tau, &mut g);
            assert!((e - t.energy(&tau)).abs() < 1e-9 * e.abs().max(1.0));
            for m in 0..2 {
                let h = 1e-5;
                let (mut p, mut q) = (tau, tau);
                p[m] += h;
                q[m] -= h;
                let fd = (t.energy(&p) - t.energy(&q)) / (2.0 * h);
                assert!(
                    (fd - g[m]).abs() < 1e-5 * (1.0 + g[m].abs()),
                    "τ {tau:?}, m {m}: analytic {} vs fd {fd}",
                    g[m]
                );
            }
        }
    }

    #[test]
    fn bad_torsions_and_references_are_named() {
        let ff = || ForceFieldEnergy::aldp(300.0).unwrap();
        let x = t_reference();
        // 4-6-8-15: 8 and 15 are not bonded.
        let e = TorsionalMolecule::new("t", ff(), x.clone(), &[[4, 6, 8, 15]]).unwrap_err();
        assert!(e.to_string().contains("torsions"), "{e}");
        let e = TorsionalMolecule::new("t", ff(), x[..60].to_vec(), &ALDP_PHI_PSI).unwrap_err();
        assert!(e.to_string().contains("reference"), "{e}");
        let e = TorsionalMolecule::new("t", ff(), x, &[]).unwrap_err();
        assert!(e.to_string().contains("torsions"), "{e}");
        assert!(pdb_positions_nm("HEADER nothing\n").is_err());
        assert!(
            pdb_positions_nm("ATOM      1 1HH3 ACE     1       2.000   x.000  -0.000\n").is_err()
        );
    }

    fn t_reference() -> Vec<f64> {
        aldp().reference().to_vec()
    }
}
