//! Chains (a ladder of replicas with one RNG stream) and the rayon-parallel ensemble of chains.

use crate::adapt::DualAveraging;
use crate::error::McmcError;
use crate::init::{draw_start, minimise, InitConfig};
use crate::kernel::{ChainState, Kernel, StepOutcome, Workspace};
use crate::parallel_tempering::{swap_round, SwapStats};
use diffsamp_energy::Energy;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Counters of one replica's kernel steps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStats {
    /// Kernel steps taken.
    pub steps: u64,
    /// Σ of the acceptance probabilities min(1, MH ratio).
    pub accept_prob_sum: f64,
    /// Accepted proposals.
    pub accepted: u64,
    /// Proposals rejected because of a non-finite energy or gradient.
    pub non_finite: u64,
}

impl ReplicaStats {
    fn record(&mut self, o: &StepOutcome) {
        self.steps += 1;
        self.accept_prob_sum += o.accept_prob;
        self.accepted += o.accepted as u64;
        self.non_finite += o.non_finite as u64;
    }

    /// Mean acceptance probability (NaN before the first step).
    pub fn mean_accept_prob(&self) -> f64 {
        if self.steps == 0 {
            f64::NAN
        } else {
            self.accept_prob_sum / self.steps as f64
        }
    }
}

/// One temperature level of a chain: the kernel targets exp(−β E) with step size `step_size`.
#[derive(Clone, Debug)]
pub struct Replica {
    /// Inverse temperature β = 1/T.
    pub beta: f64,
    /// Current step size ε (adapted during warm-up, frozen afterwards).
    pub step_size: f64,
    /// Current state.
    pub state: ChainState,
    /// Counters since the start or since the end of warm-up.
    pub stats: ReplicaStats,
    adapt: DualAveraging,
}

/// One independent Markov chain: replicas at temperatures T_0 = 1 < T_1 < … (one replica
/// without tempering) and its own RNG stream `ChaCha8(seed, stream = index)`.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Replicas, coldest (the target, T = 1) first.
    pub replicas: Vec<Replica>,
    /// Swap counters per neighbouring pair.
    pub swaps: SwapStats,
    /// Energy+gradient evaluations spent by this chain (initialisation included).
    pub evals: u64,
    /// E of the target replica after every step taken while recording.
    pub trace: Vec<f64>,
    swap_rounds: u64,
    rng: ChaCha8Rng,
    ws: Workspace,
}

/// Shared settings to build an [`Ensemble`].
#[derive(Clone, Debug)]
pub struct EnsembleSpec {
    /// Kernel moving every replica.
    pub kernel: Kernel,
    /// Temperature ladder, `temperatures[0] == 1`.
    pub temperatures: Vec<f64>,
    /// Swap every this many steps (ignored with a single temperature).
    pub swap_every: usize,
    /// Number of independent chains.
    pub n_chains: usize,
    /// Initial step size at T = 1; replica k starts at ε₀ √T_k.
    pub step_size: f64,
    /// Target mean acceptance of the adaptation.
    pub target_accept: f64,
    /// Initialisation.
    pub init: InitConfig,
    /// Run seed; chain c uses ChaCha8 stream c of this seed.
    pub seed: u64,
}

impl Chain {
    /// Initialises chain `index` (its RNG stream) with every replica drawn and minimised
    /// independently.
    pub fn new(energy: &dyn Energy, spec: &EnsembleSpec, index: usize) -> Result<Self, McmcError> {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(index as u64);
        let mut evals = 0;
        let mut replicas = Vec::with_capacity(spec.temperatures.len());
        for (k, &t) in spec.temperatures.iter().enumerate() {
            let mut x = draw_start(energy, &spec.init, &mut rng);
            evals += minimise(
                energy,
                &mut x,
                spec.init.minimise_steps,
                spec.init.minimise_step,
            );
            let state = ChainState::new(energy, x);
            evals += 1;
            if !state.is_finite() {
                return Err(McmcError::NonFiniteInit {
                    energy: energy.name().to_string(),
                    chain: index,
                    replica: k,
                    value: state.energy,
                });
            }
            let eps0 = spec.step_size * t.sqrt();
            replicas.push(Replica {
                beta: 1.0 / t,
                step_size: eps0,
                state,
                stats: ReplicaStats::default(),
                adapt: DualAveraging::new(eps0, spec.target_accept),
            });
        }
        Ok(Chain {
            swaps: SwapStats::new(replicas.len()),
            replicas,
            evals,
            trace: Vec::new(),
            swap_rounds: 0,
            rng,
            ws: Workspace::new(energy.dim()),
        })
    }

    /// One step: every replica takes one kernel step (adapting its step size when
    /// `adapting`), then, if `swap`, one even/odd round of neighbour swaps.
    pub fn step(
        &mut self,
        energy: &dyn Energy,
        kernel: &Kernel,
        adapting: bool,
        swap: bool,
        recording: bool,
    ) {
        for r in self.replicas.iter_mut() {
            let o = kernel.step(
                energy,
                r.beta,
                r.step_size,
                &mut r.state,
                &mut self.ws,
                &mut self.rng,
            );
            self.evals += o.evals;
            r.stats.record(&o);
            if adapting {
                r.step_size = r.adapt.update(o.accept_prob);
            }
        }
        if swap && self.replicas.len() > 1 {
            swap_round(
                &mut self.replicas,
                self.swap_rounds,
                &mut self.swaps,
                &mut self.rng,
            );
            self.swap_rounds += 1;
        }
        if recording {
            self.trace.push(self.replicas[0].state.energy);
        }
    }

    /// Freezes every replica's step size at its averaged dual-averaging iterate (when it was
    /// adapted at all) and zeroes the acceptance and swap counters.
    pub fn end_warmup(&mut self) {
        for r in self.replicas.iter_mut() {
            if r.adapt.iterations() > 0 {
                r.step_size = r.adapt.final_step_size();
            }
            r.stats = ReplicaStats::default();
        }
        self.swaps = SwapStats::new(self.replicas.len());
    }

    /// State of the target (T = 1) replica.
    pub fn target(&self) -> &ChainState {
        &self.replicas[0].state
    }
}

/// Many independent chains stepped in lockstep blocks; chains run in parallel with rayon and
/// each owns its RNG stream, so results do not depend on the thread count.
pub struct Ensemble<'e> {
    energy: &'e dyn Energy,
    spec: EnsembleSpec,
    chains: Vec<Chain>,
    step: u64,
    adapting: bool,
    recording: bool,
}

impl<'e> Ensemble<'e> {
    /// Initialises `spec.n_chains` chains in parallel. Starts in the adapting, non-recording
    /// mode (warm-up).
    pub fn new(energy: &'e dyn Energy, spec: EnsembleSpec) -> Result<Self, McmcError> {
        // Every chain is built before errors are looked at, so that the error reported is the
        // lowest-index failing chain whatever the thread timing (rayon's collect into a Result
        // returns whichever failure it meets first).
        let chains = (0..spec.n_chains)
            .into_par_iter()
            .map(|c| Chain::new(energy, &spec, c))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ensemble {
            energy,
            spec,
            chains,
            step: 0,
            adapting: true,
            recording: false,
        })
    }

    /// Advances every chain by `n_steps` steps. Swaps happen after global steps s with
    /// (s + 1) mod swap_every = 0.
    pub fn run(&mut self, n_steps: usize) {
        let energy = self.energy;
        let kernel = self.spec.kernel;
        let swap_every = self.spec.swap_every.max(1) as u64;
        let (adapting, recording, step0) = (self.adapting, self.recording, self.step);
        self.chains.par_iter_mut().for_each(|c| {
            for s in 0..n_steps as u64 {
                let swap = (step0 + s + 1) % swap_every == 0;
                c.step(energy, &kernel, adapting, swap, recording);
            }
        });
        self.step += n_steps as u64;
    }

    /// Ends warm-up: step sizes frozen, counters zeroed, adaptation off.
    pub fn end_warmup(&mut self) {
        self.adapting = false;
        self.chains.iter_mut().for_each(Chain::end_warmup);
    }

    /// Turns recording of the target-replica energy trace on or off.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// The chains, in index order.
    pub fn chains(&self) -> &[Chain] {
        &self.chains
    }

    /// The settings.
    pub fn spec(&self) -> &EnsembleSpec {
        &self.spec
    }

    /// Global steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Total energy+gradient evaluations, initialisation included.
    pub fn energy_evals(&self) -> u64 {
        self.chains.iter().map(|c| c.evals).sum()
    }

    /// Proposals rejected for a non-finite energy or gradient (all replicas, all chains,
    /// since the last counter reset).
    pub fn non_finite(&self) -> u64 {
        self.chains
            .iter()
            .flat_map(|c| c.replicas.iter().map(|r| r.stats.non_finite))
            .sum()
    }

    /// Mean over chains of each temperature's mean acceptance probability, `[n_temps]`.
    pub fn acceptance(&self) -> Vec<f64> {
        let n_t = self.spec.temperatures.len();
        (0..n_t)
            .map(|k| {
                self.chains
                    .iter()
                    .map(|c| c.replicas[k].stats.mean_accept_prob())
                    .sum::<f64>()
                    / self.chains.len() as f64
            })
            .collect()
    }

    /// Swap counters summed over chains.
    pub fn swap_stats(&self) -> SwapStats {
        let mut s = SwapStats::new(self.spec.temperatures.len());
        self.chains.iter().for_each(|c| s.merge(&c.swaps));
        s
    }

    /// Mean of E over the target replicas of all chains.
    pub fn mean_target_energy(&self) -> f64 {
        self.chains.iter().map(|c| c.target().energy).sum::<f64>() / self.chains.len() as f64
    }

    /// Step sizes, `[n_chains, n_temps]` row-major.
    pub fn step_sizes(&self) -> Vec<f64> {
        self.chains
            .iter()
            .flat_map(|c| c.replicas.iter().map(|r| r.step_size))
            .collect()
    }

    /// Takes the recorded energy traces out of the chains, `[n_chains][steps]`.
    pub fn take_traces(&mut self) -> Vec<Vec<f64>> {
        self.chains
            .iter_mut()
            .map(|c| std::mem::take(&mut c.trace))
            .collect()
    }
}
