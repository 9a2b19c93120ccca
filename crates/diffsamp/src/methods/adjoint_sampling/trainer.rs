//! The Adjoint Sampling outer loop: simulate → evaluate energy once → push → Adam steps.

use crate::energy::{Energy, EnergyBatch};
use crate::error::{Error, Result};
use crate::methods::adjoint_sampling::{
    log_variance_loss, ram_loss, terminal_adjoint, PathBatch, ReplayBuffer,
};
use crate::nn::{checkpoint, Adam, AdamConfig, Control, Ema};
use crate::sde::{
    importance, EulerMaruyama, Geometric, HostNoise, NoiseSource, Schedule, StateSpace,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind};

/// Builds a control network under the given variable-store path (called once for the live
/// network and, with an EMA, once more for the averaged copy).
pub type ControlBuilder<'a> = &'a dyn Fn(&tch::nn::Path) -> Result<Box<dyn Control>>;

/// Settings of the Adjoint Sampling loop (REFERENCE §1.5); defaults are the LJ-13 paper values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerSettings {
    /// Noise schedule (σ_min, σ_max).
    pub schedule: Geometric,
    /// Points of the Euler–Maruyama grid linspace(0, 1, nfe), ≥ 2 (paper: 1000 LJ, 200 DW-4).
    pub nfe: usize,
    /// Power p > 0 of the simulation grid t_k = (k / (nfe − 1))^p ([`crate::sde::power_grid`])
    /// of training, evaluation and sampling: 1 (the default, the paper's) is uniform, p > 1
    /// puts more steps early, where the geometric schedule adds most of the base variance. The
    /// regression ([`ram_loss`]) does not depend on the grid; the raw samples' discretisation
    /// error does (the importance weights are exact on any grid).
    #[serde(default = "power_one")]
    pub grid_power: f64,
    /// New samples simulated (and energies evaluated) per epoch, ≥ 1 (paper: 512).
    pub samples_per_epoch: usize,
    /// Adam steps per epoch, ≥ 1 (paper: 100).
    pub steps_per_epoch: usize,
    /// Minibatch size of each Adam step, ≥ 1 (paper: 512).
    pub batch_size: usize,
    /// Replay-buffer capacity, ≥ 1 (paper: 10 000).
    pub buffer_size: usize,
    /// Adam learning rate > 0 (paper: 1e-4) at the first epoch.
    pub learning_rate: f64,
    /// Half-life in epochs of an exponential learning-rate decay, η_e = η · 2^(−e / half-life)
    /// in epoch e (0-based); None (the default, the paper's): constant. It depends on the
    /// epoch only, so a resumed or extended run continues the same schedule.
    #[serde(default)]
    pub lr_half_life: Option<f64>,
    /// Per-particle (per-row for vector targets) bound on ‖∇E‖ in the adjoint (paper: 100).
    pub grad_clip: Option<f64>,
    /// Law of the regression time, t = u^p with u ~ U[0, 1]: p = 1 (the default, the
    /// paper's) is uniform, p > 1 puts more of the regression at early times, where σ(t) is
    /// largest and the control moves the samples most (under the geometric schedule with
    /// σ_max/σ_min ≥ 1000 the base variance h²(t) reaches 99.9 % of h²(1) by t = 0.5). The
    /// minimiser of the loss does not depend on p ([`ram_loss`]).
    #[serde(default = "power_one")]
    pub time_power: f64,
    /// Decay δ ∈ [0, 1) of an exponential moving average of the weights, updated after every
    /// Adam step (θ̄ ← δ_k θ̄ + (1 − δ_k) θ with the warm-up of [`Ema`]). When set, evaluation
    /// and sampling use the averaged weights; the training rollouts always use the live ones
    /// (the buffer follows the current control). None (the default, the paper's): no average.
    #[serde(default)]
    pub ema_decay: Option<f64>,
    /// Inverse temperature β_0 ∈ (0, 1] of the target exp(−β E) at the first epoch; β rises
    /// geometrically to 1 over `annealing_epochs` (see [`TrainerSettings::inverse_temperature_at`])
    /// and stays there. The adjoint of a sample uses the β of the epoch it was drawn in:
    /// a = clip(β ∇E) − X_1/h²(1). None (the default, the paper's): β = 1 throughout.
    /// Annealing keeps a multimodal target's mode weights from being decided by the noisy,
    /// hot first epochs: at small β the wells merge and split again as β rises.
    #[serde(default)]
    pub inverse_temperature_start: Option<f64>,
    /// Epochs R ≥ 1 of the β ramp (used with `inverse_temperature_start` only).
    #[serde(default = "default_annealing_epochs")]
    pub annealing_epochs: usize,
    /// Weight λ > 0 of the off-policy log-variance loss added to the RAM loss
    /// ([`crate::methods::adjoint_sampling::log_variance`]): every `log_variance_every`-th Adam
    /// step minimises RAM + λ · `log_variance_every` · L_LV on `log_variance_paths` of the
    /// epoch's own paths (tempered target exp(−βE) when annealing). None (the default, the
    /// paper's): RAM alone. Not in the AS paper: RAM cannot move mass between separated modes
    /// (their weights are a fixed point of its iteration); the log-variance term can.
    #[serde(default)]
    pub log_variance_weight: Option<f64>,
    /// Paths per log-variance term, ≥ 2 (at most the epoch's new samples are used).
    #[serde(default = "default_log_variance_paths")]
    pub log_variance_paths: usize,
    /// The log-variance term is added at every n-th Adam step of an epoch (n ≥ 1), weighted by
    /// n so that the weight per epoch does not depend on n; each term costs
    /// `log_variance_paths` × (nfe − 1) control evaluations with gradients.
    #[serde(default = "default_log_variance_every")]
    pub log_variance_every: usize,
    /// Huber threshold c > 0 (nats) of the log-variance term: deviations of a log-weight from
    /// the mean beyond c count linearly (see [`log_variance_loss`]). None: the plain variance.
    #[serde(default)]
    pub log_variance_huber: Option<f64>,
    /// First epoch (0-based) with the log-variance term (default 0): RAM alone before it. The
    /// log-weights of an untrained sampler spread over hundreds of nats; after a RAM warm-up
    /// the term only has to correct the mode weights.
    #[serde(default)]
    pub log_variance_from_epoch: usize,
    /// Exponent γ ∈ (0, 1] of importance-weighted replay: from epoch
    /// `replay_weight_from_epoch` on, the Adam steps draw buffer entries with probability
    /// ∝ w^γ instead of uniformly, where w is the entry's path-space importance weight
    /// ([`crate::sde::importance`], for the target exp(−βE) of the epoch it entered). With γ = 1
    /// the regression's X_1 follow the target whatever control drew them, so the minimiser of
    /// the RAM loss is the optimal control itself (the conditional mean of −a(X_1) under the
    /// target's reciprocal process) rather than one step of RAM's fixed-point iteration; γ < 1
    /// trades that bias for a larger effective sample. Each epoch's ESS of the buffer is
    /// reported. None (the default, the paper's): uniform replay. Not in the AS paper.
    #[serde(default)]
    pub replay_weight_power: Option<f64>,
    /// First epoch (0-based) of importance-weighted replay (default 0): uniform before it (the
    /// weights of an untrained sampler are concentrated on a handful of samples).
    #[serde(default)]
    pub replay_weight_from_epoch: usize,
    /// Seed of every random draw of the loop (simulation noise, bridge draws, buffer sampling).
    pub seed: u64,
}

impl Default for TrainerSettings {
    fn default() -> Self {
        Self {
            schedule: Geometric::default(),
            nfe: 1000,
            grid_power: 1.0,
            samples_per_epoch: 512,
            steps_per_epoch: 100,
            batch_size: 512,
            buffer_size: 10_000,
            learning_rate: 1e-4,
            lr_half_life: None,
            grad_clip: Some(100.0),
            time_power: 1.0,
            ema_decay: None,
            inverse_temperature_start: None,
            annealing_epochs: default_annealing_epochs(),
            log_variance_weight: None,
            log_variance_paths: default_log_variance_paths(),
            log_variance_every: default_log_variance_every(),
            log_variance_huber: None,
            log_variance_from_epoch: 0,
            replay_weight_power: None,
            replay_weight_from_epoch: 0,
            seed: 0,
        }
    }
}

/// The default of `time_power` and `grid_power`: 1, uniform (the paper's).
fn power_one() -> f64 {
    1.0
}

fn default_annealing_epochs() -> usize {
    100
}

fn default_log_variance_paths() -> usize {
    64
}

fn default_log_variance_every() -> usize {
    1
}

impl TrainerSettings {
    /// Checks the ranges documented on the fields; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::Config {
                key: key.to_string(),
                why: why.to_string(),
            })
        };
        self.schedule.validate().map_err(|e| e.within("schedule"))?;
        if self.nfe < 2 {
            return bad("nfe", "must be at least 2");
        }
        if !(self.grid_power.is_finite() && self.grid_power > 0.0) {
            return bad("grid_power", "must be positive and finite");
        }
        for (key, v) in [
            ("samples_per_epoch", self.samples_per_epoch),
            ("steps_per_epoch", self.steps_per_epoch),
            ("batch_size", self.batch_size),
            ("buffer_size", self.buffer_size),
        ] {
            if v == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be positive and finite");
        }
        if let Some(h) = self.lr_half_life {
            if !(h.is_finite() && h > 0.0) {
                return bad("lr_half_life", "must be positive and finite");
            }
        }
        if !(self.time_power.is_finite() && self.time_power > 0.0) {
            return bad("time_power", "must be positive and finite");
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad("ema_decay", "must be in [0, 1)");
            }
        }
        if let Some(c) = self.grad_clip {
            if c.is_nan() || c <= 0.0 {
                return bad("grad_clip", "must be positive");
            }
        }
        if let Some(b) = self.inverse_temperature_start {
            if !(b > 0.0 && b <= 1.0) {
                return bad("inverse_temperature_start", "must be in (0, 1]");
            }
        }
        if self.annealing_epochs == 0 {
            return bad("annealing_epochs", "must be at least 1");
        }
        if let Some(l) = self.log_variance_weight {
            if !(l.is_finite() && l > 0.0) {
                return bad("log_variance_weight", "must be positive and finite");
            }
        }
        if self.log_variance_paths < 2 {
            return bad("log_variance_paths", "must be at least 2");
        }
        if self.log_variance_every == 0 {
            return bad("log_variance_every", "must be at least 1");
        }
        if let Some(c) = self.log_variance_huber {
            if !(c.is_finite() && c > 0.0) {
                return bad("log_variance_huber", "must be positive and finite");
            }
        }
        if let Some(g) = self.replay_weight_power {
            if !(g > 0.0 && g <= 1.0) {
                return bad("replay_weight_power", "must be in (0, 1]");
            }
        }
        Ok(())
    }

    /// Inverse temperature of epoch e (0-based): β_e = β_0^(1 − e/R) for e < R, then 1
    /// (log β linear in the epoch); 1 without annealing. It depends on the epoch only, so a
    /// resumed or extended run continues the same ramp.
    pub fn inverse_temperature_at(&self, epoch: usize) -> f64 {
        match self.inverse_temperature_start {
            Some(b0) if epoch < self.annealing_epochs => {
                b0.powf(1.0 - epoch as f64 / self.annealing_epochs as f64)
            }
            _ => 1.0,
        }
    }

    /// Learning rate of epoch e (0-based): η · 2^(−e / half-life), or η.
    pub fn learning_rate_at(&self, epoch: usize) -> f64 {
        crate::nn::half_life_decay(self.learning_rate, self.lr_half_life, epoch)
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epochs completed (1 after the first).
    pub epoch: usize,
    /// Mean RAM loss over the epoch's Adam steps.
    pub mean_loss: f64,
    /// Mean log-variance loss over the steps that had one (with `log_variance_weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_log_variance: Option<f64>,
    /// Mean energy E(X_1) of the epoch's new samples (finite ones).
    pub mean_energy: f64,
    /// Effective sample size of the epoch's new samples under their path-space importance
    /// weights, as a fraction of `samples_per_epoch` (0 when none is finite).
    pub ess: f64,
    /// With `replay_weight_power` γ: the ESS of the buffer's weights w^γ as a fraction of its
    /// entries, after this epoch's push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_ess: Option<f64>,
    /// Energy evaluations so far (each new sample costs one E + ∇E).
    pub energy_evals: u64,
    /// New samples with a non-finite state, energy or gradient, not pushed.
    pub dropped: usize,
}

/// Adjoint Sampling trainer: owns the control network's parameters, Adam, the replay buffer
/// and the run's noise stream.
pub struct Trainer {
    energy: Box<dyn Energy>,
    /// R^d, the zero-COM space of points (particles or atoms: COM removal and per-point
    /// gradient clipping) or the torus.
    space: StateSpace,
    vs: VarStore,
    control: Box<dyn Control>,
    optimizer: Adam,
    /// The averaged weights and the network that reads them (with `ema_decay`).
    average: Option<(Ema, Box<dyn Control>)>,
    buffer: ReplayBuffer,
    noise: HostNoise,
    em: EulerMaruyama,
    settings: TrainerSettings,
    epoch: usize,
    energy_evals: u64,
}

impl Trainer {
    /// A trainer towards exp(−`energy`) of the control network that `build` makes on
    /// `device` (built once more for the averaged weights when `settings.ema_decay` is set).
    pub fn new(
        energy: Box<dyn Energy>,
        device: Device,
        build: ControlBuilder,
        settings: TrainerSettings,
    ) -> Result<Self> {
        settings.validate()?;
        let vs = VarStore::new(device);
        let control = build(&vs.root())?;
        let average = match settings.ema_decay {
            Some(decay) => {
                let shadow = VarStore::new(device);
                let copy = build(&shadow.root())?;
                Some((Ema::new(shadow, &vs, decay)?, copy))
            }
            None => None,
        };
        let dim = energy.dim();
        let space = StateSpace::of(energy.as_ref());
        let adam = AdamConfig {
            learning_rate: settings.learning_rate,
            ..AdamConfig::default()
        };
        let optimizer = Adam::new(&vs, adam)?;
        let buffer = ReplayBuffer::new(settings.buffer_size, dim, settings.seed ^ 0x5eed_b0ff)?;
        let em = EulerMaruyama {
            times: crate::sde::power_grid(settings.nfe, settings.grid_power),
            ..EulerMaruyama::for_space(settings.nfe, dim, space, vs.device())
        };
        Ok(Self {
            noise: HostNoise::seeded(settings.seed),
            energy,
            space,
            vs,
            control,
            optimizer,
            average,
            buffer,
            em,
            settings,
            epoch: 0,
            energy_evals: 0,
        })
    }

    /// The replay buffer.
    pub fn buffer(&self) -> &ReplayBuffer {
        &self.buffer
    }

    /// The network parameters.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// The averaged weights, with `ema_decay`.
    pub fn average_store(&self) -> Option<&VarStore> {
        self.average.as_ref().map(|(ema, _)| ema.store())
    }

    /// The network that samples: the averaged one with `ema_decay`, else the live one.
    fn sampling_control(&self) -> &dyn Control {
        match &self.average {
            Some((_, net)) => net.as_ref(),
            None => self.control.as_ref(),
        }
    }

    /// Draws `n` samples X_1 `[n, dim]` (f64) from the sampling control (averaged weights
    /// with `ema_decay`, else the current ones) with noise from `noise`, on the training
    /// grid. Evaluation should pass its own stream, so that how often a run is evaluated does
    /// not change its training.
    pub fn sample(&self, n: usize, noise: &mut dyn NoiseSource) -> Vec<f64> {
        self.sample_on(&self.em, n, noise)
    }

    /// [`Trainer::sample`] on another grid of `nfe` points (e.g. 1000 for evaluation).
    pub fn sample_with_nfe(&self, n: usize, nfe: usize, noise: &mut dyn NoiseSource) -> Vec<f64> {
        self.sample_on(&self.grid(nfe), n, noise)
    }

    /// [`Trainer::sample_with_nfe`] (the same X_1 for the same noise) with the path terms of the
    /// importance weights ([`crate::sde::importance`]): returns X_1 `[n, dim]`, log dQ/dP^u of
    /// each path `[n]` and the grid's base variance H.
    pub fn sample_weighted_with_nfe(
        &self,
        n: usize,
        nfe: usize,
        noise: &mut dyn NoiseSource,
    ) -> (Vec<f64>, Vec<f64>, f64) {
        let em = self.grid(nfe);
        let schedule = &self.settings.schedule;
        let rollout = em.simulate_with_path_weights(schedule, self.sampling_control(), n, noise);
        let ratio = rollout.log_base_ratio.as_ref().expect("tracked");
        (
            to_host(&rollout.x1),
            to_host(ratio),
            em.base_variance(schedule),
        )
    }

    fn grid(&self, nfe: usize) -> EulerMaruyama {
        EulerMaruyama {
            times: crate::sde::power_grid(nfe, self.settings.grid_power),
            ..self.em.clone()
        }
    }

    fn sample_on(&self, em: &EulerMaruyama, n: usize, noise: &mut dyn NoiseSource) -> Vec<f64> {
        let rollout = em.simulate(&self.settings.schedule, self.sampling_control(), n, noise);
        to_host(&rollout.x1)
    }

    /// One epoch: simulate `samples_per_epoch` paths (with their path-space log-weights),
    /// evaluate E and ∇E once per new X_1, push (X_1, a(X_1), log w) into the buffer, then take
    /// `steps_per_epoch` Adam steps on the RAM loss of buffer minibatches (drawn uniformly, or
    /// by importance weight with `replay_weight_power`).
    pub fn epoch(&mut self) -> Result<EpochReport> {
        let dim = self.energy.dim();
        let n_new = self.settings.samples_per_epoch;
        // With the log-variance term the rollout keeps its paths (same noise, same X_1).
        let with_log_variance = self.settings.log_variance_weight.is_some()
            && self.epoch >= self.settings.log_variance_from_epoch;
        let (rollout, states) = if with_log_variance {
            let (r, states) = self.em.simulate_paths(
                &self.settings.schedule,
                &*self.control,
                n_new,
                &mut self.noise,
            );
            (r, Some(states))
        } else {
            let r = self.em.simulate_with_path_weights(
                &self.settings.schedule,
                &*self.control,
                n_new,
                &mut self.noise,
            );
            (r, None)
        };
        let x1 = to_host(&rollout.x1);
        let log_ratio = to_host(rollout.log_base_ratio.as_ref().expect("tracked"));
        let s = &self.settings;
        let eval = EnergyBatch::evaluate(&*self.energy, &x1)?;
        self.energy_evals += s.samples_per_epoch as u64;
        let (mut kept_x, mut kept_g, mut energies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut kept_rows, mut kept_ratio) = (Vec::new(), Vec::new());
        for (i, ((x, g), &e)) in x1
            .chunks_exact(dim)
            .zip(eval.grads.chunks_exact(dim))
            .zip(&eval.energies)
            .enumerate()
        {
            if e.is_finite() && x.iter().chain(g).all(|v| v.is_finite()) {
                kept_x.extend_from_slice(x);
                kept_g.extend_from_slice(g);
                energies.push(e);
                kept_rows.push(i as i64);
                kept_ratio.push(log_ratio[i]);
            }
        }
        let dropped = s.samples_per_epoch - energies.len();
        let beta = s.inverse_temperature_at(self.epoch);
        let tempered: Vec<f64> = energies.iter().map(|e| beta * e).collect();
        let h = self.em.base_variance(&s.schedule);
        let paths = match states {
            Some(states) if energies.len() >= 2 => {
                Some(self.path_batch(states, &kept_rows, &kept_x, &tempered, h)?)
            }
            _ => None,
        };
        if beta != 1.0 {
            kept_g.iter_mut().for_each(|g| *g *= beta);
        }
        let h2_1 = s.schedule.h2_terminal();
        let adjoint = terminal_adjoint(&kept_x, &kept_g, dim, h2_1, self.space, s.grad_clip);
        let log_w =
            importance::log_weights_in(self.space, &kept_x, dim, &tempered, &kept_ratio, h)?;
        let ess = if !log_w.iter().any(|v| v.is_finite()) {
            0.0
        } else {
            importance::ImportanceReport::from_log_weights(&log_w, None)?.effective_sample_size()
                / s.samples_per_epoch as f64
        };
        self.buffer.push(&kept_x, &adjoint, &log_w)?;
        let replay_power = s
            .replay_weight_power
            .filter(|_| self.epoch >= s.replay_weight_from_epoch);
        let (mut loss_sum, mut lv_sum, mut lv_count) = (0.0, 0.0, 0usize);
        let device = self.vs.device();
        self.optimizer
            .set_learning_rate(s.learning_rate_at(self.epoch))?;
        for step in 0..s.steps_per_epoch {
            let batch = match replay_power {
                Some(power) => self.buffer.sample_weighted(s.batch_size, power, device),
                None => self.buffer.sample(s.batch_size, device),
            };
            let Some(batch) = batch else {
                break;
            };
            let ram = ram_loss(
                &*self.control,
                &s.schedule,
                &batch.x1,
                &batch.adjoint,
                self.space,
                s.time_power,
                &mut self.noise,
            );
            loss_sum += ram.double_value(&[]);
            let loss = match (&paths, s.log_variance_weight) {
                (Some(paths), Some(lambda)) if step % s.log_variance_every == 0 => {
                    let rows = random_rows(paths, s.log_variance_paths, &mut self.noise);
                    let lv = log_variance_loss(
                        &*self.control,
                        &s.schedule,
                        paths,
                        &rows,
                        s.log_variance_huber,
                    );
                    lv_sum += lv.double_value(&[]);
                    lv_count += 1;
                    ram + lv * (lambda * s.log_variance_every as f64)
                }
                _ => ram,
            };
            self.optimizer.backward_step(&loss);
            if let Some((ema, _)) = &mut self.average {
                ema.update(&self.vs, self.optimizer.step_count() as u64);
            }
        }
        self.epoch += 1;
        let mean_energy = if energies.is_empty() {
            f64::NAN
        } else {
            energies.iter().sum::<f64>() / energies.len() as f64
        };
        Ok(EpochReport {
            epoch: self.epoch,
            mean_loss: loss_sum / s.steps_per_epoch as f64,
            mean_log_variance: (lv_count > 0).then(|| lv_sum / lv_count as f64),
            mean_energy,
            ess,
            replay_ess: s.replay_weight_power.map(|g| self.buffer.ess_fraction(g)),
            energy_evals: self.energy_evals,
            dropped,
        })
    }
}

impl Trainer {
    /// The epoch's paths that were kept (rows `kept_rows` of `states`, with their X_1 and
    /// tempered energies βE) and their terminal log-target −βE − log p_H(X_1), H = `h` the
    /// grid's base variance.
    fn path_batch(
        &self,
        states: tch::Tensor,
        kept_rows: &[i64],
        kept_x: &[f64],
        tempered: &[f64],
        h: f64,
    ) -> Result<PathBatch> {
        let dim = self.energy.dim();
        let zeros = vec![0.0; tempered.len()];
        let log_target = importance::log_weights_in(self.space, kept_x, dim, tempered, &zeros, h)?;
        let rows = tch::Tensor::from_slice(kept_rows).to_device(states.device());
        let log_target = tch::Tensor::from_slice(&log_target).to_device(states.device());
        Ok(PathBatch {
            times: self.em.times.clone(),
            space: self.space,
            states: states.index_select(0, &rows),
            log_target,
        })
    }
}

/// `m` distinct rows of `paths` (all when there are fewer), drawn from `noise`: the indices of
/// the m smallest of n uniform keys.
fn random_rows(paths: &PathBatch, m: usize, noise: &mut dyn NoiseSource) -> tch::Tensor {
    let n = paths.states.size()[0] as usize;
    let keys = noise.uniform(n);
    let mut order: Vec<i64> = (0..n as i64).collect();
    order.sort_by(|&a, &b| keys[a as usize].total_cmp(&keys[b as usize]));
    order.truncate(m.min(n));
    tch::Tensor::from_slice(&order).to_device(paths.states.device())
}

/// A tensor `[n, dim]` as a row-major f64 host vector.
fn to_host(x: &tch::Tensor) -> Vec<f64> {
    let flat = x
        .to_kind(Kind::Double)
        .to_device(tch::Device::Cpu)
        .flatten(0, -1);
    Vec::<f64>::try_from(&flat).expect("f64 tensor to host")
}

/// Everything of a [`Trainer`] besides tensors: loop counters, buffer and noise stream.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainerState {
    settings: TrainerSettings,
    epoch: usize,
    energy_evals: u64,
    buffer: ReplayBuffer,
    noise: HostNoise,
}

impl Trainer {
    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Energy (+ gradient) evaluations so far.
    pub fn energy_evals(&self) -> u64 {
        self.energy_evals
    }

    /// Writes a checkpoint into the directory `dir` (created if needed): network weights and
    /// Adam moments as safetensors, loop state (settings, counters, buffer, RNG) as JSON.
    /// Resuming from it with [`Trainer::load_checkpoint`] continues bit for bit.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let state = TrainerState {
            settings: self.settings.clone(),
            epoch: self.epoch,
            energy_evals: self.energy_evals,
            buffer: self.buffer.clone(),
            noise: self.noise.clone(),
        };
        checkpoint::save_with_average(
            dir,
            self.epoch,
            &self.vs,
            &self.optimizer,
            self.average_store(),
            &state,
        )
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] into this trainer, which
    /// must have been built with the same settings and network.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let state: TrainerState = checkpoint::read_state(dir)?;
        if state.settings != self.settings {
            return Err(Error::Format {
                path: dir.join(checkpoint::STATE),
                why: "checkpoint settings differ from this trainer's".into(),
            });
        }
        state.buffer.validate()?;
        checkpoint::load_tensors(dir, state.epoch, &mut self.vs, &mut self.optimizer)?;
        if let Some((ema, _)) = &mut self.average {
            checkpoint::load_average(dir, state.epoch, ema.store_mut())?;
        }
        self.epoch = state.epoch;
        self.energy_evals = state.energy_evals;
        self.buffer = state.buffer;
        self.noise = state.noise;
        Ok(())
    }
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("energy", &self.energy.name())
            .field("settings", &self.settings)
            .field("epoch", &self.epoch)
            .field("energy_evals", &self.energy_evals)
            .field("buffer_len", &self.buffer.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::checkpoint::{optimizer_file, weights_file, STATE};
    use crate::nn::layers::testing::torch_rng;
    use crate::nn::{Egnn, EgnnConfig, Mlp, MlpConfig};
    use tch::Device;

    /// N(μ, s² I) in 2-D: E = ‖x − μ‖² / (2 s²).
    struct Gauss {
        mu: [f64; 2],
        s2: f64,
    }

    impl Energy for Gauss {
        fn name(&self) -> &str {
            "gauss2"
        }
        fn dim(&self) -> usize {
            2
        }
        fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
            let mut e = 0.0;
            for i in 0..2 {
                let d = x[i] - self.mu[i];
                grad[i] = d / self.s2;
                e += d * d / (2.0 * self.s2);
            }
            e
        }
    }

    fn trainer(seed: u64) -> Trainer {
        trainer_with(seed, None)
    }

    /// A trainer of a `hidden` × `n_layers` MLP on a 2-D `energy`, its weights drawn from
    /// libtorch's seed `seed`.
    fn mlp_trainer(
        energy: Box<dyn Energy>,
        (hidden, n_layers): (usize, usize),
        settings: TrainerSettings,
        seed: i64,
    ) -> Trainer {
        tch::manual_seed(seed);
        let cfg = MlpConfig {
            hidden,
            n_layers,
            n_frequencies: 4,
            max_frequency: 8.0,
            length_scale: 1.0,
            periodic: false,
        };
        let build = |p: &tch::nn::Path| -> Result<Box<dyn Control>> {
            Ok(Box::new(Mlp::new(p, 2, cfg.clone())?))
        };
        Trainer::new(energy, Device::Cpu, &build, settings).unwrap()
    }

    /// A trainer of an `n_layers` × `hidden` EGNN on the particle system `energy`, its weights
    /// drawn from libtorch's seed `seed`.
    fn egnn_trainer(
        energy: Box<dyn Energy>,
        (n_layers, hidden): (usize, usize),
        settings: TrainerSettings,
        seed: i64,
    ) -> Trainer {
        tch::manual_seed(seed);
        let p = energy.particles().expect("a particle system");
        let cfg = EgnnConfig {
            n_layers,
            hidden,
            ..EgnnConfig::default()
        };
        let build = |path: &tch::nn::Path| -> Result<Box<dyn Control>> {
            Ok(Box::new(Egnn::new(path, p, cfg.clone())?))
        };
        Trainer::new(energy, Device::Cpu, &build, settings).unwrap()
    }

    fn trainer_with(seed: u64, ema_decay: Option<f64>) -> Trainer {
        let settings = TrainerSettings {
            schedule: Geometric::new(1e-3, 1.0).unwrap(),
            nfe: 50,
            samples_per_epoch: 128,
            steps_per_epoch: 25,
            batch_size: 128,
            buffer_size: 1024,
            learning_rate: 3e-3,
            lr_half_life: None,
            grad_clip: Some(100.0),
            time_power: 1.0,
            ema_decay,
            inverse_temperature_start: None,
            annealing_epochs: 100,
            seed,
            ..TrainerSettings::default()
        };
        let energy = Box::new(Gauss {
            mu: [1.0, -0.5],
            s2: 0.1,
        });
        mlp_trainer(energy, (32, 2), settings, seed as i64)
    }

    #[test]
    fn smoke_run_on_a_gaussian_lowers_the_loss_and_moves_samples_to_the_target() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let mut tr = trainer(3);
        let reports: Vec<EpochReport> = (0..12).map(|_| tr.epoch().unwrap()).collect();
        let first = &reports[0];
        let last = reports.last().unwrap();
        assert_eq!(last.energy_evals, 12 * 128);
        assert_eq!(tr.buffer().len(), 1024);
        assert!(
            last.mean_loss < 0.5 * first.mean_loss,
            "loss {} -> {}",
            first.mean_loss,
            last.mean_loss
        );
        // Under the target E = χ²₂/2 has mean 1; the untrained base process gives ≈ 15.
        assert!(first.mean_energy > 5.0);
        assert!(
            (0.6..1.6).contains(&last.mean_energy),
            "{}",
            last.mean_energy
        );
        let x = tr.sample_with_nfe(2000, 100, &mut HostNoise::seeded(1));
        let mean = |k: usize| x.iter().skip(k).step_by(2).sum::<f64>() / 1000.0 / 2.0;
        // Target mean (1, −0.5); the base process alone would give (0, 0).
        assert!((mean(0) - 1.0).abs() < 0.25, "mean x {}", mean(0));
        assert!((mean(1) + 0.5).abs() < 0.25, "mean y {}", mean(1));
    }

    /// p ∝ 0.8 N((−1.5, 0), 0.1 I) + 0.2 N((1.5, 0), 0.1 I): two modes 4.7 s.d. apart, the
    /// lighter one on the right.
    struct TwoModes;

    impl TwoModes {
        const WEIGHTS: [f64; 2] = [0.8, 0.2];
        const CENTRES: [f64; 2] = [-1.5, 1.5];
        const S2: f64 = 0.1;
    }

    impl Energy for TwoModes {
        fn name(&self) -> &str {
            "two-modes"
        }
        fn dim(&self) -> usize {
            2
        }
        fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
            let l: Vec<f64> = (0..2)
                .map(|k| {
                    let d2 = (x[0] - Self::CENTRES[k]).powi(2) + x[1] * x[1];
                    Self::WEIGHTS[k].ln() - d2 / (2.0 * Self::S2)
                })
                .collect();
            let m = l[0].max(l[1]);
            let z: f64 = l.iter().map(|v| (v - m).exp()).sum();
            let r: Vec<f64> = l.iter().map(|v| (v - m).exp() / z).collect();
            grad[0] = (0..2)
                .map(|k| r[k] * (x[0] - Self::CENTRES[k]))
                .sum::<f64>()
                / Self::S2;
            grad[1] = x[1] / Self::S2;
            -(m + z.ln())
        }
    }

    /// Fractions of 2000 samples in the light (right) mode of [`TwoModes`] after every tenth
    /// epoch of `epochs` of training with the settings of this test family changed by `tweak`
    /// (the last entry is after the final epoch).
    fn light_mode_fractions(tweak: &dyn Fn(&mut TrainerSettings), epochs: usize) -> Vec<f64> {
        let mut settings = TrainerSettings {
            schedule: Geometric::new(1e-3, 1.5).unwrap(),
            nfe: 50,
            samples_per_epoch: 256,
            steps_per_epoch: 25,
            batch_size: 256,
            buffer_size: 2560,
            learning_rate: 1e-3,
            log_variance_paths: 64,
            seed: 0,
            ..TrainerSettings::default()
        };
        tweak(&mut settings);
        let with_lv = settings.log_variance_weight.is_some();
        let with_replay_weights = settings.replay_weight_power.is_some();
        let mut tr = mlp_trainer(Box::new(TwoModes), (64, 3), settings, 0);
        let mut fractions = Vec::new();
        for e in 1..=epochs {
            let r = tr.epoch().unwrap();
            assert_eq!(r.mean_log_variance.is_some(), with_lv);
            assert_eq!(r.replay_ess.is_some(), with_replay_weights);
            assert!((0.0..=1.0).contains(&r.ess), "ESS {}", r.ess);
            if e % 10 == 0 || e == epochs {
                let x = tr.sample(2000, &mut HostNoise::seeded(1));
                fractions.push(x.chunks_exact(2).filter(|r| r[0] > 0.0).count() as f64 / 2000.0);
            }
        }
        fractions
    }

    #[test]
    fn the_log_variance_term_moves_mass_between_separated_modes() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let epochs = 80;
        let ram = *light_mode_fractions(&|_| {}, epochs).last().unwrap();
        let lv = *light_mode_fractions(&|s| s.log_variance_weight = Some(0.5), epochs)
            .last()
            .unwrap();
        eprintln!("light-mode fraction: RAM {ram}, RAM + log-variance {lv}");
        // Binomial s.e. of a fraction near 0.2 from 2000 samples: 0.009; the rest of the
        // tolerance is the trained sampler's own error.
        assert!((lv - 0.2).abs() < 0.06, "with the log-variance term: {lv}");
        // RAM alone keeps whatever weights its first epochs gave the modes.
        assert!(
            (ram - 0.2).abs() > (lv - 0.2).abs() + 0.1,
            "RAM alone {ram}, with the log-variance term {lv}"
        );
    }

    #[test]
    fn importance_weighted_replay_moves_mass_between_separated_modes() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let epochs = 80;
        // The light mode's weight under weighted replay fluctuates from one checkpoint to the
        // next (measured 0.12–0.25 over epochs 30–120): compare the means of the last four.
        let mean_of_last = |f: Vec<f64>| f[f.len() - 4..].iter().sum::<f64>() / 4.0;
        let ram = mean_of_last(light_mode_fractions(&|_| {}, epochs));
        let weighted = mean_of_last(light_mode_fractions(
            &|s| {
                s.replay_weight_power = Some(1.0);
                s.replay_weight_from_epoch = 10;
            },
            epochs,
        ));
        eprintln!(
            "light-mode fraction, mean of epochs 50–80: RAM {ram}, weighted replay {weighted}"
        );
        // RAM alone keeps the weight its first epochs gave the light mode (≈ 0.38 here).
        assert!(
            (weighted - 0.2).abs() < 0.07,
            "with weighted replay: {weighted}"
        );
        assert!(
            (ram - 0.2).abs() > (weighted - 0.2).abs() + 0.08,
            "RAM alone {ram}, with weighted replay {weighted}"
        );
    }

    #[test]
    fn the_log_variance_term_starts_at_its_epoch() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let mut tr = trainer(2);
        tr.settings.log_variance_weight = Some(0.1);
        tr.settings.log_variance_paths = 8;
        tr.settings.log_variance_every = 10;
        tr.settings.log_variance_from_epoch = 2;
        let lv: Vec<Option<f64>> = (0..3)
            .map(|_| tr.epoch().unwrap().mean_log_variance)
            .collect();
        assert!(lv[0].is_none() && lv[1].is_none(), "{lv:?}");
        assert!(lv[2].is_some_and(|v| v.is_finite() && v > 0.0), "{lv:?}");
    }

    #[test]
    fn log_variance_settings_are_validated_by_key() {
        for (s, key) in [
            (
                TrainerSettings {
                    log_variance_weight: Some(-1.0),
                    ..TrainerSettings::default()
                },
                "log_variance_weight",
            ),
            (
                TrainerSettings {
                    log_variance_paths: 1,
                    ..TrainerSettings::default()
                },
                "log_variance_paths",
            ),
            (
                TrainerSettings {
                    log_variance_every: 0,
                    ..TrainerSettings::default()
                },
                "log_variance_every",
            ),
            (
                TrainerSettings {
                    log_variance_huber: Some(f64::NAN),
                    ..TrainerSettings::default()
                },
                "log_variance_huber",
            ),
        ] {
            assert!(
                matches!(s.validate(), Err(Error::Config { key: k, .. }) if k == key),
                "{key}"
            );
        }
    }

    #[test]
    fn runs_are_reproducible_from_the_seed() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let run = |seed| {
            let mut tr = trainer(seed);
            (0..2)
                .map(|_| tr.epoch().unwrap().mean_loss)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn egnn_on_dw4_runs_end_to_end_in_the_zero_com_subspace() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let energy = crate::energy::by_name("dw4").unwrap();
        let p = energy.particles().unwrap();
        let settings = TrainerSettings {
            schedule: Geometric::new(1e-3, 1.5).unwrap(),
            nfe: 20,
            samples_per_epoch: 32,
            steps_per_epoch: 3,
            batch_size: 16,
            buffer_size: 48,
            learning_rate: 1e-3,
            ..TrainerSettings::default()
        };
        let mut tr = egnn_trainer(energy, (2, 16), settings, 8);
        for k in 1..=2 {
            let r = tr.epoch().unwrap();
            assert_eq!(r.energy_evals, 32 * k);
            assert!(r.mean_loss.is_finite() && r.dropped == 0, "{r:?}");
        }
        assert_eq!(tr.buffer().len(), 48);
        let com_max = |v: &[f32]| {
            v.chunks_exact(p.dim())
                .flat_map(|row| {
                    (0..p.spatial)
                        .map(move |c| row.iter().skip(c).step_by(p.spatial).sum::<f32>().abs())
                })
                .fold(0.0f32, f32::max)
        };
        assert!(com_max(&tr.buffer().x1_in_order()) < 1e-4);
        assert!(com_max(&tr.buffer().adjoint_in_order()) < 1e-3);
        let x = tr.sample(8, &mut HostNoise::seeded(1));
        assert_eq!(x.len(), 8 * 8);
    }

    /// The particle machinery against closed forms: an EGNN trained on `harmonic-4` (p* is
    /// N(0, I) on the 6-D zero-COM subspace, E ~ χ²₆/2, log Z = 3 log 2π) samples it at its
    /// temperature, and the zero-COM importance weights estimate its log Z.
    #[test]
    fn egnn_samples_the_harmonic_particle_system_at_its_temperature() {
        use crate::sde::importance::{log_weights_in, ImportanceReport};
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let system = crate::energy::system("harmonic-4").unwrap();
        let log_z = system.log_z.unwrap();
        let settings = TrainerSettings {
            schedule: Geometric::new(1e-3, 1.5).unwrap(),
            nfe: 50,
            samples_per_epoch: 128,
            steps_per_epoch: 25,
            batch_size: 128,
            buffer_size: 1280,
            learning_rate: 1e-3,
            seed: 2,
            ..TrainerSettings::default()
        };
        let mut tr = egnn_trainer(system.energy, (2, 32), settings, 2);
        for _ in 0..20 {
            tr.epoch().unwrap();
        }
        let n = 2000;
        let (x, ratio, h) = tr.sample_weighted_with_nfe(n, 200, &mut HostNoise::seeded(3));
        let e: Vec<f64> = x.chunks_exact(8).map(|r| tr.energy.energy(r)).collect();
        let mean = e.iter().sum::<f64>() / n as f64;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        // Exact: mean 3 (s.e. 0.039 on 2000 draws), variance 3 (s.e. 0.13); the bounds are four
        // standard errors. Sampled on a 200-point grid: the 50-point training grid alone puts
        // the mean near 3.3 (the grid's error, not the control's). A base score of the wrong
        // dimension in the adjoint (x (1 − 1/n) / h²) would put it near 1.2.
        assert!((mean - 3.0).abs() < 0.16, "mean energy {mean}");
        assert!((var - 3.0).abs() < 0.55, "energy variance {var}");
        let log_w = log_weights_in(tr.em.space, &x, 8, &e, &ratio, h).unwrap();
        let report = ImportanceReport::from_log_weights(&log_w, Some(log_z)).unwrap();
        let err = report.log_z_estimate - log_z;
        assert!(
            err.abs() < 4.0 * report.log_z_std_error,
            "log Z {} ± {} against {log_z}",
            report.log_z_estimate,
            report.log_z_std_error
        );
        assert!(
            report.effective_sample_size() > 0.5 * n as f64,
            "{report:?}"
        );
    }

    #[test]
    fn checkpoint_resumes_bit_for_bit() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let dir = std::env::temp_dir().join(format!("diffsamp-as-ckpt-{}", std::process::id()));
        // A decaying learning rate and an EMA: the resumed run must continue both.
        let mut a = trainer_with(21, Some(0.9));
        a.settings.lr_half_life = Some(1.0);
        a.epoch().unwrap();
        a.save_checkpoint(&dir).unwrap();
        let after_a: Vec<f64> = (0..2).map(|_| a.epoch().unwrap().mean_loss).collect();
        let mut b = trainer_with(77, Some(0.9)); // other initial weights and seed streams...
        b.settings.seed = 21; // ...but the same settings, as a resumed run has
        b.settings.lr_half_life = Some(1.0);
        b.load_checkpoint(&dir).unwrap();
        assert_eq!(b.epochs_done(), 1);
        let after_b: Vec<f64> = (0..2).map(|_| b.epoch().unwrap().mean_loss).collect();
        assert_eq!(after_a, after_b);
        let stores = |t: &Trainer| {
            [
                t.var_store().variables(),
                t.average_store().unwrap().variables(),
            ]
        };
        for (va, vb) in stores(&a).iter().zip(stores(&b).iter()) {
            for (name, t) in va {
                assert!(t.equal(&vb[name]), "{name}");
            }
        }
        assert_eq!(a.buffer().x1_in_order(), b.buffer().x1_in_order());
        // Different settings are refused.
        let mut c = trainer(22);
        assert!(c.load_checkpoint(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_average_samples_and_leaves_training_unchanged() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let run = |ema_decay| {
            let mut tr = trainer_with(13, ema_decay);
            let losses: Vec<f64> = (0..3).map(|_| tr.epoch().unwrap().mean_loss).collect();
            (losses, tr.sample(64, &mut HostNoise::seeded(2)), tr)
        };
        let (plain_loss, plain_x, plain) = run(None);
        assert!(plain.average_store().is_none());
        // δ = 0: the average is the live network after every step, so it samples the same.
        let (loss0, x0, _) = run(Some(0.0));
        assert_eq!(loss0, plain_loss);
        assert_eq!(x0, plain_x);
        // δ = 0.99: training is unchanged, the samples come from other (averaged) weights.
        let (loss99, x99, avg) = run(Some(0.99));
        assert_eq!(loss99, plain_loss);
        assert_ne!(x99, plain_x);
        let live = avg.var_store().variables();
        let averaged = avg.average_store().unwrap().variables();
        assert_eq!(averaged.len(), live.len());
        assert!(averaged.iter().any(|(k, v)| !v.equal(&live[k])));
    }

    #[test]
    fn a_kill_during_a_checkpoint_write_leaves_the_previous_one_whole() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let dir = std::env::temp_dir().join(format!("diffsamp-as-kill-{}", std::process::id()));
        let mut a = trainer(31);
        a.epoch().unwrap();
        a.save_checkpoint(&dir).unwrap();
        let saved: Vec<(String, tch::Tensor)> = a
            .var_store()
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.copy()))
            .collect();
        // Epoch 2's tensors reach the disk, then the process dies before the state is renamed.
        a.epoch().unwrap();
        a.var_store().save(dir.join(weights_file(2))).unwrap();
        a.optimizer.save(&dir.join(optimizer_file(2))).unwrap();
        let mut b = trainer(31);
        b.load_checkpoint(&dir).unwrap();
        assert_eq!(b.epochs_done(), 1);
        for (name, t) in &saved {
            assert!(t.equal(&b.var_store().variables()[name]), "{name}");
        }
        // The next complete save commits and removes the unreferenced files.
        a.save_checkpoint(&dir).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [optimizer_file(2), STATE.to_string(), weights_file(2)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_and_evaluation_grids_follow_grid_power() {
        let _rng = torch_rng();
        let settings = TrainerSettings {
            nfe: 11,
            grid_power: 2.0,
            ..TrainerSettings::default()
        };
        let energy = Box::new(Gauss {
            mu: [0.0, 0.0],
            s2: 1.0,
        });
        let tr = mlp_trainer(energy, (8, 1), settings, 0);
        assert_eq!(tr.em.times, crate::sde::power_grid(11, 2.0));
        assert_eq!(tr.grid(7).times, crate::sde::power_grid(7, 2.0));
        assert!((tr.em.times[1] - 0.01).abs() < 1e-15);
    }

    #[test]
    fn settings_validation_names_the_key() {
        let s = TrainerSettings {
            batch_size: 0,
            ..TrainerSettings::default()
        };
        assert!(matches!(s.validate(), Err(Error::Config { key, .. }) if key == "batch_size"));
        let s = TrainerSettings {
            schedule: Geometric {
                sigma_min: 2.0,
                sigma_max: 1.0,
            },
            ..TrainerSettings::default()
        };
        assert!(
            matches!(s.validate(), Err(Error::Config { key, .. }) if key == "schedule.sigma_max")
        );
        let s = TrainerSettings {
            lr_half_life: Some(0.0),
            ..TrainerSettings::default()
        };
        assert!(matches!(s.validate(), Err(Error::Config { key, .. }) if key == "lr_half_life"));
        let s = TrainerSettings {
            time_power: 0.0,
            ..TrainerSettings::default()
        };
        assert!(matches!(s.validate(), Err(Error::Config { key, .. }) if key == "time_power"));
        for bad in [0.0, f64::INFINITY, f64::NAN] {
            let s = TrainerSettings {
                grid_power: bad,
                ..TrainerSettings::default()
            };
            assert!(matches!(s.validate(), Err(Error::Config { key, .. }) if key == "grid_power"));
        }
        for bad in [0.0, 1.5, -1.0, f64::NAN] {
            let s = TrainerSettings {
                replay_weight_power: Some(bad),
                ..TrainerSettings::default()
            };
            assert!(
                matches!(s.validate(), Err(Error::Config { key, .. }) if key == "replay_weight_power")
            );
        }
        for bad in [1.0, -0.1, f64::NAN] {
            let s = TrainerSettings {
                ema_decay: Some(bad),
                ..TrainerSettings::default()
            };
            assert!(matches!(s.validate(), Err(Error::Config { key, .. }) if key == "ema_decay"));
        }
        for bad in [0.0, 1.5, f64::NAN] {
            let s = TrainerSettings {
                inverse_temperature_start: Some(bad),
                ..TrainerSettings::default()
            };
            assert!(
                matches!(s.validate(), Err(Error::Config { key, .. }) if key == "inverse_temperature_start")
            );
        }
        let s = TrainerSettings {
            annealing_epochs: 0,
            ..TrainerSettings::default()
        };
        assert!(
            matches!(s.validate(), Err(Error::Config { key, .. }) if key == "annealing_epochs")
        );
        TrainerSettings::default().validate().unwrap();
    }

    #[test]
    fn learning_rate_halves_every_half_life() {
        let s = TrainerSettings {
            learning_rate: 1e-3,
            lr_half_life: Some(100.0),
            ..TrainerSettings::default()
        };
        assert_eq!(s.learning_rate_at(0), 1e-3);
        assert!((s.learning_rate_at(100) - 5e-4).abs() < 1e-15);
        assert!((s.learning_rate_at(300) - 1.25e-4).abs() < 1e-15);
        assert_eq!(TrainerSettings::default().learning_rate_at(500), 1e-4);
    }

    #[test]
    fn inverse_temperature_rises_geometrically_to_one() {
        let s = TrainerSettings {
            inverse_temperature_start: Some(0.01),
            annealing_epochs: 10,
            ..TrainerSettings::default()
        };
        assert_eq!(s.inverse_temperature_at(0), 0.01);
        assert!((s.inverse_temperature_at(5) - 0.1).abs() < 1e-15);
        assert!((s.inverse_temperature_at(9) - 0.01f64.powf(0.1)).abs() < 1e-15);
        assert_eq!(s.inverse_temperature_at(10), 1.0);
        assert_eq!(s.inverse_temperature_at(1000), 1.0);
        assert_eq!(TrainerSettings::default().inverse_temperature_at(0), 1.0);
    }

    #[test]
    fn an_annealed_epoch_pushes_the_adjoint_of_the_tempered_target() {
        let _rng = torch_rng();
        tch::set_num_threads(1);
        let mut tr = trainer(5);
        tr.settings.inverse_temperature_start = Some(0.25);
        tr.settings.annealing_epochs = 4;
        tr.settings.grad_clip = Some(2.0);
        tr.epoch().unwrap();
        let (x1, a) = (tr.buffer().x1_in_order(), tr.buffer().adjoint_in_order());
        let h2 = tr.settings.schedule.h2_terminal();
        let (mu, s2) = ([1.0, -0.5], 0.1);
        let mut clipped = 0;
        for (x, a) in x1.chunks_exact(2).zip(a.chunks_exact(2)) {
            // a = clip(β ∇E) − x / h²(1) with β = 0.25 and ∇E = (x − μ) / s².
            let mut g: Vec<f64> = (0..2).map(|i| 0.25 * (x[i] as f64 - mu[i]) / s2).collect();
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 2.0 {
                clipped += 1;
                g.iter_mut().for_each(|v| *v *= 2.0 / norm);
            }
            for i in 0..2 {
                let want = g[i] - x[i] as f64 / h2;
                assert!((a[i] as f64 - want).abs() < 1e-4, "{} vs {want}", a[i]);
            }
        }
        // The clip (at 2) acts on β∇E, not on ∇E: both branches are exercised.
        assert!(clipped > 0 && clipped < x1.len() / 2, "{clipped} clipped");
    }
}
