//! Run directories of flow-matching pretraining and Adjoint Matching fine-tuning.
//!
//! ```text
//! <run>/config.toml    the resolved config
//!       checkpoint/    network, Adam moments, RNG state, counters (resumable)
//!       train.jsonl    one line per logged step: loss (+ reward, control cost when fine-tuning)
//!       metrics.jsonl  one line per evaluation
//!       samples.npy    final samples (flow ODE of the trained model), float32 [n, dim]
//!       final.json     final evaluation and run totals
//!       plots/*.png    samples (first two coordinates), reward / energy histograms
//! ```
//! A killed run resumes from its last checkpoint; log lines past it are dropped.

use crate::error::{Error, Result};
use crate::io::run_files::{json_line, resume_logs, write_atomic};
use crate::io::{read_npy, write_npy, Samples};
use crate::methods::adjoint_matching::config::{from_toml, FinetuneConfig, PretrainConfig};
use crate::methods::adjoint_matching::finetune::to_host;
use crate::methods::adjoint_matching::{
    flow, load_frozen, Base, DataSource, FineTuner, IsotropicMixture, IterationReport, Pretrainer,
    Reward,
};
use crate::metrics::{sinkhorn_divergence, weighted_mean, SinkhornConfig};
use crate::nn::checkpoint;
use crate::report::{histogram_overlay, scatter_2d, Axes2d, Series};
use crate::sde::HostNoise;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

const CONFIG: &str = "config.toml";
const CHECKPOINT: &str = "checkpoint";
const TRAIN_LOG: &str = "train.jsonl";
const METRICS_LOG: &str = "metrics.jsonl";
const SAMPLES: &str = "samples.npy";
const FINAL: &str = "final.json";
const PLOTS: &str = "plots";
/// Steps between lines of `train.jsonl` (losses are averaged over them).
const LOG_EVERY: usize = 10;
/// Exact samples used to estimate the mode weights of an exact tilt.
const EXACT_WEIGHT_SAMPLES: usize = 100_000;

/// What a flow run reports while it works.
#[derive(Debug)]
pub enum FlowEvent<'a> {
    /// Training (re)starts after `done` of `total` steps.
    Started { done: usize, total: usize },
    /// A step finished; `line` is a short summary.
    Step { done: usize, line: &'a str },
    /// A status line.
    Status(&'a str),
}

fn open_dir<C: Serialize + for<'de> Deserialize<'de>>(
    dir: &Path,
    config: &C,
    same: impl Fn(&C) -> bool,
) -> Result<()> {
    let cfg_path = dir.join(CONFIG);
    if cfg_path.exists() {
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let old: C = from_toml(&text, &cfg_path)?;
        if !same(&old) {
            return Err(Error::Config {
                key: "config".into(),
                why: format!(
                    "{} already holds a different run (only the step count, checkpoint_every, \
                     threads and device may change on resume); use another --out",
                    dir.display()
                ),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let text = toml::to_string(config).map_err(|e| Error::Format {
        path: cfg_path.clone(),
        why: e.to_string(),
    })?;
    write_atomic(&cfg_path, text.as_bytes())
}

/// Appends `report` to `metrics.jsonl` marked `"final": true` and writes it as `final.json`.
fn write_final<R: Serialize>(dir: &Path, report: &R) -> Result<()> {
    let mut line = serde_json::to_value(report).expect("report serialises");
    line["final"] = true.into();
    json_line(&dir.join(METRICS_LOG), &line)?;
    let json = serde_json::to_vec_pretty(report).expect("report serialises");
    write_atomic(&dir.join(FINAL), &json)
}

fn read_config<C: for<'de> Deserialize<'de>>(dir: &Path) -> Result<C> {
    let cfg_path = dir.join(CONFIG);
    if !cfg_path.exists() {
        return Err(Error::Format {
            path: dir.to_path_buf(),
            why: format!("not a run directory (no {CONFIG})"),
        });
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    from_toml(&text, &cfg_path)
}

fn write_samples(dir: &Path, x: &[f64], dim: usize) -> Result<()> {
    let tmp = dir.join("samples.tmp.npy");
    write_npy(&tmp, &[x.len() / dim, dim], x, false)?;
    let path = dir.join(SAMPLES);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

fn first_two(x: &[f64], dim: usize) -> Vec<f64> {
    x.chunks_exact(dim)
        .flat_map(|r| [r[0], if dim > 1 { r[1] } else { 0.0 }])
        .collect()
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// Mean Euclidean distance over all pairs of (at most 1000) rows: a diversity measure.
pub fn mean_pairwise_distance(x: &[f64], dim: usize) -> f64 {
    let rows: Vec<&[f64]> = x.chunks_exact(dim).take(1000).collect();
    let (mut s, mut c) = (0.0, 0usize);
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            s += rows[i]
                .iter()
                .zip(rows[j])
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            c += 1;
        }
    }
    s / c.max(1) as f64
}

fn sinkhorn(x: &[f64], y: &[f64], dim: usize, eps: f64) -> Result<Option<f64>> {
    if eps <= 0.0 {
        return Ok(None);
    }
    let cfg = SinkhornConfig {
        epsilon: eps,
        ..SinkhornConfig::default()
    };
    Ok(Some(sinkhorn_divergence(x, y, dim, &cfg)?.divergence))
}

// ------------------------------------------------------------------------------------------
// Pretraining

/// `final.json` / `metrics.jsonl` line of a pretraining run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainReport {
    pub step: usize,
    pub target: String,
    pub n_samples: usize,
    /// Debiased Sinkhorn divergence between ODE samples and target samples.
    pub sinkhorn_divergence: Option<f64>,
    /// Max |mixture weight error| over components (registered mixtures).
    pub max_weight_error: Option<f64>,
    /// ‖mean(generated) − mean(target)‖.
    pub mean_error: f64,
    pub loss: f64,
    pub wall_seconds: f64,
}

/// An open pretraining run.
pub struct PretrainRun {
    dir: PathBuf,
    config: PretrainConfig,
    trainer: Pretrainer,
    dim: usize,
    /// Target samples for evaluation (exact draws or the file).
    reference: Vec<f64>,
    mixture: Option<IsotropicMixture>,
    wall_offset: f64,
}

fn pretrain_data(config: &PretrainConfig, n_eval: usize) -> Result<(DataSource, usize, Vec<f64>)> {
    let target = &config.target;
    if target.ends_with(".npy") {
        let arr = read_npy(Path::new(target))?;
        if arr.shape.len() != 2 || arr.shape[0] < 2 {
            return Err(Error::Format {
                path: target.into(),
                why: format!(
                    "expected training samples [n ≥ 2, dim], got shape {:?}",
                    arr.shape
                ),
            });
        }
        let dim = arr.shape[1];
        if let Some(i) = arr.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Format {
                path: target.into(),
                why: format!("row {} holds a non-finite value", i / dim),
            });
        }
        let reference = arr.data[..n_eval.min(arr.shape[0]) * dim].to_vec();
        return Ok((DataSource::Samples(arr.data), dim, reference));
    }
    let system = crate::energy::registry::system(target).map_err(|e| Error::Config {
        key: "target".into(),
        why: format!("{e} (or give a .npy file of samples)"),
    })?;
    let Some(exact) = system.exact else {
        return Err(Error::Config {
            key: "target".into(),
            why: format!(
                "system '{target}' has no exact sampler; pretrain on a .npy file of its samples"
            ),
        });
    };
    let dim = system.energy.dim();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.evaluation.seed ^ 0x7e7e);
    let reference = exact.sample(n_eval, &mut rng);
    Ok((DataSource::Exact(exact), dim, reference))
}

impl PretrainRun {
    /// Creates or resumes the run in `dir`.
    pub fn open(config: PretrainConfig, dir: &Path) -> Result<Self> {
        config.validate()?;
        let device = crate::nn::device::configure(&config.device, config.threads)?;
        let (data, dim, reference) = pretrain_data(&config, config.evaluation.final_n_samples)?;
        open_dir(dir, &config, |old| old.same_run_as(&config))?;
        tch::manual_seed(config.training.seed as i64);
        let mut trainer = Pretrainer::new(
            data,
            dim,
            config.network.clone(),
            config.training.clone(),
            device,
        )?;
        let ckpt = dir.join(CHECKPOINT);
        if checkpoint::exists(&ckpt) {
            trainer.load_checkpoint(&ckpt)?;
        }
        let wall_offset = resume_logs(
            &dir.join(TRAIN_LOG),
            &dir.join(METRICS_LOG),
            "step",
            trainer.steps_done(),
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            mixture: IsotropicMixture::registered(&config.target),
            config,
            trainer,
            dim,
            reference,
            wall_offset,
        })
    }

    /// The config.
    pub fn config(&self) -> &PretrainConfig {
        &self.config
    }

    fn evaluate(&self, n: usize, loss: f64, wall: f64) -> Result<(PretrainReport, Vec<f64>)> {
        let ev = &self.config.evaluation;
        let step = self.trainer.steps_done();
        let mut noise = HostNoise::seeded(ev.seed ^ (step as u64).wrapping_mul(0x9e37_79b9));
        let x = to_host(&flow::sample(
            self.trainer.network(),
            n,
            self.dim,
            ev.ode_steps,
            ev.solver,
            self.trainer.var_store().device(),
            &mut noise,
        ));
        let r = &self.reference[..n.min(self.reference.len() / self.dim) * self.dim];
        let mean = |v: &[f64]| -> Vec<f64> {
            let m = v.len() / self.dim;
            (0..self.dim)
                .map(|c| v.iter().skip(c).step_by(self.dim).sum::<f64>() / m as f64)
                .collect()
        };
        let (mg, mr) = (mean(&x), mean(r));
        let mean_error = mg
            .iter()
            .zip(&mr)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let max_weight_error = self.mixture.as_ref().map(|m| {
            let (a, b) = (m.assigned_fractions(&x), m.assigned_fractions(r));
            a.iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max)
        });
        let report = PretrainReport {
            step,
            target: self.config.target.clone(),
            n_samples: n,
            sinkhorn_divergence: sinkhorn(&x, r, self.dim, ev.sinkhorn_epsilon)?,
            max_weight_error,
            mean_error,
            loss,
            wall_seconds: wall,
        };
        Ok((report, x))
    }

    /// Trains to `steps`, checkpointing and evaluating as configured, then writes the final
    /// samples, report and plots.
    pub fn train(&mut self, observer: &mut dyn FnMut(FlowEvent)) -> Result<PretrainReport> {
        let total = self.config.steps;
        let final_path = self.dir.join(FINAL);
        if final_path.exists() {
            std::fs::remove_file(&final_path).map_err(|e| Error::io(&final_path, e))?;
        }
        let ckpt = self.dir.join(CHECKPOINT);
        observer(FlowEvent::Started {
            done: self.trainer.steps_done(),
            total,
        });
        let start = Instant::now();
        let (mut acc, mut count, mut last_loss) = (0.0, 0usize, f64::NAN);
        while self.trainer.steps_done() < total {
            acc += self.trainer.step();
            count += 1;
            let step = self.trainer.steps_done();
            let wall = self.wall_offset + start.elapsed().as_secs_f64();
            if step.is_multiple_of(LOG_EVERY) || step == total {
                last_loss = acc / count as f64;
                json_line(
                    &self.dir.join(TRAIN_LOG),
                    &serde_json::json!({"step": step, "loss": last_loss, "wall_seconds": wall}),
                )?;
                observer(FlowEvent::Step {
                    done: step,
                    line: &format!("loss {last_loss:.4}"),
                });
                (acc, count) = (0.0, 0);
            }
            if step.is_multiple_of(self.config.checkpoint_every) || step == total {
                self.trainer.save_checkpoint(&ckpt)?;
            }
            let every = self.config.evaluation.every;
            if every > 0 && step.is_multiple_of(every) && step < total {
                let (r, _) = self.evaluate(self.config.evaluation.n_samples, last_loss, wall)?;
                json_line(&self.dir.join(METRICS_LOG), &r)?;
            }
        }
        if !checkpoint::exists(&ckpt) {
            self.trainer.save_checkpoint(&ckpt)?;
        }
        observer(FlowEvent::Status("final evaluation"));
        let wall = self.wall_offset + start.elapsed().as_secs_f64();
        let n = self.config.evaluation.final_n_samples;
        let (report, x) = self.evaluate(n, last_loss, wall)?;
        write_samples(&self.dir, &x, self.dim)?;
        let plots = self.dir.join(PLOTS);
        std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
        let r = &self.reference[..n.min(self.reference.len() / self.dim) * self.dim];
        scatter_2d(
            &plots.join("samples_2d.png"),
            &format!("flow model of {}", self.config.target),
            &[
                Series {
                    label: "flow model (ODE)",
                    values: &first_two(&x, self.dim),
                },
                Series {
                    label: "target",
                    values: &first_two(r, self.dim),
                },
            ],
            None,
            Axes2d::default(),
        )?;
        write_final(&self.dir, &report)?;
        Ok(report)
    }
}

/// Loads the frozen velocity network of the pretraining run in `dir`, with the target's
/// mixture when the target is a registered Gaussian mixture.
pub fn load_base_run(dir: &Path) -> Result<(Base, Option<IsotropicMixture>)> {
    let config: PretrainConfig = read_config(dir)?;
    let ckpt = dir.join(CHECKPOINT);
    if !checkpoint::exists(&ckpt) {
        return Err(Error::Format {
            path: dir.to_path_buf(),
            why: "the base run has no checkpoint yet (train it first)".into(),
        });
    }
    let dim = if config.target.ends_with(".npy") {
        let arr = read_npy(Path::new(&config.target))?;
        arr.shape.get(1).copied().unwrap_or(0)
    } else {
        crate::energy::by_name(&config.target)?.dim()
    };
    let device = crate::nn::device::parse_device(&config.device).unwrap_or(tch::Device::Cpu);
    let (vs, net) = load_frozen(&ckpt, dim, config.network.clone(), device)?;
    Ok((
        Base::Network { vs, net },
        IsotropicMixture::registered(&config.target),
    ))
}

/// Resolves a base spec: `gaussian:D`, `exact:SYSTEM` or a pretraining run directory.
/// Returns the base and, when known, the mixture it models (for exact tilts).
pub fn resolve_base(spec: &str) -> Result<(Base, Option<IsotropicMixture>)> {
    let bad = |why: String| Error::Config {
        key: "base".into(),
        why,
    };
    if let Some(d) = spec.strip_prefix("gaussian:") {
        let dim: usize = d.parse().ok().filter(|&d| d > 0).ok_or_else(|| {
            bad(format!(
                "'{spec}': the dimension must be a positive integer"
            ))
        })?;
        let m = IsotropicMixture::standard_normal(dim);
        return Ok((Base::Exact(m.clone()), Some(m)));
    }
    if let Some(name) = spec.strip_prefix("exact:") {
        let m = IsotropicMixture::registered(name).ok_or_else(|| {
            bad(format!(
                "'{name}' has no closed-form velocity (registered mixtures: gmm40, gmm40-fab, gmm40-50)"
            ))
        })?;
        return Ok((Base::Exact(m.clone()), Some(m)));
    }
    let dir = Path::new(spec);
    if !dir.is_dir() {
        return Err(bad(format!(
            "'{spec}' is neither gaussian:D, exact:SYSTEM nor a pretraining run directory"
        )));
    }
    load_base_run(dir)
}

// ------------------------------------------------------------------------------------------
// Fine-tuning

/// Figures of one set of samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleStats {
    pub n: usize,
    /// Mean reward r (λ not applied) and its standard error.
    pub mean_reward: f64,
    pub reward_se: f64,
    /// Mean pairwise Euclidean distance (diversity).
    pub diversity: f64,
}

/// Comparison with the exact tilt p_base exp(λ r) / Z (mixture bases, linear/quadratic
/// rewards).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TiltReport {
    /// Fractions of exact tilt samples assigned to each component (100 000 samples).
    pub weights_exact: Vec<f64>,
    /// The same for the fine-tuned ODE and SDE samples.
    pub weights_ode: Vec<f64>,
    pub weights_sde: Vec<f64>,
    pub max_weight_error_ode: f64,
    pub max_weight_error_sde: f64,
    /// Mean reward of exact tilt samples (same n as the generated sets) and its s.e.
    pub mean_reward_exact: f64,
    pub reward_se_exact: f64,
    /// Debiased Sinkhorn divergences against exact tilt samples.
    pub sinkhorn_ode: Option<f64>,
    pub sinkhorn_sde: Option<f64>,
    /// Same-size exact-vs-exact divergence: the finite-sample floor.
    pub sinkhorn_floor: Option<f64>,
}

/// What the fine-tuned model should reach on *this* base: the mean reward of
/// p_base exp(λ r) / Z estimated from base samples x_i by self-normalised importance weights
/// w_i = exp(λ r(x_i)). Separates the fine-tuning error from the base's own error when the
/// base only approximates a known mixture; reliable while the ESS is a sizeable part of n.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaseTiltEstimate {
    pub mean_reward: f64,
    pub reward_se: f64,
    pub ess: f64,
}

/// `metrics.jsonl` / `final.json` of a fine-tuning run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinetuneReport {
    pub iteration: usize,
    pub reward: String,
    pub lambda: f64,
    pub reward_evals: u64,
    pub base: SampleStats,
    pub ode: SampleStats,
    pub sde: SampleStats,
    /// KL estimate E[½ Σ_k Δ_k ‖u_k‖²] of the fine-tuned SDE from the base SDE (path space;
    /// bounds KL(p_θ ‖ p_base)).
    pub kl_estimate: f64,
    /// The base's memoryless SDE samples (the process fine-tuning tilts). For a learned
    /// base velocity they need not match its ODE samples: b = 2v − x/t has the flow's
    /// marginals only for the exact velocity.
    pub base_sde: SampleStats,
    /// The tilt of the base itself, by importance weights on the base ODE samples (None when
    /// no base sample has a finite reward), and the same on its SDE samples.
    pub base_tilt: Option<BaseTiltEstimate>,
    pub base_tilt_sde: Option<BaseTiltEstimate>,
    pub exact_tilt: Option<TiltReport>,
    /// For `boltzmann:SYSTEM` rewards: the fine-tuned ODE samples evaluated against exact
    /// samples of the system (Sinkhorn, modes, energy W2).
    pub boltzmann: Option<crate::evaluate::EvalReport>,
    pub loss: f64,
    pub wall_seconds: f64,
}

/// An open fine-tuning run.
pub struct FinetuneRun {
    dir: PathBuf,
    config: FinetuneConfig,
    tuner: FineTuner,
    mixture: Option<IsotropicMixture>,
    wall_offset: f64,
}

impl FinetuneRun {
    /// Creates or resumes the run in `dir`.
    pub fn open(config: FinetuneConfig, dir: &Path) -> Result<Self> {
        config.validate()?;
        let device = crate::nn::device::configure(&config.device, config.threads)?;
        let (base, mixture) = resolve_base(&config.base)?;
        let reward = Reward::parse(&config.reward, base.dim())?;
        if let Some(m) = &mixture {
            m.tilt(&reward, config.training.lambda)?;
        }
        open_dir(dir, &config, |old| old.same_run_as(&config))?;
        tch::manual_seed(config.training.seed as i64);
        let mut tuner = FineTuner::new(
            base,
            reward,
            config.network.clone(),
            config.training.clone(),
            device,
        )?;
        let ckpt = dir.join(CHECKPOINT);
        if checkpoint::exists(&ckpt) {
            tuner.load_checkpoint(&ckpt)?;
        }
        let wall_offset = resume_logs(
            &dir.join(TRAIN_LOG),
            &dir.join(METRICS_LOG),
            "iteration",
            tuner.iterations_done(),
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tuner,
            mixture,
            wall_offset,
        })
    }

    /// Opens a run as saved (for sampling).
    pub fn load(dir: &Path) -> Result<Self> {
        let config: FinetuneConfig = read_config(dir)?;
        if !checkpoint::exists(&dir.join(CHECKPOINT)) {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: "the run has no checkpoint yet".into(),
            });
        }
        Self::open(config, dir)
    }

    /// The config.
    pub fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    /// The trainer.
    pub fn tuner(&self) -> &FineTuner {
        &self.tuner
    }

    /// `n` samples of the fine-tuned model: by its flow ODE (`ode_steps` steps of the
    /// configured solver) or, with `sde`, by the memoryless SDE it was trained on.
    pub fn sample(&self, n: usize, sde: bool, ode_steps: usize, seed: u64) -> Vec<f64> {
        let mut noise = HostNoise::seeded(seed);
        if sde {
            let t = self.tuner.rollout(n, true, &mut noise);
            return to_host(t.states.last().expect("K + 1 states"));
        }
        let v = self.tuner.velocity(true);
        to_host(&flow::sample(
            &v,
            n,
            self.tuner.base().dim(),
            ode_steps,
            self.config.evaluation.solver,
            self.tuner.var_store().device(),
            &mut noise,
        ))
    }

    fn stats(&self, x: &[f64]) -> Result<SampleStats> {
        Ok(self.stats_and_rewards(x)?.0)
    }

    /// The figures of a sample set and its per-sample rewards r(x_i).
    fn stats_and_rewards(&self, x: &[f64]) -> Result<(SampleStats, Vec<f64>)> {
        let dim = self.tuner.base().dim();
        let (r, _) = self.tuner.reward().batch(x)?;
        let finite: Vec<f64> = r.iter().copied().filter(|v| v.is_finite()).collect();
        let (mean_reward, reward_se) = mean_se(&finite);
        let stats = SampleStats {
            n: x.len() / dim,
            mean_reward,
            reward_se,
            diversity: mean_pairwise_distance(x, dim),
        };
        Ok((stats, r))
    }

    fn evaluate(&self, n: usize, loss: f64, wall: f64) -> Result<(FinetuneReport, EvalSets)> {
        let ev = &self.config.evaluation;
        let dim = self.tuner.base().dim();
        let it = self.tuner.iterations_done() as u64;
        let seed = ev.seed ^ it.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let ode = self.sample(n, false, ev.ode_steps, seed);
        let mut noise = HostNoise::seeded(seed ^ 1);
        let traj = self.tuner.rollout(n, true, &mut noise);
        let sde = to_host(traj.states.last().expect("states"));
        let kl_estimate = traj.control_cost.mean(tch::Kind::Double).double_value(&[]);
        let base = {
            let v = self.tuner.velocity(false);
            to_host(&flow::sample(
                &v,
                n,
                dim,
                ev.ode_steps,
                ev.solver,
                self.tuner.var_store().device(),
                &mut HostNoise::seeded(seed ^ 2),
            ))
        };
        let base_sde = {
            let t = self
                .tuner
                .rollout(n, false, &mut HostNoise::seeded(seed ^ 3));
            to_host(t.states.last().expect("states"))
        };
        let lambda = self.config.training.lambda;
        let tilt_of = |r: &[f64]| {
            let log_w: Vec<f64> = r
                .iter()
                .map(|&v| {
                    if v.is_finite() {
                        lambda * v
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            weighted_mean(&log_w, r).ok().map(|e| BaseTiltEstimate {
                mean_reward: e.mean,
                reward_se: e.se,
                ess: e.ess,
            })
        };
        let (base_stats, base_r) = self.stats_and_rewards(&base)?;
        let (base_sde_stats, base_sde_r) = self.stats_and_rewards(&base_sde)?;
        let base_tilt = tilt_of(&base_r);
        let base_tilt_sde = tilt_of(&base_sde_r);
        let tilt = match &self.mixture {
            Some(m) => m.tilt(self.tuner.reward(), lambda)?,
            None => None,
        };
        let mut exact = None;
        let exact_tilt = match &tilt {
            Some(t) => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ev.seed ^ 0x7117);
                let many = t.sample(EXACT_WEIGHT_SAMPLES, &mut rng);
                let xe = t.sample(n, &mut rng);
                let xe2 = t.sample(n, &mut rng);
                let we = t.assigned_fractions(&many);
                let (wo, ws) = (t.assigned_fractions(&ode), t.assigned_fractions(&sde));
                let err = |w: &[f64]| {
                    w.iter()
                        .zip(&we)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                };
                let st = self.stats(&xe)?;
                let eps = ev.sinkhorn_epsilon;
                let rep = TiltReport {
                    max_weight_error_ode: err(&wo),
                    max_weight_error_sde: err(&ws),
                    weights_exact: we,
                    weights_ode: wo,
                    weights_sde: ws,
                    mean_reward_exact: st.mean_reward,
                    reward_se_exact: st.reward_se,
                    sinkhorn_ode: sinkhorn(&ode, &xe, dim, eps)?,
                    sinkhorn_sde: sinkhorn(&sde, &xe, dim, eps)?,
                    sinkhorn_floor: sinkhorn(&xe2, &xe, dim, eps)?,
                };
                exact = Some(xe);
                Some(rep)
            }
            None => None,
        };
        let boltzmann = match self.tuner.reward() {
            Reward::Boltzmann { energy } if matches!(self.tuner.base(), Base::Exact(_)) => {
                let system = crate::energy::registry::system(energy.name())?;
                match &system.exact {
                    Some(s) => {
                        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ev.seed ^ 0xb017);
                        let reference = Samples::from_rows(s.sample(n, &mut rng), dim)?;
                        let generated = Samples::from_rows(ode.clone(), dim)?;
                        let opts = crate::evaluate::EvalOptions {
                            n: Some(n),
                            seed: ev.seed,
                            sinkhorn: (ev.sinkhorn_epsilon > 0.0).then(|| SinkhornConfig {
                                epsilon: ev.sinkhorn_epsilon,
                                ..SinkhornConfig::default()
                            }),
                            ..crate::evaluate::EvalOptions::default()
                        };
                        let (rep, _) =
                            crate::evaluate::evaluate(&system, &generated, &reference, &opts)?;
                        exact = Some(reference.data);
                        Some(rep)
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let report = FinetuneReport {
            iteration: self.tuner.iterations_done(),
            reward: self.tuner.reward().spec(),
            lambda,
            reward_evals: self.tuner.reward_evals(),
            base: base_stats,
            base_sde: base_sde_stats,
            ode: self.stats(&ode)?,
            sde: self.stats(&sde)?,
            kl_estimate,
            base_tilt,
            base_tilt_sde,
            exact_tilt,
            boltzmann,
            loss,
            wall_seconds: wall,
        };
        Ok((
            report,
            EvalSets {
                base,
                ode,
                sde,
                exact,
            },
        ))
    }

    fn plots(&self, sets: &EvalSets) -> Result<()> {
        let dim = self.tuner.base().dim();
        let plots = self.dir.join(PLOTS);
        std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
        let mut panels = vec![
            ("base", first_two(&sets.base, dim)),
            ("fine-tuned (ODE)", first_two(&sets.ode, dim)),
        ];
        if let Some(x) = &sets.exact {
            panels.push(("exact target", first_two(x, dim)));
        }
        let series: Vec<Series> = panels
            .iter()
            .map(|(l, v)| Series {
                label: l,
                values: v,
            })
            .collect();
        let title = format!(
            "{} , λ = {}",
            self.tuner.reward().spec(),
            self.config.training.lambda
        );
        scatter_2d(
            &plots.join("samples_2d.png"),
            &title,
            &series,
            None,
            Axes2d::default(),
        )?;
        let reward = |x: &[f64]| -> Result<Vec<f64>> { Ok(self.tuner.reward().batch(x)?.0) };
        let mut hist = vec![
            ("base", reward(&sets.base)?),
            ("fine-tuned (ODE)", reward(&sets.ode)?),
            ("fine-tuned (SDE)", reward(&sets.sde)?),
        ];
        if let Some(x) = &sets.exact {
            hist.push(("exact target", reward(x)?));
        }
        let series: Vec<Series> = hist
            .iter()
            .map(|(l, v)| Series {
                label: l,
                values: v,
            })
            .collect();
        histogram_overlay(
            &plots.join("reward_histogram.png"),
            &title,
            "r(x)",
            &series,
            80,
        )
    }

    /// Fine-tunes to `iterations`, checkpointing and evaluating as configured, then writes
    /// the final samples (flow ODE), report and plots.
    pub fn train(&mut self, observer: &mut dyn FnMut(FlowEvent)) -> Result<FinetuneReport> {
        let total = self.config.iterations;
        let final_path = self.dir.join(FINAL);
        if final_path.exists() {
            std::fs::remove_file(&final_path).map_err(|e| Error::io(&final_path, e))?;
        }
        let ckpt = self.dir.join(CHECKPOINT);
        observer(FlowEvent::Started {
            done: self.tuner.iterations_done(),
            total,
        });
        let start = Instant::now();
        let mut window: Vec<IterationReport> = Vec::new();
        let mut last_loss = f64::NAN;
        while self.tuner.iterations_done() < total {
            window.push(self.tuner.iteration()?);
            let it = self.tuner.iterations_done();
            let wall = self.wall_offset + start.elapsed().as_secs_f64();
            if it.is_multiple_of(LOG_EVERY) || it == total {
                let m = |f: fn(&IterationReport) -> f64| {
                    window.iter().map(f).sum::<f64>() / window.len() as f64
                };
                let last = window.last().expect("non-empty");
                last_loss = m(|r| r.loss);
                let line = serde_json::json!({
                    "iteration": it,
                    "loss": last_loss,
                    "mean_reward": m(|r| r.mean_reward),
                    "control_cost": m(|r| r.control_cost),
                    "clipped": m(|r| r.clipped),
                    "dropped": window.iter().map(|r| r.dropped).sum::<usize>(),
                    "reward_evals": last.reward_evals,
                    "wall_seconds": wall,
                });
                json_line(&self.dir.join(TRAIN_LOG), &line)?;
                observer(FlowEvent::Step {
                    done: it,
                    line: &format!(
                        "loss {:.3} r {:.3} KL {:.3}",
                        last_loss,
                        m(|r| r.mean_reward),
                        m(|r| r.control_cost)
                    ),
                });
                window.clear();
            }
            if it.is_multiple_of(self.config.checkpoint_every) || it == total {
                self.tuner.save_checkpoint(&ckpt)?;
            }
            let every = self.config.evaluation.every;
            if every > 0 && it.is_multiple_of(every) && it < total {
                let (r, _) = self.evaluate(self.config.evaluation.n_samples, last_loss, wall)?;
                json_line(&self.dir.join(METRICS_LOG), &r)?;
            }
        }
        if !checkpoint::exists(&ckpt) {
            self.tuner.save_checkpoint(&ckpt)?;
        }
        observer(FlowEvent::Status("final evaluation"));
        let wall = self.wall_offset + start.elapsed().as_secs_f64();
        let n = self.config.evaluation.final_n_samples;
        let (report, sets) = self.evaluate(n, last_loss, wall)?;
        write_samples(&self.dir, &sets.ode, self.tuner.base().dim())?;
        self.plots(&sets)?;
        write_final(&self.dir, &report)?;
        Ok(report)
    }
}

/// The sample sets behind a fine-tuning report.
struct EvalSets {
    base: Vec<f64>,
    ode: Vec<f64>,
    sde: Vec<f64>,
    exact: Option<Vec<f64>>,
}
