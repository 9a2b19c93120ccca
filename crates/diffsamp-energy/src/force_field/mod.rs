//! Classical force fields read from a serialised OpenMM `System` (XML) or an Amber prmtop
//! topology: the Amber energies of alanine dipeptide in vacuum or OBC implicit solvent,
//! evaluated natively in f64 with analytic gradients.
//!
//! [`ForceField`] holds the terms in OpenMM units (nm, kJ/mol); [`ForceFieldEnergy`] turns it
//! into an [`Energy`] in kT units at a given temperature.

mod bonded;
mod gb_expr;
mod gb_obc;
mod geom;
mod nonbonded;
mod prmtop;
mod xml;

pub use prmtop::Solvent;

#[cfg(test)]
mod tests;

use crate::{data, Energy, EnergyError, Molecule};
use std::path::Path;

/// Molar gas constant R in kJ/(mol·K).
pub const GAS_CONSTANT_KJ: f64 = 8.314462618e-3;

/// A group of force-field terms, for evaluating parts of the energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// Harmonic bonds.
    Bonds,
    /// Harmonic angles.
    Angles,
    /// Periodic torsions (proper and improper).
    Torsions,
    /// Lennard-Jones + Coulomb, with exceptions.
    Nonbonded,
    /// OBC generalized Born (polar + ACE surface term).
    GeneralizedBorn,
}

impl Term {
    /// All terms.
    pub const ALL: [Term; 5] = [
        Term::Bonds,
        Term::Angles,
        Term::Torsions,
        Term::Nonbonded,
        Term::GeneralizedBorn,
    ];

    /// A short lowercase name (a CSV column header): `bonds`, `angles`, `torsions`,
    /// `nonbonded`, `gb`.
    pub fn name(self) -> &'static str {
        match self {
            Term::Bonds => "bonds",
            Term::Angles => "angles",
            Term::Torsions => "torsions",
            Term::Nonbonded => "nonbonded",
            Term::GeneralizedBorn => "gb",
        }
    }
}

/// The potential energy of an OpenMM System (no periodic box), in kJ/mol over positions in nm.
#[derive(Clone, Debug)]
pub struct ForceField {
    n_particles: usize,
    masses: Vec<f64>,
    bonds: Vec<bonded::Bond>,
    angles: Vec<bonded::Angle>,
    torsions: Vec<bonded::Torsion>,
    nonbonded: Vec<nonbonded::Nonbonded>,
    gb: Vec<gb_obc::GbObc>,
}

impl ForceField {
    /// Parses the XML text of a serialised OpenMM System; `origin` labels errors.
    pub fn from_xml_str(text: &str, origin: &Path) -> Result<Self, EnergyError> {
        xml::parse_system(text).map_err(|why| EnergyError::Data {
            path: origin.to_path_buf(),
            why,
        })
    }

    /// Reads a serialised OpenMM System from a file.
    pub fn from_file(path: &Path) -> Result<Self, EnergyError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnergyError::Data {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::from_xml_str(&text, path)
    }

    /// Parses the text of an Amber prmtop file (see the `prmtop` module for the unit and
    /// exclusion conventions, those of OpenMM's `AmberPrmtopFile`); `origin` labels errors.
    pub fn from_prmtop_str(
        text: &str,
        origin: &Path,
        solvent: Solvent,
    ) -> Result<Self, EnergyError> {
        prmtop::parse_prmtop(text, solvent).map_err(|why| EnergyError::Data {
            path: origin.to_path_buf(),
            why,
        })
    }

    /// Reads an Amber prmtop file with the given implicit solvent.
    pub fn from_prmtop(path: &Path, solvent: Solvent) -> Result<Self, EnergyError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnergyError::Data {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        Self::from_prmtop_str(&text, path, solvent)
    }

    /// Number of particles.
    pub fn n_particles(&self) -> usize {
        self.n_particles
    }

    /// Particle masses in amu (g/mol), from `<Particles><Particle mass=...>`.
    pub fn masses(&self) -> &[f64] {
        &self.masses
    }

    /// The chemical graph: elements recognised from the masses, bonds from the harmonic bond
    /// terms. A mass that is no standard atomic weight (e.g. a repartitioned hydrogen) is an
    /// error naming the particle.
    pub fn molecule(&self) -> Result<Molecule, EnergyError> {
        let elements = self
            .masses
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                Molecule::element_from_mass(m).ok_or_else(|| EnergyError::InvalidParameter {
                    name: "mass",
                    value: format!("{m} (particle {i})"),
                    why: "is no standard atomic weight of H, C, N, O, P or S",
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bonds: Vec<[usize; 2]> = self.bonds.iter().map(|b| b.p).collect();
        Molecule::new(elements, &bonds)
    }

    /// Whether the System has an implicit-solvent (GB) force.
    pub fn has_gb(&self) -> bool {
        !self.gb.is_empty()
    }

    /// Energy (kJ/mol) of the selected terms at `x` (`[n, 3]`, nm), writing its gradient
    /// (kJ/mol/nm, i.e. minus the force) into `grad`.
    pub fn energy_grad_terms(&self, terms: &[Term], x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), 3 * self.n_particles);
        debug_assert_eq!(grad.len(), x.len());
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut e = 0.0;
        for term in terms {
            e += match term {
                Term::Bonds => bonded::bonds(&self.bonds, x, grad),
                Term::Angles => bonded::angles(&self.angles, x, grad),
                Term::Torsions => bonded::torsions(&self.torsions, x, grad),
                Term::Nonbonded => self
                    .nonbonded
                    .iter()
                    .map(|nb| nb.energy_grad(x, grad))
                    .sum(),
                Term::GeneralizedBorn => self.gb.iter().map(|gb| gb.energy_grad(x, grad)).sum(),
            };
        }
        e
    }

    /// Total energy (kJ/mol) with its gradient (kJ/mol/nm).
    pub fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.energy_grad_terms(&Term::ALL, x, grad)
    }
}

/// A force field as a Boltzmann target: E(x) = U(x)/kT with x in nm, `[n, 3]`.
#[derive(Clone, Debug)]
pub struct ForceFieldEnergy {
    name: String,
    field: ForceField,
    kt: f64,
    /// The chemical graph, when every mass is a recognised element.
    molecule: Option<Molecule>,
}

impl ForceFieldEnergy {
    /// `field` at temperature `temperature` (K), named `name`.
    pub fn new(name: &str, field: ForceField, temperature: f64) -> Result<Self, EnergyError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(EnergyError::InvalidParameter {
                name: "temperature",
                value: temperature.to_string(),
                why: "must be a positive number of kelvin",
            });
        }
        Ok(Self {
            name: name.to_string(),
            molecule: field.molecule().ok(),
            field,
            kt: GAS_CONSTANT_KJ * temperature,
        })
    }

    /// The System `aldp/<tag>.system.xml` of the shared data directory at `temperature` (K).
    pub fn from_shared(name: &str, tag: &str, temperature: f64) -> Result<Self, EnergyError> {
        let path = data::shared_data_file(&format!("aldp/{tag}.system.xml"))?;
        Self::new(name, ForceField::from_file(&path)?, temperature)
    }

    /// Alanine dipeptide, Amber ff96 + OBC GB (the FAB benchmark target), at `temperature` K.
    pub fn aldp(temperature: f64) -> Result<Self, EnergyError> {
        Self::from_shared("aldp", "fab_amber96_obc1", temperature)
    }

    /// Alanine dipeptide, Amber ff14SB + OBC1 GB without cutoff, at `temperature` K.
    pub fn aldp_ff14sb_obc1(temperature: f64) -> Result<Self, EnergyError> {
        Self::from_shared("aldp-ff14sb-obc1", "amber14_obc1_nocut", temperature)
    }

    /// kT in kJ/mol.
    pub fn kt(&self) -> f64 {
        self.kt
    }

    /// The underlying force field (kJ/mol, nm).
    pub fn field(&self) -> &ForceField {
        &self.field
    }

    /// The energy of one configuration split by [`Term::ALL`], in kT: U_term(x)/kT for each
    /// term, in that order; they sum to [`Energy::energy`]. Which term is off tells whether a
    /// generated molecule fails on its bonds, its angles or its clashes.
    pub fn term_energies(&self, x: &[f64]) -> Result<[f64; 5], EnergyError> {
        if x.len() != self.dim() {
            return Err(EnergyError::Shape {
                energy: self.name.clone(),
                what: "configuration",
                len: x.len(),
                expected: self.dim(),
            });
        }
        let mut grad = vec![0.0; x.len()];
        Ok(Term::ALL.map(|t| self.field.energy_grad_terms(&[t], x, &mut grad) / self.kt))
    }
}

impl Energy for ForceFieldEnergy {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        3 * self.field.n_particles
    }

    fn molecule(&self) -> Option<Molecule> {
        self.molecule.clone()
    }

    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let u = self.field.energy_grad(x, grad);
        let inv = 1.0 / self.kt;
        grad.iter_mut().for_each(|g| *g *= inv);
        u * inv
    }
}
