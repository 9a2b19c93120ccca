//! OpenMM `NonbondedForce` without periodicity: Lennard-Jones (Lorentz–Berthelot) plus
//! Coulomb, either with no cutoff or with a non-periodic cutoff and reaction field.
//!
//! Ordinary pairs (i < j, not an exception):
//! - LJ 4ε[(σ/r)¹² − (σ/r)⁶], σ = (σ_i + σ_j)/2, ε = √(ε_i ε_j), truncated at r_c (no switch);
//! - Coulomb k q_i q_j / r (no cutoff) or k q_i q_j (1/r + k_rf r² − c_rf) for r < r_c, with
//!   k_rf = r_c⁻³ (ε_s − 1)/(2ε_s + 1), c_rf = r_c⁻¹ 3ε_s/(2ε_s + 1).
//!
//! Exceptions (every excluded pair is one, 1-4 scaling already applied) use their own
//! charge product, σ and ε with plain Coulomb and LJ: never cut, no reaction field
//! (OpenMM's Reference platform does the same).

use super::geom::{add_pair, dot, pos, sub};

/// Coulomb constant 1/(4π ε₀) in kJ·mol⁻¹·nm·e⁻² (OpenMM's ONE_4PI_EPS0).
pub(crate) const ONE_4PI_EPS0: f64 = 138.935456;

/// Per-particle nonbonded parameters.
#[derive(Clone, Debug)]
pub(crate) struct NbParticle {
    pub q: f64,
    pub sigma: f64,
    pub eps: f64,
}

/// An exception: a pair with its own parameters (and excluded from the ordinary sum).
#[derive(Clone, Debug)]
pub(crate) struct Exception {
    pub p: [usize; 2],
    pub qq: f64,
    pub sigma: f64,
    pub eps: f64,
}

/// Reaction-field cutoff parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReactionField {
    pub cutoff: f64,
    pub krf: f64,
    pub crf: f64,
}

impl ReactionField {
    /// Parameters for cutoff r_c and solvent dielectric ε_s.
    pub fn new(cutoff: f64, eps_solvent: f64) -> Self {
        let d = 2.0 * eps_solvent + 1.0;
        Self {
            cutoff,
            krf: (eps_solvent - 1.0) / d / cutoff.powi(3),
            crf: 3.0 * eps_solvent / d / cutoff,
        }
    }
}

/// The nonbonded force: particles, exceptions, the ordinary pair list and the cutoff mode.
#[derive(Clone, Debug)]
pub(crate) struct Nonbonded {
    pub particles: Vec<NbParticle>,
    pub exceptions: Vec<Exception>,
    /// Ordinary (non-excluded) pairs i < j.
    pub pairs: Vec<[usize; 2]>,
    /// `None` = NoCutoff.
    pub reaction_field: Option<ReactionField>,
}

impl Nonbonded {
    /// Builds the ordinary pair list (all i < j minus the exception pairs).
    pub fn new(
        particles: Vec<NbParticle>,
        exceptions: Vec<Exception>,
        reaction_field: Option<ReactionField>,
    ) -> Self {
        let n = particles.len();
        let mut excluded = vec![false; n * n];
        for e in &exceptions {
            let [a, b] = e.p;
            excluded[a * n + b] = true;
            excluded[b * n + a] = true;
        }
        let pairs = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| [i, j]))
            .filter(|&[i, j]| !excluded[i * n + j])
            .collect();
        Self {
            particles,
            exceptions,
            pairs,
            reaction_field,
        }
    }

    /// Energy (kJ/mol), adding ∇ into `grad`.
    pub fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut e = 0.0;
        for &[i, j] in &self.pairs {
            let (a, b) = (&self.particles[i], &self.particles[j]);
            let d = sub(pos(x, i), pos(x, j));
            let r2 = dot(d, d);
            let r = r2.sqrt();
            let qq = ONE_4PI_EPS0 * a.q * b.q;
            let sigma = 0.5 * (a.sigma + b.sigma);
            let eps = (a.eps * b.eps).sqrt();
            let (mut ep, mut dedr) = lj(r, sigma, eps);
            match self.reaction_field {
                None => {
                    ep += qq / r;
                    dedr -= qq / r2;
                }
                Some(rf) => {
                    if r >= rf.cutoff {
                        continue;
                    }
                    ep += qq * (1.0 / r + rf.krf * r2 - rf.crf);
                    dedr += qq * (2.0 * rf.krf * r - 1.0 / r2);
                }
            }
            e += ep;
            add_pair(grad, i, j, d, r, dedr);
        }
        for ex in &self.exceptions {
            if ex.qq == 0.0 && ex.eps == 0.0 {
                continue;
            }
            let [i, j] = ex.p;
            let d = sub(pos(x, i), pos(x, j));
            let r2 = dot(d, d);
            let r = r2.sqrt();
            let qq = ONE_4PI_EPS0 * ex.qq;
            let (mut ep, mut dedr) = lj(r, ex.sigma, ex.eps);
            ep += qq / r;
            dedr -= qq / r2;
            e += ep;
            add_pair(grad, i, j, d, r, dedr);
        }
        e
    }
}

/// LJ energy and dE/dr.
#[inline]
fn lj(r: f64, sigma: f64, eps: f64) -> (f64, f64) {
    if eps == 0.0 {
        return (0.0, 0.0);
    }
    let s6 = (sigma / r).powi(6);
    let s12 = s6 * s6;
    (
        4.0 * eps * (s12 - s6),
        4.0 * eps * (6.0 * s6 - 12.0 * s12) / r,
    )
}
