//! Metropolis-adjusted Langevin algorithm (MALA) step.

use crate::kernel::{
    all_finite, fill_projected_normal, metropolis, project, ChainState, StepOutcome, Workspace,
};
use diffsamp_energy::Energy;
use rand::Rng;

/// One MALA step targeting p_β(x) ∝ exp(−β E(x)) with step size ε:
///
/// proposal  y = x − (ε²/2) β ∇E(x) + ε ξ,   ξ ~ N(0, I)
/// accept with α = min(1, exp(−β E(y) + β E(x)) · q(x|y) / q(y|x)),
/// q(y|x) ∝ exp(−‖y − x + (ε²/2) β ∇E(x)‖² / (2ε²)).
///
/// Particle systems: the noise ξ and both gradients are projected onto the zero-COM subspace
/// (P ξ, P ∇E). Then y − x lies in the subspace and, restricted to it, the proposal is the
/// Gaussian N(x − (ε²/2) β P∇E(x), ε² I_sub): the usual formula evaluated with the projected
/// quantities is exactly the MH ratio for the subspace proposal (the normalising constants
/// (2πε²)^{−(d−s)/2} cancel), and the chain stays on the subspace. `y` is projected again
/// only to wipe rounding drift.
///
/// Costs one energy+gradient evaluation. A non-finite E(y) or ∇E(y) is a rejection.
pub fn mala_step<R: Rng>(
    energy: &dyn Energy,
    beta: f64,
    step_size: f64,
    state: &mut ChainState,
    ws: &mut Workspace,
    rng: &mut R,
) -> StepOutcome {
    let particles = energy.particles();
    let eps = step_size;
    let drift = 0.5 * eps * eps * beta;
    fill_projected_normal(particles, &mut ws.v, rng);
    for ((y, &x), (&g, &xi)) in
        ws.y.iter_mut()
            .zip(&state.x)
            .zip(state.grad.iter().zip(&ws.v))
    {
        *y = x - drift * g + eps * xi;
    }
    project(particles, &mut ws.y);
    let e_y = energy.energy_grad(&ws.y, &mut ws.grad_y);
    project(particles, &mut ws.grad_y);
    if !e_y.is_finite() || !all_finite(&ws.grad_y) {
        // Keep the RNG stream layout identical to a finite proposal.
        let _ = metropolis(f64::NAN, rng);
        return StepOutcome {
            accept_prob: 0.0,
            accepted: false,
            non_finite: true,
            evals: 1,
        };
    }
    // ‖y − x + (ε²/2)β∇E(x)‖² (forward) and ‖x − y + (ε²/2)β∇E(y)‖² (backward).
    let mut fwd = 0.0;
    let mut bwd = 0.0;
    for i in 0..ws.y.len() {
        let dx = ws.y[i] - state.x[i];
        let rf = dx + drift * state.grad[i];
        let rb = -dx + drift * ws.grad_y[i];
        fwd += rf * rf;
        bwd += rb * rb;
    }
    let log_alpha = -beta * (e_y - state.energy) - (bwd - fwd) / (2.0 * eps * eps);
    let (accept_prob, accepted) = metropolis(log_alpha, rng);
    if accepted {
        std::mem::swap(&mut state.x, &mut ws.y);
        std::mem::swap(&mut state.grad, &mut ws.grad_y);
        state.energy = e_y;
    }
    StepOutcome {
        accept_prob,
        accepted,
        non_finite: false,
        evals: 1,
    }
}
