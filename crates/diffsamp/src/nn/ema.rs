//! Exponential moving average of network weights (the weights PITA generates with).

use crate::error::{Error, Result};
use tch::nn::VarStore;

/// θ̄ ← δ θ̄ + (1 − δ) θ after every optimiser step, for every trainable variable.
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

    /// One update θ̄ ← δ θ̄ + (1 − δ) θ from the live store (same names as the shadow).
    pub fn update(&mut self, live: &VarStore) {
        let live = live.variables();
        tch::no_grad(|| {
            for (name, mut avg) in self.shadow.variables() {
                if let Some(p) = live.get(&name) {
                    let _ = avg.lerp_(p, 1.0 - self.decay);
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
        ema.update(&live);
        ema.update(&live);
        // 1 → 0.9·1 + 0.1·2 = 1.1 → 0.9·1.1 + 0.2 = 1.19.
        let v = ema.store().variables()["w"].double_value(&[0]);
        assert!((v - 1.19).abs() < 1e-6, "{v}");
    }

    #[test]
    fn bad_decay_is_named() {
        let err = Ema::new(store(0.0), &store(1.0), 1.0).unwrap_err();
        assert!(err.to_string().contains("ema_decay"), "{err}");
    }
}
