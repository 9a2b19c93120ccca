//! Reads a serialised OpenMM `System` (XML) into a [`ForceField`].
//!
//! Supported forces: HarmonicBondForce, HarmonicAngleForce, PeriodicTorsionForce (all
//! non-periodic), NonbondedForce (NoCutoff or CutoffNonPeriodic, no switching function, no
//! parameter offsets), CustomGBForce with exactly the OBC expressions of
//! [`super::gb_expr`], and CMMotionRemover (no energy). Any other force, method or
//! expression is an error naming it.

use super::bonded::{Angle, Bond, Torsion};
use super::gb_expr::{self, match_template, match_term};
use super::gb_obc::GbObc;
use super::nonbonded::{Exception, NbParticle, Nonbonded, ReactionField};
use super::ForceField;
use roxmltree::Node;

/// Default reaction-field dielectric of OpenMM's NonbondedForce.
const DEFAULT_RF_DIELECTRIC: f64 = 78.3;

type Res<T> = Result<T, String>;

/// Parses the XML text of an OpenMM System.
pub(crate) fn parse_system(text: &str) -> Res<ForceField> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("invalid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "System" {
        return Err(format!(
            "root element is <{}>, expected <System>",
            root.tag_name().name()
        ));
    }
    let particles = child(root, "Particles")?;
    let n = elements(particles, "Particle").count();
    let mut masses = Vec::with_capacity(n);
    for p in elements(particles, "Particle") {
        if p.children().any(|c| c.is_element()) {
            return Err("virtual sites are not supported".into());
        }
        masses.push(attr(p, "mass").map_err(|e| format!("Particles: {e}"))?);
    }
    let mut ff = ForceField {
        n_particles: n,
        masses,
        bonds: Vec::new(),
        angles: Vec::new(),
        torsions: Vec::new(),
        nonbonded: Vec::new(),
        gb: Vec::new(),
    };
    for force in elements(child(root, "Forces")?, "Force") {
        let kind = attr_str(force, "type")?;
        let ctx = |e: String| format!("{kind}: {e}");
        match kind {
            "HarmonicBondForce" => {
                non_periodic(force).map_err(ctx)?;
                for b in elements(child(force, "Bonds").map_err(ctx)?, "Bond") {
                    ff.bonds.push(Bond {
                        p: [index(b, "p1", n), index(b, "p2", n)]
                            .map_res()
                            .map_err(ctx)?,
                        d: attr(b, "d").map_err(ctx)?,
                        k: attr(b, "k").map_err(ctx)?,
                    });
                }
            }
            "HarmonicAngleForce" => {
                non_periodic(force).map_err(ctx)?;
                for a in elements(child(force, "Angles").map_err(ctx)?, "Angle") {
                    ff.angles.push(Angle {
                        p: [index(a, "p1", n), index(a, "p2", n), index(a, "p3", n)]
                            .map_res()
                            .map_err(ctx)?,
                        a: attr(a, "a").map_err(ctx)?,
                        k: attr(a, "k").map_err(ctx)?,
                    });
                }
            }
            "PeriodicTorsionForce" => {
                non_periodic(force).map_err(ctx)?;
                for t in elements(child(force, "Torsions").map_err(ctx)?, "Torsion") {
                    ff.torsions.push(Torsion {
                        p: [
                            index(t, "p1", n),
                            index(t, "p2", n),
                            index(t, "p3", n),
                            index(t, "p4", n),
                        ]
                        .map_res()
                        .map_err(ctx)?,
                        periodicity: attr(t, "periodicity").map_err(ctx)?,
                        phase: attr(t, "phase").map_err(ctx)?,
                        k: attr(t, "k").map_err(ctx)?,
                    });
                }
            }
            "NonbondedForce" => ff.nonbonded.push(nonbonded(force, n).map_err(ctx)?),
            "CustomGBForce" => ff.gb.push(custom_gb(force, n).map_err(ctx)?),
            "CMMotionRemover" => {}
            other => return Err(format!("unsupported force type {other}")),
        }
    }
    Ok(ff)
}

/// Collects an array of results.
trait MapRes<T, const N: usize> {
    fn map_res(self) -> Res<[T; N]>;
}

impl<T: Copy + Default, const N: usize> MapRes<T, N> for [Res<T>; N] {
    fn map_res(self) -> Res<[T; N]> {
        let mut out = [T::default(); N];
        for (o, v) in out.iter_mut().zip(self) {
            *o = v?;
        }
        Ok(out)
    }
}

fn elements<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Res<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .ok_or_else(|| format!("missing <{name}> in <{}>", node.tag_name().name()))
}

/// Whether `node` has a child `<name>` with element children.
fn has_entries(node: Node, name: &str) -> bool {
    child(node, name).is_ok_and(|c| c.children().any(|e| e.is_element()))
}

fn attr_str<'a>(node: Node<'a, '_>, name: &str) -> Res<&'a str> {
    node.attribute(name)
        .ok_or_else(|| format!("<{}> lacks attribute {name}", node.tag_name().name()))
}

fn attr(node: Node, name: &str) -> Res<f64> {
    let s = attr_str(node, name)?;
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("attribute {name}=\"{s}\" is not a finite number"))
}

fn index(node: Node, name: &str, n: usize) -> Res<usize> {
    let s = attr_str(node, name)?;
    match s.trim().parse::<usize>() {
        Ok(i) if i < n => Ok(i),
        _ => Err(format!(
            "attribute {name}=\"{s}\" is not a particle index below {n}"
        )),
    }
}

fn non_periodic(force: Node) -> Res<()> {
    match force.attribute("usesPeriodic") {
        None | Some("0") => Ok(()),
        Some(v) => Err(format!("usesPeriodic=\"{v}\" is not supported")),
    }
}

fn nonbonded(force: Node, n: usize) -> Res<Nonbonded> {
    let method = attr(force, "method")?;
    let reaction_field = if method == 0.0 {
        None
    } else if method == 1.0 {
        let eps = match force.attribute("rfDielectric") {
            Some(_) => attr(force, "rfDielectric")?,
            None => DEFAULT_RF_DIELECTRIC,
        };
        Some(ReactionField::new(attr(force, "cutoff")?, eps))
    } else {
        return Err(format!(
            "nonbonded method {method} is not supported (only NoCutoff = 0 and CutoffNonPeriodic = 1)"
        ));
    };
    if force.attribute("useSwitchingFunction").unwrap_or("0") != "0" {
        return Err("a switching function is not supported".into());
    }
    for name in ["GlobalParameters", "ParticleOffsets", "ExceptionOffsets"] {
        if has_entries(force, name) {
            return Err(format!("non-empty <{name}> is not supported"));
        }
    }
    let particles = elements(child(force, "Particles")?, "Particle")
        .map(|p| {
            Ok(NbParticle {
                q: attr(p, "q")?,
                sigma: attr(p, "sig")?,
                eps: attr(p, "eps")?,
            })
        })
        .collect::<Res<Vec<_>>>()?;
    if particles.len() != n {
        return Err(format!("{} particles, the System has {n}", particles.len()));
    }
    let exceptions = match child(force, "Exceptions") {
        Ok(ex) => elements(ex, "Exception")
            .map(|e| {
                Ok(Exception {
                    p: [index(e, "p1", n), index(e, "p2", n)].map_res()?,
                    qq: attr(e, "q")?,
                    sigma: attr(e, "sig")?,
                    eps: attr(e, "eps")?,
                })
            })
            .collect::<Res<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    Ok(Nonbonded::new(particles, exceptions, reaction_field))
}

/// Names of the children of `<name>` (their `name` attribute), in order.
fn names(force: Node, name: &str) -> Res<Vec<String>> {
    Ok(child(force, name)?
        .children()
        .filter(|c| c.is_element())
        .map(|c| c.attribute("name").unwrap_or("").to_string())
        .collect())
}

/// `(expression, type)` of the children of `<name>`.
fn expressions(force: Node, name: &str) -> Res<Vec<(String, String)>> {
    child(force, name)?
        .children()
        .filter(|c| c.is_element())
        .map(|c| {
            Ok((
                attr_str(c, "expression")?.to_string(),
                attr_str(c, "type")?.to_string(),
            ))
        })
        .collect()
}

fn custom_gb(force: Node, n: usize) -> Res<GbObc> {
    let method = attr(force, "method")?;
    let cutoff = if method == 0.0 {
        None
    } else if method == 1.0 {
        Some(attr(force, "cutoff")?)
    } else {
        return Err(format!(
            "method {method} is not supported (only NoCutoff = 0 and CutoffNonPeriodic = 1)"
        ));
    };
    let params = names(force, "PerParticleParameters")?;
    if params != ["charge", "or", "sr"] {
        return Err(format!(
            "per-particle parameters {params:?} are not the OBC ones [charge, or, sr]"
        ));
    }
    for name in [
        "GlobalParameters",
        "Exclusions",
        "Functions",
        "EnergyParameterDerivatives",
    ] {
        if has_entries(force, name) {
            return Err(format!("non-empty <{name}> is not supported"));
        }
    }
    let unsupported = |what: &str, e: &str| format!("unsupported CustomGBForce {what} \"{e}\"");
    // Computed values: I (ParticlePairNoExclusions = 2), then B (SingleParticle = 0).
    let values = expressions(force, "ComputedValues")?;
    let value_names = names(force, "ComputedValues")?;
    if values.len() != 2 || value_names != ["I", "B"] {
        return Err(format!(
            "computed values {value_names:?} are not the OBC ones [I, B]"
        ));
    }
    let (ie, it) = &values[0];
    if it != "2" || match_template(gb_expr::I_VALUE, ie).is_none() {
        return Err(unsupported(&format!("computed value I (type {it})"), ie));
    }
    let (be, bt) = &values[1];
    let b = match_template(gb_expr::B_VALUE, be)
        .filter(|_| bt == "0")
        .ok_or_else(|| unsupported(&format!("computed value B (type {bt})"), be))?;
    let (alpha, gamma, offset_b) = (b[0], b[1], b[2]);
    // Energy terms: self (0), ACE (0), pair (2).
    let terms = expressions(force, "EnergyTerms")?;
    if terms.len() != 3 {
        return Err(format!("{} energy terms, the OBC model has 3", terms.len()));
    }
    let check_cut = |c: Option<f64>, e: &str| -> Res<()> {
        if c != cutoff {
            return Err(format!(
                "energy term \"{e}\" has cutoff {c:?}, the force has {cutoff:?}"
            ));
        }
        Ok(())
    };
    let (se, st) = &terms[0];
    let (s, sc) = match_term(gb_expr::SELF_TERM, se)
        .filter(|_| st == "0")
        .ok_or_else(|| unsupported(&format!("energy term (type {st})"), se))?;
    check_cut(sc, se)?;
    let k_self = s[0] * (1.0 / s[2] - 1.0 / s[1]);
    let (ae, at) = &terms[1];
    let (a, ac) = match_term(gb_expr::ACE_TERM, ae)
        .filter(|_| at == "0")
        .ok_or_else(|| unsupported(&format!("energy term (type {at})"), ae))?;
    check_cut(ac, ae)?;
    let (pe, pt) = &terms[2];
    if pt != "2" {
        return Err(unsupported(&format!("energy term (type {pt})"), pe));
    }
    let (k_pair, pair_shift, pc) = if let Some((p, pc)) = match_term(gb_expr::PAIR_TERM, pe) {
        (p[0] * (1.0 / p[2] - 1.0 / p[1]), 0.0, pc)
    } else if let Some((p, pc)) = match_term(gb_expr::PAIR_TERM_CUT, pe) {
        (p[0] * (1.0 / p[3] - 1.0 / p[2]), p[1], pc)
    } else {
        return Err(unsupported("energy term (type 2)", pe));
    };
    check_cut(pc, pe)?;
    if pair_shift != 0.0 && cutoff.is_none_or(|c| (pair_shift * c - 1.0).abs() > 1e-12) {
        return Err(format!(
            "pair term shift {pair_shift} is not 1/cutoff (cutoff {cutoff:?})"
        ));
    }
    let mut gb = GbObc {
        charge: Vec::with_capacity(n),
        offset_radius: Vec::with_capacity(n),
        scaled_radius: Vec::with_capacity(n),
        alpha,
        gamma,
        offset_b,
        k_self,
        k_pair,
        ace_s: a[0],
        ace_probe: a[1],
        offset_ace: a[4],
        cutoff,
        pair_shift,
    };
    for p in elements(child(force, "Particles")?, "Particle") {
        gb.charge.push(attr(p, "param1")?);
        gb.offset_radius.push(attr(p, "param2")?);
        gb.scaled_radius.push(attr(p, "param3")?);
    }
    if gb.charge.len() != n {
        return Err(format!("{} particles, the System has {n}", gb.charge.len()));
    }
    Ok(gb)
}
