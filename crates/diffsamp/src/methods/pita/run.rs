//! A PITA run directory: the temperature-ladder driver (REFERENCE §3).
//!
//! ```text
//! <run>/config.toml         the resolved config
//!       checkpoint/         networks, Adam moments, EMA weights, sample buffer, stage/step
//!       train.jsonl         every `log_every` steps: stage, losses, gradient norm
//!       metrics.jsonl       one line per annealing stage: γ, ESS, energies, evaluations
//!       samples_T<T>.npy    the samples collected at each temperature
//!       samples.npy         the final samples at the target temperature
//!       final.json          evaluation against the reference and the run totals
//!       plots/*.png         energies per temperature; energy and distance histograms
//! ```
//!
//! The ladder: MCMC at T_0 fills the buffer; for each stage i, train both networks on the
//! buffer, anneal the EMA model from β_i to β_{i+1} by FK-SMC, resample once against the
//! true energy, evaluate true energies and gradients of the new samples (the only energy
//! evaluations after the MCMC) and add them to the buffer. Checkpoints are taken every
//! `checkpoint_every` steps and after every stage; a killed run resumes at the stage and step
//! of its last checkpoint, bit-identically (all random streams are re-derived from the seed
//! and the step at each checkpoint).

use crate::energy::data::{read_npy, shared_data_file};
use crate::energy::{registry::System, Energy, EnergyBatch, ForceFieldEnergy, Particles, Tempered};
use crate::error::{Error, Result};
use crate::evaluate::{evaluate, write_plots, EvalOptions, EvalReport};
use crate::geometry::{random_rotation, rotate};
use crate::io::run_files::{json_line, truncate_log, write_atomic};
use crate::io::{load_samples, write_npy};
use crate::mcmc::md_reference::run_md_reference;
use crate::mcmc::reference::ReferenceConfig;
use crate::methods::pita::buffer::SampleBuffer;
use crate::methods::pita::config::{BatchSource, PitaConfig};
use crate::methods::pita::loss::{losses, Batch};
use crate::methods::pita::model::{AtBeta, PitaModel};
use crate::methods::pita::smc::{
    anneal, energy_at, ess_fraction, systematic_resample, SmcConfig, Space,
};
use crate::nn::{checkpoint, Adam, AdamConfig, Ema, StateLayout};
use crate::report::{histogram_overlay, traces, Series};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const CONFIG: &str = "config.toml";
const CHECKPOINT: &str = "checkpoint";
const TRAIN_LOG: &str = "train.jsonl";
const METRICS_LOG: &str = "metrics.jsonl";
const SAMPLES: &str = "samples.npy";
const FINAL: &str = "final.json";
const PLOTS: &str = "plots";

/// One FK-SMC draw with true energies and the run's final corrections ([`PitaRun::sample`]).
#[derive(Clone, Debug)]
pub struct Draw {
    /// The samples, `[n, dim]` row-major in the system's units (after resampling and fence).
    pub x: Vec<f64>,
    /// Their true energies.
    pub energies: Vec<f64>,
    /// Their true energy gradients, `[n, dim]`.
    pub grads: Vec<f64>,
    /// The annealing factor γ = β_to / β_from.
    pub gamma: f64,
    /// ESS fraction after each SMC step.
    pub ess: Vec<f64>,
    /// Resampling events during the SMC.
    pub resamples: usize,
    /// ESS fraction of the final true-energy resampling (1 without it).
    pub final_ess: f64,
    /// Samples the energy fence removed.
    pub fenced: usize,
    /// True-energy evaluations the draw took (one per particle).
    pub energy_evals: u64,
}

/// What a run reports while it works.
#[derive(Debug)]
pub enum PitaEvent<'a> {
    /// A status line.
    Status(&'a str),
    /// Training at `stage` (temperature `temperature`): `step` of `total` done.
    Training {
        stage: usize,
        temperature: f64,
        step: usize,
        total: usize,
        loss: f64,
    },
    /// Annealing toward `temperature`: SMC step `step` of `total`, current ESS fraction.
    Annealing {
        temperature: f64,
        step: usize,
        total: usize,
        ess: f64,
    },
    /// A stage's samples joined the buffer.
    Stage(&'a StageLine),
}

/// Checkpointed progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    /// Stages annealed so far (the buffer holds temperatures 0..=stage).
    stage: usize,
    /// Training steps done in the current stage.
    step: usize,
    /// Training steps done in total.
    global_step: usize,
    /// True-energy evaluations so far (MCMC + buffer).
    energy_evals: u64,
    /// Wall time so far (seconds, summed over resumes).
    wall_seconds: f64,
    /// Name of the checkpoint's buffer directory.
    buffer: String,
}

/// One line of `train.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainLine {
    pub global_step: usize,
    pub stage: usize,
    pub step: usize,
    pub temperature: f64,
    pub loss: f64,
    pub score: f64,
    pub energy_score: f64,
    pub energy_match: f64,
    pub target_score: f64,
    /// Joint gradient norm of both networks before clipping.
    pub grad_norm: f64,
    /// The score network's part of it.
    #[serde(default)]
    pub grad_norm_score: f64,
    /// The energy network's part of it.
    #[serde(default)]
    pub grad_norm_energy: f64,
    /// Mean relative inverse temperature β of the batch's samples (1/T of the stage when
    /// `training.batches_from = "current"`).
    #[serde(default)]
    pub batch_beta: f64,
    pub wall_seconds: f64,
}

/// One line of `metrics.jsonl`: an annealing stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageLine {
    /// Index of the new temperature in the ladder.
    pub stage: usize,
    pub temperature: f64,
    /// γ = β_{i+1} / β_i.
    pub gamma: f64,
    /// Smallest and mean ESS fraction over the weighted SMC steps.
    pub ess_min: f64,
    pub ess_mean: f64,
    /// ESS fraction (Σw)² / (n Σw²) after each weighted SMC step, before its resampling.
    #[serde(default)]
    pub ess: Vec<f64>,
    pub resamples: usize,
    /// ESS fraction of the final true-energy resampling (1 when it is off).
    pub final_ess: f64,
    /// Mean and standard deviation of E of the kept samples (target units).
    pub mean_energy: f64,
    pub std_energy: f64,
    /// Samples added to the buffer (non-finite energies left out).
    pub added: usize,
    /// Samples dropped by `final_energy_fence` (0 when it is off).
    #[serde(default)]
    pub fenced: usize,
    pub energy_evals: u64,
    pub smc_seconds: f64,
    pub wall_seconds: f64,
}

/// `final.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PitaSummary {
    pub system: String,
    pub temperatures: Vec<f64>,
    pub energy_evals: u64,
    pub training_steps: usize,
    pub wall_seconds: f64,
    pub n_samples: usize,
    /// Evaluation at the target temperature (absent without a reference).
    pub evaluation: Option<EvalReport>,
    pub stages: Vec<StageLine>,
    /// Per temperature: energy-W2 and mean energy of the stage's samples against a reference
    /// at that temperature (the file at the target, MCMC above it when
    /// `evaluation.tempered_references` is set).
    pub per_temperature: Vec<TemperatureCheck>,
}

/// The samples of one temperature against a reference at that temperature.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TemperatureCheck {
    pub temperature: f64,
    pub energy_w2: f64,
    pub mean_energy: f64,
    pub mean_energy_reference: f64,
    /// `"file"` or `"mcmc"`.
    pub reference: String,
}

fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn to_tensor(data: &[f64], shape: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(data)
        .view(shape)
        .to_kind(Kind::Float)
        .to_device(device)
}

fn to_host(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).view([-1]))
        .expect("a dense tensor converts to host")
}

/// A PITA run: config, networks (live and EMA), optimiser, buffer, progress.
pub struct PitaRun {
    dir: PathBuf,
    config: PitaConfig,
    system: System,
    particles: Option<Particles>,
    device: Device,
    vs: VarStore,
    model: PitaModel,
    ema_model: PitaModel,
    ema: Ema,
    adam: Adam,
    buffer: SampleBuffer,
    state: State,
    rng: ChaCha8Rng,
    stages: Vec<StageLine>,
}

impl PitaRun {
    /// Creates the run directory for `config`, or resumes the run it holds (which must have
    /// the same config).
    pub fn open(config: PitaConfig, dir: &Path) -> Result<Self> {
        config.validate()?;
        let device = crate::nn::device::configure(&config.device, config.threads)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg_path = dir.join(CONFIG);
        if cfg_path.exists() {
            let saved = PitaConfig::load(&cfg_path)?;
            if !saved.same_run_as(&config) {
                return Err(Error::Config {
                    key: "config".into(),
                    why: format!(
                        "{} holds a different run; use another --out or its config.toml",
                        dir.display()
                    ),
                });
            }
            if saved != config {
                write_atomic(&cfg_path, config.to_toml().as_bytes())?;
            }
        } else {
            write_atomic(&cfg_path, config.to_toml().as_bytes())?;
        }
        let system = crate::energy::registry::system(&config.system)?;
        let layout = StateLayout::of(&*system.energy);
        let particles = layout.points;
        tch::manual_seed(mix(config.seed, 0) as i64);
        let vs = VarStore::new(device);
        let model = PitaModel::new(&vs.root(), &config.network, &layout)?;
        let shadow = VarStore::new(device);
        let ema_model = PitaModel::new(&shadow.root(), &config.network, &layout)?;
        let ema = Ema::new(shadow, &vs, config.training.ema_decay)?;
        let adam = Adam::new(
            &vs,
            AdamConfig {
                learning_rate: config.training.learning_rate,
                ..AdamConfig::default()
            },
        )?;
        let mut run = Self {
            dir: dir.to_path_buf(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            system,
            particles,
            device,
            vs,
            model,
            ema_model,
            ema,
            adam,
            buffer: SampleBuffer::new(layout.dim),
            state: State::default(),
            stages: Vec::new(),
        };
        run.resume()?;
        Ok(run)
    }

    /// Whether `dir` holds a PITA run: its `config.toml` has a temperature ladder.
    pub fn is_run_dir(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join(CONFIG))
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .is_some_and(|t| t.contains_key("temperatures"))
    }

    /// Opens the run in `dir` with its own config; it must have a checkpoint.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join(CONFIG);
        if !cfg_path.exists() {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: format!("not a run directory (no {CONFIG})"),
            });
        }
        if !checkpoint::exists(&dir.join(CHECKPOINT)) {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                why: "the run has no checkpoint yet".into(),
            });
        }
        Self::open(PitaConfig::load(&cfg_path)?, dir)
    }

    /// The run's config.
    pub fn config(&self) -> &PitaConfig {
        &self.config
    }

    /// The live (last-step) networks, for checks against the averaged ones.
    pub fn live_model(&self) -> &PitaModel {
        &self.model
    }

    /// The EMA-weight model that generates (as of the last checkpoint when just opened).
    pub fn ema_model(&self) -> &PitaModel {
        &self.ema_model
    }

    /// The sample buffer.
    pub fn buffer(&self) -> &SampleBuffer {
        &self.buffer
    }

    fn ckpt(&self) -> PathBuf {
        self.dir.join(CHECKPOINT)
    }

    fn resume(&mut self) -> Result<()> {
        let ck = self.ckpt();
        if !checkpoint::exists(&ck) {
            return Ok(());
        }
        let state: State = checkpoint::read_state(&ck)?;
        checkpoint::load_tensors(&ck, state.global_step, &mut self.vs, &mut self.adam)?;
        checkpoint::load_average(&ck, state.global_step, self.ema.store_mut())?;
        self.buffer = SampleBuffer::load(&ck.join(&state.buffer), self.buffer.dim)?;
        truncate_log(&self.dir.join(TRAIN_LOG), "global_step", state.global_step)?;
        let kept = truncate_log(&self.dir.join(METRICS_LOG), "stage", state.stage)?;
        self.stages = kept
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        self.state = state;
        self.reseed();
        Ok(())
    }

    /// Re-derives the random streams from the seed and the progress (so that a resumed run
    /// continues exactly like an uninterrupted one).
    fn reseed(&mut self) {
        let k = (self.state.global_step as u64) << 8 | self.state.stage as u64;
        tch::manual_seed(mix(self.config.seed, k) as i64);
        self.rng = ChaCha8Rng::seed_from_u64(mix(self.config.seed ^ 0x5151, k));
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        let ck = self.ckpt();
        std::fs::create_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
        let gs = self.state.global_step;
        let buffer = format!("buffer-{:02}-{}", self.state.stage, self.buffer.len());
        let bdir = ck.join(&buffer);
        if !bdir.exists() {
            let tmp = ck.join(format!("{buffer}.tmp"));
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            self.buffer.save(&tmp)?;
            std::fs::rename(&tmp, &bdir).map_err(|e| Error::io(&bdir, e))?;
        }
        self.state.buffer = buffer.clone();
        checkpoint::save_with_average(
            &ck,
            gs,
            &self.vs,
            &self.adam,
            Some(self.ema.store()),
            &self.state,
        )?;
        for entry in std::fs::read_dir(&ck)
            .map_err(|e| Error::io(&ck, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("buffer-") && name != buffer {
                std::fs::remove_dir_all(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        self.reseed();
        Ok(())
    }

    /// Runs (or resumes) the ladder to the target temperature and writes the outputs.
    pub fn run(&mut self, observer: &mut dyn FnMut(PitaEvent)) -> Result<PitaSummary> {
        let start = Instant::now();
        let offset = self.state.wall_seconds;
        let wall = |start: &Instant| offset + start.elapsed().as_secs_f64();
        if self.buffer.is_empty() {
            observer(PitaEvent::Status(
                "initial samples at the first temperature (MCMC or MD)",
            ));
            self.initial_samples()?;
            self.state.wall_seconds = wall(&start);
            self.save_checkpoint()?;
        }
        let temps = self.config.temperatures.clone();
        while self.state.stage + 1 < temps.len() {
            let stage = self.state.stage;
            let total = if stage == 0 {
                self.config.training.steps_first
            } else {
                self.config.training.steps_per_stage
            };
            while self.state.step < total {
                let line = self.train_step(stage, temps[stage], wall(&start))?;
                observer(PitaEvent::Training {
                    stage,
                    temperature: temps[stage],
                    step: self.state.step,
                    total,
                    loss: line.loss,
                });
                if self
                    .state
                    .step
                    .is_multiple_of(self.config.training.log_every)
                    || self.state.step == total
                {
                    json_line(&self.dir.join(TRAIN_LOG), &line)?;
                }
                if self
                    .state
                    .step
                    .is_multiple_of(self.config.training.checkpoint_every)
                    || self.state.step == total
                {
                    self.state.wall_seconds = wall(&start);
                    self.save_checkpoint()?;
                }
            }
            let line = self.anneal_stage(stage, observer, &start, offset)?;
            json_line(&self.dir.join(METRICS_LOG), &line)?;
            observer(PitaEvent::Stage(&line));
            self.stages.push(line);
            self.state.stage += 1;
            self.state.step = 0;
            self.state.wall_seconds = wall(&start);
            self.save_checkpoint()?;
        }
        observer(PitaEvent::Status("final evaluation"));
        self.finish(wall(&start))
    }

    fn stage_file(&self, temperature: f64) -> PathBuf {
        self.dir.join(format!("samples_T{temperature}.npy"))
    }

    fn write_stage_samples(&self, temperature: f64, x: &[f64]) -> Result<()> {
        let n = x.len() / self.buffer.dim;
        write_npy(
            &self.stage_file(temperature),
            &self.sample_shape(n),
            x,
            false,
        )
    }

    /// MCMC with `sampler` (the initial sampler, `initial.mcmc` or `initial.md`, when `None`)
    /// on the system at relative temperature `t`, with `n_samples` samples (the sampler's
    /// when `None`) and `seed`: the samples `[n, dim]` and the energy evaluations they took.
    fn sample_at(
        &self,
        t: f64,
        sampler: Option<&ReferenceConfig>,
        n_samples: Option<usize>,
        seed: u64,
    ) -> Result<(Vec<f64>, u64)> {
        let mut silent = crate::mcmc::progress::Silent;
        if let (None, Some(md)) = (sampler, &self.config.initial.md) {
            let ff =
                crate::energy::registry::force_field(&self.config.system)?.ok_or_else(|| {
                    Error::Config {
                        key: "initial.md".into(),
                        why: format!("'{}' is no force field", self.config.system),
                    }
                })?;
            let kelvin = t * ff.kt() / crate::energy::force_field::GAS_CONSTANT_KJ;
            let hot = ForceFieldEnergy::new(ff.name(), ff.field().clone(), kelvin)?;
            let mut cfg = md.clone();
            cfg.n_samples = n_samples.unwrap_or(cfg.n_samples);
            cfg.seed = seed;
            let frames = read_npy(&shared_data_file("aldp/X100.npy")?)?;
            if frames.row_len() != hot.dim() {
                return Err(Error::Shape(format!(
                    "aldp/X100.npy holds {} coordinates per frame, '{}' needs {}",
                    frames.row_len(),
                    self.config.system,
                    hot.dim()
                )));
            }
            let x0 = &frames.data[..hot.dim()];
            let res = run_md_reference(&hot, &cfg, x0, &mut silent)?;
            return Ok((res.samples, res.energy_evals));
        }
        let Some(mcmc) = sampler.or(self.config.initial.mcmc.as_ref()) else {
            return Err(Error::Config {
                key: "initial".into(),
                why: "set exactly one of [initial.mcmc] and [initial.md]".into(),
            });
        };
        let tempered = Tempered::new(crate::energy::registry::by_name(&self.config.system)?, t)?;
        let mut cfg = mcmc.clone();
        if let Some(n) = n_samples {
            cfg.n_samples = n;
        }
        cfg.seed = seed;
        let res = crate::mcmc::reference::run_reference(&tempered, &cfg, &mut silent)?;
        Ok((res.samples, res.energy_evals))
    }

    fn initial_samples(&mut self) -> Result<()> {
        let t0 = self.config.temperatures[0];
        let (mut x, evals) = self.sample_at(t0, None, None, mix(self.config.seed, 7))?;
        if let Some(p) = self.particles {
            p.remove_com_batch(&mut x);
        }
        let eg = EnergyBatch::evaluate(self.system.energy.as_ref(), &x)?;
        self.state.energy_evals += evals + eg.energies.len() as u64;
        self.buffer.push(&x, 1.0 / t0, &eg.energies, &eg.grads)?;
        self.write_stage_samples(t0, &x)
    }

    /// One training batch of `training.batch_size` buffer entries (at this stage's temperature
    /// with `batches_from = "current"`), randomly rotated, in the model's units:
    /// y = x / s and target score ∇_y log p = −β s ∇_x U (s = `edm.data_scale`); with the
    /// batch's mean β in f64 (the batch holds β in f32).
    fn training_batch(&mut self, temperature: f64) -> Result<(Batch, f64)> {
        let cfg = &self.config.training;
        let (b, d) = (cfg.batch_size, self.buffer.dim);
        // The entries a batch may come from: all, or those at this stage's temperature.
        let pool: Option<Vec<usize>> = match cfg.batches_from {
            BatchSource::All => None,
            BatchSource::Current => {
                let beta = 1.0 / temperature;
                let close = |v: f64| (v - beta).abs() <= 1e-9 * beta;
                Some(
                    (0..self.buffer.len())
                        .filter(|&i| close(self.buffer.beta[i]))
                        .collect(),
                )
            }
        };
        let n = pool.as_ref().map_or(self.buffer.len(), Vec::len);
        if n == 0 {
            return Err(Error::Config {
                key: "training.batches_from".into(),
                why: format!("the buffer holds no sample at T = {temperature}"),
            });
        }
        let mut x0 = Vec::with_capacity(b * d);
        let mut grad = Vec::with_capacity(b * d);
        let mut beta = Vec::with_capacity(b);
        let mut reduced = Vec::with_capacity(b);
        for _ in 0..b {
            let i = self.rng.random_range(0..n);
            let i = pool.as_ref().map_or(i, |p| p[i]);
            let (mut xi, mut gi) = (
                self.buffer.x[i * d..(i + 1) * d].to_vec(),
                self.buffer.grad[i * d..(i + 1) * d].to_vec(),
            );
            if let (true, Some(p)) = (cfg.rotations, self.particles) {
                if let Some(r) = random_rotation(p.spatial, &mut self.rng) {
                    rotate(&mut xi, &r, p.spatial);
                    rotate(&mut gi, &r, p.spatial);
                }
            }
            let bi = self.buffer.beta[i];
            x0.extend(xi);
            grad.extend(gi.iter().map(|g| -bi * g));
            beta.push(bi);
            reduced.push(bi * self.buffer.energy[i]);
        }
        let batch_beta = beta.iter().sum::<f64>() / b as f64;
        let dev = self.device;
        let batch = Batch {
            x0: self
                .config
                .edm
                .to_model(&to_tensor(&x0, &[b as i64, d as i64], dev)),
            beta: to_tensor(&beta, &[b as i64], dev),
            reduced_energy: to_tensor(&reduced, &[b as i64], dev),
            target_score: self.config.edm.score_to_model(&to_tensor(
                &grad,
                &[b as i64, d as i64],
                dev,
            )),
        };
        Ok((batch, batch_beta))
    }

    fn train_step(&mut self, stage: usize, temperature: f64, wall: f64) -> Result<TrainLine> {
        let (batch, batch_beta) = self.training_batch(temperature)?;
        let cfg = &self.config.training;
        let (b, d) = (cfg.batch_size, self.buffer.dim);
        let dev = self.device;
        let sigma = self
            .config
            .edm
            .training_sigmas(b as i64, (Kind::Float, dev));
        let z = self
            .model
            .project(&Tensor::randn([b as i64, d as i64], (Kind::Float, dev)));
        let terms = losses(
            &self.model,
            &cfg.loss,
            self.config.edm.sigma_min,
            &batch,
            &sigma,
            &z,
        );
        let loss = terms.total.double_value(&[]);
        let mut norms = [f64::NAN; 2];
        let mut grad_norm = f64::NAN;
        if loss.is_finite() {
            self.adam.zero_grad();
            terms.total.backward();
            let bound = if cfg.clip_per_network {
                cfg.grad_clip
            } else {
                f64::INFINITY
            };
            let per = self
                .adam
                .clip_grad_norm_per_group(bound, &["score", "energy"]);
            norms = [per[0], per[1]];
            grad_norm = norms[0].hypot(norms[1]);
            if !cfg.clip_per_network {
                self.adam.clip_grad_norm(cfg.grad_clip);
            }
            if grad_norm.is_finite() {
                self.adam.step();
                self.ema.update(&self.vs, self.adam.step_count() as u64);
            }
        }
        self.state.step += 1;
        self.state.global_step += 1;
        Ok(TrainLine {
            global_step: self.state.global_step,
            stage,
            step: self.state.step,
            temperature,
            loss,
            score: terms.score,
            energy_score: terms.energy_score,
            energy_match: terms.energy_match,
            target_score: terms.target_score,
            grad_norm,
            grad_norm_score: norms[0],
            grad_norm_energy: norms[1],
            batch_beta,
            wall_seconds: wall,
        })
    }

    /// FK-SMC from the EMA model at β_from = 1/`t_from` to β_to = 1/`t_to` with the `smc`
    /// settings and torch seed `seed`, then true energies and gradients of the particles and
    /// the run's final corrections (true-energy resampling, energy fence). Changes nothing in
    /// the run.
    fn draw(
        &self,
        (t_from, t_to): (f64, f64),
        smc: &SmcConfig,
        seed: i64,
        observer: &mut dyn FnMut(PitaEvent),
    ) -> Result<Draw> {
        let (beta_from, beta_to) = (1.0 / t_from, 1.0 / t_to);
        let gamma = beta_to / beta_from;
        tch::manual_seed(seed);
        let target = AtBeta {
            model: &self.ema_model,
            beta: beta_from,
        };
        let total = smc.steps;
        let out = anneal(
            &target,
            &self.config.edm,
            gamma,
            Space {
                dim: self.buffer.dim,
                particles: self.particles,
                device: self.device,
            },
            smc,
            |k, ess| {
                if k % 10 == 0 || k + 1 == total {
                    observer(PitaEvent::Annealing {
                        temperature: t_to,
                        step: k + 1,
                        total,
                        ess,
                    })
                }
            },
        )?;
        let x = to_host(&self.config.edm.to_system(&out.samples));
        let eg = EnergyBatch::evaluate(self.system.energy.as_ref(), &x)?;
        let energy_evals = eg.energies.len() as u64;
        let d = self.buffer.dim;
        let (mut xs, mut es, mut gs, mut final_ess) =
            (x.clone(), eg.energies.clone(), eg.grads.clone(), 1.0);
        if self.config.final_resample {
            let sigma_min = self.config.edm.sigma_min;
            let e_model = energy_at(&target, &out.samples, sigma_min, smc.chunk);
            let e_true = Tensor::from_slice(&eg.energies);
            let log_w = (-e_true * beta_to
                + e_model.to_kind(Kind::Double).to_device(Device::Cpu) * gamma)
                .nan_to_num(f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
            let log_w = match self.config.final_resample_clamp {
                Some(q) => {
                    let cap = log_w.quantile_scalar(q, None, false, "linear");
                    log_w.minimum(&cap)
                }
                None => log_w,
            };
            final_ess = ess_fraction(&log_w);
            let idx: Vec<i64> = Vec::try_from(systematic_resample(&log_w)).expect("host indices");
            xs.clear();
            es.clear();
            gs.clear();
            for i in idx {
                let i = i as usize;
                xs.extend_from_slice(&x[i * d..(i + 1) * d]);
                gs.extend_from_slice(&eg.grads[i * d..(i + 1) * d]);
                es.push(eg.energies[i]);
            }
        }
        let mut fenced = 0;
        if let Some(k) = self.config.final_energy_fence {
            let keep = super::fence::kept(&es, k);
            fenced = es.len() - keep.len();
            if keep.is_empty() {
                return Err(Error::Config {
                    key: "final_energy_fence".into(),
                    why: format!("no new sample at T = {t_to} has a finite energy"),
                });
            }
            xs = keep
                .iter()
                .flat_map(|&i| xs[i * d..(i + 1) * d].to_vec())
                .collect();
            gs = keep
                .iter()
                .flat_map(|&i| gs[i * d..(i + 1) * d].to_vec())
                .collect();
            es = keep.iter().map(|&i| es[i]).collect();
        }
        Ok(Draw {
            x: xs,
            energies: es,
            grads: gs,
            gamma,
            ess: out.ess,
            resamples: out.resamples,
            final_ess,
            fenced,
            energy_evals,
        })
    }

    fn anneal_stage(
        &mut self,
        stage: usize,
        observer: &mut dyn FnMut(PitaEvent),
        start: &Instant,
        offset: f64,
    ) -> Result<StageLine> {
        let temps = &self.config.temperatures;
        let (t_from, t_to) = (temps[stage], temps[stage + 1]);
        let smc_start = Instant::now();
        let seed = mix(self.config.seed, 1_000_000 + stage as u64) as i64;
        let draw = self.draw((t_from, t_to), &self.config.smc, seed, observer)?;
        self.state.energy_evals += draw.energy_evals;
        let before = self.buffer.len();
        self.buffer
            .push(&draw.x, 1.0 / t_to, &draw.energies, &draw.grads)?;
        let added = self.buffer.len() - before;
        self.write_stage_samples(t_to, &draw.x)?;
        let finite: Vec<f64> = draw
            .energies
            .iter()
            .copied()
            .filter(|e| e.is_finite())
            .collect();
        let (mean, std) = crate::mcmc::diagnostics::mean_std(&finite);
        let ess = draw.ess;
        Ok(StageLine {
            stage: stage + 1,
            temperature: t_to,
            gamma: draw.gamma,
            ess_min: ess.iter().copied().fold(1.0, f64::min),
            ess_mean: ess.iter().sum::<f64>() / ess.len().max(1) as f64,
            ess,
            resamples: draw.resamples,
            final_ess: draw.final_ess,
            mean_energy: mean,
            std_energy: std,
            added,
            fenced: draw.fenced,
            energy_evals: self.state.energy_evals,
            smc_seconds: smc_start.elapsed().as_secs_f64(),
            wall_seconds: offset + start.elapsed().as_secs_f64(),
        })
    }

    /// `n` fresh samples at the target temperature from a finished run: the final stage's
    /// draw again (the last model, trained at the last-but-one temperature, annealed to the
    /// target by FK-SMC with the run's corrections), with `n` particles, `steps` SMC steps
    /// (the run's when `None`) and its own seed. Writes nothing; the draw's true energies are
    /// in [`Draw::energy_evals`].
    pub fn sample(
        &self,
        n: usize,
        steps: Option<usize>,
        seed: u64,
        observer: &mut dyn FnMut(PitaEvent),
    ) -> Result<Draw> {
        let temps = &self.config.temperatures;
        let last = temps.len() - 1;
        if self.state.stage < last {
            return Err(Error::Config {
                key: "run".into(),
                why: format!(
                    "{} has annealed {} of its {last} stages; finish it with `diffsamp pita` first",
                    self.dir.display(),
                    self.state.stage
                ),
            });
        }
        let mut smc = self.config.smc.clone();
        smc.population = n;
        if let Some(k) = steps {
            smc.steps = k;
        }
        smc.validate()?;
        let seed = mix(seed, 2_000_000) as i64;
        self.draw((temps[last - 1], temps[last]), &smc, seed, observer)
    }

    /// The shape of `n` samples as written to `.npy`: `[n, particles, spatial]` or `[n, dim]`.
    pub fn sample_shape(&self, n: usize) -> Vec<usize> {
        match self.particles {
            Some(p) => vec![n, p.n, p.spatial],
            None => vec![n, self.buffer.dim],
        }
    }

    fn finish(&mut self, wall: f64) -> Result<PitaSummary> {
        let energy = self.system.energy.as_ref();
        let temps = &self.config.temperatures;
        let target = temps[temps.len() - 1];
        let last = load_samples(&self.stage_file(target), energy)?;
        write_npy(
            &self.dir.join(SAMPLES),
            &self.sample_shape(last.n),
            &last.data,
            false,
        )?;
        let plots = self.dir.join(PLOTS);
        std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
        let mut evaluation = None;
        let mut reference_energies = Vec::new();
        if let Some(path) = self.config.reference_path()? {
            let reference = load_samples(&path, energy)?;
            let opts = EvalOptions {
                n: Some(self.config.evaluation.n_samples),
                seed: self.config.evaluation.seed,
                sinkhorn: None,
                ..EvalOptions::default()
            };
            let (report, data) = evaluate(&self.system, &last, &reference, &opts)?;
            write_plots(&plots, &self.system, &data)?;
            reference_energies = data.energies_reference;
            evaluation = Some(report);
        }
        // Energies of every temperature's samples (and the reference at the target), and
        // each against its own reference where there is one.
        let mut per_t = Vec::new();
        let mut per_temperature = Vec::new();
        for &t in temps {
            let e = if t == target {
                crate::energy::energies_batch(energy, &last.data)?
            } else {
                let s = load_samples(&self.stage_file(t), energy)?;
                crate::energy::energies_batch(energy, &s.data)?
            };
            let reference = if t == target && !reference_energies.is_empty() {
                Some((reference_energies.clone(), "file"))
            } else if t != target && self.config.evaluation.tempered_references {
                Some((self.tempered_reference(t)?, "mcmc"))
            } else {
                None
            };
            if let Some((r, source)) = reference {
                let finite = |v: &[f64]| {
                    v.iter()
                        .copied()
                        .filter(|x| x.is_finite())
                        .collect::<Vec<_>>()
                };
                let (ef, rf) = (finite(&e), finite(&r));
                let w2 = crate::metrics::energy_w2::wasserstein2_1d(&ef, &rf)?;
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                per_temperature.push(TemperatureCheck {
                    temperature: t,
                    energy_w2: w2.w2,
                    mean_energy: mean(&ef),
                    mean_energy_reference: mean(&rf),
                    reference: source.into(),
                });
                if t != target {
                    histogram_overlay(
                        &plots.join(format!("energy_T{t}.png")),
                        &format!("{}: energy at T = {t}", energy.name()),
                        "E (kT at the target temperature)",
                        &[
                            Series {
                                label: "PITA",
                                values: &ef,
                            },
                            Series {
                                label: "MCMC",
                                values: &rf,
                            },
                        ],
                        60,
                    )?;
                }
            }
            per_t.push((format!("T = {t}"), e));
        }
        if !reference_energies.is_empty() {
            per_t.push(("reference (T = 1)".into(), reference_energies));
        }
        let series: Vec<Series> = per_t
            .iter()
            .map(|(l, v)| Series {
                label: l,
                values: v,
            })
            .collect();
        histogram_overlay(
            &plots.join("energy_by_temperature.png"),
            &format!("{}: energies along the ladder", energy.name()),
            "E (kT at the target temperature)",
            &series,
            80,
        )?;
        let ess_labels: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("T = {} (γ = {:.3})", s.temperature, s.gamma))
            .collect();
        let ess_series: Vec<Series> = self
            .stages
            .iter()
            .zip(&ess_labels)
            .filter(|(s, _)| !s.ess.is_empty())
            .map(|(s, label)| Series {
                label,
                values: &s.ess,
            })
            .collect();
        if !ess_series.is_empty() {
            traces(
                &plots.join("ess.png"),
                &format!("{}: ESS of the Feynman–Kac SMC", energy.name()),
                "SMC step (weighted steps)",
                "ESS / n before resampling",
                &ess_series,
                1.0,
            )?;
        }
        let summary = PitaSummary {
            system: self.config.system.clone(),
            temperatures: temps.clone(),
            energy_evals: self.state.energy_evals,
            training_steps: self.state.global_step,
            wall_seconds: wall,
            n_samples: last.n,
            evaluation,
            stages: self.stages.clone(),
            per_temperature,
        };
        let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Format {
            path: self.dir.join(FINAL),
            why: e.to_string(),
        })?;
        write_atomic(&self.dir.join(FINAL), &json)?;
        Ok(summary)
    }
}

impl PitaRun {
    /// Reference samples' energies at relative temperature `t` (`evaluation.reference_mcmc`,
    /// else the initial sampler, with `evaluation.n_samples` samples), cached as
    /// `reference_T<t>.npy` beside a `reference_T<t>.json` of the settings that drew it; a
    /// file drawn with other settings (or without the record) is drawn again.
    fn tempered_reference(&self, t: f64) -> Result<Vec<f64>> {
        let energy = self.system.energy.as_ref();
        let ev = &self.config.evaluation;
        let seed = mix(ev.seed, t.to_bits());
        let path = self.dir.join(format!("reference_T{t}.npy"));
        let record_path = self.dir.join(format!("reference_T{t}.json"));
        // The settings as run: the sample count and seed replace the sampler's own.
        let own = ev.reference_mcmc.as_ref().map(|m| ReferenceConfig {
            n_samples: ev.n_samples,
            seed,
            ..m.clone()
        });
        let sampler = match &own {
            Some(m) => serde_json::json!({ "reference_mcmc": m }),
            None => serde_json::json!({ "initial": &self.config.initial }),
        };
        let record = serde_json::json!({
            "temperature": t,
            "sampler": sampler,
            "n_samples": ev.n_samples,
            "seed": seed,
        });
        let cached = path.exists()
            && std::fs::read(&record_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|r| r == record);
        if !cached {
            let (x, _) = self.sample_at(t, own.as_ref(), Some(ev.n_samples), seed)?;
            let tmp = self.dir.join("reference.tmp.npy");
            let n = x.len() / self.buffer.dim;
            write_npy(&tmp, &self.sample_shape(n), &x, false)?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            let text = serde_json::to_vec_pretty(&record).map_err(|e| Error::Format {
                path: record_path.clone(),
                why: e.to_string(),
            })?;
            write_atomic(&record_path, &text)?;
        }
        let s = load_samples(&path, energy)?;
        Ok(crate::energy::energies_batch(energy, &s.data)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::testing::torch_rng;

    /// A tiny DW-4 ladder T = 2 → 1 in a fresh directory named by `tag` (it seeds libtorch's
    /// global generator: callers hold [`torch_rng`]).
    fn tiny_run(data_scale: f64, tag: &str) -> PitaRun {
        let text = format!(
            r#"
system = "dw4"
temperatures = [2.0, 1.0]
seed = 0
threads = 1
[network.egnn]
n_layers = 1
hidden = 8
coords_range = 3.0
aggregation = "sum"
[edm]
sigma_min = 0.05
sigma_max = 20.0
rho = 7.0
p_mean = -1.2
p_std = 1.2
data_scale = {data_scale}
[initial.mcmc]
kernel = "mala"
n_chains = 4
warmup = 1
thinning = 1
n_samples = 4
step_size = 0.05
[training]
steps_first = 1
steps_per_stage = 1
batch_size = 5
learning_rate = 1e-3
grad_clip = 0.5
ema_decay = 0.9
checkpoint_every = 1
log_every = 1
rotations = false
batches_from = "current"
[smc]
population = 8
steps = 2
divergence = "exact"
resampling = "always"
resample_until = 0.9
clamp_quantile = 0.9
chunk = 8
[evaluation]
reference = "none"
n_samples = 4
"#
        );
        let config = PitaConfig::from_toml(&text, Path::new("tiny.toml")).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "diffsamp-pita-{tag}-{}-{data_scale}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        PitaRun::open(config, &dir).unwrap()
    }

    /// A DW-4 run with one buffer entry, so that every row of a batch is that entry.
    fn one_entry_run(data_scale: f64) -> (PitaRun, Vec<f64>, Vec<f64>) {
        let mut run = tiny_run(data_scale, "batch");
        let d = run.buffer.dim;
        let x: Vec<f64> = (0..d).map(|i| 0.3 * i as f64 - 1.0).collect();
        let g: Vec<f64> = (0..d).map(|i| 0.5 - 0.1 * i as f64).collect();
        run.buffer.push(&x, 0.5, &[1.5], &g).unwrap();
        (run, x, g)
    }

    #[test]
    fn training_batches_are_in_the_models_units() {
        let _rng = torch_rng();
        for s in [1.0, 0.25] {
            let (mut run, x, g) = one_entry_run(s);
            let (batch, batch_beta) = run.training_batch(2.0).unwrap();
            assert_eq!(batch_beta, 0.5);
            let (x0, score) = (to_host(&batch.x0), to_host(&batch.target_score));
            assert_eq!(x0.len(), 5 * x.len());
            for (j, (y, sc)) in x0.iter().zip(&score).enumerate() {
                let k = j % x.len();
                assert!((y - x[k] / s).abs() < 1e-5, "s = {s}: y {y} for x {}", x[k]);
                let want = -0.5 * s * g[k];
                assert!((sc - want).abs() < 1e-5, "s = {s}: score {sc}, want {want}");
            }
            assert!(to_host(&batch.beta).iter().all(|b| (b - 0.5).abs() < 1e-7));
            assert!(to_host(&batch.reduced_energy)
                .iter()
                .all(|u| (u - 0.75).abs() < 1e-6));
            std::fs::remove_dir_all(&run.dir).ok();
        }
    }

    #[test]
    fn a_batch_from_an_empty_temperature_names_the_key() {
        let _rng = torch_rng();
        let (mut run, _, _) = one_entry_run(1.0);
        let e = run.training_batch(1.0).unwrap_err().to_string();
        assert!(e.contains("batches_from") && e.contains("T = 1"), "{e}");
        std::fs::remove_dir_all(&run.dir).ok();
    }

    /// `sample` is the final stage's draw: with the stage's seed and population, the draw
    /// reproduces the stage's samples bit for bit; with `n` particles it returns `n` samples
    /// at the target temperature; an unfinished run is refused.
    #[test]
    fn fresh_samples_are_the_final_stages_draw() {
        let _rng = torch_rng();
        let mut run = tiny_run(1.0, "sample");
        let e = run.sample(8, None, 0, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("0 of its 1 stages"), "{e}");
        run.run(&mut |_| {}).unwrap();
        let stage = crate::io::read_npy(&run.stage_file(1.0)).unwrap();
        let seed = mix(run.config.seed, 1_000_000) as i64;
        let again = run
            .draw((2.0, 1.0), &run.config.smc, seed, &mut |_| {})
            .unwrap();
        let again: Vec<f64> = again.x.iter().map(|&v| v as f32 as f64).collect();
        assert_eq!(stage.data, again);
        let fresh = run.sample(12, Some(3), 7, &mut |_| {}).unwrap();
        assert_eq!((fresh.x.len(), fresh.energies.len()), (12 * 8, 12));
        assert_eq!(
            (fresh.ess.len(), fresh.gamma, fresh.energy_evals),
            (3, 2.0, 12)
        );
        assert!(fresh.x.iter().all(|v| v.is_finite()));
        let same = run.sample(12, Some(3), 7, &mut |_| {}).unwrap();
        assert_eq!(fresh.x, same.x);
        let other = run.sample(12, Some(3), 8, &mut |_| {}).unwrap();
        assert_ne!(fresh.x, other.x);
        let e = run.sample(0, None, 0, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("population"), "{e}");
        std::fs::remove_dir_all(&run.dir).ok();
    }
}
