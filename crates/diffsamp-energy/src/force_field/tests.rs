//! Parity with OpenMM Reference-platform energies and forces on the alanine-dipeptide
//! fixtures, finite-difference gradients and error handling.

use super::*;
use crate::data::{read_npy, shared_data_file};
use crate::testutil::{assert_grad_fd, normal_vec, rng};
use std::path::PathBuf;

const TAGS: [&str; 5] = [
    "fab_amber96_obc1",
    "pita_amber14_obc1",
    "amber14_obc1_nocut",
    "amber14_vac",
    "amber99sbildn_vac",
];

fn fixture(file: &str) -> PathBuf {
    shared_data_file(&format!("aldp/{file}")).unwrap()
}

fn field(tag: &str) -> ForceField {
    ForceField::from_file(&fixture(&format!("{tag}.system.xml"))).unwrap()
}

fn xml_text(tag: &str) -> String {
    std::fs::read_to_string(fixture(&format!("{tag}.system.xml"))).unwrap()
}

/// (max |ΔE|, max |ΔF|) of the XML System `tag` against its OpenMM values.
fn parity(tag: &str) -> (f64, f64) {
    let (de, df) = parity_of(&field(tag), tag);
    println!("{tag}: max |dE| = {de:.3e} kJ/mol, max |dF| = {df:.3e} kJ/mol/nm");
    (de, df)
}

#[test]
fn parity_with_openmm_reference() {
    for tag in TAGS {
        let (de, df) = parity(tag);
        assert!(de <= 1e-4, "{tag}: max |dE| = {de:e}");
        assert!(df <= 1e-3, "{tag}: max |dF| = {df:e}");
    }
}

#[test]
fn gb_systems_have_gb_and_vacuum_ones_do_not() {
    for tag in TAGS {
        assert_eq!(field(tag).has_gb(), !tag.ends_with("_vac"), "{tag}");
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let d = x.row_len();
    let mut r = rng(71);
    for tag in TAGS {
        let e = ForceFieldEnergy::new(tag, field(tag), 300.0).unwrap();
        for b in [0, 57] {
            assert_grad_fd(&e, &x.data[b * d..(b + 1) * d], 1e-6);
        }
        // Off-equilibrium geometries reach other branches of the Born integral.
        let noise = normal_vec(&mut r, d, 0.0, 0.02);
        let xp: Vec<f64> = x.data[..d].iter().zip(&noise).map(|(a, b)| a + b).collect();
        assert_grad_fd(&e, &xp, 1e-6);
    }
}

#[test]
fn each_term_gradient_matches_finite_differences() {
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let d = x.row_len();
    let ff = field("pita_amber14_obc1");
    let xb = &x.data[3 * d..4 * d];
    for term in Term::ALL {
        let mut g = vec![0.0; d];
        ff.energy_grad_terms(&[term], xb, &mut g);
        let scale = g.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..d {
            let h = 1e-6;
            let (mut xp, mut xm) = (xb.to_vec(), xb.to_vec());
            xp[i] += h;
            xm[i] -= h;
            let mut s = vec![0.0; d];
            let fd = (ff.energy_grad_terms(&[term], &xp, &mut s)
                - ff.energy_grad_terms(&[term], &xm, &mut s))
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * scale,
                "{term:?} d/dx{i}: {} vs {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn kt_units_at_300k() {
    let e = ForceFieldEnergy::aldp(300.0).unwrap();
    assert!((e.kt() - 2.494339).abs() < 1e-6);
    assert_eq!((e.name(), e.dim()), ("aldp", 66));
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let e_ref = read_npy(&fixture("fab_amber96_obc1.E.npy")).unwrap();
    let f_ref = read_npy(&fixture("fab_amber96_obc1.F.npy")).unwrap();
    let mut g = vec![0.0; 66];
    let u = e.energy_grad(&x.data[..66], &mut g);
    assert!((u - e_ref.data[0] / e.kt()).abs() < 1e-4);
    for (gi, fi) in g.iter().zip(&f_ref.data[..66]) {
        assert!((gi + fi / e.kt()).abs() < 1e-3);
    }
    assert!(ForceFieldEnergy::aldp(0.0).is_err());
    assert!(ForceFieldEnergy::aldp(f64::NAN).is_err());
}

#[test]
fn term_energies_sum_to_the_energy_and_are_rigid_invariants() {
    let e = ForceFieldEnergy::aldp(300.0).unwrap();
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let mut g = vec![0.0; 66];
    // A rotation by 90° about z and a shift: every term is a function of distances and angles.
    let moved = |r: &[f64]| -> Vec<f64> {
        r.chunks_exact(3)
            .flat_map(|p| [-p[1] + 0.3, p[0] - 1.2, p[2] + 0.05])
            .collect()
    };
    for row in x.data.chunks_exact(66).take(10) {
        let terms = e.term_energies(row).unwrap();
        let total = e.energy_grad(row, &mut g);
        assert!((terms.iter().sum::<f64>() - total).abs() < 1e-9 * total.abs().max(1.0));
        // Bonds and angles are sums of squares; a folded conformation has GB < 0.
        assert!(
            terms[0] >= 0.0 && terms[1] >= 0.0 && terms[4] < 0.0,
            "{terms:?}"
        );
        for (a, b) in terms.iter().zip(e.term_energies(&moved(row)).unwrap()) {
            assert!((a - b).abs() < 1e-8 * a.abs().max(1.0), "{a} vs {b}");
        }
    }
    let names: Vec<&str> = Term::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["bonds", "angles", "torsions", "nonbonded", "gb"]);
    let err = e.term_energies(&x.data[..65]).unwrap_err().to_string();
    assert!(err.contains("length 65") && err.contains("66"), "{err}");
}

fn parse_err(text: &str) -> String {
    ForceField::from_xml_str(text, Path::new("mem.xml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_force_type_is_an_error_naming_it() {
    let text = xml_text("amber14_vac").replace("type=\"CMMotionRemover\"", "type=\"RMSDForce\"");
    let msg = parse_err(&text);
    assert!(
        msg.contains("RMSDForce") && msg.contains("mem.xml"),
        "{msg}"
    );
}

#[test]
fn unsupported_gb_expressions_are_errors_quoting_them() {
    let text = xml_text("fab_amber96_obc1");
    // OBC2 Born radii.
    let obc2 = text.replace("0.8*psi+2.909125*psi^3", "1.0*psi-0.8*psi^2+4.85*psi^3");
    let msg = parse_err(&obc2);
    assert!(
        msg.contains("CustomGBForce") && msg.contains("4.85*psi^3"),
        "{msg}"
    );
    // Debye screening in the pair term.
    let salt = text.replace("charge1*charge2/f;", "charge1*charge2*exp(-kappa*f)/f;");
    let msg = parse_err(&salt);
    assert!(msg.contains("exp(-kappa*f)"), "{msg}");
    // A different surface term.
    let ace = text.replace("28.3919551*(radius+0.14)^2", "28.3919551*(radius+0.14)^3");
    assert!(parse_err(&ace).contains("(radius+0.14)^3"));
    // An unsupported nonbonded method (PME).
    let pme = text.replace(
        "method=\"0\" name=\"NonbondedForce\"",
        "method=\"4\" name=\"NonbondedForce\"",
    );
    let msg = parse_err(&pme);
    assert!(
        msg.contains("NonbondedForce") && msg.contains("method 4"),
        "{msg}"
    );
}

#[test]
fn missing_or_corrupt_files_are_errors_naming_them() {
    let e = ForceField::from_file(Path::new("/nonexistent/aldp/x.system.xml")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/aldp/x.system.xml"),
        "{e}"
    );
    let e = ForceFieldEnergy::from_shared("x", "no_such_tag", 300.0).unwrap_err();
    assert!(e.to_string().contains("no_such_tag.system.xml"), "{e}");
    let text = xml_text("amber14_vac");
    let msg = parse_err(&text[..text.len() / 2]);
    assert!(msg.contains("mem.xml") && msg.contains("XML"), "{msg}");
    let msg = parse_err(&text.replace("k=\"265265.6\"", "k=\"abc\""));
    assert!(
        msg.contains("HarmonicBondForce") && msg.contains("abc"),
        "{msg}"
    );
    let msg = parse_err(&text.replace("p1=\"1\"", "p1=\"99\""));
    assert!(msg.contains("99"), "{msg}");
    assert!(parse_err("<Other/>").contains("System"));
}

#[test]
fn registered_targets_evaluate_batches_in_kt_units() {
    let x = read_npy(&fixture("X100.npy")).unwrap();
    for (name, tag) in [
        ("aldp", "fab_amber96_obc1"),
        ("aldp-ff14sb-obc1", "amber14_obc1_nocut"),
    ] {
        let target = crate::by_name(name).unwrap();
        assert_eq!((target.name(), target.dim()), (name, 66));
        let kt = GAS_CONSTANT_KJ * crate::registry::ALDP_TEMPERATURE;
        let e_ref = read_npy(&fixture(&format!("{tag}.E.npy"))).unwrap();
        let f_ref = read_npy(&fixture(&format!("{tag}.F.npy"))).unwrap();
        let batch = crate::EnergyBatch::evaluate(&*target, &x.data).unwrap();
        for b in 0..100 {
            assert!(
                (batch.energies[b] - e_ref.data[b] / kt).abs() < 1e-4 / kt,
                "{name} {b}"
            );
        }
        for (g, f) in batch.grads.iter().zip(&f_ref.data) {
            assert!((g + f / kt).abs() < 1e-3 / kt, "{name}");
        }
    }
}

#[test]
fn cutoff_variant_differs_from_no_cutoff_by_a_constant() {
    // All pairs of alanine dipeptide lie within the 2 nm cutoff, and ε_rf = 1 gives k_rf = 0:
    // the cutoff variant only shifts the energy, by the same amount for every configuration.
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let (cut, nocut) = (field("pita_amber14_obc1"), field("amber14_obc1_nocut"));
    let (mut g1, mut g2) = (vec![0.0; 66], vec![0.0; 66]);
    let shifts: Vec<f64> = x
        .data
        .chunks_exact(66)
        .map(|xb| {
            let s = nocut.energy_grad(xb, &mut g2) - cut.energy_grad(xb, &mut g1);
            let dg = g1
                .iter()
                .zip(&g2)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(dg < 1e-9, "{dg}");
            s
        })
        .collect();
    assert!(shifts[0] > 0.0);
    assert!(shifts.iter().all(|s| (s - shifts[0]).abs() < 1e-9));
}

#[test]
fn wrong_computation_types_and_parameters_are_errors() {
    let text = xml_text("fab_amber96_obc1");
    // I as ParticlePair (type 1) instead of ParticlePairNoExclusions.
    let msg = parse_err(&text.replace("name=\"I\" type=\"2\"", "name=\"I\" type=\"1\""));
    assert!(msg.contains("computed value I (type 1)"), "{msg}");
    let msg = parse_err(&text.replace("<Parameter name=\"sr\"/>", "<Parameter name=\"s\"/>"));
    assert!(msg.contains("per-particle parameters"), "{msg}");
    let msg = parse_err(&text.replace("useSwitchingFunction=\"0\"", "useSwitchingFunction=\"1\""));
    assert!(msg.contains("switching"), "{msg}");
}

#[test]
fn masses_follow_the_elements_of_alanine_dipeptide() {
    let ff = field("fab_amber96_obc1");
    let m = ff.masses();
    assert_eq!(m.len(), ff.n_particles());
    // Atom order of aldp_topology.json: H1 CH3 H2 H3 C O | N H CA HA CB HB1-3 C O | N H C H1-3.
    let elements = "HCHHCONHCHCHHHCONHCHHH";
    for (i, (e, &mass)) in elements.chars().zip(m).enumerate() {
        let expected = match e {
            'H' => 1.008,
            'C' => 12.01,
            'N' => 14.01,
            'O' => 16.0,
            _ => unreachable!(),
        };
        assert_eq!(mass, expected, "atom {i} ({e})");
    }
}

#[test]
fn alanine_dipeptide_graph_matches_the_topology_file() {
    let text = std::fs::read_to_string(shared_data_file("aldp_topology.json").unwrap()).unwrap();
    let topology: serde_json::Value = serde_json::from_str(&text).unwrap();
    let element = |a: &serde_json::Value| match a["element"].as_str().unwrap() {
        "H" => 1,
        "C" => 6,
        "N" => 7,
        "O" => 8,
        other => panic!("unexpected element {other}"),
    };
    let mut atoms: Vec<(u64, u8)> = Vec::new();
    for chain in topology["chains"].as_array().unwrap() {
        for residue in chain["residues"].as_array().unwrap() {
            for a in residue["atoms"].as_array().unwrap() {
                atoms.push((a["index"].as_u64().unwrap(), element(a)));
            }
        }
    }
    atoms.sort_unstable();
    let bonds: Vec<[usize; 2]> = topology["bonds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            [
                b[0].as_u64().unwrap() as usize,
                b[1].as_u64().unwrap() as usize,
            ]
        })
        .collect();
    let expected = Molecule::new(atoms.iter().map(|a| a.1).collect(), &bonds).unwrap();
    assert_eq!(expected.n_atoms(), 22);
    assert_eq!(expected.bonds().len(), 21);
    for tag in TAGS {
        assert_eq!(field(tag).molecule().unwrap(), expected, "{tag}");
        let e = ForceFieldEnergy::new(tag, field(tag), 300.0).unwrap();
        assert_eq!(e.molecule(), Some(expected.clone()));
        assert_eq!(
            e.point_cloud(),
            Some(crate::Particles { n: 22, spatial: 3 })
        );
        assert_eq!(e.particles(), None, "atoms are not identical particles");
    }
}

fn prmtop_text(file: &str) -> String {
    std::fs::read_to_string(fixture(file)).unwrap()
}

fn from_prmtop(file: &str, solvent: Solvent) -> ForceField {
    ForceField::from_prmtop(&fixture(file), solvent).unwrap()
}

/// (max |ΔE|, max |ΔF|) of `ff` against the OpenMM values of fixture `tag` over its 100
/// configurations.
fn parity_of(ff: &ForceField, tag: &str) -> (f64, f64) {
    let x = read_npy(&fixture("X100.npy")).unwrap();
    let e_ref = read_npy(&fixture(&format!("{tag}.E.npy"))).unwrap();
    let f_ref = read_npy(&fixture(&format!("{tag}.F.npy"))).unwrap();
    let d = x.row_len();
    assert_eq!(d, 3 * ff.n_particles());
    assert_eq!((x.rows(), e_ref.rows(), f_ref.rows()), (100, 100, 100));
    let mut grad = vec![0.0; d];
    let (mut de, mut df) = (0.0f64, 0.0f64);
    for (b, xb) in x.data.chunks_exact(d).enumerate() {
        let e = ff.energy_grad(xb, &mut grad);
        de = de.max((e - e_ref.data[b]).abs());
        for (g, f) in grad.iter().zip(&f_ref.data[b * d..(b + 1) * d]) {
            df = df.max((-g - f).abs());
        }
    }
    (de, df)
}

/// Amber's LEaP writes equilibrium angles and torsion phases converted from degrees with
/// π ≈ 3.141594 (e.g. 109.5° → 1.91113635, 180° → 3.14159400); OpenMM's XML force fields carry
/// them exact. Rescaling by π / 3.141594 undoes the rounding.
fn with_exact_pi(mut ff: ForceField) -> ForceField {
    let r = std::f64::consts::PI / 3.141594;
    ff.angles.iter_mut().for_each(|a| a.a *= r);
    ff.torsions.iter_mut().for_each(|t| t.phase *= r);
    ff
}

#[test]
fn prmtop_matches_openmm_in_vacuum_and_obc1() {
    for (solvent, tag) in [
        (Solvent::Vacuum, "amber14_vac"),
        (Solvent::Obc1, "amber14_obc1_nocut"),
    ] {
        let ff = from_prmtop("aldp_ff14SB.prmtop", solvent);
        // As read: within what the file's 8-digit, π ≈ 3.141594 angles allow.
        let (de, df) = parity_of(&ff, tag);
        println!("prmtop {solvent:?} vs {tag}: max |dE| = {de:.3e}, max |dF| = {df:.3e}");
        assert!(de <= 1e-3, "{tag}: max |dE| = {de:e}");
        assert!(df <= 2e-2, "{tag}: max |dF| = {df:e}");
        // With the angles' π restored: the parity bounds.
        let (de, df) = parity_of(&with_exact_pi(ff.clone()), tag);
        println!("prmtop {solvent:?} (exact π) vs {tag}: max |dE| = {de:.3e}, max |dF| = {df:.3e}");
        assert!(de <= 1e-4, "{tag}: max |dE| = {de:e}");
        assert!(df <= 1e-3, "{tag}: max |dF| = {df:e}");
        let xml = field(tag);
        assert_eq!(ff.n_particles(), xml.n_particles());
        assert_eq!(ff.bonds.len(), xml.bonds.len());
        assert_eq!(ff.angles.len(), xml.angles.len());
        assert_eq!(
            ff.nonbonded[0].exceptions.len(),
            xml.nonbonded[0].exceptions.len()
        );
        assert_eq!(ff.has_gb(), xml.has_gb());
        for (a, b) in ff.masses().iter().zip(xml.masses()) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        assert_eq!(ff.molecule().unwrap(), xml.molecule().unwrap());
    }
}

#[test]
fn tripeptide_prmtop_has_consistent_gradients() {
    let ff = from_prmtop("ala3_ff14SB.prmtop", Solvent::Obc1);
    let n = ff.n_particles();
    assert_eq!(n, 32, "ACE (6) + 2 ALA (10) + NME (6)");
    assert_eq!(ff.molecule().unwrap().bonds().len(), 31);
    // A geometry without overlaps: atoms on a jittered cubic lattice of spacing 0.3 nm.
    let mut r = rng(5);
    let jitter = normal_vec(&mut r, 3 * n, 0.0, 0.01);
    let x: Vec<f64> = (0..n)
        .flat_map(|i| [i % 4, (i / 4) % 4, i / 16])
        .zip(&jitter)
        .map(|(c, j)| 0.3 * c as f64 + j)
        .collect();
    let e = ForceFieldEnergy::new("ala3", ff, 300.0).unwrap();
    assert!(e.energy(&x).is_finite());
    assert_grad_fd(&e, &x, 1e-6);
}

#[test]
fn broken_prmtops_are_named_errors() {
    let text = prmtop_text("aldp_ff14SB.prmtop");
    let path = std::path::Path::new("bad.prmtop");
    let err = |t: &str| {
        ForceField::from_prmtop_str(t, path, Solvent::Obc1)
            .unwrap_err()
            .to_string()
    };
    // Truncated in the middle: a section loses entries or disappears.
    let e = err(&text[..text.len() / 2]);
    assert!(
        e.contains("bad.prmtop") && (e.contains("entries") || e.contains("missing")),
        "{e}"
    );
    // A missing section.
    let e = err(&text.replace("%FLAG RADII", "%FLAG RADII_GONE"));
    assert!(e.contains("missing section %FLAG RADII"), "{e}");
    // A count mismatch: one bond force constant too few.
    let start = text.find("%FLAG BOND_FORCE_CONSTANT").unwrap();
    let line_start = start + text[start..].find("\n").unwrap() + 1;
    let data_start = line_start + text[line_start..].find("\n").unwrap() + 1;
    let mut cut = text.clone();
    cut.replace_range(data_start..data_start + 16, "");
    let e = err(&cut);
    assert!(
        e.contains("BOND_FORCE_CONSTANT") && e.contains("entries"),
        "{e}"
    );
    // A non-numeric entry.
    let mut bad = text.clone();
    bad.replace_range(data_start..data_start + 16, "      garbage!!!");
    let e = err(&bad);
    assert!(
        e.contains("BOND_FORCE_CONSTANT") && e.contains("not a number"),
        "{e}"
    );
    // A periodic box.
    let p = text.find("%FLAG POINTERS").unwrap();
    let fmt_end = p + text[p..].find("%FORMAT(10I8)").unwrap() + "%FORMAT(10I8)".len();
    let data = fmt_end + text[fmt_end..].find('\n').unwrap() + 1;
    // IFBOX is entry 27: line 3 (entries 20..29), field 8.
    let line3 = data + 2 * 81;
    let mut boxed = text.clone();
    boxed.replace_range(line3 + 7 * 8..line3 + 8 * 8, "       1");
    let e = err(&boxed);
    assert!(e.contains("IFBOX"), "{e}");
    // Not a prmtop at all.
    assert!(err("<System/>").contains("not an Amber prmtop"));
    // A missing file.
    let e = ForceField::from_prmtop(std::path::Path::new("/nonexistent.prmtop"), Solvent::Vacuum)
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent.prmtop"), "{e}");
}
