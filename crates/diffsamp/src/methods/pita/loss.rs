//! PITA's four training losses on one batch (REFERENCE §3.3).

use crate::error::{Error, Result};
use crate::methods::pita::model::PitaModel;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Weights and masks of the four losses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the denoising score loss (1).
    pub score: f64,
    /// Weight of the energy-score loss (1).
    pub energy_score: f64,
    /// Weight of the energy-matching loss (1).
    pub energy_match: f64,
    /// Weight of the target-score loss (0 = off; 0.01 for peptides).
    pub target_score: f64,
    /// The target-score loss applies where σ < this (0.19).
    pub target_score_max_sigma: f64,
    /// Per-sample norm bound of ∇log p(x_0) in the target-score loss (1000).
    pub target_score_clip: f64,
    /// Samples with reduced energy β U(x_0) above this are left out of energy matching (1000).
    pub energy_match_max: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            score: 1.0,
            energy_score: 1.0,
            energy_match: 1.0,
            target_score: 0.0,
            target_score_max_sigma: 0.19,
            target_score_clip: 1000.0,
            energy_match_max: 1000.0,
        }
    }
}

impl LossConfig {
    /// Weights must be finite and ≥ 0 (the score loss > 0: the sampler needs a score).
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::Config {
                key: key.into(),
                why,
            })
        };
        if !(self.score.is_finite() && self.score > 0.0) {
            return bad("score", format!("{} must be positive", self.score));
        }
        for (k, v) in [
            ("energy_score", self.energy_score),
            ("energy_match", self.energy_match),
            ("target_score", self.target_score),
            ("target_score_max_sigma", self.target_score_max_sigma),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, format!("{v} must be finite and ≥ 0"));
            }
        }
        for (k, v) in [
            ("target_score_clip", self.target_score_clip),
            ("energy_match_max", self.energy_match_max),
        ] {
            if v.is_nan() || v <= 0.0 {
                return bad(k, format!("{v} must be positive"));
            }
        }
        Ok(())
    }
}

/// One training batch: clean samples x_0 `[B, d]` (COM-free for particle systems), their
/// inverse temperatures β `[B]`, reduced energies β U(x_0) `[B]` and scores
/// ∇log p(x_0) = −β ∇U(x_0) `[B, d]`.
#[derive(Debug)]
pub struct Batch {
    pub x0: Tensor,
    pub beta: Tensor,
    pub reduced_energy: Tensor,
    pub target_score: Tensor,
}

/// The weighted total (differentiable) and each term's value.
#[derive(Debug)]
pub struct LossTerms {
    pub total: Tensor,
    pub score: f64,
    pub energy_score: f64,
    pub energy_match: f64,
    pub target_score: f64,
}

/// The losses of REFERENCE §3.3 with x = x_0 + σ z, λ = (1 + h)/h, ‖·‖² averaged over the d
/// coordinates and the batch:
///
/// - score: λ ‖D_s(x) − x_0‖²,
/// - energy-score: λ ‖D_E(x) − stopgrad(D_s(x))‖² (D_E = x − h∇_x E_θ: double backward),
/// - energy-match: (E_θ(x_0, σ_min) − β U(x_0))², where β U(x_0) ≤ `energy_match_max`,
/// - target score (σ < `target_score_max_sigma`): ‖x + h clip(∇log p(x_0)) − D_s(x)‖².
///
/// `sigma` `[B]` and `z` `[B, d]` (COM-free for particles) are drawn by the caller.
pub fn losses(
    model: &PitaModel,
    config: &LossConfig,
    sigma_min: f64,
    batch: &Batch,
    sigma: &Tensor,
    z: &Tensor,
) -> LossTerms {
    let kind = batch.x0.kind();
    let h = sigma.square().unsqueeze(1);
    let lambda = (&h + 1.0) / &h;
    let x = (&batch.x0 + sigma.unsqueeze(1) * z).detach();
    let d_s = model.denoise(&x, sigma, &batch.beta);
    let score = (&lambda * (&d_s - &batch.x0).square()).mean(kind);
    let mut total = &score * config.score;
    let mut terms = LossTerms {
        total: Tensor::zeros([], (kind, x.device())),
        score: score.double_value(&[]),
        energy_score: 0.0,
        energy_match: 0.0,
        target_score: 0.0,
    };
    if config.energy_score > 0.0 {
        let d_e = model.energy_denoise(&x, sigma, &batch.beta);
        let l = (&lambda * (d_e - d_s.detach()).square()).mean(kind);
        terms.energy_score = l.double_value(&[]);
        total += l * config.energy_score;
    }
    if config.energy_match > 0.0 {
        let s_min = sigma.full_like(sigma_min);
        let e = model.energy(&batch.x0, &s_min, &batch.beta);
        let keep = batch
            .reduced_energy
            .le(config.energy_match_max)
            .logical_and(&batch.reduced_energy.isfinite())
            .to_kind(kind);
        let target = batch.reduced_energy.nan_to_num(0.0, 0.0, 0.0);
        let l = ((e - target).square() * &keep).sum(kind) / keep.sum(kind).clamp_min(1.0);
        terms.energy_match = l.double_value(&[]);
        total += l * config.energy_match;
    }
    if config.target_score > 0.0 {
        let g = &batch.target_score;
        let norm = g.square().sum_dim_intlist(1, true, kind).sqrt();
        let g = g * (norm.reciprocal() * config.target_score_clip).clamp_max(1.0);
        let mask = sigma
            .lt(config.target_score_max_sigma)
            .to_kind(kind)
            .unsqueeze(1);
        let l = ((&x + &h * g - &d_s).square() * &mask).mean(kind);
        terms.target_score = l.double_value(&[]);
        total += l * config.target_score;
    }
    terms.total = total;
    terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::pita::model::NetworkConfig;
    use crate::nn::layers::testing::{randomise, torch_rng};
    use crate::nn::{MlpConfig, StateLayout};
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    fn setup() -> (VarStore, PitaModel, Batch, Tensor, Tensor) {
        let mut vs = VarStore::new(Device::Cpu);
        let cfg = NetworkConfig::Mlp(MlpConfig {
            hidden: 8,
            n_layers: 1,
            n_frequencies: 2,
            max_frequency: 2.0,
            length_scale: 1.0,
            periodic: false,
        });
        let m = PitaModel::new(&vs.root(), &cfg, &StateLayout::vector(2)).unwrap();
        randomise(&vs, 7, 0.5);
        vs.double();
        tch::manual_seed(3);
        let opts = (Kind::Double, Device::Cpu);
        let x0 = Tensor::randn([5, 2], opts);
        let batch = Batch {
            beta: Tensor::from_slice(&[1.0f64, 0.5, 1.0, 0.25, 1.0]),
            reduced_energy: x0.square().sum_dim_intlist(1, false, Kind::Double),
            target_score: -&x0 * 2.0,
            x0,
        };
        let sigma = Tensor::from_slice(&[0.05f64, 0.1, 0.5, 1.0, 4.0]);
        let z = Tensor::randn([5, 2], opts);
        (vs, m, batch, sigma, z)
    }

    /// ∂L/∂θ of every loss (the energy-score one through libtorch's double backward) against
    /// central finite differences in a handful of parameters.
    #[test]
    fn parameter_gradients_match_finite_differences() {
        let _rng = torch_rng();
        let (vs, m, batch, sigma, z) = setup();
        let only = |w: [f64; 4]| LossConfig {
            score: w[0].max(1e-300),
            energy_score: w[1],
            energy_match: w[2],
            target_score: w[3],
            ..LossConfig::default()
        };
        // Parameters each loss differentiates (the energy-score loss stops the gradient
        // through D_s, so score parameters are checked only where D_s is a live term).
        let energy = ["energy.layers.0.weight", "energy.time_in.weight"];
        let score = ["score.input.weight", "score.layers.0.weight"];
        for (name, cfg, params) in [
            ("energy_score", only([0.0, 1.0, 0.0, 0.0]), energy),
            ("energy_match", only([0.0, 0.0, 1.0, 0.0]), energy),
            ("target_score", only([0.0, 0.0, 0.0, 1.0]), score),
            ("score", only([1.0, 0.0, 0.0, 0.0]), score),
            (
                "all",
                LossConfig {
                    target_score: 0.5,
                    ..LossConfig::default()
                },
                energy,
            ),
        ] {
            let vars = vs.variables();
            for p in vars.values() {
                p.shallow_clone().zero_grad();
            }
            losses(&m, &cfg, 0.05, &batch, &sigma, &z).total.backward();
            let mut checked = 0;
            for pname in params {
                let p = &vars[pname];
                let g = p.grad();
                let flat = p.view([-1]);
                for idx in [0i64, 3] {
                    let eps = 1e-6;
                    let f = |delta: f64| {
                        tch::no_grad(|| {
                            let _ = flat.get(idx).g_add_scalar_(delta);
                        });
                        let v = losses(&m, &cfg, 0.05, &batch, &sigma, &z)
                            .total
                            .double_value(&[]);
                        tch::no_grad(|| {
                            let _ = flat.get(idx).g_add_scalar_(-delta);
                        });
                        v
                    };
                    let fd = (f(eps) - f(-eps)) / (2.0 * eps);
                    let an = if g.defined() {
                        g.view([-1]).double_value(&[idx])
                    } else {
                        0.0
                    };
                    assert!(
                        (fd - an).abs() < 1e-5 * fd.abs().max(1.0),
                        "{name} {pname}[{idx}]: fd {fd} vs autograd {an}"
                    );
                    checked += usize::from(fd.abs() > 1e-8);
                }
            }
            assert!(
                checked >= 2,
                "{name}: loss does not depend on the checked parameters"
            );
        }
    }

    #[test]
    fn energy_match_masks_high_energies_and_configs_are_checked() {
        let _rng = torch_rng();
        let (_vs, m, batch, sigma, z) = setup();
        let cfg = LossConfig {
            energy_match_max: 1.0,
            ..LossConfig::default()
        };
        let a = losses(&m, &cfg, 0.05, &batch, &sigma, &z).energy_match;
        // Raising an already-masked energy changes nothing.
        let e = batch.reduced_energy.copy();
        let masked: Vec<i64> = (0..5).filter(|&i| e.double_value(&[i]) > 1.0).collect();
        assert!(!masked.is_empty());
        let _ = batch.reduced_energy.get(masked[0]).fill_(1e9);
        let b = losses(&m, &cfg, 0.05, &batch, &sigma, &z).energy_match;
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        let bad = LossConfig {
            energy_score: -1.0,
            ..LossConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("energy_score"));
    }
}
