//! An optional path-space term beside the RAM regression: the off-policy log-variance loss
//! (Richter et al. 2020, Nüsken & Richter 2021), which sees the mode weights of the sampler.
//!
//! Why: the RAM regression is local. Once the sampler's paths end in separated basins, a
//! sampler with the right shape in each basin but the wrong basin weights is (nearly) a fixed
//! point of the RAM iteration, whatever the weights: the regression target E[a(X_1) | X_t]
//! under the sampler's own X_1 only reproduces them (docs/RESULTS.md, "mode weights"). The
//! log-variance loss compares whole paths through their Radon–Nikodym derivative towards the
//! target path measure, whose normaliser is common to all paths: paths that end in an
//! over-weighted basin have a lower log-weight, and lowering the variance of the log-weights
//! moves mass between basins. Its minimiser, variance zero, is the optimal control whatever
//! process drew the (detached) paths, so the epoch's own rollout serves while θ moves.
//!
//! The loss is evaluated on whole paths (m·K control evaluations with gradients). A cheaper
//! estimator that used a few random steps per path, with the rollout's log-weights as fixed
//! coefficients, has the right gradient at the rollout's control but is unbounded below once θ
//! moves (a path with a negative coefficient gains from an ever larger ‖v‖ along it); it blew up
//! on DW-4, GMM-40 and Many-Well and was not kept.

use crate::nn::Control;
use crate::sde::{remove_com, torus, Schedule, StateSpace};
use tch::{Kind, Tensor};

/// One epoch's rollout kept whole for the log-variance loss.
#[derive(Debug)]
pub struct PathBatch {
    /// Grid times t_0 = 0 < … < t_K = 1.
    pub times: Vec<f64>,
    /// Where the paths live (increments are wrapped on the torus, controls projected on the
    /// zero-COM subspace of point clouds).
    pub space: StateSpace,
    /// States X_{t_k}, `[n, K + 1, dim]` (network kind, no gradient).
    pub states: Tensor,
    /// Terminal log-target of each path, `[n]` f64: −βE(X_1) − log p_H(X_1), with p_H the
    /// discrete base chain's terminal law (N(0, H) on the free subspace, WN(0, H) on the torus);
    /// additive constants common to all paths do not matter.
    pub log_target: Tensor,
}

/// The per-path log-weights ℓ_i(θ) = log dP*/dQ^θ (path i) + log Z of the discrete chain, for
/// the rows `rows` of `paths` (indices `[m]`, i64):
///
/// ℓ_i(θ) = log_target_i + Σ_k [−⟨ΔX_k, v_θ(t_k, X_k)⟩ + ½ σ(t_k)² Δt_k ‖v_θ(t_k, X_k)‖²],
///
/// with ΔX_k = X_{k+1} − X_k (wrapped into [−π, π) on the torus, which recovers the unwrapped
/// increment) and v projected on the zero-COM subspace for point clouds. The sum is the log
/// ratio of the Gaussian transition densities N(ΔX; 0, σ²Δt) / N(ΔX; σ² v Δt, σ²Δt), so on the
/// paths of the control v_θ itself ℓ_i is the importance log-weight of
/// [`crate::sde::importance`] up to a constant. Returns `[m]` (network kind) with gradients to
/// the control's parameters.
pub fn path_log_weights(
    control: &dyn Control,
    schedule: &dyn Schedule,
    paths: &PathBatch,
    rows: &Tensor,
) -> Tensor {
    let space = paths.space;
    let states = paths.states.index_select(0, rows);
    let size = states.size();
    let (m, points, dim) = (size[0], size[1], size[2]);
    assert_eq!(
        points as usize,
        paths.times.len(),
        "path states do not match the time grid"
    );
    let steps = points - 1;
    let (kind, device) = (states.kind(), states.device());
    let x = states.narrow(1, 0, steps);
    let mut dx = states.narrow(1, 1, steps) - &x;
    if space == StateSpace::Torus {
        dx = torus::wrap_tensor(&dx);
    }
    let (mut t, mut half_var) = (Vec::new(), Vec::new());
    for w in paths.times.windows(2) {
        t.push(w[0]);
        half_var.push(0.5 * schedule.sigma(w[0]).powi(2) * (w[1] - w[0]));
    }
    let t = Tensor::from_slice(&t)
        .to_kind(kind)
        .to_device(device)
        .repeat([m]);
    let half_var = Tensor::from_slice(&half_var)
        .to_kind(kind)
        .to_device(device)
        .view([1, steps]);
    let mut v = control.control(&t, &x.reshape([m * steps, dim]));
    if let Some(p) = space.particles() {
        v = remove_com(&v, p);
    }
    let v = v.view([m, steps, dim]);
    let cross = (&dx * &v).sum_dim_intlist(2, false, kind);
    let norm2 = v.square().sum_dim_intlist(2, false, kind);
    let path_term = (norm2 * half_var - cross).sum_dim_intlist(1, false, kind);
    path_term + paths.log_target.index_select(0, rows).to_kind(kind)
}

/// The log-variance loss of the rows `rows` of `paths` (see [`path_log_weights`]):
///
/// L(θ) = 1/(m − 1) Σ_i ρ(ℓ_i(θ) − ℓ̄(θ)),  ℓ̄ = (1/m) Σ_i ℓ_i,
///
/// with ρ(r) = r² — the sample variance of the log-weights — or, given `huber` = c, the Huber
/// function ρ(r) = r² for |r| ≤ c and 2c|r| − c² beyond, which bounds the pull of paths whose
/// log-weight lies far from the rest (a clash of atoms can cost 10⁹ kT). L = 0 exactly when all
/// log-weights agree, i.e. at the optimal control. Needs m ≥ 2.
pub fn log_variance_loss(
    control: &dyn Control,
    schedule: &dyn Schedule,
    paths: &PathBatch,
    rows: &Tensor,
    huber: Option<f64>,
) -> Tensor {
    let ell = path_log_weights(control, schedule, paths, rows);
    let m = ell.size()[0];
    assert!(m >= 2, "the log-variance loss needs at least two paths");
    let r = &ell - ell.mean(Kind::Float);
    let rho = match huber {
        None => r.square(),
        Some(c) => {
            let a = r.abs();
            r.square().where_self(&a.le(c), &(&a * (2.0 * c) - c * c))
        }
    };
    rho.sum(Kind::Float) / (m - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Particles;
    use crate::sde::{importance, EulerMaruyama, Geometric, HostNoise};
    use tch::Device;

    /// A linear control v(t, x) = c(t) x + b, not optimal for anything in particular.
    fn some_control(t: &Tensor, x: &Tensor) -> Tensor {
        let c = (t * 2.0).sin().view([-1, 1]) * 0.7 - 0.3;
        x * c + 0.25
    }

    /// On the paths of the control itself, ℓ_i − log w_i (importance weights of the same
    /// paths) is the same for every path.
    fn check_matches_importance_weights(space: StateSpace, dim: usize) {
        let schedule = Geometric::new(1e-2, 1.5).unwrap();
        let em = EulerMaruyama::for_space(40, dim, space, Device::Cpu);
        let n = 64;
        let mut noise = HostNoise::seeded(7);
        let (rollout, states) = em.simulate_paths(&schedule, &some_control, n, &mut noise);
        let x1: Vec<f64> = Vec::try_from(rollout.x1.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let ratio: Vec<f64> =
            Vec::try_from(rollout.log_base_ratio.as_ref().unwrap().shallow_clone()).unwrap();
        // A target that depends on the state, so that log_target differs between paths.
        let energies: Vec<f64> = x1
            .chunks_exact(dim)
            .map(|x| x.iter().map(|v| v.cos() + 0.1 * v * v).sum())
            .collect();
        let h = em.base_variance(&schedule);
        let zeros = vec![0.0; n];
        let log_w = importance::log_weights_in(space, &x1, dim, &energies, &ratio, h).unwrap();
        let log_target = importance::log_weights_in(space, &x1, dim, &energies, &zeros, h).unwrap();
        let paths = PathBatch {
            times: em.times.clone(),
            space,
            states,
            log_target: Tensor::from_slice(&log_target),
        };
        let rows = Tensor::arange(n as i64, (Kind::Int64, Device::Cpu));
        let ell: Vec<f64> = Vec::try_from(
            path_log_weights(&some_control, &schedule, &paths, &rows).to_kind(Kind::Double),
        )
        .unwrap();
        let diffs: Vec<f64> = ell.iter().zip(&log_w).map(|(a, b)| a - b).collect();
        let spread = diffs.iter().cloned().fold(f64::MIN, f64::max)
            - diffs.iter().cloned().fold(f64::MAX, f64::min);
        // f32 network arithmetic over 40 steps; the log-weights themselves vary by several nats.
        let range = log_w.iter().cloned().fold(f64::MIN, f64::max)
            - log_w.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            range > 1.0,
            "the test needs log-weights that differ: {range}"
        );
        assert!(spread < 2e-3, "{space:?}: ℓ − log w varies by {spread}");
    }

    #[test]
    fn on_policy_log_weights_are_the_importance_weights_in_r_d() {
        check_matches_importance_weights(StateSpace::Euclidean, 3);
    }

    #[test]
    fn on_policy_log_weights_are_the_importance_weights_for_point_clouds() {
        check_matches_importance_weights(StateSpace::ZeroCom(Particles { n: 3, spatial: 2 }), 6);
    }

    #[test]
    fn on_policy_log_weights_are_the_importance_weights_on_the_torus() {
        check_matches_importance_weights(StateSpace::Torus, 2);
    }

    #[test]
    fn the_loss_vanishes_at_the_optimal_control_and_not_elsewhere() {
        // Target p ∝ N(0, H): the discrete base chain's own terminal law, so the zero control
        // is optimal and every log-weight equals log Z.
        let schedule = Geometric::new(1e-2, 1.5).unwrap();
        let dim = 2;
        let em = EulerMaruyama::for_space(30, dim, StateSpace::Euclidean, Device::Cpu);
        let h = em.base_variance(&schedule);
        let zero = |_t: &Tensor, x: &Tensor| x.zeros_like();
        let mut noise = HostNoise::seeded(3);
        let (rollout, states) = em.simulate_paths(&schedule, &zero, 32, &mut noise);
        let x1: Vec<f64> = Vec::try_from(rollout.x1.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let energies: Vec<f64> = x1
            .chunks_exact(dim)
            .map(|x| x.iter().map(|v| v * v).sum::<f64>() / (2.0 * h))
            .collect();
        let log_target = importance::log_weights(&x1, dim, &energies, &[0.0; 32], h, dim).unwrap();
        let paths = PathBatch {
            times: em.times.clone(),
            space: StateSpace::Euclidean,
            states,
            log_target: Tensor::from_slice(&log_target),
        };
        let rows = Tensor::arange(32, (Kind::Int64, Device::Cpu));
        let at_optimum = log_variance_loss(&zero, &schedule, &paths, &rows, None);
        assert!(at_optimum.double_value(&[]).abs() < 1e-9);
        let off =
            log_variance_loss(&some_control, &schedule, &paths, &rows, None).double_value(&[]);
        assert!(off > 0.1, "a wrong control leaves variance: {off}");
        // Huber with a large c is the variance; with a small c it grows linearly.
        let h_big =
            log_variance_loss(&some_control, &schedule, &paths, &rows, Some(1e6)).double_value(&[]);
        assert!((h_big - off).abs() < 1e-6 * off.max(1.0));
        let h_small = log_variance_loss(&some_control, &schedule, &paths, &rows, Some(1e-3))
            .double_value(&[]);
        assert!(h_small < off, "Huber below the square: {h_small} vs {off}");
    }

    #[test]
    fn huber_is_the_square_inside_and_linear_outside() {
        // Two paths with log-weights ±r around their mean: ρ(r) summed over both, over m − 1 = 1.
        let paths = PathBatch {
            times: vec![0.0, 1.0],
            space: StateSpace::Euclidean,
            states: Tensor::zeros([2, 2, 1], (Kind::Float, Device::Cpu)),
            log_target: Tensor::from_slice(&[3.0f64, -3.0]),
        };
        let schedule = Geometric::new(1e-2, 1.5).unwrap();
        let zero = |_t: &Tensor, x: &Tensor| x.zeros_like();
        let rows = Tensor::from_slice(&[0i64, 1]);
        let loss = |c| log_variance_loss(&zero, &schedule, &paths, &rows, c).double_value(&[]);
        assert!((loss(None) - 18.0).abs() < 1e-5);
        assert!((loss(Some(5.0)) - 18.0).abs() < 1e-5);
        // c = 1: 2 · (2·1·3 − 1) = 10.
        assert!((loss(Some(1.0)) - 10.0).abs() < 1e-5);
    }
}
