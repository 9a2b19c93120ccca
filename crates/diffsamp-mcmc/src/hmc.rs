//! Hamiltonian Monte Carlo step (leapfrog, identity mass matrix).

use crate::kernel::{
    all_finite, fill_projected_normal, metropolis, project, ChainState, StepOutcome, Workspace,
};
use diffsamp_energy::Energy;
use rand::Rng;

/// One HMC step targeting p_β(x) ∝ exp(−β E(x)) with Hamiltonian H(x, p) = β E(x) + ‖p‖²/2:
///
/// p ~ N(0, I); L leapfrog steps of size ε' = ε·u, u ~ U[1 − jitter, 1 + jitter]:
///   p ← p − (ε'/2) β ∇E(x);  x ← x + ε' p;  p ← p − (ε'/2) β ∇E(x)
/// accept with α = min(1, exp(H(x₀, p₀) − H(x_L, p_L))).
///
/// Particle systems: the momentum and every gradient are projected onto the zero-COM
/// subspace, so the whole trajectory stays there; leapfrog restricted to the subspace is
/// still volume preserving and reversible and P p is a standard normal on it, so the usual
/// acceptance with projected quantities is exact for the subspace target.
///
/// Costs `leapfrog_steps` evaluations; a non-finite energy or gradient anywhere on the
/// trajectory stops it and rejects (counted as non-finite).
#[allow(clippy::too_many_arguments)]
pub fn hmc_step<R: Rng>(
    energy: &dyn Energy,
    beta: f64,
    step_size: f64,
    leapfrog_steps: usize,
    jitter: f64,
    state: &mut ChainState,
    ws: &mut Workspace,
    rng: &mut R,
) -> StepOutcome {
    let particles = energy.particles();
    let u: f64 = rng.random();
    let eps = step_size * (1.0 + jitter * (2.0 * u - 1.0));
    let half_kick = 0.5 * eps * beta;
    fill_projected_normal(particles, &mut ws.v, rng);
    let kinetic0 = 0.5 * ws.v.iter().map(|p| p * p).sum::<f64>();
    ws.y.copy_from_slice(&state.x);
    ws.grad_y.copy_from_slice(&state.grad);
    let mut e = state.energy;
    let mut evals = 0;
    for _ in 0..leapfrog_steps {
        for (p, g) in ws.v.iter_mut().zip(&ws.grad_y) {
            *p -= half_kick * g;
        }
        for (q, p) in ws.y.iter_mut().zip(&ws.v) {
            *q += eps * p;
        }
        project(particles, &mut ws.y);
        e = energy.energy_grad(&ws.y, &mut ws.grad_y);
        evals += 1;
        project(particles, &mut ws.grad_y);
        if !e.is_finite() || !all_finite(&ws.grad_y) {
            let _ = metropolis(f64::NAN, rng);
            return StepOutcome {
                accept_prob: 0.0,
                accepted: false,
                non_finite: true,
                evals,
            };
        }
        for (p, g) in ws.v.iter_mut().zip(&ws.grad_y) {
            *p -= half_kick * g;
        }
    }
    let kinetic1 = 0.5 * ws.v.iter().map(|p| p * p).sum::<f64>();
    let log_alpha = beta * (state.energy - e) + kinetic0 - kinetic1;
    let (accept_prob, accepted) = metropolis(log_alpha, rng);
    if accepted {
        std::mem::swap(&mut state.x, &mut ws.y);
        std::mem::swap(&mut state.grad, &mut ws.grad_y);
        state.energy = e;
    }
    StepOutcome {
        accept_prob,
        accepted,
        non_finite: false,
        evals,
    }
}
