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
    /// How the target-score loss enters ("added", the published form).
    pub target_score_form: TargetScoreForm,
}

/// How the target-score loss combines with the denoising score loss below its cutoff σ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetScoreForm {
    /// REFERENCE §3.3: ‖x + h clip(∇log p(x_0)) − D_s(x)‖², unweighted, added to the score
    /// loss (which covers every σ).
    #[default]
    Added,
    /// Target score matching: below the cutoff λ ‖x + h clip(∇log p(x_0)) − D_s(x)‖² takes the
    /// place of the score loss λ ‖D_s(x) − x_0‖². Both targets have the posterior mean
    /// D*(x) = x + h ∇log p_σ(x) = x + h E[∇log p(x_0) | x] as their conditional mean (where
    /// the clip does not bind), so the minimiser is the same. Their noise differs: for a mode
    /// of stiffness k (thermal spread s = k^(−1/2)) the λ-weighted variances are
    /// ≈ 1/(1 + kσ²) for the denoising target and ≈ k²σ⁴/(1 + kσ²) for the target-score one,
    /// so the latter is smaller only below σ ≈ s: set `target_score_max_sigma` near the
    /// stiffest mode's spread (0.035 model units for alanine dipeptide's C–H bonds at 1200 K,
    /// docs/RESULTS.md), not the published 0.19.
    Replacing,
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
            target_score_form: TargetScoreForm::Added,
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
/// - target score (σ < `target_score_max_sigma`): ‖x + h clip(∇log p(x_0)) − D_s(x)‖², or with
///   [`TargetScoreForm::Replacing`] λ times it, in place of the score loss there.
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
    let below = sigma
        .lt(config.target_score_max_sigma)
        .to_kind(kind)
        .unsqueeze(1);
    let replacing =
        config.target_score > 0.0 && config.target_score_form == TargetScoreForm::Replacing;
    let denoising = &lambda * (&d_s - &batch.x0).square();
    let score = if replacing {
        denoising * (below.neg() + 1.0)
    } else {
        denoising
    }
    .mean(kind);
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
        let weight = if replacing { &lambda * &below } else { below };
        let l = ((&x + &h * g - &d_s).square() * weight).mean(kind);
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
                "target score replacing the score loss",
                LossConfig {
                    target_score: 1.0,
                    target_score_max_sigma: 0.3,
                    target_score_form: TargetScoreForm::Replacing,
                    ..only([1.0, 0.0, 0.0, 0.0])
                },
                score,
            ),
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

    /// With `Replacing`, samples above the cutoff keep the score loss and have no target-score
    /// term; below it the score loss is gone and the target-score term is λ times the published
    /// (unweighted) one.
    #[test]
    fn the_replacing_target_score_takes_the_score_losss_place_below_the_cutoff() {
        let _rng = torch_rng();
        let (_vs, m, batch, _, z) = setup();
        let cfg = |form, cutoff| LossConfig {
            energy_score: 0.0,
            energy_match: 0.0,
            target_score: 1.0,
            target_score_max_sigma: cutoff,
            target_score_form: form,
            ..LossConfig::default()
        };
        let run = |c: &LossConfig, sigma: f64| {
            let s = Tensor::full([5], sigma, (Kind::Double, Device::Cpu));
            losses(&m, c, 0.05, &batch, &s, &z)
        };
        // Every σ above the cutoff: the same score loss as without a target score.
        let plain = run(
            &LossConfig {
                target_score: 0.0,
                ..cfg(TargetScoreForm::Added, 0.19)
            },
            0.5,
        );
        let above = run(&cfg(TargetScoreForm::Replacing, 0.19), 0.5);
        assert_eq!(above.score, plain.score);
        assert_eq!(above.target_score, 0.0);
        assert!((above.total.double_value(&[]) - plain.score).abs() < 1e-12);
        // Every σ below it: no score loss, λ = (1 + h)/h times the unweighted term.
        let (sigma, cutoff) = (0.1, 0.19);
        let added = run(&cfg(TargetScoreForm::Added, cutoff), sigma);
        let replacing = run(&cfg(TargetScoreForm::Replacing, cutoff), sigma);
        let lambda = (1.0 + sigma * sigma) / (sigma * sigma);
        assert!(added.score > 0.0 && added.target_score > 0.0);
        assert_eq!(replacing.score, 0.0);
        let want = lambda * added.target_score;
        assert!(
            (replacing.target_score - want).abs() < 1e-12 * want,
            "{} vs {want}",
            replacing.target_score
        );
        assert!((replacing.total.double_value(&[]) - want).abs() < 1e-12 * want);
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
