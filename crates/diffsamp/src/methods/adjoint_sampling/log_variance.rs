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

use crate::nn::Control;
use crate::sde::{remove_com, torus, NoiseSource, Schedule, StateSpace};
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
    /// ℓ_i at the control that drew the paths (log_target + the rollout's Girsanov sum),
    /// `[n]` f64: the coefficients of [`log_variance_surrogate`].
    pub log_weight_at_rollout: Tensor,
}

impl PathBatch {
    /// Sample variance of the rows `rows` of `log_weight_at_rollout`: the log-variance loss at
    /// the rollout's control.
    pub fn rollout_variance(&self, rows: &Tensor) -> f64 {
        let l = self.log_weight_at_rollout.index_select(0, rows);
        l.var(true).double_value(&[])
    }
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

/// ρ'(r) of [`log_variance_loss`]: 2r, or 2c·sign(r) beyond the Huber threshold c.
fn huber_derivative(r: &Tensor, huber: Option<f64>) -> Tensor {
    match huber {
        None => r * 2.0,
        Some(c) => r.clamp(-c, c) * 2.0,
    }
}

/// A cheap stochastic stand-in for [`log_variance_loss`] with the same gradient in expectation
/// at the rollout's control:
///
/// L̃(θ) = 1/(m − 1) Σ_i c_i · (K/k) Σ_{j ∈ S_i} [½ σ(t_j)² Δt_j ‖v_θ(t_j, X_j)‖² − ⟨ΔX_j, v_θ(t_j, X_j)⟩],
/// c_i = ρ'(r_i) − mean_l ρ'(r_l),  r_i = ℓ_i⁰ − ℓ̄⁰,
///
/// with ℓ⁰ = `log_weight_at_rollout` (no gradient) and S_i `time_samples` = k step indices of
/// path i drawn uniformly with replacement from `noise` (None: all K steps once). Why: the
/// gradient of Σ_i ρ(ℓ_i − ℓ̄) is Σ_i ρ'(r_i)(∇ℓ_i − ∇ℓ̄) = Σ_i c_i ∇ℓ_i; only the Girsanov sum
/// of ℓ_i depends on θ, and its gradient is estimated without bias from k of its K terms. The
/// coefficients are those of the rollout's control, so within an epoch they lag θ as the
/// replay buffer does. Cost: m·k control evaluations with gradients instead of m·K.
pub fn log_variance_surrogate(
    control: &dyn Control,
    schedule: &dyn Schedule,
    paths: &PathBatch,
    rows: &Tensor,
    huber: Option<f64>,
    time_samples: Option<usize>,
    noise: &mut dyn NoiseSource,
) -> Tensor {
    let space = paths.space;
    let size = paths.states.size();
    let (points, dim) = (size[1], size[2]);
    let steps = points - 1;
    let (kind, device) = (paths.states.kind(), paths.states.device());
    let rows_host: Vec<i64> = Vec::try_from(rows.to_device(tch::Device::Cpu)).expect("row indices");
    let m = rows_host.len();
    assert!(m >= 2, "the log-variance loss needs at least two paths");
    let ell0 = paths.log_weight_at_rollout.index_select(0, rows);
    let rho1 = huber_derivative(&(&ell0 - ell0.mean(Kind::Double)), huber);
    let coef = (&rho1 - rho1.mean(Kind::Double)) / (m - 1) as f64;
    let (per_path, scale) = match time_samples {
        Some(k) => (k, steps as f64 / k as f64),
        None => (steps as usize, 1.0),
    };
    let mut flat_index = Vec::with_capacity(m * per_path);
    let mut step_index = Vec::with_capacity(m * per_path);
    let draws = time_samples.map(|_| noise.uniform(m * per_path));
    for (i, &r) in rows_host.iter().enumerate() {
        for j in 0..per_path {
            let k = match &draws {
                Some(u) => ((u[i * per_path + j] * steps as f64) as i64).min(steps - 1),
                None => j as i64,
            };
            flat_index.push(r * points + k);
            step_index.push(k as usize);
        }
    }
    let flat = paths.states.reshape([-1, dim]);
    let at = Tensor::from_slice(&flat_index).to_device(device);
    let x = flat.index_select(0, &at);
    let mut dx = flat.index_select(0, &(&at + 1)) - &x;
    if space == StateSpace::Torus {
        dx = torus::wrap_tensor(&dx);
    }
    let w = &paths.times;
    let t: Vec<f64> = step_index.iter().map(|&k| w[k]).collect();
    let half_var: Vec<f64> = step_index
        .iter()
        .map(|&k| 0.5 * schedule.sigma(w[k]).powi(2) * (w[k + 1] - w[k]))
        .collect();
    let t = Tensor::from_slice(&t).to_kind(kind).to_device(device);
    let half_var = Tensor::from_slice(&half_var)
        .to_kind(kind)
        .to_device(device);
    let mut v = control.control(&t, &x);
    if let Some(p) = space.particles() {
        v = remove_com(&v, p);
    }
    let terms = v.square().sum_dim_intlist(1, false, kind) * half_var
        - (&dx * &v).sum_dim_intlist(1, false, kind);
    let per_row = terms
        .view([m as i64, per_path as i64])
        .sum_dim_intlist(1, false, kind)
        * scale;
    (per_row * coef.to_kind(kind)).sum(Kind::Float)
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
        let (log_w, log_target) = if space == StateSpace::Torus {
            (
                importance::log_weights_torus(&x1, dim, &energies, &ratio, h).unwrap(),
                importance::log_weights_torus(&x1, dim, &energies, &zeros, h).unwrap(),
            )
        } else {
            let free = dim - space.particles().map_or(0, |p| p.spatial);
            (
                importance::log_weights(&x1, dim, &energies, &ratio, h, free).unwrap(),
                importance::log_weights(&x1, dim, &energies, &zeros, h, free).unwrap(),
            )
        };
        let paths = PathBatch {
            times: em.times.clone(),
            space,
            states,
            log_target: Tensor::from_slice(&log_target),
            log_weight_at_rollout: Tensor::from_slice(&log_w),
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
            log_weight_at_rollout: Tensor::from_slice(&log_target),
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
            log_weight_at_rollout: Tensor::from_slice(&[3.0f64, -3.0]),
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

    /// Gradients of `loss` with respect to every parameter of `vs`, flattened.
    fn gradients(vs: &tch::nn::VarStore, loss: &Tensor) -> Vec<f64> {
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        vs.trainable_variables()
            .iter()
            .flat_map(|v| {
                let g = v.grad();
                assert!(g.defined(), "a parameter without gradient");
                Vec::<f64>::try_from(g.to_kind(Kind::Double).flatten(0, -1)).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_surrogate_has_the_gradient_of_the_loss_at_the_rollout_control() {
        use crate::nn::{Mlp, MlpConfig};
        let _rng = crate::nn::layers::testing::torch_rng();
        tch::manual_seed(4);
        let schedule = Geometric::new(1e-2, 1.5).unwrap();
        let dim = 2;
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let cfg = MlpConfig {
            hidden: 16,
            n_layers: 2,
            ..MlpConfig::default()
        };
        let net = Mlp::new(&vs.root(), dim, cfg).unwrap();
        let em = EulerMaruyama::for_space(20, dim, StateSpace::Euclidean, Device::Cpu);
        let n = 24;
        let (rollout, states) = em.simulate_paths(&schedule, &net, n, &mut HostNoise::seeded(2));
        let x1: Vec<f64> = Vec::try_from(rollout.x1.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let ratio: Vec<f64> =
            Vec::try_from(rollout.log_base_ratio.as_ref().unwrap().shallow_clone()).unwrap();
        let energies: Vec<f64> = x1
            .chunks_exact(dim)
            .map(|x| (x[0] * x[0] - 1.0).powi(2) + x[1] * x[1])
            .collect();
        let h = em.base_variance(&schedule);
        let log_target =
            importance::log_weights(&x1, dim, &energies, &vec![0.0; n], h, dim).unwrap();
        let log_w: Vec<f64> = log_target.iter().zip(&ratio).map(|(a, b)| a + b).collect();
        let paths = PathBatch {
            times: em.times.clone(),
            space: StateSpace::Euclidean,
            states,
            log_target: Tensor::from_slice(&log_target),
            log_weight_at_rollout: Tensor::from_slice(&log_w),
        };
        let rows = Tensor::from_slice(&[0i64, 3, 5, 6, 7, 10, 11, 15, 16, 20, 22, 23]);
        let mut noise = HostNoise::seeded(9);
        for huber in [None, Some(1.0)] {
            let exact = gradients(
                &vs,
                &log_variance_loss(&net, &schedule, &paths, &rows, huber),
            );
            let all_steps = gradients(
                &vs,
                &log_variance_surrogate(&net, &schedule, &paths, &rows, huber, None, &mut noise),
            );
            let norm = exact.iter().map(|g| g * g).sum::<f64>().sqrt();
            assert!(norm > 1e-3, "a gradient to compare: {norm}");
            let err = exact
                .iter()
                .zip(&all_steps)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(err < 1e-4 * norm, "{huber:?}: |Δ∇| {err} of {norm}");
            // Five of the 19 steps per path, averaged over draws: unbiased. The squared error
            // of the mean has expectation Σ_j Var(g_j)/draws; allow four times that.
            let draws = 2000;
            let mut sum = vec![0.0; exact.len()];
            let mut sum2 = vec![0.0; exact.len()];
            for _ in 0..draws {
                let g = gradients(
                    &vs,
                    &log_variance_surrogate(
                        &net,
                        &schedule,
                        &paths,
                        &rows,
                        huber,
                        Some(5),
                        &mut noise,
                    ),
                );
                for (j, v) in g.iter().enumerate() {
                    sum[j] += v;
                    sum2[j] += v * v;
                }
            }
            let d = draws as f64;
            let (mut err2, mut se2) = (0.0, 0.0);
            for j in 0..exact.len() {
                let mean = sum[j] / d;
                err2 += (mean - exact[j]).powi(2);
                se2 += (sum2[j] / d - mean * mean) / (d - 1.0);
            }
            assert!(
                err2 < 4.0 * se2,
                "{huber:?}: sampled steps |Δ∇|² {err2} against s.e.² {se2}"
            );
            // The same check sees a biased estimator: the mean scaled by 1.2.
            let biased: f64 = (0..exact.len())
                .map(|j| (1.2 * sum[j] / d - exact[j]).powi(2))
                .sum();
            assert!(biased > 4.0 * se2, "the check has power: {biased} vs {se2}");
        }
    }
}
