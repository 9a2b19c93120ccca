//! Amber prmtop (parm7) topologies read into the native force field, with the conventions of
//! OpenMM's `AmberPrmtopFile.createSystem` (no cutoff, no constraints, no periodic box).
//!
//! Units: prmtop lengths are Å, energies kcal/mol, charges e · 18.2223. With
//! c = 4.184 kJ/kcal:
//! - bond: Amber K (r − r₀)² ⇒ OpenMM ½ k (r − r₀)² with k = 2 K c · 100 kJ/mol/nm², r₀/10 nm;
//! - angle: K (θ − θ₀)² ⇒ k = 2 K c kJ/mol/rad²;
//! - torsion: K (1 + cos(nφ − φ₀)) ⇒ k = K c kJ/mol;
//! - Lennard-Jones: A/r¹² − B/r⁶ per type pair ⇒ per-atom ε = B²/(4A) · c, σ = (A/B)^(1/6)/10 nm
//!   from the diagonal, combined by Lorentz–Berthelot (other off-diagonal terms, "NBFIX", are
//!   refused).
//!
//! Exclusions: pairs 1-2 (bonds) and 1-3 (angles) interact not at all; a pair 1-4 of a proper
//! dihedral whose third index is non-negative gets Coulomb / SCEE and LJ ε / SCNB (defaults 1.2
//! and 2.0). A negative fourth index marks an improper, a negative third one a dihedral whose
//! 1-4 pair is counted elsewhere.
//!
//! Implicit solvent OBC1: radii from RADII (Å), offset 0.009 nm, scale factors from SCREEN,
//! ε_solute 1, ε_solvent 78.5, the ACE surface term, as the OBC fixture Systems have it.

use super::bonded::{Angle, Bond, Torsion};
use super::gb_obc::GbObc;
use super::nonbonded::{Exception, NbParticle, Nonbonded};
use super::ForceField;
use std::collections::{HashMap, HashSet};

type Res<T> = Result<T, String>;

/// Implicit solvent of a System built from a prmtop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solvent {
    /// No solvent model.
    Vacuum,
    /// OBC1 generalized Born (α, β, γ = 0.8, 0, 2.909125) with the ACE surface term.
    Obc1,
}

/// kJ per kcal.
const KCAL: f64 = 4.184;
/// Amber's charge unit: e · 18.2223.
const AMBER_CHARGE: f64 = 18.2223;
/// Coulomb constant of OpenMM's OBC CustomGBForce expressions (kJ·nm/mol/e²).
const GB_COULOMB: f64 = 138.935485;
/// OBC offset of the radii (nm).
const GB_OFFSET: f64 = 0.009;
/// ACE prefactor 4π · 0.0054 kcal/mol/Å² in kJ/mol/nm², and its probe radius (nm).
const ACE_SURFACE: f64 = 28.3919551;
const ACE_PROBE: f64 = 0.14;

/// One `%FLAG` section: its Fortran format and raw data lines.
struct Section<'a> {
    format: &'a str,
    lines: Vec<&'a str>,
}

/// The sections of a prmtop file by flag name.
struct Sections<'a>(HashMap<&'a str, Section<'a>>);

impl<'a> Sections<'a> {
    fn parse(text: &'a str) -> Res<Self> {
        let mut map = HashMap::new();
        let mut current: Option<(&str, Section)> = None;
        if !text.trim_start().starts_with("%VERSION") && !text.trim_start().starts_with("%FLAG") {
            return Err("not an Amber prmtop file (no %VERSION or %FLAG header)".into());
        }
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("%FLAG") {
                if let Some((name, s)) = current.take() {
                    map.insert(name, s);
                }
                let name = rest.trim();
                current = Some((
                    name,
                    Section {
                        format: "",
                        lines: Vec::new(),
                    },
                ));
            } else if let Some(rest) = line.strip_prefix("%FORMAT") {
                match current.as_mut() {
                    Some((_, s)) => s.format = rest.trim(),
                    None => return Err("%FORMAT before any %FLAG".into()),
                }
            } else if line.starts_with('%') {
                // %VERSION, %COMMENT
            } else if let Some((_, s)) = current.as_mut() {
                s.lines.push(line);
            }
        }
        if let Some((name, s)) = current.take() {
            map.insert(name, s);
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Res<&Section<'a>> {
        self.0
            .get(name)
            .ok_or_else(|| format!("missing section %FLAG {name}"))
    }

    /// The fields of section `name`, cut at the width its `%FORMAT(nXw[.d])` gives.
    fn fields(&self, name: &str) -> Res<Vec<&'a str>> {
        let s = self.get(name)?;
        let width = field_width(s.format)
            .ok_or_else(|| format!("section {name}: unsupported format \"{}\"", s.format))?;
        let mut out = Vec::new();
        for line in &s.lines {
            let line = line.trim_end_matches('\r');
            let mut start = 0;
            while start < line.len() {
                let end = (start + width).min(line.len());
                let field = line
                    .get(start..end)
                    .ok_or_else(|| format!("section {name}: a line is not plain ASCII"))?;
                if !field.trim().is_empty() {
                    out.push(field.trim());
                }
                start = end;
            }
        }
        Ok(out)
    }

    /// Exactly `count` floats of section `name`.
    fn floats(&self, name: &str, count: usize) -> Res<Vec<f64>> {
        let f = self.fields(name)?;
        check_count(name, f.len(), count)?;
        f.iter()
            .enumerate()
            .map(|(k, v)| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("section {name}, entry {k}: \"{v}\" is not a number"))
            })
            .collect()
    }

    /// Exactly `count` integers of section `name` (at least `count` when `at_least`).
    fn ints(&self, name: &str, count: usize, at_least: bool) -> Res<Vec<i64>> {
        let f = self.fields(name)?;
        if !(at_least && f.len() >= count) {
            check_count(name, f.len(), count)?;
        }
        f.iter()
            .enumerate()
            .map(|(k, v)| {
                v.parse::<i64>()
                    .map_err(|_| format!("section {name}, entry {k}: \"{v}\" is not an integer"))
            })
            .collect()
    }
}

fn check_count(name: &str, found: usize, expected: usize) -> Res<()> {
    if found != expected {
        return Err(format!(
            "section {name} has {found} entries, POINTERS call for {expected} (truncated or corrupt file?)"
        ));
    }
    Ok(())
}

/// The field width w of a Fortran format `(nXw)` or `(nXw.d)`, X one of I, E, F, a.
fn field_width(format: &str) -> Option<usize> {
    let inner = format.trim().strip_prefix('(')?.strip_suffix(')')?;
    let pos = inner.find(|c: char| c.is_ascii_alphabetic())?;
    let rest = &inner[pos + 1..];
    let w = rest.split('.').next()?;
    w.parse().ok().filter(|&w| w > 0)
}

/// An atom index from a prmtop list (3 × index, possibly negated as a flag).
fn atom(raw: i64, n: usize, what: &str) -> Res<usize> {
    let a = raw.unsigned_abs() as usize;
    if a % 3 != 0 || a / 3 >= n {
        return Err(format!(
            "{what}: atom entry {raw} is not 3 × an atom index below {n}"
        ));
    }
    Ok(a / 3)
}

/// A 1-based parameter-type index of a prmtop list, checked against `count` types.
fn type_index(raw: i64, count: usize, what: &str) -> Res<usize> {
    if raw < 1 || raw as usize > count {
        return Err(format!("{what}: type {raw} is not in 1..={count}"));
    }
    Ok(raw as usize - 1)
}

/// Parses a prmtop text into a [`ForceField`].
pub(crate) fn parse_prmtop(text: &str, solvent: Solvent) -> Res<ForceField> {
    let s = Sections::parse(text)?;
    let p = s.ints("POINTERS", 30, true)?;
    let ptr = |k: usize| -> Res<usize> {
        usize::try_from(p[k]).map_err(|_| format!("POINTERS entry {k} is negative ({})", p[k]))
    };
    let (n, n_types) = (ptr(0)?, ptr(1)?);
    let (nbonh, mbona, ntheth, mtheta, nphih, mphia) =
        (ptr(2)?, ptr(3)?, ptr(4)?, ptr(5)?, ptr(6)?, ptr(7)?);
    let (numbnd, numang, nptra) = (ptr(15)?, ptr(16)?, ptr(17)?);
    if n == 0 {
        return Err("POINTERS: no atoms".into());
    }
    if p[27] != 0 {
        return Err(format!(
            "periodic boxes (IFBOX = {}) are not supported",
            p[27]
        ));
    }
    if p[29] != 0 {
        return Err("water caps (IFCAP ≠ 0) are not supported".into());
    }
    if p.len() > 30 && p[30] != 0 {
        return Err(format!(
            "extra points (NUMEXTRA = {}) are not supported",
            p[30]
        ));
    }
    let masses = s.floats("MASS", n)?;
    let charges: Vec<f64> = s
        .floats("CHARGE", n)?
        .iter()
        .map(|q| q / AMBER_CHARGE)
        .collect();

    let bond_k = s.floats("BOND_FORCE_CONSTANT", numbnd)?;
    let bond_r = s.floats("BOND_EQUIL_VALUE", numbnd)?;
    let mut bonds = Vec::new();
    for (name, count) in [
        ("BONDS_INC_HYDROGEN", nbonh),
        ("BONDS_WITHOUT_HYDROGEN", mbona),
    ] {
        for e in s.ints(name, 3 * count, false)?.chunks_exact(3) {
            let t = type_index(e[2], numbnd, name)?;
            bonds.push(Bond {
                p: [atom(e[0], n, name)?, atom(e[1], n, name)?],
                d: bond_r[t] / 10.0,
                k: 2.0 * bond_k[t] * KCAL * 100.0,
            });
        }
    }

    let angle_k = s.floats("ANGLE_FORCE_CONSTANT", numang)?;
    let angle_t = s.floats("ANGLE_EQUIL_VALUE", numang)?;
    let mut angles = Vec::new();
    for (name, count) in [
        ("ANGLES_INC_HYDROGEN", ntheth),
        ("ANGLES_WITHOUT_HYDROGEN", mtheta),
    ] {
        for e in s.ints(name, 4 * count, false)?.chunks_exact(4) {
            let t = type_index(e[3], numang, name)?;
            angles.push(Angle {
                p: [
                    atom(e[0], n, name)?,
                    atom(e[1], n, name)?,
                    atom(e[2], n, name)?,
                ],
                a: angle_t[t],
                k: 2.0 * angle_k[t] * KCAL,
            });
        }
    }

    let dih_k = s.floats("DIHEDRAL_FORCE_CONSTANT", nptra)?;
    let dih_n = s.floats("DIHEDRAL_PERIODICITY", nptra)?;
    let dih_phase = s.floats("DIHEDRAL_PHASE", nptra)?;
    let scale = |name: &str, default: f64| -> Res<Vec<f64>> {
        if s.0.contains_key(name) {
            s.floats(name, nptra)
        } else {
            Ok(vec![default; nptra])
        }
    };
    let scee = scale("SCEE_SCALE_FACTOR", 1.2)?;
    let scnb = scale("SCNB_SCALE_FACTOR", 2.0)?;
    let mut torsions = Vec::new();
    // 1-4 pairs with their dihedral type (for the scale factors), in order of appearance.
    let mut pairs14: Vec<([usize; 2], usize)> = Vec::new();
    for (name, count) in [
        ("DIHEDRALS_INC_HYDROGEN", nphih),
        ("DIHEDRALS_WITHOUT_HYDROGEN", mphia),
    ] {
        for e in s.ints(name, 5 * count, false)?.chunks_exact(5) {
            let t = type_index(e[4], nptra, name)?;
            let a = [
                atom(e[0], n, name)?,
                atom(e[1], n, name)?,
                atom(e[2], n, name)?,
                atom(e[3], n, name)?,
            ];
            torsions.push(Torsion {
                p: a,
                periodicity: dih_n[t],
                phase: dih_phase[t],
                k: dih_k[t] * KCAL,
            });
            if e[2] >= 0 && e[3] >= 0 {
                pairs14.push(([a[0], a[3]], t));
            }
        }
    }

    let nonbonded = nonbonded(
        &s, n, n_types, &charges, &bonds, &angles, &pairs14, &scee, &scnb,
    )?;
    let gb = match solvent {
        Solvent::Vacuum => Vec::new(),
        Solvent::Obc1 => vec![obc1(&s, n, &charges)?],
    };
    Ok(ForceField {
        n_particles: n,
        masses,
        bonds,
        angles,
        torsions,
        nonbonded: vec![nonbonded],
        gb,
    })
}

/// Per-atom LJ parameters (σ nm, ε kJ/mol) from the diagonal A/B coefficients, refusing
/// off-diagonal coefficients that are not the Lorentz–Berthelot combination.
fn lennard_jones(s: &Sections, n: usize, n_types: usize) -> Res<Vec<(f64, f64)>> {
    let types = s.ints("ATOM_TYPE_INDEX", n, false)?;
    let index = s.ints("NONBONDED_PARM_INDEX", n_types * n_types, false)?;
    let n_pairs = n_types * (n_types + 1) / 2;
    let acoef = s.floats("LENNARD_JONES_ACOEF", n_pairs)?;
    let bcoef = s.floats("LENNARD_JONES_BCOEF", n_pairs)?;
    let coef = |ti: usize, tj: usize| -> Res<(f64, f64)> {
        let k = index[ti * n_types + tj];
        if k < 1 || k as usize > n_pairs {
            return Err(format!(
                "NONBONDED_PARM_INDEX: entry {k} for types ({}, {}) is not a 6-12 pair (10-12 hydrogen bonds are not supported)",
                ti + 1,
                tj + 1
            ));
        }
        Ok((acoef[k as usize - 1], bcoef[k as usize - 1]))
    };
    // (σ, ε) of a type, Å and kcal/mol.
    let per_type = (0..n_types)
        .map(|t| {
            let (a, b) = coef(t, t)?;
            Ok(if a > 0.0 && b > 0.0 {
                ((a / b).powf(1.0 / 6.0), b * b / (4.0 * a))
            } else {
                (1.0, 0.0)
            })
        })
        .collect::<Res<Vec<_>>>()?;
    for ti in 0..n_types {
        for tj in ti + 1..n_types {
            let (a, b) = coef(ti, tj)?;
            let ((si, ei), (sj, ej)) = (per_type[ti], per_type[tj]);
            let sigma = 0.5 * (si + sj);
            let eps = (ei * ej).sqrt();
            let (a_lb, b_lb) = (4.0 * eps * sigma.powi(12), 4.0 * eps * sigma.powi(6));
            let off = |x: f64, y: f64| (x - y).abs() > 1e-6 * x.abs().max(y.abs()).max(1e-12);
            if off(a, a_lb) || off(b, b_lb) {
                return Err(format!(
                    "LJ coefficients of types ({}, {}) are not the Lorentz–Berthelot combination (NBFIX is not supported)",
                    ti + 1,
                    tj + 1
                ));
            }
        }
    }
    types
        .iter()
        .map(|&t| {
            let t = type_index(t, n_types, "ATOM_TYPE_INDEX")?;
            let (sigma, eps) = per_type[t];
            Ok((sigma / 10.0, eps * KCAL))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn nonbonded(
    s: &Sections,
    n: usize,
    n_types: usize,
    charges: &[f64],
    bonds: &[Bond],
    angles: &[Angle],
    pairs14: &[([usize; 2], usize)],
    scee: &[f64],
    scnb: &[f64],
) -> Res<Nonbonded> {
    let lj = lennard_jones(s, n, n_types)?;
    let particles: Vec<NbParticle> = charges
        .iter()
        .zip(&lj)
        .map(|(&q, &(sigma, eps))| NbParticle { q, sigma, eps })
        .collect();
    let key = |a: usize, b: usize| [a.min(b), a.max(b)];
    let mut seen = HashSet::new();
    let mut exceptions = Vec::new();
    let excluded = bonds
        .iter()
        .map(|b| key(b.p[0], b.p[1]))
        .chain(angles.iter().map(|a| key(a.p[0], a.p[2])));
    for p in excluded {
        if seen.insert(p) {
            exceptions.push(Exception {
                p,
                qq: 0.0,
                sigma: 1.0,
                eps: 0.0,
            });
        }
    }
    for &([i, l], t) in pairs14 {
        let p = key(i, l);
        if i == l || !seen.insert(p) {
            continue;
        }
        let (pi, pl) = (&particles[i], &particles[l]);
        exceptions.push(Exception {
            p,
            qq: pi.q * pl.q / scee[t],
            sigma: 0.5 * (pi.sigma + pl.sigma),
            eps: (pi.eps * pl.eps).sqrt() / scnb[t],
        });
    }
    Ok(Nonbonded::new(particles, exceptions, None))
}

fn obc1(s: &Sections, n: usize, charges: &[f64]) -> Res<GbObc> {
    let radii = s.floats("RADII", n)?;
    let screen = s.floats("SCREEN", n)?;
    if let Some(i) = radii.iter().position(|&r| r * 0.1 <= GB_OFFSET) {
        return Err(format!(
            "RADII: atom {i} has radius {} Å, not above the 0.09 Å offset",
            radii[i]
        ));
    }
    let offset_radius: Vec<f64> = radii.iter().map(|r| r / 10.0 - GB_OFFSET).collect();
    let k = GB_COULOMB * (1.0 - 1.0 / 78.5);
    Ok(GbObc {
        charge: charges.to_vec(),
        scaled_radius: offset_radius
            .iter()
            .zip(&screen)
            .map(|(o, f)| o * f)
            .collect(),
        offset_radius,
        alpha: 0.8,
        gamma: 2.909125,
        offset_b: GB_OFFSET,
        k_self: k,
        k_pair: k,
        ace_s: ACE_SURFACE,
        ace_probe: ACE_PROBE,
        offset_ace: GB_OFFSET,
        cutoff: None,
        pair_shift: 0.0,
    })
}
