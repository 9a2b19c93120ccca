//! The chemical graph of a molecule: one element per atom and the covalent bonds.
//!
//! Atoms of a molecule are distinguishable (unlike the identical particles of
//! [`Particles`]), so a molecule gives an equivariant network its node types (elements) and
//! edge types (bonded or not) while its configurations, `[atoms, 3]` per row, still live in
//! the zero-centre-of-mass subspace.

use crate::{EnergyError, Particles};

/// Standard atomic weights (amu) of the elements of biomolecular force fields, used to
/// recognise an atom's element from its mass.
const ATOMIC_WEIGHTS: [(u8, f64); 6] = [
    (1, 1.008),
    (6, 12.011),
    (7, 14.007),
    (8, 15.999),
    (15, 30.974),
    (16, 32.06),
];

/// How far (amu) a mass may be from a standard atomic weight to be recognised as that element.
const MASS_TOLERANCE: f64 = 0.1;

/// Atoms (by atomic number) and covalent bonds of one molecule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Molecule {
    atomic_numbers: Vec<u8>,
    /// Bonds (i, j) with i < j, sorted, without duplicates.
    bonds: Vec<[usize; 2]>,
}

impl Molecule {
    /// A molecule of `atomic_numbers.len()` atoms. Bonds are unordered pairs; duplicates are
    /// merged. A bond naming an atom that does not exist or bonding an atom to itself is an
    /// error, as is an atomic number 0.
    pub fn new(atomic_numbers: Vec<u8>, bonds: &[[usize; 2]]) -> Result<Self, EnergyError> {
        let n = atomic_numbers.len();
        if let Some(i) = atomic_numbers.iter().position(|&z| z == 0) {
            return Err(invalid(
                "atomic_numbers",
                i.to_string(),
                "atom has atomic number 0",
            ));
        }
        let mut pairs = Vec::with_capacity(bonds.len());
        for &[i, j] in bonds {
            if i >= n || j >= n || i == j {
                return Err(invalid(
                    "bonds",
                    format!("({i}, {j})"),
                    "a bond joins two different atoms of the molecule",
                ));
            }
            pairs.push([i.min(j), i.max(j)]);
        }
        pairs.sort_unstable();
        pairs.dedup();
        Ok(Self {
            atomic_numbers,
            bonds: pairs,
        })
    }

    /// The element of an atom of mass `mass` (amu): the atomic number whose standard atomic
    /// weight lies within 0.1 amu (H, C, N, O, P, S), or `None`.
    pub fn element_from_mass(mass: f64) -> Option<u8> {
        ATOMIC_WEIGHTS
            .iter()
            .find(|(_, w)| (mass - w).abs() <= MASS_TOLERANCE)
            .map(|&(z, _)| z)
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.atomic_numbers.len()
    }

    /// Atomic number of every atom.
    pub fn atomic_numbers(&self) -> &[u8] {
        &self.atomic_numbers
    }

    /// Bonds (i, j), i < j, sorted.
    pub fn bonds(&self) -> &[[usize; 2]] {
        &self.bonds
    }

    /// Whether atoms `i` and `j` share a bond.
    pub fn bonded(&self, i: usize, j: usize) -> bool {
        self.bonds.binary_search(&[i.min(j), i.max(j)]).is_ok()
    }

    /// The distinct elements present, ascending: the node types of a network (atom k has type
    /// `elements().position(z_k)`).
    pub fn elements(&self) -> Vec<u8> {
        let mut z = self.atomic_numbers.clone();
        z.sort_unstable();
        z.dedup();
        z
    }

    /// The layout of one configuration: `[atoms, 3]`.
    pub fn layout(&self) -> Particles {
        Particles {
            n: self.n_atoms(),
            spatial: 3,
        }
    }
}

fn invalid(name: &'static str, value: String, why: &'static str) -> EnergyError {
    EnergyError::InvalidParameter { name, value, why }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonds_are_normalised_and_queried_both_ways() {
        let m = Molecule::new(vec![6, 1, 1, 8], &[[1, 0], [0, 2], [0, 1], [3, 0]]).unwrap();
        assert_eq!(m.bonds(), &[[0, 1], [0, 2], [0, 3]]);
        assert!(m.bonded(1, 0) && m.bonded(0, 3));
        assert!(!m.bonded(1, 2));
        assert_eq!(m.elements(), vec![1, 6, 8]);
        assert_eq!(m.layout(), Particles { n: 4, spatial: 3 });
    }

    #[test]
    fn bad_bonds_and_elements_are_errors() {
        for bonds in [[[0, 4]], [[2, 2]]] {
            let e = Molecule::new(vec![6, 1, 1, 8], &bonds).unwrap_err();
            assert!(e.to_string().contains("bonds"), "{e}");
        }
        let e = Molecule::new(vec![6, 0], &[]).unwrap_err();
        assert!(e.to_string().contains("atomic_numbers"), "{e}");
    }

    #[test]
    fn elements_from_masses() {
        assert_eq!(Molecule::element_from_mass(1.008), Some(1));
        assert_eq!(Molecule::element_from_mass(12.01), Some(6));
        assert_eq!(Molecule::element_from_mass(14.01), Some(7));
        assert_eq!(Molecule::element_from_mass(16.0), Some(8));
        assert_eq!(Molecule::element_from_mass(32.06), Some(16));
        // Deuterium or a repartitioned hydrogen is not recognised.
        assert_eq!(Molecule::element_from_mass(2.014), None);
        assert_eq!(Molecule::element_from_mass(3.024), None);
    }
}
