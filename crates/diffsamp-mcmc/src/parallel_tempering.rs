//! Replica exchange (parallel tempering): temperature ladder and neighbour swaps.

use crate::chain::Replica;
use crate::error::McmcError;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Parallel-tempering settings. Each chain carries `n_temps` replicas on the geometric ladder
/// T_k = t_max^{k/(n_temps−1)}, k = 0..n_temps−1 (T_0 = 1 is the target); replica k runs the
/// kernel on E/T_k with its own adapted step size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PtConfig {
    /// Number of temperatures K ≥ 2 (default 8).
    pub n_temps: usize,
    /// Highest temperature T_K > 1, in units of kT (default 10).
    pub t_max: f64,
    /// Attempt swaps every `swap_every` ≥ 1 kernel steps (default 1).
    pub swap_every: usize,
}

impl Default for PtConfig {
    fn default() -> Self {
        PtConfig {
            n_temps: 8,
            t_max: 10.0,
            swap_every: 1,
        }
    }
}

impl PtConfig {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), McmcError> {
        if self.n_temps < 2 || self.n_temps > 256 {
            return Err(McmcError::invalid(
                "pt.n_temps",
                self.n_temps,
                "need 2 ≤ n_temps ≤ 256 (omit [pt] to disable tempering)",
            ));
        }
        if !(self.t_max.is_finite() && self.t_max > 1.0) {
            return Err(McmcError::invalid(
                "pt.t_max",
                self.t_max,
                "the highest temperature must be finite and > 1",
            ));
        }
        if self.swap_every == 0 {
            return Err(McmcError::invalid(
                "pt.swap_every",
                self.swap_every,
                "must be ≥ 1",
            ));
        }
        Ok(())
    }

    /// The ladder [`geometric_ladder`]`(n_temps, t_max)`.
    pub fn temperatures(&self) -> Vec<f64> {
        geometric_ladder(self.n_temps, self.t_max)
    }
}

/// Geometric temperature ladder T_k = t_max^{k/(n−1)}, k = 0..n−1; `[1.0]` for n ≤ 1.
pub fn geometric_ladder(n_temps: usize, t_max: f64) -> Vec<f64> {
    if n_temps <= 1 {
        return vec![1.0];
    }
    let last = (n_temps - 1) as f64;
    (0..n_temps)
        .map(|k| {
            if k == 0 {
                1.0
            } else {
                t_max.powf(k as f64 / last)
            }
        })
        .collect()
}

/// log of the swap acceptance between replicas at inverse temperatures β_i, β_j holding
/// states of energies E_i, E_j: log min(1, exp((β_i − β_j)(E_i − E_j))) before the min.
pub fn swap_log_accept(beta_i: f64, beta_j: f64, e_i: f64, e_j: f64) -> f64 {
    (beta_i - beta_j) * (e_i - e_j)
}

/// Swap attempts and acceptances per neighbouring pair (k, k+1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwapStats {
    /// Attempts, `[n_temps − 1]`.
    pub attempts: Vec<u64>,
    /// Accepted swaps, `[n_temps − 1]`.
    pub accepts: Vec<u64>,
}

impl SwapStats {
    /// Zeroed counters for a ladder of `n_temps` temperatures.
    pub fn new(n_temps: usize) -> Self {
        let n = n_temps.saturating_sub(1);
        SwapStats {
            attempts: vec![0; n],
            accepts: vec![0; n],
        }
    }

    /// Adds another chain's counters.
    pub fn merge(&mut self, other: &SwapStats) {
        for (a, b) in self.attempts.iter_mut().zip(&other.attempts) {
            *a += b;
        }
        for (a, b) in self.accepts.iter_mut().zip(&other.accepts) {
            *a += b;
        }
    }

    /// Acceptance rate accepts/attempts per pair (NaN for a pair never attempted).
    pub fn rates(&self) -> Vec<f64> {
        self.accepts
            .iter()
            .zip(&self.attempts)
            .map(|(&a, &n)| {
                if n == 0 {
                    f64::NAN
                } else {
                    a as f64 / n as f64
                }
            })
            .collect()
    }
}

/// One round of neighbour swaps with the deterministic even/odd scheme: round m attempts the
/// pairs (k, k+1) with k ≡ m (mod 2). Each pair swaps its states (positions, energies,
/// gradients; step sizes stay with the temperatures) with probability
/// min(1, exp((β_k − β_{k+1})(E_k − E_{k+1}))). No energy evaluations are needed.
pub fn swap_round<R: Rng>(
    replicas: &mut [Replica],
    round: u64,
    stats: &mut SwapStats,
    rng: &mut R,
) {
    let mut k = (round % 2) as usize;
    while k + 1 < replicas.len() {
        let (lo, hi) = replicas.split_at_mut(k + 1);
        let (a, b) = (&mut lo[k], &mut hi[0]);
        let log_a = swap_log_accept(a.beta, b.beta, a.state.energy, b.state.energy);
        let u: f64 = rng.random();
        stats.attempts[k] += 1;
        if log_a >= 0.0 || u < log_a.exp() {
            stats.accepts[k] += 1;
            std::mem::swap(&mut a.state, &mut b.state);
        }
        k += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_is_geometric_from_one_to_t_max() {
        let t = geometric_ladder(5, 16.0);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0], 1.0);
        assert!((t[4] - 16.0).abs() < 1e-12);
        for w in t.windows(2) {
            assert!((w[1] / w[0] - 2.0).abs() < 1e-12);
        }
        assert_eq!(geometric_ladder(1, 16.0), vec![1.0]);
    }

    #[test]
    fn swap_acceptance_favours_moving_low_energy_down() {
        // The colder replica (β = 1) holds the higher energy: swapping is always accepted.
        assert!(swap_log_accept(1.0, 0.5, 3.0, 1.0) > 0.0);
        assert!((swap_log_accept(1.0, 0.5, 1.0, 3.0) + 1.0).abs() < 1e-15);
    }
}
