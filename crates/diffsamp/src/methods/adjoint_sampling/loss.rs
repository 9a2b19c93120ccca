//! Terminal adjoint and the Reciprocal Adjoint Matching loss (REFERENCE §1.3–1.4).

use crate::nn::Control;
use crate::sde::{remove_com, torus, NoiseSource, Schedule, StateSpace};
use tch::{Kind, Tensor};

/// Scales `g` in place so that ‖g‖ ≤ `max_norm` (unchanged when already inside the ball).
fn clip_norm(g: &mut [f64], max_norm: f64) {
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > max_norm {
        let s = max_norm / norm;
        g.iter_mut().for_each(|v| *v *= s);
    }
}

/// Terminal adjoint of Adjoint Sampling for a batch, in f64 (REFERENCE §1.3, §1.6):
///
/// a(X_1) = clip(∇E(X_1)) − ∇ log p_1^base(X_1), i.e.
/// clip(∇E) − X_1 / h²(1) in R^d, then COM removed for particle systems, and
/// clip(∇E) − ∂ log WN(X_1; h²(1)) per coordinate on the torus (wrapped normal base law).
///
/// `x1` and `grad` are row-major `[batch, dim]` (∇E from the energy); `h2_terminal` = h²(1).
/// Clipping (when `max_norm` is given) acts on ∇E only, before the base term is added: per
/// particle (each `spatial`-vector) for particle systems, per row otherwise.
/// Returns `[batch, dim]`.
pub fn terminal_adjoint(
    x1: &[f64],
    grad: &[f64],
    dim: usize,
    h2_terminal: f64,
    space: impl Into<StateSpace>,
    max_norm: Option<f64>,
) -> Vec<f64> {
    let space = space.into();
    let particles = space.particles();
    assert_eq!(x1.len(), grad.len(), "x1 and grad differ in length");
    assert!(
        dim > 0 && x1.len().is_multiple_of(dim),
        "x1 is not [batch, dim]"
    );
    if let Some(p) = particles {
        assert_eq!(p.dim(), dim, "particle layout does not match dim");
    }
    let mut a = grad.to_vec();
    if let Some(m) = max_norm {
        let group = particles.map_or(dim, |p| p.spatial);
        a.chunks_exact_mut(group).for_each(|g| clip_norm(g, m));
    }
    if space == StateSpace::Torus {
        a.iter_mut()
            .zip(x1)
            .for_each(|(ai, xi)| *ai -= torus::wrapped_normal_score(*xi, h2_terminal));
        return a;
    }
    let inv_h2 = 1.0 / h2_terminal;
    a.iter_mut().zip(x1).for_each(|(ai, xi)| *ai -= xi * inv_h2);
    if let Some(p) = particles {
        p.remove_com_batch(&mut a);
    }
    a
}

/// A draw X_t from the base bridge given X_1 (REFERENCE §1.2).
#[derive(Debug)]
pub struct BridgeSample {
    /// Times t ~ U[0, 1], `[batch]` (kind of X_1).
    pub t: Tensor,
    /// X_t = (h²(t)/h²(1)) X_1 + √(h²(t) α²(t)/h²(1)) ε, `[batch, dim]`; ε is drawn in full
    /// dimension and its COM removed for particle systems.
    pub x_t: Tensor,
}

/// Draws t = u^`time_power` with u ~ U[0, 1] (1: t uniform) and X_t | X_1 from the base
/// bridge of `schedule` for every row of `x1` `[batch, dim]`.
///
/// On the torus the base process is the wrapped one: each coordinate of X_1 is first lifted to
/// X_1 + 2πk with k ∝ N(X_1 + 2πk; 0, h²(1)) (which lift the unwrapped path ended at), the
/// Euclidean bridge runs to the lift, and X_t is wrapped.
pub fn sample_bridge(
    schedule: &dyn Schedule,
    x1: &Tensor,
    space: impl Into<StateSpace>,
    time_power: f64,
    noise: &mut dyn NoiseSource,
) -> BridgeSample {
    let space = space.into();
    let particles = space.particles();
    let size = x1.size();
    let (batch, kind, device) = (size[0], x1.kind(), x1.device());
    let mut ts = noise.uniform(batch as usize);
    if time_power != 1.0 {
        ts.iter_mut().for_each(|t| *t = t.powf(time_power));
    }
    let (mut coef, mut std) = (Vec::with_capacity(ts.len()), Vec::with_capacity(ts.len()));
    for &t in &ts {
        let b = schedule.bridge(t);
        coef.push(b.mean_coef);
        std.push(b.var.sqrt());
    }
    let col = |v: &[f64]| {
        Tensor::from_slice(v)
            .to_kind(kind)
            .to_device(device)
            .view([-1, 1])
    };
    let mut eps = noise.standard_normal(&size, kind, device);
    if let Some(p) = particles {
        eps = remove_com(&eps, p);
    }
    let x_t = if space == StateSpace::Torus {
        let h2_1 = schedule.h2_terminal();
        let host: Vec<f64> =
            Vec::try_from(&x1.to_kind(Kind::Double).flatten(0, -1)).expect("f64 tensor to host");
        let u = noise.uniform(host.len());
        let lifted: Vec<f64> = host
            .iter()
            .zip(&u)
            .map(|(x, u)| torus::sample_lift(*x, h2_1, *u))
            .collect();
        let lifted = Tensor::from_slice(&lifted)
            .to_kind(kind)
            .to_device(device)
            .view(size.as_slice());
        torus::wrap_tensor(&(lifted * col(&coef) + eps * col(&std)))
    } else {
        x1 * col(&coef) + eps * col(&std)
    };
    BridgeSample {
        t: Tensor::from_slice(&ts).to_kind(kind).to_device(device),
        x_t,
    }
}

/// Reciprocal Adjoint Matching loss (REFERENCE §1.4):
///
/// L(θ) = mean over batch × dim of (v_θ(t, X_t) + a(X_1))²,
/// t = u^`time_power` with u ~ U[0, 1] (the paper: 1, t uniform), X_t ~ base bridge given X_1
/// ([`sample_bridge`]). The regression is pointwise in (t, X_t), so the law of t does not move
/// its minimiser v*(t, x) = −E[a(X_1) | X_t = x]; it only decides where a finite network and a
/// finite number of steps spend their accuracy.
///
/// `x1` and `adjoint` are `[batch, dim]` (network kind, f32); returns a scalar tensor that
/// carries gradients to the control's parameters.
pub fn ram_loss(
    control: &dyn Control,
    schedule: &dyn Schedule,
    x1: &Tensor,
    adjoint: &Tensor,
    space: impl Into<StateSpace>,
    time_power: f64,
    noise: &mut dyn NoiseSource,
) -> Tensor {
    let space = space.into();
    let bridge = tch::no_grad(|| sample_bridge(schedule, x1, space, time_power, noise));
    let v = control.control(&bridge.t, &bridge.x_t);
    (v + adjoint).square().mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Particles;
    use crate::nn::layers::testing::torch_rng;
    use crate::sde::{Geometric, HostNoise};
    use tch::Device;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
    }

    #[test]
    fn adjoint_matches_hand_computation_with_per_particle_clipping() {
        let p = Particles { n: 2, spatial: 2 };
        let x1 = [1.0, 0.0, -1.0, 0.0];
        let grad = [3.0, 4.0, 0.1, 0.2];
        // Particle 0: ∇E (3, 4) has norm 5 → (0.6, 0.8); particle 1 untouched.
        // a = clip(∇E) − x1/2 = (0.1, 0.8, 0.6, 0.2); COM (0.35, 0.5) removed.
        let a = terminal_adjoint(&x1, &grad, 4, 2.0, Some(p), Some(1.0));
        assert!(close(&a, &[-0.25, 0.3, 0.25, -0.3], 1e-12), "{a:?}");
        // Without clipping: (2.5, 4, 0.6, 0.2) − COM (1.55, 2.1).
        let a = terminal_adjoint(&x1, &grad, 4, 2.0, Some(p), None);
        assert!(close(&a, &[0.95, 1.9, -0.95, -1.9], 1e-12), "{a:?}");
    }

    #[test]
    fn clipping_acts_on_the_energy_gradient_only() {
        // The base term −x/h² is never clipped: huge x with zero gradient passes through.
        let a = terminal_adjoint(&[1000.0, 0.0], &[0.0, 0.0], 2, 1.0, None, Some(1.0));
        assert!(close(&a, &[-1000.0, 0.0], 1e-12));
        // Vector targets: whole-row norm, per row of a batch.
        let a = terminal_adjoint(&[0.0; 4], &[30.0, 40.0, 0.3, 0.4], 2, 1.0, None, Some(10.0));
        assert!(close(&a, &[6.0, 8.0, 0.3, 0.4], 1e-12), "{a:?}");
        // Particle clipping at the paper's 100: a per-particle force of norm 500 → 100.
        let p = Particles { n: 2, spatial: 1 };
        let a = terminal_adjoint(&[0.0, 0.0], &[500.0, -500.0], 2, 1.0, Some(p), Some(100.0));
        assert!(close(&a, &[100.0, -100.0], 1e-12));
    }

    #[test]
    fn torus_adjoint_is_periodic_and_uses_the_wrapped_normal_score() {
        let tau = std::f64::consts::TAU;
        let (x, g) = ([3.0, -0.5], [0.25, -2.0]);
        let a = terminal_adjoint(&x, &g, 2, 0.2, StateSpace::Torus, None);
        // h² = 0.2: the wrapped normal is the plain one away from ±π, but at x = 3 the lift
        // 3 − 2π (distance 3.28 from 0 against 3) carries weight e^{−(3.28² − 3²)/0.4} ≈ 0.012,
        // which moves the score from −15 to ≈ −14.64.
        let s0 = torus::wrapped_normal_score(3.0, 0.2);
        assert!(
            (s0 + 3.0 / 0.2).abs() > 0.2,
            "the lift matters at x = 3: {s0}"
        );
        assert!(close(&a, &[0.25 - s0, -2.0 - 0.5 / 0.2], 1e-9), "{a:?}");
        let shifted = terminal_adjoint(
            &[3.0 - tau, -0.5 + tau],
            &g,
            2,
            0.2,
            StateSpace::Torus,
            None,
        );
        assert!(close(&a, &shifted, 1e-9), "{a:?} vs {shifted:?}");
        // Clipping acts on ∇E per row, as for vector targets.
        let c = terminal_adjoint(
            &[0.0, 0.0],
            &[30.0, 40.0],
            2,
            1.0,
            StateSpace::Torus,
            Some(5.0),
        );
        assert!(close(&c, &[3.0, 4.0], 1e-12), "{c:?}");
    }

    #[test]
    fn torus_bridge_marginals_are_the_wrapped_base_laws() {
        // X_1 ~ WN(0, h²(1)) (the wrapped base process at t = 1); the torus bridge must give
        // X_t ~ WN(0, h²(t)), whose circular mean is E[cos X_t] = exp(−h²(t)/2).
        let _rng = torch_rng();
        tch::manual_seed(11);
        let s = Geometric::new(0.01 * std::f64::consts::PI, std::f64::consts::PI).unwrap();
        let n = 20_000;
        let x1 = torus::wrap_tensor(
            &(Tensor::randn([n, 1], (Kind::Double, Device::Cpu)) * s.h2_terminal().sqrt()),
        );
        let mut noise = HostNoise::seeded(8);
        let b = sample_bridge(&s, &x1, StateSpace::Torus, 1.0, &mut noise);
        let ts: Vec<f64> = Vec::try_from(&b.t).unwrap();
        let xs: Vec<f64> = Vec::try_from(&b.x_t.flatten(0, -1)).unwrap();
        assert!(xs
            .iter()
            .all(|v| (-std::f64::consts::PI..std::f64::consts::PI).contains(v)));
        for (lo, hi) in [(0.0, 0.05), (0.05, 0.15), (0.15, 0.4), (0.4, 1.0)] {
            let (mut sum, mut want, mut k) = (0.0f64, 0.0f64, 0.0f64);
            for (t, x) in ts.iter().zip(&xs) {
                if (lo..hi).contains(t) {
                    sum += x.cos();
                    want += (-s.h2(*t) / 2.0).exp();
                    k += 1.0;
                }
            }
            // cos has variance ≤ 1/2 here.
            let tol = 4.0 * (0.5 / k).sqrt();
            assert!(
                (sum / k - want / k).abs() < tol,
                "t in [{lo}, {hi}): {} vs {}",
                sum / k,
                want / k
            );
        }
    }

    #[test]
    fn loss_of_the_zero_control_is_the_mean_squared_adjoint() {
        let s = Geometric::default();
        let x1 = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0]).view([2, 2]);
        let a = Tensor::from_slice(&[1.0f32, 2.0, -3.0, 0.5]).view([2, 2]);
        let zero = |_t: &Tensor, x: &Tensor| x.zeros_like();
        let mut noise = HostNoise::seeded(0);
        let l = ram_loss(&zero, &s, &x1, &a, None, 1.0, &mut noise).double_value(&[]);
        assert!((l - (1.0 + 4.0 + 9.0 + 0.25) / 4.0).abs() < 1e-6);
        // v = −a exactly (a control that ignores t and x but knows the batch): loss 0.
        let a2 = a.shallow_clone();
        let oracle = move |_t: &Tensor, _x: &Tensor| -&a2;
        assert_eq!(
            ram_loss(&oracle, &s, &x1, &a, None, 1.0, &mut noise).double_value(&[]),
            0.0
        );
    }

    #[test]
    fn bridge_samples_are_com_free_and_have_the_bridge_moments() {
        let _rng = torch_rng();
        let s = Geometric::new(1e-3, 1.5).unwrap();
        let p = Particles { n: 4, spatial: 2 };
        let x1 = remove_com(&Tensor::randn([3000, 8], (Kind::Float, Device::Cpu)), p);
        let mut noise = HostNoise::seeded(4);
        let b = sample_bridge(&s, &x1, Some(p), 1.0, &mut noise);
        assert_eq!(b.t.size(), vec![3000]);
        // t = u² has mean 1/3 and sd √(4/45) (uniform t: 1/2).
        let skewed = sample_bridge(&s, &x1, Some(p), 2.0, &mut HostNoise::seeded(5));
        let mean_t = skewed.t.mean(Kind::Double).double_value(&[]);
        let se = (4.0f64 / 45.0).sqrt() / 3000f64.sqrt();
        assert!((mean_t - 1.0 / 3.0).abs() < 4.0 * se, "mean t {mean_t}");
        let com = b.x_t.view([-1, 4, 2]).mean_dim(1, false, None);
        assert!(com.abs().max().double_value(&[]) < 1e-5);
        // Standardised residual (X_t − c X_1)/std has variance (n − 1)/n in the COM-free space.
        let ts: Vec<f64> = Vec::try_from(&b.t.to_kind(Kind::Double)).unwrap();
        let coef: Vec<f32> = ts.iter().map(|&t| s.bridge(t).mean_coef as f32).collect();
        let std: Vec<f32> = ts
            .iter()
            .map(|&t| s.bridge(t).var.sqrt().max(1e-12) as f32)
            .collect();
        let c = Tensor::from_slice(&coef).view([-1, 1]);
        let sd = Tensor::from_slice(&std).view([-1, 1]);
        let z = (&b.x_t - &x1 * c) / sd;
        let var = z.square().mean(Kind::Double).double_value(&[]);
        assert!((var / 0.75 - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn analytic_optimal_control_of_a_gaussian_target_is_a_stationary_point_for_any_law_of_t() {
        let _rng = torch_rng();
        // Target N(0, s² I): a(x) = c x with c = 1/s² − 1/h²(1). Under the optimal process the
        // bridge is the base bridge, so v*(t, x) = −E[a(X_1) | X_t = x]
        //   = −c κ s² / (κ² s² + β) · x,  κ = h²(t)/h²(1), β = h²(t)α²(t)/h²(1).
        // Scaling v = λ v*: dL/dλ vanishes at λ = 1 and is −2 E[v*²] at λ = 0.
        let s = Geometric::new(1e-3, 1.0).unwrap();
        let s2 = 0.5f64;
        let c = 1.0 / s2 - 1.0 / s.h2_terminal();
        let (batch, dim) = (100_000i64, 2i64);
        tch::manual_seed(11);
        let x1 = Tensor::randn([batch, dim], (Kind::Float, Device::Cpu)) * s2.sqrt();
        let a = &x1 * c;
        let sched = s;
        let grad_at = |lambda: f64, time_power: f64| {
            let lam = Tensor::from_slice(&[lambda as f32]).set_requires_grad(true);
            let l2 = lam.shallow_clone();
            let ctrl = move |t: &Tensor, x: &Tensor| {
                let ts: Vec<f64> = Vec::try_from(&t.to_kind(Kind::Double)).unwrap();
                let k: Vec<f32> = ts
                    .iter()
                    .map(|&t| {
                        let b = sched.bridge(t);
                        let kappa = b.mean_coef;
                        let denom = kappa * kappa * s2 + b.var;
                        if denom > 0.0 {
                            (-c * kappa * s2 / denom) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                x * Tensor::from_slice(&k).view([-1, 1]) * &l2
            };
            let mut noise = HostNoise::seeded(12);
            let loss = ram_loss(&ctrl, &s, &x1, &a, None, time_power, &mut noise);
            loss.backward();
            lam.grad().double_value(&[0])
        };
        for time_power in [1.0, 3.0] {
            let g1 = grad_at(1.0, time_power);
            let g0 = grad_at(0.0, time_power);
            assert!(g0 < 0.0, "{g0}");
            assert!(
                g1.abs() < 0.03 * g0.abs(),
                "t = u^{time_power}: dL/dλ at 1: {g1}, at 0: {g0}"
            );
        }
    }
}
