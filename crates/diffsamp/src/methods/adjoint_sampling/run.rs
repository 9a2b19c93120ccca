//! An Adjoint Sampling run directory: create or resume, train with periodic evaluation and
//! checkpoints, then write the final samples, metrics and plots.
//!
//! ```text
//! <run>/config.toml     the resolved config (seed included)
//!       checkpoint/     network, Adam moments, replay buffer, RNG state, counters
//!       epochs.jsonl    one line per epoch: loss, mean energy, energy evaluations, wall time
//!       metrics.jsonl   one line per evaluation: every figure of the EvalReport
//!       reference.npy   MCMC reference, when `evaluation.reference = "mcmc"` (cached)
//!       samples.npy     final samples, float32, `[n, particles, spatial]` or `[n, dim]`
//!       log_weights.npy their path-space importance log-weights, float64, `[n]`
//!       final.json      final evaluation (2000 vs 2000 by default) and run totals
//!       plots/*.png     energy and distance histograms vs reference, 2-D scatter
//!       plots/resampled/ the same for the importance-resampled final samples
//! ```
//!
//! Killing the process at any moment loses at most the epochs since the last checkpoint: the
//! checkpoint commit is atomic (see [`Trainer::save_checkpoint`]) and, on resume, log lines of
//! epochs after the checkpoint are dropped so that the logs and the state agree.

use crate::energy::registry::System;
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, write_plots, EvalOptions, EvalReport};
use crate::io::run_files::{json_line, resume_logs, truncate_log, write_atomic};
use crate::io::{load_samples, write_npy, Samples};
use crate::methods::adjoint_sampling::config::{AsConfig, NetworkConfig, ReferenceSource};
use crate::methods::adjoint_sampling::{EpochReport, Trainer};
use crate::metrics::SinkhornConfig;
use crate::nn::{checkpoint, Control, Egnn, Mlp, StateLayout};
use crate::sde::importance::{log_weights_in, resample_rows, ImportanceReport};
use crate::sde::{HostNoise, StateSpace};
use diffsamp_energy::energies_batch;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

const CONFIG: &str = "config.toml";
const CHECKPOINT: &str = "checkpoint";
const EPOCHS_LOG: &str = "epochs.jsonl";
const METRICS_LOG: &str = "metrics.jsonl";
const REFERENCE: &str = "reference.npy";
const SAMPLES: &str = "samples.npy";
const LOG_WEIGHTS: &str = "log_weights.npy";
const FINAL: &str = "final.json";
const PLOTS: &str = "plots";

/// Rows of pair features held at once when sampling (bounds memory for large particle systems).
const PAIR_ROWS_PER_CHUNK: usize = 200_000;

/// What a run reports while it works (drives progress bars and logs).
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// Training (re)starts after `done` of `total` epochs.
    Started { done: usize, total: usize },
    /// A status line (reference sampling, evaluation, writing outputs).
    Status(&'a str),
    /// An epoch finished.
    Epoch(&'a EpochReport),
    /// An evaluation finished.
    Evaluated {
        epoch: usize,
        report: &'a EvalReport,
        /// The samples' importance-weight summary (`None` when every weight is zero).
        importance: Option<&'a ImportanceReport>,
    },
    /// Sampling progress: `done` of `total` samples drawn.
    Sampling { done: usize, total: usize },
}

/// One line of `epochs.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLine {
    pub epoch: usize,
    pub loss: f64,
    /// Mean log-variance loss of the epoch (with `training.log_variance_weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_variance: Option<f64>,
    pub mean_energy: f64,
    /// ESS of the epoch's new samples as a fraction of them (absent in runs of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ess: Option<f64>,
    /// ESS of the replay buffer's weights w^γ (with `training.replay_weight_power`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_ess: Option<f64>,
    pub energy_evals: u64,
    pub dropped: usize,
    /// Training wall time so far (seconds, summed over resumes; evaluations excluded).
    pub wall_seconds: f64,
}

/// `final.json`: the final evaluation and the totals of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinalSummary {
    pub system: String,
    pub epochs: usize,
    pub energy_evals: u64,
    pub train_wall_seconds: f64,
    pub n_samples: usize,
    pub eval_nfe: usize,
    pub report: EvalReport,
    /// Path-space importance weights of the final samples and the evaluation of the
    /// importance-resampled set (absent when every weight is zero, and in runs written before
    /// the weights existed).
    #[serde(default)]
    pub importance: Option<ImportanceSummary>,
}

/// The importance-weight figures of a final evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportanceSummary {
    /// log Z estimate, its error, ESS of the final samples' weights.
    pub weights: ImportanceReport,
    /// The same metrics for as many samples drawn from the final ones by systematic importance
    /// resampling: what the sampler gives once reweighted toward p (not the AS protocol).
    /// Absent when the ESS is below `evaluation.min_resampled_ess`.
    pub resampled: Option<EvalReport>,
}

/// One evaluation: metrics, the data behind the plots, the samples and their log-weights.
struct Evaluation {
    report: EvalReport,
    data: crate::evaluate::EvalData,
    x: Vec<f64>,
    log_w: Vec<f64>,
    importance: Option<ImportanceReport>,
}

/// An open run directory with its trainer.
pub struct Run {
    dir: PathBuf,
    config: AsConfig,
    system: System,
    trainer: Trainer,
    /// Training seconds spent before this process (from the logs at the checkpoint).
    wall_offset: f64,
}

/// A trainer for `config`: network initialised from `training.seed`, threads and device set.
fn build_trainer(config: &AsConfig) -> Result<Trainer> {
    let device = crate::nn::device::configure(&config.device, config.threads)?;
    tch::manual_seed(config.training.seed as i64);
    let energy = crate::energy::by_name(&config.system)?;
    let layout = StateLayout::of(&*energy);
    let build = |root: &tch::nn::Path| -> Result<Box<dyn Control>> {
        Ok(match &config.network {
            NetworkConfig::Egnn(c) => Box::new(Egnn::for_layout(root, &layout, c.clone(), 1)?),
            NetworkConfig::Mlp(c) => Box::new(Mlp::new(root, layout.dim, c.clone())?),
        })
    };
    Trainer::new(energy, device, &build, config.training.clone())
}

impl Run {
    /// Opens the run directory `dir` for `config`: creates it (writing `config.toml`), or
    /// resumes it from its checkpoint when it already holds the same run. A directory holding
    /// a different run is an error; only `epochs`, `checkpoint_every`, `threads` and `device`
    /// may change.
    pub fn open(config: AsConfig, dir: &Path) -> Result<Run> {
        config.validate()?;
        let cfg_path = dir.join(CONFIG);
        if cfg_path.exists() {
            let old = AsConfig::load(&cfg_path)?;
            if !old.same_run_as(&config) {
                return Err(Error::Config {
                    key: "config".into(),
                    why: format!(
                        "{} already holds a different run (only `epochs`, `checkpoint_every`, \
                         `threads` and `device` may change on resume); use another --out or the config in {}",
                        dir.display(),
                        cfg_path.display()
                    ),
                });
            }
        }
        let mut trainer = build_trainer(&config)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(&cfg_path, config.to_toml().as_bytes())?;
        let ckpt = dir.join(CHECKPOINT);
        if checkpoint::exists(&ckpt) {
            trainer.load_checkpoint(&ckpt)?;
        }
        let done = trainer.epochs_done();
        let wall_offset =
            resume_logs(&dir.join(EPOCHS_LOG), &dir.join(METRICS_LOG), "epoch", done)?;
        Ok(Run {
            dir: dir.to_path_buf(),
            system: config.system()?,
            config,
            trainer,
            wall_offset,
        })
    }

    /// Opens an existing run directory as it was saved (for sampling).
    pub fn load(dir: &Path) -> Result<Run> {
        let cfg_path = dir.join(CONFIG);
        if !cfg_path.exists() {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: format!("not a run directory (no {CONFIG})"),
            });
        }
        let config = AsConfig::load(&cfg_path)?;
        let ckpt = dir.join(CHECKPOINT);
        if !checkpoint::exists(&ckpt) {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: "the run has no checkpoint yet".into(),
            });
        }
        let mut trainer = build_trainer(&config)?;
        trainer.load_checkpoint(&ckpt)?;
        Ok(Run {
            dir: dir.to_path_buf(),
            system: config.system()?,
            config,
            trainer,
            wall_offset: 0.0,
        })
    }

    /// The run's config.
    pub fn config(&self) -> &AsConfig {
        &self.config
    }

    /// The trainer (network, buffer, counters).
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// Path of a file inside the run directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Draws `n` samples with an `nfe`-point Euler–Maruyama grid and noise seeded by `seed`,
    /// in chunks that bound memory; returns them row-major `[n, dim]`.
    pub fn sample(
        &self,
        n: usize,
        nfe: usize,
        seed: u64,
        observer: &mut dyn FnMut(RunEvent),
    ) -> Result<Vec<f64>> {
        Ok(self.rollouts(n, nfe, seed, false, observer)?.0)
    }

    /// [`Run::sample`] (the same samples for the same seed) with the path-space importance
    /// log-weights of [`crate::sde::importance`] `[n]`: log w = −E(X_1) + ‖X_1‖²/(2H) +
    /// (d'/2) ln(2πH) + log dQ/dP^u. Costs one energy evaluation per sample.
    pub fn sample_weighted(
        &self,
        n: usize,
        nfe: usize,
        seed: u64,
        observer: &mut dyn FnMut(RunEvent),
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let (x, path) = self.rollouts(n, nfe, seed, true, observer)?;
        let (ratio, base_variance) = path.expect("weighted rollouts");
        let energy = self.system.energy.as_ref();
        let energies = energies_batch(energy, &x)?;
        let space = StateSpace::of(energy);
        let log_w = log_weights_in(space, &x, energy.dim(), &energies, &ratio, base_variance)?;
        Ok((x, log_w))
    }

    /// Rollouts in chunks; with `weighted`, also each path's log dQ/dP^u and the base variance.
    #[allow(clippy::type_complexity)]
    fn rollouts(
        &self,
        n: usize,
        nfe: usize,
        seed: u64,
        weighted: bool,
        observer: &mut dyn FnMut(RunEvent),
    ) -> Result<(Vec<f64>, Option<(Vec<f64>, f64)>)> {
        if nfe < 2 {
            return Err(Error::Config {
                key: "steps".into(),
                why: "a rollout needs at least 1 step".into(),
            });
        }
        let pairs = self
            .system
            .energy
            .point_cloud()
            .map_or(1, |p| p.n * (p.n - 1));
        let chunk = (PAIR_ROWS_PER_CHUNK / pairs).clamp(1, 1024);
        let mut noise = HostNoise::seeded(seed);
        let mut out = Vec::with_capacity(n * self.system.energy.dim());
        let mut ratio = Vec::new();
        let mut base_variance = f64::NAN;
        let mut done = 0;
        observer(RunEvent::Sampling { done, total: n });
        while done < n {
            let m = chunk.min(n - done);
            if weighted {
                let (x, r, h) = self.trainer.sample_weighted_with_nfe(m, nfe, &mut noise);
                out.extend(x);
                ratio.extend(r);
                base_variance = h;
            } else {
                out.extend(self.trainer.sample_with_nfe(m, nfe, &mut noise));
            }
            done += m;
            observer(RunEvent::Sampling { done, total: n });
        }
        Ok((out, weighted.then_some((ratio, base_variance))))
    }

    /// The reference samples of the evaluation (drawing and caching an MCMC reference when
    /// the config asks for one).
    fn reference(&self, observer: &mut dyn FnMut(RunEvent)) -> Result<Samples> {
        let energy = self.system.energy.as_ref();
        let ev = &self.config.evaluation;
        match self.config.reference_source()? {
            ReferenceSource::File(p) => load_samples(&p, energy),
            ReferenceSource::Exact => {
                let sampler = self.system.exact.as_ref().expect("checked by validate");
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ev.seed ^ 0x7e7e);
                Samples::from_rows(sampler.sample(ev.final_n_samples, &mut rng), energy.dim())
            }
            ReferenceSource::Mcmc => {
                let path = self.dir.join(REFERENCE);
                if !path.exists() {
                    observer(RunEvent::Status("drawing the MCMC reference"));
                    let mut cfg = crate::mcmc::reference::default_config_for(&self.config.system)
                        .unwrap_or_default();
                    cfg.n_samples = ev.final_n_samples;
                    cfg.seed = ev.seed ^ 0x7e7e;
                    cfg.validate()?;
                    let mut silent = crate::mcmc::progress::Silent;
                    let res = crate::mcmc::reference::run_reference(energy, &cfg, &mut silent)?;
                    let tmp = self.dir.join("reference.tmp.npy");
                    write_npy(&tmp, &[res.n_samples(), res.dim], &res.samples, false)?;
                    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
                }
                load_samples(&path, energy)
            }
        }
    }

    /// Samples `n` configurations (seed derived from the evaluation seed and `epoch`) and
    /// evaluates them against `reference`; also returns their importance log-weights and
    /// summary (`None` when every weight is zero).
    fn evaluate_at(
        &self,
        n: usize,
        reference: &Samples,
        observer: &mut dyn FnMut(RunEvent),
    ) -> Result<Evaluation> {
        let ev = &self.config.evaluation;
        let epoch = self.trainer.epochs_done() as u64;
        let seed = ev.seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (x, log_w) = self.sample_weighted(n, self.config.eval_nfe(), seed, observer)?;
        let dim = self.system.energy.dim();
        let generated = Samples::from_rows(x.clone(), dim)?;
        if generated.n == 0 {
            return Err(Error::Shape(format!(
                "all {n} generated samples are non-finite at epoch {epoch}: training diverged"
            )));
        }
        observer(RunEvent::Status("computing metrics"));
        let (report, data) = evaluate(&self.system, &generated, reference, &self.eval_options(n))?;
        let importance = ImportanceReport::from_log_weights(&log_w, self.system.log_z).ok();
        Ok(Evaluation {
            report,
            data,
            x,
            log_w,
            importance,
        })
    }

    fn eval_options(&self, n: usize) -> EvalOptions {
        let ev = &self.config.evaluation;
        EvalOptions {
            n: Some(n),
            seed: ev.seed,
            sinkhorn: (ev.sinkhorn_epsilon > 0.0 && self.system.energy.particles().is_none()).then(
                || SinkhornConfig {
                    epsilon: ev.sinkhorn_epsilon,
                    ..SinkhornConfig::default()
                },
            ),
            ..EvalOptions::default()
        }
    }

    /// The evaluation of `n` samples drawn by systematic importance resampling of `e`'s
    /// samples (seeded by the evaluation seed).
    fn evaluate_resampled(
        &self,
        e: &Evaluation,
        reference: &Samples,
    ) -> Result<(EvalReport, crate::evaluate::EvalData)> {
        let dim = self.system.energy.dim();
        let n = e.log_w.len();
        let seed = self.config.evaluation.seed ^ 0x5e5a;
        let x = resample_rows(&e.x, dim, &e.log_w, n, seed)?;
        let generated = Samples::from_rows(x, dim)?;
        evaluate(&self.system, &generated, reference, &self.eval_options(n))
    }

    fn log_evaluation(
        &self,
        report: &EvalReport,
        importance: Option<&ImportanceReport>,
        wall: f64,
        loss: f64,
        is_final: bool,
    ) -> Result<()> {
        let mut v = serde_json::to_value(report).expect("report serialises");
        let obj = v.as_object_mut().expect("report is an object");
        if let Some(i) = importance {
            obj.insert("log_z_estimate".into(), i.log_z_estimate.into());
            obj.insert("log_z_std_error".into(), i.log_z_std_error.into());
            obj.insert("ess_fraction".into(), i.ess_fraction.into());
        }
        obj.insert("epoch".into(), self.trainer.epochs_done().into());
        obj.insert("energy_evals".into(), self.trainer.energy_evals().into());
        obj.insert("loss".into(), loss.into());
        obj.insert("wall_seconds".into(), wall.into());
        obj.insert("final".into(), is_final.into());
        json_line(&self.dir.join(METRICS_LOG), &v)
    }

    /// Trains up to `epochs`, checkpointing every `checkpoint_every` epochs and evaluating
    /// every `evaluation.every`, then writes the final samples, `final.json` and plots.
    /// A run that is already complete returns its saved summary.
    pub fn train(&mut self, observer: &mut dyn FnMut(RunEvent)) -> Result<FinalSummary> {
        let total = self.config.epochs;
        let final_path = self.dir.join(FINAL);
        if self.trainer.epochs_done() >= total && final_path.exists() {
            let text =
                std::fs::read_to_string(&final_path).map_err(|e| Error::io(&final_path, e))?;
            let summary: FinalSummary = serde_json::from_str(&text).map_err(|e| Error::Format {
                path: final_path.clone(),
                why: e.to_string(),
            })?;
            if summary.epochs == self.trainer.epochs_done() {
                return Ok(summary);
            }
        }
        // A stale final.json (the run is being extended) must not outlive this call.
        if final_path.exists() {
            std::fs::remove_file(&final_path).map_err(|e| Error::io(&final_path, e))?;
        }
        truncate_log(
            &self.dir.join(METRICS_LOG),
            "epoch",
            self.trainer.epochs_done(),
        )?;
        let reference = self.reference(observer)?;
        let ev_every = self.config.evaluation.every;
        let ckpt = self.dir.join(CHECKPOINT);
        observer(RunEvent::Started {
            done: self.trainer.epochs_done(),
            total,
        });
        let start = Instant::now();
        let mut last_loss = f64::NAN;
        while self.trainer.epochs_done() < total {
            let r = self.trainer.epoch()?;
            last_loss = r.mean_loss;
            let wall = self.wall_offset + start.elapsed().as_secs_f64();
            json_line(
                &self.dir.join(EPOCHS_LOG),
                &EpochLine {
                    epoch: r.epoch,
                    loss: r.mean_loss,
                    log_variance: r.mean_log_variance,
                    mean_energy: r.mean_energy,
                    ess: Some(r.ess),
                    replay_ess: r.replay_ess,
                    energy_evals: r.energy_evals,
                    dropped: r.dropped,
                    wall_seconds: wall,
                },
            )?;
            observer(RunEvent::Epoch(&r));
            if r.epoch % self.config.checkpoint_every == 0 || r.epoch == total {
                self.trainer.save_checkpoint(&ckpt)?;
            }
            if ev_every > 0 && r.epoch % ev_every == 0 && r.epoch < total {
                let n = self.config.evaluation.n_samples;
                let e = self.evaluate_at(n, &reference, observer)?;
                self.log_evaluation(&e.report, e.importance.as_ref(), wall, r.mean_loss, false)?;
                observer(RunEvent::Evaluated {
                    epoch: r.epoch,
                    report: &e.report,
                    importance: e.importance.as_ref(),
                });
            }
        }
        let train_wall = self.wall_offset + start.elapsed().as_secs_f64();
        self.wall_offset = train_wall;
        if !checkpoint::exists(&ckpt) {
            self.trainer.save_checkpoint(&ckpt)?;
        }
        let n = self.config.evaluation.final_n_samples;
        observer(RunEvent::Status("final evaluation"));
        let e = self.evaluate_at(n, &reference, observer)?;
        let shape = match self.system.energy.point_cloud() {
            Some(p) => vec![n, p.n, p.spatial],
            None => vec![n, self.system.energy.dim()],
        };
        let tmp = self.dir.join("samples.tmp.npy");
        write_npy(&tmp, &shape, &e.x, false)?;
        let samples_path = self.dir.join(SAMPLES);
        std::fs::rename(&tmp, &samples_path).map_err(|err| Error::io(&samples_path, err))?;
        let tmp = self.dir.join("log_weights.tmp.npy");
        write_npy(&tmp, &[n], &e.log_w, true)?;
        let weights_path = self.dir.join(LOG_WEIGHTS);
        std::fs::rename(&tmp, &weights_path).map_err(|err| Error::io(&weights_path, err))?;
        write_plots(&self.dir.join(PLOTS), &self.system, &e.data)?;
        let importance = match &e.importance {
            Some(weights) => {
                let ess = weights.effective_sample_size();
                let resampled = if ess >= self.config.evaluation.min_resampled_ess {
                    observer(RunEvent::Status(
                        "evaluating the importance-resampled samples",
                    ));
                    let (report, data) = self.evaluate_resampled(&e, &reference)?;
                    write_plots(&self.dir.join(PLOTS).join("resampled"), &self.system, &data)?;
                    Some(report)
                } else {
                    None
                };
                Some(ImportanceSummary {
                    weights: weights.clone(),
                    resampled,
                })
            }
            None => None,
        };
        self.log_evaluation(
            &e.report,
            e.importance.as_ref(),
            train_wall,
            last_loss,
            true,
        )?;
        let summary = FinalSummary {
            system: self.config.system.clone(),
            epochs: self.trainer.epochs_done(),
            energy_evals: self.trainer.energy_evals(),
            train_wall_seconds: train_wall,
            n_samples: n,
            eval_nfe: self.config.eval_nfe(),
            report: e.report,
            importance,
        };
        let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
        write_atomic(&final_path, &json)?;
        observer(RunEvent::Evaluated {
            epoch: summary.epochs,
            report: &summary.report,
            importance: summary.importance.as_ref().map(|i| &i.weights),
        });
        Ok(summary)
    }
}
