//! Exponential moving average of network weights (the weights PITA generates with).

use crate::error::{Error, Result};
use tch::nn::VarStore;

/// θ̄ ← δ_k θ̄ + (1 − δ_k) θ after optimiser step k (1-based), for every trainable variable,
/// with the warm-up δ_k = min(δ, (1 + k)/(10 + k)).
///
/// Why the warm-up: the average starts at the random initial weights, and with a constant
/// δ = 0.999 they still carry weight δᵏ = 0.22 after k = 1500 steps (a short training stage);
/// an average of trained and random weights is not a trained network. With the warm-up
/// (TensorFlow's `num_updates` rule) the initial weights' share after k steps is
/// Π_{j ≤ k} δ_j = 10!·(k + 1)!/(k + 10)! (3·10⁻⁶ at k = 20), and the constant δ takes over
/// after ≈ 9000 steps at δ = 0.999.
///
/// The averaged weights live in their own [`VarStore`] (`shadow`), built by the caller with
/// the same networks as the live store, so that the averaged model is an ordinary model that
/// can be evaluated, saved and loaded by name.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    shadow: VarStore,
}

impl Ema {
    /// An average with decay δ ∈ [0, 1) over `shadow`, initialised to a copy of `live`;
    /// the two stores must hold the same variable names and shapes.
    pub fn new(mut shadow: VarStore, live: &VarStore, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::Config {
                key: "ema_decay".into(),
                why: format!("{decay} is not in [0, 1)"),
            });
        }
        shadow
            .copy(live)
            .map_err(|e| Error::Shape(format!("EMA store: {e}")))?;
        shadow.freeze();
        Ok(Self { decay, shadow })
    }

    /// Decay of update `step` (1-based): min(δ, (1 + step)/(10 + step)).
    pub fn decay_at(&self, step: u64) -> f64 {
        let k = step as f64;
        self.decay.min((1.0 + k) / (10.0 + k))
    }

    /// Update `step` (1-based count of optimiser steps so far):
    /// θ̄ ← δ_k θ̄ + (1 − δ_k) θ from the live store (same names as the shadow).
    pub fn update(&mut self, live: &VarStore, step: u64) {
        let d = self.decay_at(step);
        let live = live.variables();
        tch::no_grad(|| {
            for (name, mut avg) in self.shadow.variables() {
                if let Some(p) = live.get(&name) {
                    let _ = avg.lerp_(p, 1.0 - d);
                }
            }
        });
    }

    /// The store of averaged weights.
    pub fn store(&self) -> &VarStore {
        &self.shadow
    }

    /// Mutable access (loading a checkpoint into the averaged weights).
    pub fn store_mut(&mut self) -> &mut VarStore {
        &mut self.shadow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn store(value: f64) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[3]);
        tch::no_grad(|| {
            let _ = w.shallow_clone().fill_(value);
        });
        vs
    }

    #[test]
    fn average_follows_the_recursion() {
        let live = store(1.0);
        let mut ema = Ema::new(store(0.0), &live, 0.9).unwrap();
        let w = &ema.store().variables()["w"];
        assert!(w.equal(&Tensor::ones([3], (Kind::Float, Device::Cpu))));
        tch::no_grad(|| {
            let _ = live.variables()["w"].shallow_clone().fill_(2.0);
        });
        // Past the warm-up (step ≥ 80: (1 + k)/(10 + k) ≥ 0.9) the decay is δ.
        ema.update(&live, 100);
        ema.update(&live, 101);
        // 1 → 0.9·1 + 0.1·2 = 1.1 → 0.9·1.1 + 0.2 = 1.19.
        let v = ema.store().variables()["w"].double_value(&[0]);
        assert!((v - 1.19).abs() < 1e-6, "{v}");
    }

    /// During the warm-up the initial weights' share is Π_k δ_k = 10!·(n + 1)!/(n + 10)!.
    #[test]
    fn warm_up_forgets_the_initial_weights() {
        let live = store(1.0);
        let mut ema = Ema::new(store(0.0), &live, 0.999).unwrap();
        tch::no_grad(|| {
            let _ = live.variables()["w"].shallow_clone().fill_(0.0);
        });
        let n = 1500u64;
        let mut share = 1.0;
        for k in 1..=n {
            ema.update(&live, k);
            share *= ema.decay_at(k);
        }
        let v = ema.store().variables()["w"].double_value(&[0]);
        assert!((v - share).abs() < 1e-5, "{v} vs {share}");
        let closed: f64 = (1..=20)
            .map(|j| (1.0 + j as f64) / (10.0 + j as f64))
            .product();
        let factorials = 3_628_800.0 * (1..=21).map(f64::from).product::<f64>()
            / (1..=30).map(f64::from).product::<f64>();
        assert!((closed - factorials).abs() < 1e-12 * factorials);
        // Without the warm-up it would be 0.999^1500 ≈ 0.22.
        assert!(v < 1e-6, "{v}");
        assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-15);
        assert_eq!(ema.decay_at(20_000), 0.999);
    }

    #[test]
    fn bad_decay_is_named() {
        let err = Ema::new(store(0.0), &store(1.0), 1.0).unwrap_err();
        assert!(err.to_string().contains("ema_decay"), "{err}");
    }
}
