//! Euler–Maruyama simulation of the controlled SDE dX = σ(t)² v(t, X) dt + σ(t) dB from X_0 = 0.

use crate::energy::Particles;
use crate::nn::Control;
use crate::sde::{torus, NoiseSource, Schedule, StateSpace};
use tch::{Device, Kind, Tensor};

/// The time grid linspace(0, 1, `nfe`): `nfe` points, `nfe − 1` steps (REFERENCE §1.5).
///
/// # Panics
/// When `nfe < 2`.
pub fn uniform_grid(nfe: usize) -> Vec<f64> {
    power_grid(nfe, 1.0)
}

/// The time grid t_k = (k / (nfe − 1))^p, k = 0..nfe − 1: [`uniform_grid`] for p = 1; p > 1
/// puts more of the steps at early times. Under the geometric schedule σ(t)² falls by a factor
/// (σ_max/σ_min)² over [0, 1], so a uniform grid spends most of its steps where the base
/// process adds almost no variance (with σ_max/σ_min = 1500, 77 % of h²(1) is added by
/// t = 0.1), and the few early steps, where the control moves the samples most, are coarse.
///
/// # Panics
/// When `nfe < 2` or p is not positive and finite.
pub fn power_grid(nfe: usize, p: f64) -> Vec<f64> {
    assert!(nfe >= 2, "a time grid needs at least 2 points, got {nfe}");
    assert!(
        p.is_finite() && p > 0.0,
        "grid power must be positive, got {p}"
    );
    let last = (nfe - 1) as f64;
    (0..nfe).map(|k| (k as f64 / last).powf(p)).collect()
}

/// Projects onto the zero-centre-of-mass subspace: x_i ← x_i − (1/n) Σ_j x_j per row.
///
/// `x` is `[batch, n·spatial]` or `[batch, n, spatial]`; the result has the shape of `x`.
pub fn remove_com(x: &Tensor, particles: Particles) -> Tensor {
    let shape = x.size();
    let v = x.view([-1, particles.n as i64, particles.spatial as i64]);
    (&v - v.mean_dim(1, true, None)).view(shape.as_slice())
}

/// Terminal state of a simulation.
#[derive(Debug)]
pub struct Rollout {
    /// X_1, `[batch, dim]`, the network's floating kind, detached.
    pub x1: Tensor,
    /// Number of control evaluations made (= steps).
    pub n_steps: usize,
    /// log dQ/dP^u of each path `[batch]` (f64), from [`EulerMaruyama::simulate_with_path_weights`].
    pub log_base_ratio: Option<Tensor>,
}

/// What a simulation keeps besides X_1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    Nothing,
    Weights,
    WeightsAndStates,
}

/// Euler–Maruyama integrator of dX = σ(t)² v(t, X) dt + σ(t) dB, X_0 = 0, on a fixed grid:
///
/// x ← x + σ(t_k)² v(t_k, x) Δt_k + σ(t_k) √Δt_k ε,  ε ~ N(0, I) of dimension `dim`,
///
/// followed by the projection of [`EulerMaruyama::space`]: COM removal on
/// [`StateSpace::ZeroCom`] (paths then stay in the zero-COM subspace), wrapping into [−π, π) on
/// [`StateSpace::Torus`] (paths on the flat torus; the Girsanov sum of the path weights is that
/// of the unwrapped chain, whose wrap this chain is), nothing on [`StateSpace::Euclidean`].
#[derive(Clone, Debug)]
pub struct EulerMaruyama {
    /// Increasing time grid from 0 to 1 (see [`uniform_grid`]); `times.len() − 1` steps.
    pub times: Vec<f64>,
    /// Dimension of one configuration.
    pub dim: usize,
    /// Where the paths live, which decides the projection after every step: COM removal on
    /// the zero-COM space (whose particle layout has dimension `dim`), wrapping on the torus.
    pub space: StateSpace,
    /// Floating kind (f32 for networks) and device of the state.
    pub options: (Kind, Device),
}

impl EulerMaruyama {
    /// An integrator on [`uniform_grid`]`(nfe)` in f32 on `device`, with COM removal for
    /// particle systems (the zero-COM space of `particles`, R^d without them).
    ///
    /// # Panics
    /// When the particle layout does not have dimension `dim`.
    pub fn uniform(nfe: usize, dim: usize, particles: Option<Particles>, device: Device) -> Self {
        Self::for_space(nfe, dim, particles.into(), device)
    }

    /// An integrator on [`uniform_grid`]`(nfe)` in f32 on `device` for `space`: COM removal on
    /// the zero-COM space, wrapping on the torus.
    ///
    /// # Panics
    /// When the particle layout of a zero-COM space does not have dimension `dim`.
    pub fn for_space(nfe: usize, dim: usize, space: StateSpace, device: Device) -> Self {
        if let Some(p) = space.particles() {
            assert_eq!(p.dim(), dim, "particle layout does not match dim");
        }
        Self {
            times: uniform_grid(nfe),
            dim,
            space,
            options: (Kind::Float, device),
        }
    }

    /// Simulates `batch` paths from X_0 = 0 to X_1 `[batch, dim]` without tracking gradients.
    pub fn simulate(
        &self,
        schedule: &dyn Schedule,
        control: &dyn Control,
        batch: usize,
        noise: &mut dyn NoiseSource,
    ) -> Rollout {
        self.run(schedule, control, batch, noise, Track::Nothing).0
    }

    /// [`EulerMaruyama::simulate`] (same noise, same X_1) that also accumulates, per path, the
    /// log density ratio of the discrete base chain Q (zero control) to the controlled one P^u:
    ///
    /// log dQ/dP^u = Σ_k [ −σ_k √Δt_k ⟨v_k, ε_k⟩ − ½ σ_k² Δt_k ‖v_k‖² ],
    ///
    /// the Girsanov sum of the Euler–Maruyama transitions N(x + σ² v Δt, σ² Δt) against
    /// N(x, σ² Δt) (exact for the discrete chain). For particle systems v and ε are projected on
    /// the zero-COM subspace, where the chain lives. With [`EulerMaruyama::base_variance`] this
    /// gives the path-space importance weights of [`crate::sde::importance`].
    pub fn simulate_with_path_weights(
        &self,
        schedule: &dyn Schedule,
        control: &dyn Control,
        batch: usize,
        noise: &mut dyn NoiseSource,
    ) -> Rollout {
        self.run(schedule, control, batch, noise, Track::Weights).0
    }

    /// [`EulerMaruyama::simulate_with_path_weights`] (same noise, same X_1) that also returns
    /// every state of every path, X_{t_k} for k = 0..=K, as `[batch, K + 1, dim]` (detached;
    /// for the log-variance loss of [`crate::methods::adjoint_sampling::log_variance`]).
    pub fn simulate_paths(
        &self,
        schedule: &dyn Schedule,
        control: &dyn Control,
        batch: usize,
        noise: &mut dyn NoiseSource,
    ) -> (Rollout, Tensor) {
        let (rollout, states) = self.run(schedule, control, batch, noise, Track::WeightsAndStates);
        (rollout, states.expect("states tracked"))
    }

    /// H = Σ_k σ(t_k)² Δt_k: the per-coordinate variance of X_1 under the discrete base chain
    /// (zero control), i.e. the discrete counterpart of h²(1).
    pub fn base_variance(&self, schedule: &dyn Schedule) -> f64 {
        self.times
            .windows(2)
            .map(|w| schedule.sigma(w[0]).powi(2) * (w[1] - w[0]))
            .sum()
    }

    fn run(
        &self,
        schedule: &dyn Schedule,
        control: &dyn Control,
        batch: usize,
        noise: &mut dyn NoiseSource,
        track: Track,
    ) -> (Rollout, Option<Tensor>) {
        assert!(self.times.len() >= 2, "a time grid needs at least 2 points");
        let options = self.options;
        let shape = [batch as i64, self.dim as i64];
        let particles = self.space.particles();
        let project = |v: &Tensor| match particles {
            Some(p) => remove_com(v, p),
            None => v.shallow_clone(),
        };
        tch::no_grad(|| {
            let mut x = Tensor::zeros(shape, options);
            let mut log_ratio = (track != Track::Nothing)
                .then(|| Tensor::zeros([batch as i64], (Kind::Double, options.1)));
            let mut states = (track == Track::WeightsAndStates).then(|| vec![x.shallow_clone()]);
            for w in self.times.windows(2) {
                let (t, dt) = (w[0], w[1] - w[0]);
                let sigma = schedule.sigma(t);
                let t_vec = Tensor::full([batch as i64], t, options);
                let v = control.control(&t_vec, &x);
                let eps = noise.standard_normal(&shape, options.0, options.1);
                if let Some(l) = log_ratio.as_mut() {
                    let (pv, pe) = (project(&v), project(&eps));
                    let cross = (&pv * &pe).sum_dim_intlist(1, false, Kind::Double);
                    let norm2 = pv.square().sum_dim_intlist(1, false, Kind::Double);
                    *l -= cross * (sigma * dt.sqrt()) + norm2 * (0.5 * sigma * sigma * dt);
                }
                x = x + v * (sigma * sigma * dt) + eps * (sigma * dt.sqrt());
                x = match self.space {
                    StateSpace::Euclidean => x,
                    StateSpace::ZeroCom(p) => remove_com(&x, p),
                    StateSpace::Torus => torus::wrap_tensor(&x),
                };
                if let Some(s) = states.as_mut() {
                    s.push(x.shallow_clone());
                }
            }
            let rollout = Rollout {
                x1: x,
                n_steps: self.times.len() - 1,
                log_base_ratio: log_ratio,
            };
            (rollout, states.map(|s| Tensor::stack(&s, 1)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{Geometric, HostNoise};

    fn zero(_t: &Tensor, x: &Tensor) -> Tensor {
        x.zeros_like()
    }

    /// Σ_k σ(t_k)² Δt_k: the exact terminal variance of zero-drift Euler–Maruyama.
    fn em_variance(s: &Geometric, times: &[f64]) -> f64 {
        times
            .windows(2)
            .map(|w| s.sigma(w[0]).powi(2) * (w[1] - w[0]))
            .sum()
    }

    #[test]
    fn grid_is_linspace() {
        let g = uniform_grid(5);
        assert_eq!(g, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn power_grid_runs_from_0_to_1_with_steps_growing_in_time() {
        assert_eq!(power_grid(5, 1.0), uniform_grid(5));
        assert_eq!(power_grid(5, 2.0), vec![0.0, 0.0625, 0.25, 0.5625, 1.0]);
        let g = power_grid(101, 2.0);
        let steps: Vec<f64> = g.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.windows(2).all(|s| s[1] > s[0]));
        // A quarter of the steps cover t ≤ 1/16, where σ_max/σ_min = 1500 adds 60 % of h²(1).
        assert_eq!(g[25], 0.0625);
    }

    #[test]
    fn zero_control_gives_the_base_terminal_variance() {
        let s = Geometric::new(1e-3, 1.5).unwrap();
        let times = uniform_grid(1000);
        let target = em_variance(&s, &times);
        // The left Riemann sum of σ² overshoots h²(1) by ≈ λΔt/2 with λ = 2 ln r.
        assert!((target / s.h2_terminal() - 1.0).abs() < 0.01);
        let (batch, dim) = (2000, 4);
        let mut noise = HostNoise::seeded(1);
        let em = EulerMaruyama::uniform(1000, dim, None, Device::Cpu);
        let out = em.simulate(&s, &zero, batch, &mut noise);
        assert_eq!(out.x1.size(), vec![batch as i64, dim as i64]);
        assert_eq!(out.n_steps, 999);
        let var = out.x1.square().mean(Kind::Double).double_value(&[]);
        // 8000 squared normals: relative s.e. √(2/8000) ≈ 0.016.
        assert!((var / target - 1.0).abs() < 0.06, "{var} vs {target}");
        let mean = out.x1.mean(Kind::Double).double_value(&[]);
        assert!(mean.abs() < 4.0 * (target / 8000.0).sqrt());
    }

    #[test]
    fn com_removal_keeps_paths_centred_with_reduced_variance() {
        let s = Geometric::new(1e-3, 2.0).unwrap();
        let p = Particles { n: 4, spatial: 3 };
        let times = uniform_grid(200);
        let target = em_variance(&s, &times) * (p.n as f64 - 1.0) / p.n as f64;
        let mut noise = HostNoise::seeded(2);
        let em = EulerMaruyama::uniform(200, p.dim(), Some(p), Device::Cpu);
        let out = em.simulate(&s, &zero, 1000, &mut noise);
        let com = out.x1.view([-1, 4, 3]).mean_dim(1, false, None);
        assert!(com.abs().max().double_value(&[]) < 1e-5);
        let var = out.x1.square().mean(Kind::Double).double_value(&[]);
        // 12 000 entries with 9 000 degrees of freedom: relative s.e. ≈ 0.015.
        assert!((var / target - 1.0).abs() < 0.06, "{var} vs {target}");
    }

    #[test]
    fn constant_control_shifts_the_mean_by_the_integrated_sigma_squared() {
        // v ≡ c: E X_1 = c Σ σ(t_k)² Δt_k.
        let s = Geometric::new(1e-3, 1.0).unwrap();
        let times = uniform_grid(100);
        let c = 0.7;
        let ctrl = move |_t: &Tensor, x: &Tensor| x.ones_like() * c;
        let mut noise = HostNoise::seeded(5);
        let em = EulerMaruyama {
            times: times.clone(),
            dim: 1,
            space: StateSpace::Euclidean,
            options: (Kind::Double, Device::Cpu),
        };
        let out = em.simulate(&s, &ctrl, 4000, &mut noise);
        let m = em_variance(&s, &times);
        let mean = out.x1.mean(Kind::Double).double_value(&[]);
        assert!((mean - c * m).abs() < 4.0 * (m / 4000.0).sqrt(), "{mean}");
    }

    #[test]
    fn the_constructors_map_the_particle_layout_to_the_state_space() {
        let p = Particles { n: 3, spatial: 2 };
        let em = EulerMaruyama::uniform(5, 6, Some(p), Device::Cpu);
        assert_eq!(em.space, StateSpace::ZeroCom(p));
        let em = EulerMaruyama::uniform(5, 6, None, Device::Cpu);
        assert_eq!(em.space, StateSpace::Euclidean);
    }

    #[test]
    #[should_panic(expected = "particle layout does not match dim")]
    fn a_particle_layout_of_another_dimension_is_refused() {
        let p = Particles { n: 3, spatial: 2 };
        EulerMaruyama::for_space(5, 4, StateSpace::ZeroCom(p), Device::Cpu);
    }

    #[test]
    fn simulation_is_reproducible_from_the_seed() {
        let s = Geometric::default();
        let run = |seed| {
            let mut noise = HostNoise::seeded(seed);
            let p = Particles { n: 3, spatial: 2 };
            EulerMaruyama::uniform(20, 6, Some(p), Device::Cpu)
                .simulate(&s, &zero, 8, &mut noise)
                .x1
        };
        assert!(run(9).equal(&run(9)));
        assert!(!run(9).equal(&run(10)));
    }

    #[test]
    fn periodic_paths_stay_on_the_torus_with_the_wrapped_base_law() {
        // Zero control: X_1 = wrap of N(0, H), so E[cos X_1] = exp(−H/2) per coordinate.
        let s = Geometric::new(0.01 * std::f64::consts::PI, std::f64::consts::PI).unwrap();
        let em = EulerMaruyama {
            options: (Kind::Double, Device::Cpu),
            ..EulerMaruyama::for_space(50, 2, StateSpace::Torus, Device::Cpu)
        };
        assert_eq!(em.space, StateSpace::Torus);
        let n = 10_000;
        let out = em.simulate(&s, &zero, n, &mut HostNoise::seeded(12));
        let x: Vec<f64> = Vec::try_from(&out.x1.flatten(0, -1)).unwrap();
        let pi = std::f64::consts::PI;
        assert!(x.iter().all(|v| (-pi..pi).contains(v)));
        let h = em.base_variance(&s);
        let c = x.iter().map(|v| v.cos()).sum::<f64>() / x.len() as f64;
        let want = (-h / 2.0).exp();
        assert!(
            (c - want).abs() < 4.0 * (0.5 / x.len() as f64).sqrt(),
            "{c} vs {want}"
        );
    }
}
