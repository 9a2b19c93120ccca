//! OBC generalized Born implicit solvent as OpenMM's `CustomGBForce` expresses it
//! (the expressions are in [`super::gb_expr`]); energy and analytic gradient, including the
//! chain rule through the Born radii.
//!
//! With per-particle charge q, offset radius `or` and scaled radius `sr`:
//! - I_i = Σ_{j≠i} h(r_ij; or_i, sr_j), where h = 0 unless r + sr_j ≥ or_i, else
//!   h = ½[1/L − 1/U + ¼(r − sr_j²/r)(1/U² − 1/L²) + ½ ln(L/U)/r],
//!   U = r + sr_j, L = max(or_i, |r − sr_j|);
//! - ψ_i = I_i or_i, B_i = 1 / (1/or_i − tanh(αψ_i + γψ_i³)/(or_i + offset));
//! - E = Σ_i [−½ k_s q_i²/B_i + S (ρ_i + p)² (ρ_i/B_i)⁶] − Σ_{i<j} k_s q_i q_j (1/f_ij − c),
//!   k_s = k (1/ε_solute − 1/ε_solvent), ρ_i = or_i + offset,
//!   f_ij = √(r² + B_iB_j exp(−r²/(4B_iB_j))), c = 1/r_c with a cutoff (else 0).
//!
//! With a cutoff, pairs at r ≥ r_c contribute neither to I nor to the pair energy.

use super::geom::{add_pair, dot, pos, sub};

/// Parameters of one OBC GB force.
#[derive(Clone, Debug)]
pub(crate) struct GbObc {
    pub charge: Vec<f64>,
    pub offset_radius: Vec<f64>,
    pub scaled_radius: Vec<f64>,
    /// tanh coefficients α (ψ) and γ (ψ³).
    pub alpha: f64,
    pub gamma: f64,
    /// Offset in the Born-radius formula.
    pub offset_b: f64,
    /// k (1/ε_solute − 1/ε_solvent) of the self term (which carries the ½ itself).
    pub k_self: f64,
    /// k (1/ε_solute − 1/ε_solvent) of the pair term.
    pub k_pair: f64,
    /// ACE prefactor S, probe radius p and the offset in ρ.
    pub ace_s: f64,
    pub ace_probe: f64,
    pub offset_ace: f64,
    /// Non-periodic cutoff and the pair-energy shift c.
    pub cutoff: Option<f64>,
    pub pair_shift: f64,
}

/// h(r; or1, sr2) and dh/dr.
#[inline]
fn born_integral(r: f64, or1: f64, sr2: f64) -> (f64, f64) {
    if r + sr2 - or1 < 0.0 {
        return (0.0, 0.0);
    }
    let u = r + sr2;
    let dabs = (r - sr2).abs();
    let (l, dl) = if or1 >= dabs {
        (or1, 0.0)
    } else {
        (dabs, (r - sr2).signum())
    };
    let a = r - sr2 * sr2 / r;
    let b = 1.0 / (u * u) - 1.0 / (l * l);
    let log = (l / u).ln();
    let h = 0.5 * (1.0 / l - 1.0 / u + 0.25 * a * b + 0.5 * log / r);
    let da = 1.0 + sr2 * sr2 / (r * r);
    let db = -2.0 / (u * u * u) + 2.0 * dl / (l * l * l);
    let dlog = dl / l - 1.0 / u;
    let dh = 0.5
        * (-dl / (l * l)
            + 1.0 / (u * u)
            + 0.25 * (da * b + a * db)
            + 0.5 * (dlog / r - log / (r * r)));
    (h, dh)
}

impl GbObc {
    /// Number of particles.
    fn n(&self) -> usize {
        self.charge.len()
    }

    /// Whether the pair at distance r interacts.
    #[inline]
    fn within(&self, r: f64) -> bool {
        self.cutoff.is_none_or(|c| r < c)
    }

    /// Energy (kJ/mol), adding ∇ into `grad`.
    pub fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let n = self.n();
        let (or, sr, q) = (&self.offset_radius, &self.scaled_radius, &self.charge);
        // Born radii.
        let mut integral = vec![0.0; n];
        for i in 0..n {
            for j in i + 1..n {
                let d = sub(pos(x, i), pos(x, j));
                let r = dot(d, d).sqrt();
                if !self.within(r) {
                    continue;
                }
                integral[i] += born_integral(r, or[i], sr[j]).0;
                integral[j] += born_integral(r, or[j], sr[i]).0;
            }
        }
        let mut born = vec![0.0; n];
        let mut dborn_di = vec![0.0; n];
        for i in 0..n {
            let psi = integral[i] * or[i];
            let rho = or[i] + self.offset_b;
            let t = (self.alpha * psi + self.gamma * psi.powi(3)).tanh();
            let b = 1.0 / (1.0 / or[i] - t / rho);
            born[i] = b;
            dborn_di[i] =
                b * b * (1.0 - t * t) * (self.alpha + 3.0 * self.gamma * psi * psi) * or[i] / rho;
        }
        // Single-particle terms and their dE/dB.
        let mut e = 0.0;
        let mut de_db = vec![0.0; n];
        for i in 0..n {
            let b = born[i];
            let rho = or[i] + self.offset_ace;
            let ace = self.ace_s * (rho + self.ace_probe).powi(2) * (rho / b).powi(6);
            e += -0.5 * self.k_self * q[i] * q[i] / b + ace;
            de_db[i] += 0.5 * self.k_self * q[i] * q[i] / (b * b) - 6.0 * ace / b;
        }
        // Pair terms: explicit r dependence now, B dependence into de_db.
        for i in 0..n {
            for j in i + 1..n {
                let d = sub(pos(x, i), pos(x, j));
                let r2 = dot(d, d);
                let r = r2.sqrt();
                if !self.within(r) {
                    continue;
                }
                let bb = born[i] * born[j];
                let ex = (-r2 / (4.0 * bb)).exp();
                let f = (r2 + bb * ex).sqrt();
                let kqq = self.k_pair * q[i] * q[j];
                e += -kqq * (1.0 / f - self.pair_shift);
                let de_df = kqq / (f * f);
                let df_dbb = ex * (1.0 + r2 / (4.0 * bb)) / (2.0 * f);
                de_db[i] += de_df * df_dbb * born[j];
                de_db[j] += de_df * df_dbb * born[i];
                let df_dr = r * (1.0 - 0.25 * ex) / f;
                add_pair(grad, i, j, d, r, de_df * df_dr);
            }
        }
        // Chain rule through the Born radii: dE/dI_i = dE/dB_i · dB_i/dI_i.
        let de_di: Vec<f64> = (0..n).map(|i| de_db[i] * dborn_di[i]).collect();
        for i in 0..n {
            for j in i + 1..n {
                let d = sub(pos(x, i), pos(x, j));
                let r = dot(d, d).sqrt();
                if !self.within(r) {
                    continue;
                }
                let dhi = born_integral(r, or[i], sr[j]).1;
                let dhj = born_integral(r, or[j], sr[i]).1;
                add_pair(grad, i, j, d, r, de_di[i] * dhi + de_di[j] * dhj);
            }
        }
        e
    }
}
