//! Adam optimiser over a `VarStore` with a saveable state (for exact resume from checkpoints).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

/// The learning rate of step (or epoch) k of an exponential decay with the given half-life,
/// η_k = η · 2^(−k / half-life); the constant η when there is no half-life.
pub fn half_life_decay(learning_rate: f64, half_life: Option<f64>, k: usize) -> f64 {
    match half_life {
        Some(h) => learning_rate * (-(k as f64) / h).exp2(),
        None => learning_rate,
    }
}

/// Settings of [`Adam`]; defaults are PyTorch's (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with the
/// Adjoint Sampling learning rate 1e-4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate η > 0.
    pub learning_rate: f64,
    /// First-moment decay β₁ ∈ [0, 1).
    pub beta1: f64,
    /// Second-moment decay β₂ ∈ [0, 1).
    pub beta2: f64,
    /// ε > 0 added to √v̂.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::Config {
                key: key.to_string(),
                why: why.to_string(),
            })
        };
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be positive and finite");
        }
        for (key, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(key, "must lie in [0, 1)");
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", "must be positive and finite");
        }
        Ok(())
    }
}

/// Adam (Kingma & Ba), exactly PyTorch's update without weight decay: at step k,
///
/// m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,
/// θ ← θ − η (m / (1 − β₁ᵏ)) / (√(v / (1 − β₂ᵏ)) + ε).
///
/// Moments live beside each trainable variable of the store (same shape, kind, device); the
/// state (step count and moments by parameter name) saves to and loads from safetensors.
#[derive(Debug)]
pub struct Adam {
    /// (name, variable, m, v), sorted by name.
    slots: Vec<(String, Tensor, Tensor, Tensor)>,
    step: i64,
    config: AdamConfig,
}

impl Adam {
    /// An optimiser of every trainable variable of `vs`.
    pub fn new(vs: &VarStore, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, p)| {
                let (m, v) = (p.zeros_like(), p.zeros_like());
                (name, p, m, v)
            })
            .collect();
        Ok(Self {
            slots,
            step: 0,
            config,
        })
    }

    /// Sets the learning rate η of the next steps (a schedule); it must be positive and finite.
    pub fn set_learning_rate(&mut self, learning_rate: f64) -> Result<()> {
        let config = AdamConfig {
            learning_rate,
            ..self.config.clone()
        };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// Clears the gradients of all optimised variables.
    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.slots {
            p.zero_grad();
        }
    }

    /// One Adam update from the current gradients (variables without a gradient are skipped,
    /// as in PyTorch).
    pub fn step(&mut self) {
        self.step += 1;
        let c = &self.config;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.slots {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
                let _ = v
                    .g_mul_scalar_(c.beta2)
                    .g_add_(&(g.square() * (1.0 - c.beta2)));
                let denom = (&*v / bc2).sqrt() + c.eps;
                let _ = p.g_sub_(&(&*m / &denom * (c.learning_rate / bc1)));
            }
        });
    }

    /// Rescales the gradients so that their joint L2 norm is at most `max_norm` (PyTorch's
    /// `clip_grad_norm_`: g ← g · min(1, max_norm / (‖g‖ + 1e-6))); returns ‖g‖ before
    /// clipping. Variables without a gradient are ignored.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        self.clip_selected(max_norm, |_| true)
    }

    /// The same clipping applied to each group separately: group k holds the variables whose
    /// names start with `prefixes[k]` followed by `.` (a sub-path of the store), and its
    /// gradient is rescaled to norm ≤ `max_norm` whatever the other groups' norms are. Returns
    /// each group's norm before clipping. Used where one loss can swamp a joint norm (PITA's
    /// energy matching against the score network).
    pub fn clip_grad_norm_per_group(&mut self, max_norm: f64, prefixes: &[&str]) -> Vec<f64> {
        prefixes
            .iter()
            .map(|prefix| {
                let head = format!("{prefix}.");
                self.clip_selected(max_norm, |name| name.starts_with(&head))
            })
            .collect()
    }

    fn clip_selected(&mut self, max_norm: f64, select: impl Fn(&str) -> bool) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .slots
                .iter()
                .filter(|(name, _, _, _)| select(name))
                .map(|(_, p, _, _)| p.grad())
                .filter(|g| g.defined())
                .collect();
            if grads.is_empty() {
                return 0.0;
            }
            // One device-to-host read per call, not one per parameter.
            let squares: Vec<Tensor> = grads
                .iter()
                .map(|g| g.square().sum(tch::Kind::Double))
                .collect();
            let total = Tensor::stack(&squares, 0)
                .sum(tch::Kind::Double)
                .sqrt()
                .double_value(&[]);
            let coef = max_norm / (total + 1e-6);
            if coef < 1.0 {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coef);
                }
            }
            total
        })
    }

    /// zero_grad, backward of `loss`, step.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
        self.step();
    }

    /// Writes the state (`step`, `exp_avg.<name>`, `exp_avg_sq.<name>`) as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = vec![("step".into(), Tensor::from(self.step))];
        for (name, _, m, v) in &self.slots {
            named.push((format!("exp_avg.{name}"), m.shallow_clone()));
            named.push((format!("exp_avg_sq.{name}"), v.shallow_clone()));
        }
        Tensor::write_safetensors(&named, path).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
    }

    /// Restores a state written by [`Adam::save`]; fails, naming the key, on a missing,
    /// unexpected or mis-shaped entry.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let fail = |why: String| Error::Format {
            path: path.to_path_buf(),
            why,
        };
        let named = Tensor::read_safetensors(path).map_err(|e| fail(e.to_string()))?;
        let mut expected: HashSet<String> = self
            .slots
            .iter()
            .flat_map(|(n, ..)| [format!("exp_avg.{n}"), format!("exp_avg_sq.{n}")])
            .collect();
        expected.insert("step".into());
        for (name, _) in &named {
            if !expected.contains(name) {
                return Err(fail(format!("unexpected key '{name}'")));
            }
        }
        let find = |key: &str| {
            named
                .iter()
                .find(|(n, _)| n == key)
                .map(|(_, t)| t)
                .ok_or_else(|| fail(format!("missing key '{key}'")))
        };
        let step = find("step")?.int64_value(&[]);
        tch::no_grad(|| -> Result<()> {
            for (name, p, m, v) in &mut self.slots {
                for (prefix, dst) in [("exp_avg", &mut *m), ("exp_avg_sq", &mut *v)] {
                    let key = format!("{prefix}.{name}");
                    let src = find(&key)?;
                    if src.size() != p.size() {
                        return Err(fail(format!(
                            "'{key}' has shape {:?}, the parameter {:?}",
                            src.size(),
                            p.size()
                        )));
                    }
                    dst.copy_(&src.to_kind(p.kind()).to_device(p.device()));
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::testing::torch_rng;
    use tch::nn::{Module, OptimizerConfig};
    use tch::{Device, Kind};

    fn setup(seed: i64) -> (VarStore, tch::nn::Linear, Tensor, Tensor) {
        tch::manual_seed(seed);
        let vs = VarStore::new(Device::Cpu);
        let lin = tch::nn::linear(vs.root() / "lin", 3, 2, Default::default());
        let x = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::randn([16, 2], (Kind::Float, Device::Cpu));
        (vs, lin, x, y)
    }

    fn loss(lin: &tch::nn::Linear, x: &Tensor, y: &Tensor) -> Tensor {
        (lin.forward(x) - y).square().mean(Kind::Float)
    }

    #[test]
    fn matches_libtorch_adam() {
        let _rng = torch_rng();
        let (vs_a, lin_a, x, y) = setup(1);
        let (vs_b, lin_b, _, _) = setup(1);
        let cfg = AdamConfig {
            learning_rate: 1e-2,
            ..AdamConfig::default()
        };
        let mut ours = Adam::new(&vs_a, cfg).unwrap();
        let mut theirs = tch::nn::Adam::default().build(&vs_b, 1e-2).unwrap();
        for _ in 0..20 {
            ours.backward_step(&loss(&lin_a, &x, &y));
            theirs.backward_step(&loss(&lin_b, &x, &y));
        }
        // A learning-rate change mid-run, as a schedule makes it.
        ours.set_learning_rate(3e-3).unwrap();
        theirs.set_lr(3e-3);
        assert!(ours.set_learning_rate(0.0).is_err());
        for _ in 0..5 {
            ours.backward_step(&loss(&lin_a, &x, &y));
            theirs.backward_step(&loss(&lin_b, &x, &y));
        }
        assert_eq!(ours.step_count(), 25);
        let (a, b) = (vs_a.variables(), vs_b.variables());
        for (name, t) in &a {
            let d = (t - &b[name]).abs().max().double_value(&[]);
            assert!(d < 1e-6, "{name}: {d}");
        }
    }

    #[test]
    fn saved_state_resumes_identically() {
        let _rng = torch_rng();
        let dir = std::env::temp_dir().join(format!("diffsamp-adam-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (vs, lin, x, y) = setup(2);
        let mut opt = Adam::new(&vs, AdamConfig::default()).unwrap();
        for _ in 0..3 {
            opt.backward_step(&loss(&lin, &x, &y));
        }
        opt.save(&dir.join("adam.safetensors")).unwrap();
        vs.save(dir.join("weights.safetensors")).unwrap();
        for _ in 0..4 {
            opt.backward_step(&loss(&lin, &x, &y));
        }
        let (mut vs2, lin2, _, _) = setup(99);
        vs2.load(dir.join("weights.safetensors")).unwrap();
        let mut opt2 = Adam::new(&vs2, AdamConfig::default()).unwrap();
        opt2.load(&dir.join("adam.safetensors")).unwrap();
        assert_eq!(opt2.step_count(), 3);
        for _ in 0..4 {
            opt2.backward_step(&loss(&lin2, &x, &y));
        }
        for (name, t) in vs.variables() {
            assert!(t.equal(&vs2.variables()[&name]), "{name}");
        }
        // A store with other parameters refuses the state, naming a key.
        let other = VarStore::new(Device::Cpu);
        let _ = tch::nn::linear(other.root() / "other", 3, 2, Default::default());
        let mut opt3 = Adam::new(&other, AdamConfig::default()).unwrap();
        let err = opt3.load(&dir.join("adam.safetensors")).unwrap_err();
        assert!(err.to_string().contains("'exp_avg"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gradient_clipping_scales_to_the_bound() {
        let _rng = torch_rng();
        let (vs, lin, x, y) = setup(3);
        let mut opt = Adam::new(&vs, AdamConfig::default()).unwrap();
        let norm_of = |vs: &VarStore| {
            vs.variables()
                .values()
                .map(|p| p.grad().square().sum(Kind::Double).double_value(&[]))
                .sum::<f64>()
                .sqrt()
        };
        opt.zero_grad();
        (loss(&lin, &x, &y) * 100.0).backward();
        let before = norm_of(&vs);
        let reported = opt.clip_grad_norm(0.5);
        assert!(
            (reported - before).abs() < 1e-6 * before,
            "{reported} vs {before}"
        );
        assert!(before > 0.5, "{before}");
        assert!((norm_of(&vs) - 0.5).abs() < 1e-5, "{}", norm_of(&vs));
        // Below the bound: untouched.
        let small = norm_of(&vs);
        opt.clip_grad_norm(10.0);
        assert!((norm_of(&vs) - small).abs() < 1e-9);
    }

    #[test]
    fn per_group_clipping_bounds_each_group_alone() {
        let _rng = torch_rng();
        let vs = VarStore::new(Device::Cpu);
        let a = tch::nn::linear(vs.root() / "a", 3, 2, Default::default());
        let b = tch::nn::linear(vs.root() / "b", 3, 2, Default::default());
        let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let mut opt = Adam::new(&vs, AdamConfig::default()).unwrap();
        let group_norm = |prefix: &str| {
            vs.variables()
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .map(|(_, p)| p.grad().square().sum(Kind::Double).double_value(&[]))
                .sum::<f64>()
                .sqrt()
        };
        opt.zero_grad();
        // Group a's gradient is 1000× larger than b's; a joint clip would shrink b to nothing.
        (x.apply(&a).sum(Kind::Float) * 1000.0 + x.apply(&b).sum(Kind::Float) * 0.01).backward();
        let (na, nb) = (group_norm("a."), group_norm("b."));
        assert!(na > 10.0 && nb < 0.5, "{na} {nb}");
        let reported = opt.clip_grad_norm_per_group(0.5, &["a", "b"]);
        assert!((reported[0] - na).abs() < 1e-5 * na, "{reported:?} vs {na}");
        assert!(
            (reported[1] - nb).abs() < 1e-5 * nb.max(1e-6),
            "{reported:?} vs {nb}"
        );
        assert!(
            (group_norm("a.") - 0.5).abs() < 1e-5,
            "{}",
            group_norm("a.")
        );
        assert!(
            (group_norm("b.") - nb).abs() < 1e-9,
            "b below the bound is untouched"
        );
        // A prefix that names no variable has norm 0 and touches nothing.
        assert_eq!(opt.clip_grad_norm_per_group(0.5, &["c"]), vec![0.0]);
    }

    #[test]
    fn config_validation_names_the_key() {
        let c = AdamConfig {
            beta2: 1.0,
            ..AdamConfig::default()
        };
        assert!(matches!(c.validate(), Err(Error::Config { key, .. }) if key == "beta2"));
    }
}
