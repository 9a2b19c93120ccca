//! Progress reports from the reference driver to a caller-supplied observer.

/// Phase of a reference run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Burn-in with step-size adaptation; nothing is kept.
    Warmup,
    /// Step sizes frozen; samples are kept every `thinning` steps.
    Sampling,
}

/// A snapshot sent after each block of steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Current phase.
    pub stage: Stage,
    /// Steps done in this phase.
    pub step: usize,
    /// Steps this phase will take.
    pub total: usize,
    /// Mean acceptance probability of the target (T = 1) replicas over the phase so far.
    pub acceptance: f64,
    /// Mean energy of the target replicas over chains, now.
    pub mean_energy: f64,
    /// Samples kept so far.
    pub samples: usize,
    /// Energy+gradient evaluations so far.
    pub energy_evals: u64,
}

/// Receives progress; the library never prints. Any `FnMut(&Progress)` is an observer.
pub trait Observer {
    /// Called after every block of steps.
    fn observe(&mut self, progress: &Progress);
}

impl<F: FnMut(&Progress)> Observer for F {
    fn observe(&mut self, progress: &Progress) {
        self(progress)
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn observe(&mut self, _progress: &Progress) {}
}
