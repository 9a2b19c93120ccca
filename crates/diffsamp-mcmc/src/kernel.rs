//! Chain state, scratch buffers and the kernel choice shared by MALA and HMC.

use crate::{hmc, mala};
use diffsamp_energy::{Energy, Particles};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which Metropolis kernel moves each replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelKind {
    /// Metropolis-adjusted Langevin, see [`mala::mala_step`].
    #[default]
    Mala,
    /// Hamiltonian Monte Carlo with identity mass, see [`hmc::hmc_step`].
    Hmc,
}

impl KernelKind {
    /// Target mean acceptance probability used by the step-size adaptation when the config
    /// leaves it unset: 0.574 for MALA (optimal scaling, Roberts & Rosenthal 1998) and 0.75
    /// for HMC (inside the 0.65–0.8 range that is efficient for leapfrog HMC).
    pub fn default_target_accept(self) -> f64 {
        match self {
            KernelKind::Mala => 0.574,
            KernelKind::Hmc => 0.75,
        }
    }
}

/// A kernel ready to run: the kind plus its fixed parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// One Langevin proposal per step (one energy+gradient evaluation).
    Mala,
    /// `leapfrog_steps` leapfrog steps per proposal (that many evaluations); the step size of
    /// each proposal is multiplied by a factor uniform in `[1 - jitter, 1 + jitter]`.
    Hmc { leapfrog_steps: usize, jitter: f64 },
}

/// Default relative jitter of the HMC step size (breaks periodic orbits of fixed-length
/// leapfrog trajectories; drawn independently of the state, so detailed balance holds).
pub const HMC_STEP_JITTER: f64 = 0.1;

impl Kernel {
    /// Builds a kernel from its kind; `leapfrog_steps` is ignored for MALA.
    pub fn new(kind: KernelKind, leapfrog_steps: usize) -> Self {
        match kind {
            KernelKind::Mala => Kernel::Mala,
            KernelKind::Hmc => Kernel::Hmc {
                leapfrog_steps,
                jitter: HMC_STEP_JITTER,
            },
        }
    }

    /// One Metropolis–Hastings step targeting p_β(x) ∝ exp(−β E(x)) with step size `step_size`.
    pub fn step<R: Rng>(
        &self,
        energy: &dyn Energy,
        beta: f64,
        step_size: f64,
        state: &mut ChainState,
        ws: &mut Workspace,
        rng: &mut R,
    ) -> StepOutcome {
        match *self {
            Kernel::Mala => mala::mala_step(energy, beta, step_size, state, ws, rng),
            Kernel::Hmc {
                leapfrog_steps,
                jitter,
            } => hmc::hmc_step(
                energy,
                beta,
                step_size,
                leapfrog_steps,
                jitter,
                state,
                ws,
                rng,
            ),
        }
    }
}

/// Current point of one chain with its cached energy E(x) (unscaled, β = 1) and gradient
/// ∇E(x) (projected onto the zero-COM subspace for particle systems).
#[derive(Clone, Debug, PartialEq)]
pub struct ChainState {
    /// Position, `[dim]` (`[n_particles, spatial]` row-major for particle systems).
    pub x: Vec<f64>,
    /// E(x).
    pub energy: f64,
    /// P ∇E(x), `[dim]`.
    pub grad: Vec<f64>,
}

impl ChainState {
    /// Evaluates E and ∇E at `x` (one evaluation). Particle systems: `x` and the gradient are
    /// projected onto the zero-COM subspace.
    pub fn new(energy: &dyn Energy, mut x: Vec<f64>) -> Self {
        let particles = energy.particles();
        project(particles, &mut x);
        let mut grad = vec![0.0; x.len()];
        let e = energy.energy_grad(&x, &mut grad);
        project(particles, &mut grad);
        ChainState { x, energy: e, grad }
    }

    /// True when the energy and every gradient component are finite.
    pub fn is_finite(&self) -> bool {
        self.energy.is_finite() && all_finite(&self.grad)
    }
}

/// Per-chain scratch buffers so the hot path allocates nothing.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Proposed position.
    pub(crate) y: Vec<f64>,
    /// Gradient at the proposal.
    pub(crate) grad_y: Vec<f64>,
    /// Gaussian noise (MALA) or momentum (HMC).
    pub(crate) v: Vec<f64>,
}

impl Workspace {
    /// Buffers for configurations of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Workspace {
            y: vec![0.0; dim],
            grad_y: vec![0.0; dim],
            v: vec![0.0; dim],
        }
    }
}

/// What one Metropolis–Hastings step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOutcome {
    /// min(1, MH ratio); 0 for a non-finite proposal.
    pub accept_prob: f64,
    /// Whether the proposal was accepted.
    pub accepted: bool,
    /// The proposal (or an intermediate leapfrog point) had a non-finite energy or gradient
    /// and was rejected.
    pub non_finite: bool,
    /// Energy+gradient evaluations spent.
    pub evals: u64,
}

/// Orthogonal projection P onto the zero-COM subspace (x_i ← x_i − x̄) for particle systems;
/// identity otherwise.
pub(crate) fn project(particles: Option<Particles>, v: &mut [f64]) {
    if let Some(p) = particles {
        p.remove_com(v);
    }
}

pub(crate) fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|a| a.is_finite())
}

/// Fills `v` with i.i.d. standard normals, then projects it: for particle systems P ξ is a
/// standard normal on the (dim − spatial)-dimensional zero-COM subspace.
pub(crate) fn fill_projected_normal<R: Rng>(
    particles: Option<Particles>,
    v: &mut [f64],
    rng: &mut R,
) {
    for a in v.iter_mut() {
        *a = rng.sample(rand_distr::StandardNormal);
    }
    project(particles, v);
}

/// Metropolis accept/reject from log α: returns (min(1, e^{log α}), accepted) using one
/// uniform draw. A NaN log α is a rejection.
pub(crate) fn metropolis<R: Rng>(log_alpha: f64, rng: &mut R) -> (f64, bool) {
    let u: f64 = rng.random();
    if log_alpha.is_nan() {
        return (0.0, false);
    }
    let p = if log_alpha >= 0.0 {
        1.0
    } else {
        log_alpha.exp()
    };
    (p, u < p)
}
