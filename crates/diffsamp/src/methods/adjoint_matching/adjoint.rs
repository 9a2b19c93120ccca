//! The adjoint state of Adjoint Matching, integrated backward along a simulated trajectory
//! (REFERENCE §2.2).
//!
//! Lean adjoint (one vector–Jacobian product of the frozen base drift per step):
//!   ã_K = −λ ∇r(X_K),   ã_k = ã_{k+1} + Δ_k (ã_{k+1})ᵀ ∇_x b_k(X_k)   (Δ_k = h on the
//!   uniform grid).
//! Basic adjoint (the full adjoint of the control problem, with the current control u_θ held
//! fixed):
//!   a_k = a_{k+1} + Δ_k [ (a_{k+1})ᵀ ∇_x (b_k + σ_k u_k)(X_k) + ∇_x ½‖u_k(X_k)‖² ].
//! Both have the same fixed point; the lean one drops terms whose expectation vanishes at the
//! optimum and is cheaper (no network of the fine-tuned model in the backward pass).

use crate::methods::adjoint_matching::{Memoryless, Trajectory};
use crate::nn::Control;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which adjoint the loss regresses onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdjointMethod {
    /// Lean adjoint: base drift only.
    Lean,
    /// Basic adjoint: controlled drift and running cost.
    Basic,
}

impl std::str::FromStr for AdjointMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lean" => Ok(Self::Lean),
            "basic" => Ok(Self::Basic),
            other => Err(format!("unknown adjoint '{other}' (lean or basic)")),
        }
    }
}

/// ∇_x f(x) for a scalar-valued `f`, without touching parameter gradients.
fn grad_x(x: &Tensor, f: impl FnOnce(&Tensor) -> Tensor) -> Tensor {
    let x = x.detach().set_requires_grad(true);
    let y = f(&x);
    let mut g = Tensor::run_backward(&[y], &[&x], false, false);
    g.pop().expect("one input, one gradient")
}

/// The adjoints ã_0 … ã_K `[batch, dim]` (detached) along `traj`, from the terminal value
/// `terminal` = −λ ∇r(X_K). `residual` (δ_θ) is used by [`AdjointMethod::Basic`] only.
pub fn adjoints(
    method: AdjointMethod,
    schedule: &Memoryless,
    base: &dyn Control,
    residual: &dyn Control,
    traj: &Trajectory,
    terminal: Tensor,
) -> Vec<Tensor> {
    let k_max = schedule.steps;
    let mut out: Vec<Tensor> = (0..=k_max).map(|_| Tensor::new()).collect();
    let mut a = terminal.detach();
    for k in (0..k_max).rev() {
        let xk = &traj.states[k];
        let g = match method {
            AdjointMethod::Lean => {
                grad_x(xk, |x| (schedule.base_drift(base, k, x) * &a).sum(a.kind()))
            }
            AdjointMethod::Basic => grad_x(xk, |x| {
                let sigma = schedule.sigma(k);
                let delta = residual.control(&schedule.time_tensor(k, x), x);
                let drift: Tensor = schedule.base_drift(base, k, x) + 2.0 * &delta;
                let running = delta.square().sum(a.kind()) * (2.0 / (sigma * sigma));
                (drift * &a).sum(a.kind()) + running
            }),
        };
        out[k + 1] = a.shallow_clone();
        a = (&a + g * schedule.dt(k)).detach();
    }
    out[0] = a;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{HostNoise, NoiseSource};
    use tch::{Device, Kind};

    /// For a linear base velocity v = c(t) x the lean adjoint is a product of scalars:
    /// ã_k = ã_{k+1} (1 + Δ_k (2 c(t_k) − 1/(t_k + δ))), here on the quadratic grid.
    #[test]
    fn lean_adjoint_of_a_linear_drift_is_the_product_of_step_factors() {
        let m = Memoryless::with_grid(10, 2.0).unwrap();
        let c = |t: f64| (2.0 * t - 1.0) / ((1.0 - t).powi(2) + t * t);
        let base = move |t: &Tensor, x: &Tensor| {
            let tt = t.to_kind(Kind::Double);
            let om: Tensor = 1.0 - &tt;
            let num: Tensor = 2.0 * &tt - 1.0;
            let ct = num / (om.square() + tt.square());
            x * ct.unsqueeze(1).to_kind(x.kind())
        };
        let zero = |_: &Tensor, x: &Tensor| x.zeros_like();
        let mut noise = HostNoise::seeded(1);
        let x0 = noise.standard_normal(&[4, 3], Kind::Double, Device::Cpu);
        let traj = m.rollout(&base, None, x0, &mut noise);
        let terminal = Tensor::from_slice(&[1.0f64, -2.0, 0.5]).repeat([4, 1]);
        let a = adjoints(AdjointMethod::Lean, &m, &base, &zero, &traj, terminal);
        let mut factor = 1.0;
        for k in (0..10).rev() {
            factor *= 1.0 + m.dt(k) * (2.0 * c(m.time(k)) - 1.0 / (m.time(k) + m.offset()));
            let expect = factor * -2.0;
            let got = a[k].double_value(&[2, 1]);
            assert!(
                (got - expect).abs() < 1e-9 * expect.abs().max(1.0),
                "k {k}: {got} vs {expect}"
            );
        }
        // With a zero residual the basic adjoint is the lean one.
        let b = adjoints(
            AdjointMethod::Basic,
            &m,
            &base,
            &zero,
            &traj,
            Tensor::from_slice(&[1.0f64, -2.0, 0.5]).repeat([4, 1]),
        );
        for k in 0..=10 {
            assert!(a[k].allclose(&b[k], 1e-12, 1e-12, false));
        }
    }

    /// The basic adjoint adds the control's own Jacobian and running-cost gradient: check one
    /// step against finite differences of the scalar it differentiates.
    #[test]
    fn basic_adjoint_step_matches_finite_differences() {
        let m = Memoryless::with_grid(5, 1.5).unwrap();
        let base = |_: &Tensor, x: &Tensor| x.sin();
        let residual = |t: &Tensor, x: &Tensor| x.square() * t.unsqueeze(1).to_kind(x.kind()) * 0.3;
        let mut noise = HostNoise::seeded(2);
        let x0 = noise.standard_normal(&[1, 2], Kind::Double, Device::Cpu);
        let traj = m.rollout(&base, Some(&residual), x0, &mut noise);
        let terminal = Tensor::from_slice(&[0.7f64, -0.4]).view([1, 2]);
        let a = adjoints(AdjointMethod::Basic, &m, &base, &residual, &traj, terminal);
        let k = 3;
        let f = |x: &[f64]| {
            let xt = Tensor::from_slice(x).view([1, 2]);
            let t = m.time_tensor(k, &xt);
            let delta = residual(&t, &xt);
            let drift: Tensor = m.base_drift(&base, k, &xt) + 2.0 * &delta;
            let s = m.sigma(k);
            ((drift * &a[k + 1]).sum(Kind::Double)
                + delta.square().sum(Kind::Double) * (2.0 / (s * s)))
                .double_value(&[])
        };
        let xk: Vec<f64> = Vec::try_from(traj.states[k].flatten(0, -1)).unwrap();
        for i in 0..2 {
            let eps = 1e-6;
            let (mut p, mut q) = (xk.clone(), xk.clone());
            p[i] += eps;
            q[i] -= eps;
            let fd = (f(&p) - f(&q)) / (2.0 * eps);
            let expect = a[k + 1].double_value(&[0, i as i64]) + m.dt(k) * fd;
            let got = a[k].double_value(&[0, i as i64]);
            assert!((got - expect).abs() < 1e-7, "{i}: {got} vs {expect}");
        }
    }

    /// At the optimum the regression target is unbiased: along rollouts of the exact optimal
    /// residual δ* = v_tilt − v_base (two overlapping modes tilted by a linear reward, both
    /// velocities in closed form), the lean-adjoint target y_k = −σ_k² ã_{k+1} / 2 has
    /// E⟨y_k, δ*(X_k)⟩ = E‖δ*(X_k)‖², here in three bands of t, to 4 standard errors plus the
    /// O(Δ) Euler allowance. The check can fail: a terminal adjoint of the wrong size (1.2 ×)
    /// moves every band by ≈ 20 %.
    #[test]
    fn lean_adjoint_target_is_unbiased_at_the_optimal_control() {
        use crate::methods::adjoint_matching::{IsotropicMixture, Reward};
        let base_mix =
            IsotropicMixture::new(vec![0.5, 0.5], vec![-1.5, 0.0, 1.5, 0.0], vec![0.7, 0.7], 2)
                .unwrap();
        let reward = Reward::parse("linear:0.5,0", 2).unwrap();
        let tilt = base_mix.tilt(&reward, 1.0).unwrap().unwrap();
        let base = |t: &Tensor, x: &Tensor| base_mix.velocity(t, x);
        let optimal = |t: &Tensor, x: &Tensor| tilt.velocity(t, x) - base_mix.velocity(t, x);
        let m = Memoryless::with_grid(100, 2.0).unwrap();
        let mut noise = HostNoise::seeded(4);
        let n = 4096;
        let x0 = noise.standard_normal(&[n, 2], Kind::Double, Device::Cpu);
        let traj = m.rollout(&base, Some(&optimal), x0, &mut noise);
        // −λ ∇r = −(0.5, 0) for every sample.
        let terminal = Tensor::from_slice(&[-0.5f64, 0.0]).repeat([n, 1]);
        let bands = [(0.05, 0.3), (0.3, 0.7), (0.7, 1.0)];
        let ratios = |scale: f64| -> Vec<(f64, f64)> {
            let adj = adjoints(
                AdjointMethod::Lean,
                &m,
                &base,
                &optimal,
                &traj,
                &terminal * scale,
            );
            bands
                .iter()
                .map(|&(lo, hi)| {
                    let (mut p_all, mut d_all) = (Vec::new(), 0.0);
                    for k in (0..m.steps).filter(|&k| (lo..hi).contains(&m.time(k))) {
                        let x = &traj.states[k];
                        let d = optimal(&m.time_tensor(k, x), x);
                        let y: Tensor = &adj[k + 1] * (-0.5 * m.sigma(k).powi(2));
                        let p = (&y * &d).sum_dim_intlist([1].as_slice(), false, Kind::Double);
                        p_all.extend(Vec::<f64>::try_from(&p).unwrap());
                        d_all += d.square().sum(Kind::Double).double_value(&[]);
                    }
                    // Per-sample sums over the band's steps carry the within-path correlation.
                    let steps = p_all.len() / n as usize;
                    let per_path: Vec<f64> = (0..n as usize)
                        .map(|i| (0..steps).map(|j| p_all[j * n as usize + i]).sum())
                        .collect();
                    let mean = per_path.iter().sum::<f64>() / n as f64;
                    let var =
                        per_path.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                    let denom = d_all / n as f64;
                    (mean / denom, (var / n as f64).sqrt() / denom)
                })
                .collect()
        };
        for (band, (ratio, se)) in bands.iter().zip(ratios(1.0)) {
            assert!(
                (ratio - 1.0).abs() < 4.0 * se + 0.03,
                "t in {band:?}: E<y, d*> / E|d*|^2 = {ratio} ± {se}"
            );
        }
        for (band, (ratio, se)) in bands.iter().zip(ratios(1.2)) {
            assert!(
                (ratio - 1.0).abs() > 4.0 * se + 0.03,
                "t in {band:?}: a 1.2× terminal gives {ratio} ± {se}"
            );
        }
    }
}
