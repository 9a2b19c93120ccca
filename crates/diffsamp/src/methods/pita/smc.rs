//! Inference-time annealing: the Feynman–Kac reweighted reverse SDE with sequential Monte
//! Carlo resampling (REFERENCE §3.4).

use crate::energy::Particles;
use crate::error::{Error, Result};
use crate::methods::pita::edm::Edm;
use crate::sde::remove_com;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// A diffused density p_σ = p ∗ N(0, σ² I) at one temperature: its score and an energy
/// E(x, σ) = −log p_σ(x) + c(σ). Both must be differentiable (libtorch autograd) in x and σ;
/// when `x` requires grad, the score must stay connected to it (for its divergence).
pub trait Diffused {
    /// s(x, σ) `[B, d]` for x `[B, d]`, σ `[B]`.
    fn score(&self, x: &Tensor, sigma: &Tensor) -> Tensor;
    /// E(x, σ) `[B]`.
    fn energy(&self, x: &Tensor, sigma: &Tensor) -> Tensor;
}

/// How ∇·s is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// Exact trace of the d × d Jacobian: d vector–Jacobian products.
    Exact,
    /// Hutchinson: vᵀ (∂s/∂x) v with one Rademacher probe v per sample (unbiased, one VJP).
    Hutchinson,
}

/// When particles are resampled (during the first `resample_until` of the steps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resampling {
    /// At every step.
    Always,
    /// When the effective sample size falls below `ess_threshold` × population.
    Ess,
}

/// Which learned score drives the reverse SDE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// (s − ∇E)/2: the average of the score network and the energy network's score
    /// (REFERENCE §3.4; the Feynman–Kac weights are derived for it).
    Mixed,
    /// The score network alone, s (no weights: a check of the score model).
    Score,
    /// The energy network alone, −∇E (no weights: a check of the energy model).
    Energy,
}

impl Drift {
    /// The drift's estimate of the score from the score network's s and the energy network's
    /// ∇_x E: (s − ∇E)/2, s or −∇E. Each argument is needed only when the drift uses it.
    pub fn combine(self, score: Option<Tensor>, grad_e: Option<Tensor>) -> Result<Tensor> {
        let missing = |what: &str| Error::Shape(format!("the {self:?} drift needs {what}"));
        Ok(match self {
            Drift::Mixed => {
                (score.ok_or_else(|| missing("the score"))?
                    - grad_e.ok_or_else(|| missing("∇E"))?)
                    / 2.0
            }
            Drift::Score => score.ok_or_else(|| missing("the score"))?,
            Drift::Energy => -grad_e.ok_or_else(|| missing("∇E"))?,
        })
    }

    /// The drift's score estimate for `model` at x `[B, d]`, σ `[B]` (detached).
    pub fn evaluate(self, model: &dyn Diffused, x: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let score = (self != Drift::Energy).then(|| model.score(&x.detach(), sigma).detach());
        let grad_e = (self != Drift::Score).then(|| grad_energy(model, x, sigma));
        self.combine(score, grad_e)
    }
}

/// ∇_x E(x, σ) `[B, d]` of a model at x `[B, d]`, σ `[B]` (detached).
pub fn grad_energy(model: &dyn Diffused, x: &Tensor, sigma: &Tensor) -> Tensor {
    tch::with_grad(|| {
        let x = x.detach().set_requires_grad(true);
        let e = model.energy(&x, sigma);
        Tensor::run_backward(&[e.sum(e.kind())], &[&x], false, false)[0].detach()
    })
}

/// E(x, σ) `[B]` of a model at x `[B, d]` and one noise level σ, evaluated without gradients
/// in chunks of `chunk` rows (memory bound).
pub fn energy_at(model: &dyn Diffused, x: &Tensor, sigma: f64, chunk: usize) -> Tensor {
    tch::no_grad(|| {
        let parts: Vec<Tensor> = x
            .split(chunk.max(1) as i64, 0)
            .iter()
            .map(|xc| {
                model.energy(
                    xc,
                    &Tensor::full([xc.size()[0]], sigma, (xc.kind(), xc.device())),
                )
            })
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// Settings of the annealing SMC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmcConfig {
    /// Number of particles (5000 LJ, 50 000 peptides).
    pub population: usize,
    /// Reverse-time steps from t = 1 to 0 (1000).
    pub steps: usize,
    /// Exact divergence or Hutchinson's estimator.
    pub divergence: Divergence,
    /// Resampling rule.
    pub resampling: Resampling,
    /// ESS fraction below which `resampling = "ess"` resamples (0.5).
    pub ess_threshold: f64,
    /// Fraction of the steps with weights and resampling (0.9 LJ, 0.8 peptides); no weights
    /// after.
    pub resample_until: f64,
    /// Increments G are clamped at this quantile within the population (0.9; unset = none).
    pub clamp_quantile: Option<f64>,
    /// Particles evaluated per network call (memory bound), ≥ 1.
    pub chunk: usize,
    /// The reverse-SDE drift (default `mixed`, the published one; `score` and `energy` need
    /// `resample_until = 0`, as the weights are derived for the mixed drift).
    pub drift: Drift,
    /// End with one Tweedie step from σ_min, x ← x + σ_min² γ ŝ(x, σ_min) with ŝ the drift's
    /// score: the annealed density's posterior mean of the clean sample given the noisy one.
    /// Without it the samples carry the last noise level: on LJ-13 at T = 1, exact samples
    /// noised by σ_min = 0.05 have energy-W2 19.9 against the clean ones (docs/RESULTS.md).
    pub denoise: bool,
}

impl Default for SmcConfig {
    fn default() -> Self {
        Self {
            population: 5000,
            steps: 1000,
            divergence: Divergence::Exact,
            resampling: Resampling::Always,
            ess_threshold: 0.5,
            resample_until: 0.9,
            clamp_quantile: Some(0.9),
            chunk: 1000,
            drift: Drift::Mixed,
            denoise: false,
        }
    }
}

impl SmcConfig {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::Config {
                key: key.into(),
                why,
            })
        };
        if self.population < 2 {
            return bad(
                "population",
                format!("{} must be at least 2", self.population),
            );
        }
        if self.steps == 0 {
            return bad("steps", "must be at least 1".into());
        }
        if !(self.ess_threshold > 0.0 && self.ess_threshold <= 1.0) {
            return bad(
                "ess_threshold",
                format!("{} is not in (0, 1]", self.ess_threshold),
            );
        }
        if !(0.0..=1.0).contains(&self.resample_until) {
            return bad(
                "resample_until",
                format!("{} is not in [0, 1]", self.resample_until),
            );
        }
        if let Some(q) = self.clamp_quantile {
            if !(q > 0.0 && q <= 1.0) {
                return bad("clamp_quantile", format!("{q} is not in (0, 1]"));
            }
        }
        if self.chunk == 0 {
            return bad("chunk", "must be at least 1".into());
        }
        if self.drift != Drift::Mixed && self.resample_until > 0.0 {
            return bad(
                "drift",
                format!(
                    "{:?} drift has no Feynman–Kac weights: set resample_until = 0 (got {})",
                    self.drift, self.resample_until
                ),
            );
        }
        Ok(())
    }
}

/// Where the particles live: dimension, particle layout (COM removed after every step) and
/// device.
#[derive(Clone, Copy, Debug)]
pub struct Space {
    pub dim: usize,
    pub particles: Option<Particles>,
    pub device: Device,
}

impl Space {
    /// A plain `dim`-dimensional vector space on the CPU.
    pub fn cpu(dim: usize) -> Self {
        Self {
            dim,
            particles: None,
            device: Device::Cpu,
        }
    }
}

/// Result of one annealing run.
#[derive(Debug)]
pub struct SmcOutput {
    /// Final particles `[N, d]` (after the last resampling; weights dropped after it).
    pub samples: Tensor,
    /// ESS / N before each weighted step's resampling decision, one per weighted step.
    pub ess: Vec<f64>,
    /// Number of resampling events.
    pub resamples: usize,
}

/// Quantities of one reverse step at noise level σ for a chunk of particles; each is computed
/// only when the step needs it (the drift's networks; the weight increment's terms).
#[derive(Default)]
struct StepTerms {
    score: Option<Tensor>,
    grad_e: Option<Tensor>,
    /// The log-weight rate G `[B]` of a weighted step.
    increment: Option<Tensor>,
}

/// A weighted step's G = c_s ⟨−∇E, s⟩ + c_div ∇·s + c_t ∂E/∂σ and how ∇·s is computed.
#[derive(Clone, Copy)]
struct WeightTerms {
    divergence: Divergence,
    /// γ² g²/2.
    c_inner: f64,
    /// γ g²/2.
    c_div: f64,
    /// γ dσ/dt.
    c_sigma: f64,
}

/// What one step needs: the drift's networks, and for a weighted step the terms of G.
#[derive(Clone, Copy)]
struct Needs {
    score: bool,
    energy: bool,
    weights: Option<WeightTerms>,
}

fn step_terms(model: &dyn Diffused, x: &Tensor, sigma: f64, needs: Needs) -> StepTerms {
    let x = x.detach().set_requires_grad(true);
    let b = x.size()[0];
    let sig = Tensor::full([b], sigma, (x.kind(), x.device()));
    let mut terms = StepTerms::default();
    if let Some(w) = needs.weights {
        let sig_g = sig.copy().set_requires_grad(true);
        let e = model.energy(&x, &sig_g);
        let g = Tensor::run_backward(&[e.sum(e.kind())], &[&x, &sig_g], false, false);
        let (grad_e, de_dsigma) = (g[0].detach(), g[1].detach());
        let (s, divergence) = score_and_divergence(model, &x, &sig, w.divergence);
        let inner = (-&grad_e * &s).sum_dim_intlist(1, false, x.kind());
        terms.increment = Some(inner * w.c_inner + divergence * w.c_div + de_dsigma * w.c_sigma);
        terms.score = Some(s);
        terms.grad_e = Some(grad_e);
        return terms;
    }
    if needs.energy {
        terms.grad_e = Some(grad_energy(model, &x, &sig));
    }
    if needs.score {
        // Not under no_grad: a score may itself be an autograd derivative (exact mixtures).
        terms.score = Some(model.score(&x.detach(), &sig).detach());
    }
    terms
}

/// The score s(x, σ) `[B, d]` and its divergence ∇·s `[B]` (exact: d vector–Jacobian
/// products, one per coordinate; Hutchinson: vᵀ(∂s/∂x)v for one Rademacher v per sample).
/// Random probes come from libtorch's generator. Both results are detached.
pub fn score_and_divergence(
    model: &dyn Diffused,
    x: &Tensor,
    sigma: &Tensor,
    div: Divergence,
) -> (Tensor, Tensor) {
    let x = x.detach().set_requires_grad(true);
    let s = model.score(&x, sigma);
    let (b, d) = (s.size()[0], s.size()[1]);
    let divergence = match div {
        Divergence::Exact => {
            let mut acc = Tensor::zeros([b], (x.kind(), x.device()));
            for k in 0..d {
                let gk = Tensor::run_backward(&[s.select(1, k).sum(s.kind())], &[&x], true, false);
                acc += gk[0].select(1, k);
            }
            acc
        }
        Divergence::Hutchinson => {
            let v = Tensor::randint(2, [b, d], (x.kind(), x.device())) * 2.0 - 1.0;
            let gv = Tensor::run_backward(&[(&s * &v).sum(s.kind())], &[&x], false, false);
            (&gv[0] * &v).sum_dim_intlist(1, false, x.kind())
        }
    };
    (s.detach(), divergence.detach())
}

/// Effective sample size fraction (Σw)² / (N Σw²) of log-weights `[N]`.
pub fn ess_fraction(log_w: &Tensor) -> f64 {
    let w = (log_w - log_w.max()).exp().to_kind(Kind::Double);
    let s = w.sum(Kind::Double).double_value(&[]);
    let s2 = w.square().sum(Kind::Double).double_value(&[]);
    s * s / (s2 * log_w.size()[0] as f64)
}

/// Systematic resampling: indices `[N]` (i64) of the particles to keep, drawing one uniform
/// u ~ U[0, 1) from libtorch's generator and taking the particles whose cumulative normalised
/// weight interval contains (u + i)/N, i = 0..N.
pub fn systematic_resample(log_w: &Tensor) -> Tensor {
    let n = log_w.size()[0];
    let w = (log_w - log_w.max()).exp().to_kind(Kind::Double);
    let cdf = w.cumsum(0, Kind::Double);
    let total = cdf.double_value(&[n - 1]);
    let cdf = cdf / total;
    let u = Tensor::rand([1], (Kind::Double, log_w.device()));
    let pos = (Tensor::arange(n, (Kind::Double, log_w.device())) + u) / n as f64;
    pos.searchsorted(&cdf, false, false, "left", None::<Tensor>)
        .clamp_max(n - 1)
}

/// Anneals `model` (a diffused density at inverse temperature β) to β·γ: particles start from
/// N(0, σ_max²/γ I) (COM-free for particle systems) and follow, for t = 1 → 0 in `steps`
/// steps of dt,
///
/// x ← P[x + γ (g²/2)(s − ∇E) dt + g √dt ξ]   (`drift = mixed`; `score`: γ g² s, `energy`: −γ g² ∇E),
/// log w ← log w + G dt,  G = γ² ⟨−∇E, (g²/2) s⟩ + γ (g²/2) ∇·s + γ ∂_t E,
///
/// with ∂_t E = (∂E/∂σ) dσ/dt, G clamped at its `clamp_quantile` within the population, and
/// resampling per [`SmcConfig`] (weights reset after each resampling). Weights are
/// accumulated and resampled during the first `resample_until` of the steps only; the last of
/// those steps always resamples, so that the returned particles carry equal weights. Random
/// draws come from libtorch's generator (seed it for reproducibility).
pub fn anneal(
    model: &dyn Diffused,
    edm: &Edm,
    gamma: f64,
    space: Space,
    config: &SmcConfig,
    mut on_step: impl FnMut(usize, f64),
) -> Result<SmcOutput> {
    config.validate()?;
    edm.validate()?;
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(Error::Config {
            key: "gamma".into(),
            why: format!("{gamma} must be positive"),
        });
    }
    let Space {
        dim,
        particles,
        device,
    } = space;
    let project = |x: Tensor| match particles {
        Some(p) => remove_com(&x, p),
        None => x,
    };
    let n = config.population as i64;
    let opts = (Kind::Float, device);
    let mut x = project(Tensor::randn([n, dim as i64], opts) * (edm.sigma_max / gamma.sqrt()));
    let mut log_w = Tensor::zeros([n], (Kind::Double, device));
    let dt = 1.0 / config.steps as f64;
    let weighted_steps = (config.resample_until * config.steps as f64).round() as usize;
    let (mut ess, mut resamples) = (Vec::new(), 0);
    for k in 0..config.steps {
        let t = 1.0 - k as f64 * dt;
        let (sigma, g2) = (edm.sigma(t), edm.g2(t));
        let weighted = k < weighted_steps;
        let needs = Needs {
            score: config.drift != Drift::Energy,
            energy: config.drift != Drift::Score,
            weights: weighted.then_some(WeightTerms {
                divergence: config.divergence,
                c_inner: gamma * gamma * g2 / 2.0,
                c_div: gamma * g2 / 2.0,
                c_sigma: gamma * edm.dsigma_dt(t),
            }),
        };
        let (mut scores, mut grads, mut incs) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in x.split(config.chunk as i64, 0) {
            let terms = step_terms(model, &chunk, sigma, needs);
            incs.extend(terms.increment);
            scores.extend(terms.score);
            grads.extend(terms.grad_e);
        }
        let noise = Tensor::randn([n, dim as i64], opts);
        let cat = |parts: Vec<Tensor>| (!parts.is_empty()).then(|| Tensor::cat(&parts, 0));
        let score = config.drift.combine(cat(scores), cat(grads))?;
        x = project(&x + score * (gamma * g2 * dt) + noise * (g2 * dt).sqrt());
        if weighted {
            let mut g = Tensor::cat(&incs, 0).to_kind(Kind::Double);
            if let Some(q) = config.clamp_quantile {
                let finite = g.nan_to_num(f64::NEG_INFINITY, None, None);
                let cap = finite.quantile_scalar(q, None, false, "linear");
                g = finite.minimum(&cap);
            }
            log_w = &log_w + g * dt;
            let e = ess_fraction(&log_w);
            ess.push(e);
            on_step(k, e);
            // The last weighted step always resamples: the weights are dropped after it.
            let resample = k + 1 == weighted_steps
                || match config.resampling {
                    Resampling::Always => true,
                    Resampling::Ess => e < config.ess_threshold,
                };
            if resample {
                let idx = systematic_resample(&log_w);
                x = x.index_select(0, &idx);
                log_w = log_w.zeros_like();
                resamples += 1;
            }
        } else {
            on_step(k, 1.0);
        }
    }
    if config.denoise {
        let h = edm.sigma_min * edm.sigma_min;
        let mut parts = Vec::new();
        for chunk in x.split(config.chunk as i64, 0) {
            let sig = Tensor::full([chunk.size()[0]], edm.sigma_min, (chunk.kind(), device));
            parts.push(config.drift.evaluate(model, &chunk, &sig)?);
        }
        x = project(&x + Tensor::cat(&parts, 0) * (h * gamma));
    }
    Ok(SmcOutput {
        samples: x,
        ess,
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::testing::torch_rng;

    #[test]
    fn systematic_resampling_keeps_counts_within_one_of_n_w() {
        let _rng = torch_rng();
        tch::manual_seed(4);
        let w = [0.1f64, 0.0, 0.35, 0.05, 0.5];
        let log_w = Tensor::from_slice(&w).log();
        let n = w.len() as f64;
        for _ in 0..20 {
            let idx = systematic_resample(&log_w);
            let mut counts = [0usize; 5];
            for i in Vec::<i64>::try_from(&idx).unwrap() {
                counts[i as usize] += 1;
            }
            for (c, wi) in counts.iter().zip(w) {
                assert!((*c as f64 - n * wi).abs() < 1.0 + 1e-9, "{counts:?}");
            }
        }
    }

    #[test]
    fn ess_of_uniform_and_degenerate_weights() {
        let u = Tensor::zeros([10], (Kind::Double, Device::Cpu));
        assert!((ess_fraction(&u) - 1.0).abs() < 1e-12);
        let d = Tensor::full([10], -1e4, (Kind::Double, Device::Cpu));
        let _ = d.get(3).fill_(0.0);
        assert!((ess_fraction(&d) - 0.1).abs() < 1e-12);
    }

    /// N(0, I) diffused to N(0, (1 + σ²) I), counting how often each network is evaluated.
    #[derive(Default)]
    struct CountingGaussian {
        scores: std::cell::Cell<usize>,
        energies: std::cell::Cell<usize>,
    }

    impl Diffused for CountingGaussian {
        fn score(&self, x: &Tensor, sigma: &Tensor) -> Tensor {
            self.scores.set(self.scores.get() + 1);
            let v: Tensor = sigma.square() + 1.0;
            -(x / v.unsqueeze(1))
        }
        fn energy(&self, x: &Tensor, sigma: &Tensor) -> Tensor {
            self.energies.set(self.energies.get() + 1);
            let v: Tensor = sigma.square() + 1.0;
            x.square().sum_dim_intlist(1, false, x.kind()) / (v * 2.0)
        }
    }

    /// For an exact model every drift is the same score, −x/(1 + σ²) for the diffused
    /// N(0, I); a drift whose network is missing is an error, not a panic.
    #[test]
    fn every_drift_of_an_exact_model_is_its_score() {
        let _rng = torch_rng();
        tch::manual_seed(2);
        let model = CountingGaussian::default();
        let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let sigma = Tensor::full([8], 0.5, (Kind::Float, Device::Cpu));
        let exact = -&x / 1.25;
        for drift in [Drift::Mixed, Drift::Score, Drift::Energy] {
            let s = drift.evaluate(&model, &x, &sigma).unwrap();
            let err = (s - &exact).abs().max().double_value(&[]);
            assert!(err < 1e-6, "{drift:?}: {err}");
        }
        assert!(Drift::Mixed
            .combine(Some(exact.shallow_clone()), None)
            .is_err());
        assert!(Drift::Energy.combine(Some(exact), None).is_err());
    }

    /// The final Tweedie step on the diffused N(0, I): without it the samples are drawn from
    /// N(0, (1 + σ_min²) I), with it they are the posterior means x/(1 + σ_min²), of variance
    /// 1/(1 + σ_min²). σ_min = 0.5: 1.25 against 0.8. 4000 × 2 values give the sample
    /// variance a relative s.e. of 1.6 %; tolerance 0.06 (about 4 s.e. plus the
    /// discretisation of 200 steps).
    #[test]
    fn the_final_denoising_step_is_the_posterior_mean() {
        let _rng = torch_rng();
        let edm = Edm {
            sigma_min: 0.5,
            ..Edm::default()
        };
        for (denoise, want) in [(false, 1.25), (true, 0.8)] {
            tch::manual_seed(6);
            let config = SmcConfig {
                population: 4000,
                steps: 200,
                chunk: 4000,
                resample_until: 0.0,
                denoise,
                ..SmcConfig::default()
            };
            let out = anneal(
                &CountingGaussian::default(),
                &edm,
                1.0,
                Space::cpu(2),
                &config,
                |_, _| {},
            )
            .unwrap();
            let var = out
                .samples
                .to_kind(Kind::Double)
                .var(true)
                .double_value(&[]);
            assert!((var - want).abs() < 0.06, "denoise {denoise}: {var}");
        }
    }

    /// A step evaluates only what it uses: a one-network drift without weights never calls the
    /// other network, and the weighted steps of the mixed drift call both once per chunk.
    #[test]
    fn each_step_evaluates_only_the_networks_it_uses() {
        let _rng = torch_rng();
        tch::manual_seed(5);
        let edm = Edm::default();
        let base = SmcConfig {
            population: 64,
            steps: 10,
            chunk: 32,
            resample_until: 0.0,
            ..SmcConfig::default()
        };
        for (drift, scores, energies) in [
            (Drift::Score, 20, 0),
            (Drift::Energy, 0, 20),
            (Drift::Mixed, 20, 20),
        ] {
            let model = CountingGaussian::default();
            let config = SmcConfig {
                drift,
                ..base.clone()
            };
            let out = anneal(&model, &edm, 1.0, Space::cpu(2), &config, |_, _| {}).unwrap();
            assert_eq!(out.samples.size(), [64, 2]);
            assert_eq!(
                (model.scores.get(), model.energies.get()),
                (scores, energies),
                "{drift:?}"
            );
        }
        // Weighted for the first 4 steps: still one call of each network per chunk and step.
        let model = CountingGaussian::default();
        let config = SmcConfig {
            resample_until: 0.4,
            ..base
        };
        let out = anneal(&model, &edm, 2.0, Space::cpu(2), &config, |_, _| {}).unwrap();
        assert_eq!(out.ess.len(), 4);
        assert_eq!((model.scores.get(), model.energies.get()), (20, 20));
    }
}
