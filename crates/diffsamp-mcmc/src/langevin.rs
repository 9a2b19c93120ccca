//! Underdamped Langevin dynamics (BAOAB splitting) and temperature replica exchange (REMD).
//!
//! # Units
//! The target is p_β(x) ∝ exp(−β E(x)) with E dimensionless (the crate-wide convention:
//! E = U/kT₀ for a physical potential U at the reference temperature T₀). The dynamics run on
//! the physical potential U = u₀ E, where `energy_unit` u₀ is the energy of one unit of E in the
//! units of m·v² (for the force fields: u₀ = kT₀ in kJ/mol, masses in amu = g/mol, x in nm,
//! t in ps, v in nm/ps, since 1 kJ/mol = 1 amu·nm²/ps²). A replica at relative inverse
//! temperature β (T = T₀/β) has thermal energy kT = u₀/β, and
//!
//! - force      F = −u₀ ∇E(x)                     (kJ/mol/nm)
//! - B (½ kick) v ← v + (h/2) F/m
//! - A (½ drift) x ← x + (h/2) v
//! - O          v ← c v + sqrt((1 − c²) kT/m) ξ,  c = exp(−γ h),  ξ ~ N(0, I)
//! - order B A O A B, one energy+gradient evaluation per step.
//!
//! The equilibrium velocities have variance kT/m per coordinate; BAOAB has no Metropolis
//! correction, so configurations carry an O(h²) bias (exact for a harmonic potential).
//! No constraints and no centre-of-mass projection: for particle systems the COM performs a
//! free Brownian motion, which neither the energy nor the metrics see.
//!
//! Replica exchange: every `steps_per_exchange` steps, neighbouring temperatures (k, k+1) with
//! k ≡ round (mod 2) swap configurations with probability min(1, exp((β_k − β_{k+1})(E_k − E_{k+1})))
//! ([`swap_log_accept`]); velocities are rescaled by sqrt(T_new/T_old) so that they stay
//! Maxwell–Boltzmann at the new temperature.

use crate::parallel_tempering::{swap_log_accept, SwapStats};
use crate::progress::{Observer, Progress, Stage};
use crate::McmcError;
use diffsamp_energy::Energy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// BAOAB integrator parameters with per-coordinate masses.
#[derive(Clone, Debug)]
pub struct Langevin {
    dt: f64,
    friction: f64,
    energy_unit: f64,
    inv_mass: Vec<f64>,
}

/// Position, velocity, energy E(x) (reduced units) and ∇E(x) of one trajectory.
#[derive(Clone, Debug)]
pub struct LangevinState {
    /// Positions.
    pub x: Vec<f64>,
    /// Velocities.
    pub v: Vec<f64>,
    /// E(x), dimensionless.
    pub energy: f64,
    /// ∇E(x).
    pub grad: Vec<f64>,
}

impl LangevinState {
    fn is_finite(&self) -> bool {
        self.energy.is_finite()
            && self.x.iter().all(|v| v.is_finite())
            && self.grad.iter().all(|v| v.is_finite())
    }
}

impl Langevin {
    /// Time step `dt`, friction `friction` (1/time), energy unit u₀ (see the module docs) and
    /// one mass per particle, each repeated over the `spatial_dim` coordinates of its particle.
    pub fn new(
        dt: f64,
        friction: f64,
        energy_unit: f64,
        masses: &[f64],
        spatial_dim: usize,
    ) -> Result<Self, McmcError> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(McmcError::invalid("langevin.dt", dt, "must be > 0"));
        }
        if !(friction.is_finite() && friction >= 0.0) {
            return Err(McmcError::invalid(
                "langevin.friction",
                friction,
                "must be ≥ 0",
            ));
        }
        if !(energy_unit.is_finite() && energy_unit > 0.0) {
            return Err(McmcError::invalid(
                "langevin.energy_unit",
                energy_unit,
                "must be > 0",
            ));
        }
        if spatial_dim == 0 || masses.is_empty() {
            return Err(McmcError::invalid(
                "langevin.masses",
                masses.len(),
                "needs at least one particle of spatial dimension ≥ 1",
            ));
        }
        if let Some(m) = masses.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
            return Err(McmcError::invalid("langevin.masses", m, "must be > 0"));
        }
        let inv_mass = masses
            .iter()
            .flat_map(|m| std::iter::repeat_n(1.0 / m, spatial_dim))
            .collect();
        Ok(Self {
            dt,
            friction,
            energy_unit,
            inv_mass,
        })
    }

    /// Dimension of the state (particles × spatial dimension).
    pub fn dim(&self) -> usize {
        self.inv_mass.len()
    }

    /// Time step.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// A state at `x` with Maxwell–Boltzmann velocities at relative inverse temperature `beta`
    /// (one energy evaluation).
    pub fn init_state<R: Rng>(
        &self,
        energy: &dyn Energy,
        x: Vec<f64>,
        beta: f64,
        rng: &mut R,
    ) -> LangevinState {
        let mut grad = vec![0.0; x.len()];
        let e = energy.energy_grad(&x, &mut grad);
        let mut s = LangevinState {
            x,
            v: vec![0.0; grad.len()],
            energy: e,
            grad,
        };
        self.draw_velocities(&mut s, beta, rng);
        s
    }

    /// Redraws the velocities from the Maxwell–Boltzmann distribution at `beta`.
    pub fn draw_velocities<R: Rng>(&self, s: &mut LangevinState, beta: f64, rng: &mut R) {
        let kt = self.energy_unit / beta;
        for (v, im) in s.v.iter_mut().zip(&self.inv_mass) {
            let xi: f64 = rng.sample(StandardNormal);
            *v = (kt * im).sqrt() * xi;
        }
    }

    /// One BAOAB step at relative inverse temperature `beta`; returns whether the new state is
    /// finite (the caller decides what to do with a blown-up trajectory).
    pub fn step<R: Rng>(
        &self,
        energy: &dyn Energy,
        beta: f64,
        s: &mut LangevinState,
        rng: &mut R,
    ) -> bool {
        let h = self.dt;
        let kick = 0.5 * h * self.energy_unit;
        let c = (-self.friction * h).exp();
        let noise = ((1.0 - c * c) * self.energy_unit / beta).sqrt();
        for i in 0..s.x.len() {
            let im = self.inv_mass[i];
            let mut v = s.v[i] - kick * s.grad[i] * im;
            let mut x = s.x[i] + 0.5 * h * v;
            let xi: f64 = rng.sample(StandardNormal);
            v = c * v + noise * im.sqrt() * xi;
            x += 0.5 * h * v;
            s.v[i] = v;
            s.x[i] = x;
        }
        s.energy = energy.energy_grad(&s.x, &mut s.grad);
        for i in 0..s.x.len() {
            s.v[i] -= kick * s.grad[i] * self.inv_mass[i];
        }
        s.is_finite()
    }
}

/// Replica-exchange Langevin settings.
#[derive(Clone, Debug)]
pub struct RemdConfig {
    /// Relative temperatures T_k/T₀, ascending, the first = 1 (the target).
    pub temperatures: Vec<f64>,
    /// BAOAB steps of every replica between two exchange rounds.
    pub steps_per_exchange: usize,
    /// Exchange rounds discarded as warm-up.
    pub warmup_rounds: usize,
    /// Target-temperature samples to record.
    pub n_samples: usize,
    /// Record the target replica every this many rounds after warm-up.
    pub record_every: usize,
    /// Seed: replica k uses ChaCha8 stream k, the swaps stream `temperatures.len()`.
    pub seed: u64,
}

impl RemdConfig {
    /// Errors on an empty or unsorted ladder, or zero counts.
    pub fn validate(&self) -> Result<(), McmcError> {
        let t = &self.temperatures;
        if t.is_empty() || t[0] != 1.0 {
            return Err(McmcError::invalid(
                "remd.temperatures",
                format!("{t:?}"),
                "must start at 1.0 (the target)",
            ));
        }
        if t.windows(2).any(|w| !(w[1] > w[0] && w[1].is_finite())) {
            return Err(McmcError::invalid(
                "remd.temperatures",
                format!("{t:?}"),
                "must be finite and strictly increasing",
            ));
        }
        for (field, v) in [
            ("remd.steps_per_exchange", self.steps_per_exchange),
            ("remd.n_samples", self.n_samples),
            ("remd.record_every", self.record_every),
        ] {
            if v == 0 {
                return Err(McmcError::invalid(field, v, "must be ≥ 1"));
            }
        }
        Ok(())
    }
}

/// What [`run_remd`] produced.
#[derive(Clone, Debug)]
pub struct RemdResult {
    /// Target-temperature configurations, `[n_samples, dim]` row-major.
    pub samples: Vec<f64>,
    /// Their energies E (reduced units).
    pub energies: Vec<f64>,
    /// Swap attempts/acceptances per neighbouring pair.
    pub swaps: SwapStats,
    /// Energy+gradient evaluations, all replicas, warm-up included.
    pub energy_evals: u64,
    /// Steps that produced a non-finite state (that replica was reset to its state at the
    /// previous exchange with fresh velocities).
    pub non_finite: u64,
}

/// Replica-exchange Langevin dynamics starting every replica at `x0`; replicas are advanced in
/// parallel (rayon) between exchange rounds. `observer` hears after every exchange round (step
/// = rounds done in the phase; acceptance = the swap rate so far; mean energy = the target
/// replica's energy).
pub fn run_remd(
    energy: &dyn Energy,
    langevin: &Langevin,
    cfg: &RemdConfig,
    x0: &[f64],
    observer: &mut dyn Observer,
) -> Result<RemdResult, McmcError> {
    cfg.validate()?;
    if x0.len() != energy.dim() || langevin.dim() != energy.dim() {
        return Err(McmcError::invalid(
            "remd.x0",
            x0.len(),
            format!(
                "start and masses must match the energy dimension {}",
                energy.dim()
            ),
        ));
    }
    let n_t = cfg.temperatures.len();
    let betas: Vec<f64> = cfg.temperatures.iter().map(|t| 1.0 / t).collect();
    struct Rep {
        state: LangevinState,
        saved: LangevinState,
        rng: ChaCha8Rng,
        evals: u64,
        non_finite: u64,
    }
    let mut reps = Vec::with_capacity(n_t);
    for (k, &beta) in betas.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(k as u64);
        let state = langevin.init_state(energy, x0.to_vec(), beta, &mut rng);
        if !state.is_finite() {
            return Err(McmcError::NonFiniteInit {
                energy: energy.name().to_string(),
                chain: 0,
                replica: k,
                value: state.energy,
            });
        }
        reps.push(Rep {
            saved: state.clone(),
            state,
            rng,
            evals: 1,
            non_finite: 0,
        });
    }
    let mut swap_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    swap_rng.set_stream(n_t as u64);
    let mut swaps = SwapStats::new(n_t);
    let dim = energy.dim();
    let mut samples = Vec::with_capacity(cfg.n_samples * dim);
    let mut energies = Vec::with_capacity(cfg.n_samples);
    let total_rounds = cfg.warmup_rounds + cfg.n_samples * cfg.record_every;
    for round in 0..total_rounds {
        reps.par_iter_mut().enumerate().for_each(|(k, r)| {
            let beta = betas[k];
            for _ in 0..cfg.steps_per_exchange {
                r.evals += 1;
                if !langevin.step(energy, beta, &mut r.state, &mut r.rng) {
                    r.non_finite += 1;
                    r.state = r.saved.clone();
                    langevin.draw_velocities(&mut r.state, beta, &mut r.rng);
                }
            }
        });
        for k in ((round % 2)..n_t.saturating_sub(1)).step_by(2) {
            let log_a = swap_log_accept(
                betas[k],
                betas[k + 1],
                reps[k].state.energy,
                reps[k + 1].state.energy,
            );
            swaps.attempts[k] += 1;
            let u: f64 = swap_rng.random();
            if log_a >= 0.0 || u < log_a.exp() {
                swaps.accepts[k] += 1;
                let (lo, hi) = reps.split_at_mut(k + 1);
                std::mem::swap(&mut lo[k].state, &mut hi[0].state);
                // velocities: T_{k+1} → T_k for the state now at k, and the reverse
                let up = (cfg.temperatures[k + 1] / cfg.temperatures[k]).sqrt();
                lo[k].state.v.iter_mut().for_each(|v| *v /= up);
                hi[0].state.v.iter_mut().for_each(|v| *v *= up);
            }
        }
        for r in reps.iter_mut() {
            r.saved.clone_from(&r.state);
        }
        if round >= cfg.warmup_rounds
            && (round - cfg.warmup_rounds + 1).is_multiple_of(cfg.record_every)
        {
            samples.extend_from_slice(&reps[0].state.x);
            energies.push(reps[0].state.energy);
        }
        let (stage, step, total) = if round < cfg.warmup_rounds {
            (Stage::Warmup, round + 1, cfg.warmup_rounds)
        } else {
            (
                Stage::Sampling,
                round + 1 - cfg.warmup_rounds,
                total_rounds - cfg.warmup_rounds,
            )
        };
        let attempts: u64 = swaps.attempts.iter().sum();
        observer.observe(&Progress {
            stage,
            step,
            total,
            acceptance: swaps.accepts.iter().sum::<u64>() as f64 / attempts.max(1) as f64,
            mean_energy: reps[0].state.energy,
            samples: energies.len(),
            energy_evals: reps.iter().map(|r| r.evals).sum(),
        });
    }
    Ok(RemdResult {
        samples,
        energies,
        swaps,
        energy_evals: reps.iter().map(|r| r.evals).sum(),
        non_finite: reps.iter().map(|r| r.non_finite).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E(x) = Σ_i x_i² / (2 s_i²): independent Gaussians of variance s_i²/β.
    struct Harmonic {
        s2: Vec<f64>,
    }

    impl Energy for Harmonic {
        fn name(&self) -> &str {
            "harmonic"
        }
        fn dim(&self) -> usize {
            self.s2.len()
        }
        fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
            let mut e = 0.0;
            for ((g, &xi), &s2) in grad.iter_mut().zip(x).zip(&self.s2) {
                *g = xi / s2;
                e += 0.5 * xi * xi / s2;
            }
            e
        }
    }

    /// BAOAB samples the configurations of a harmonic potential exactly (for h ω < 2), so the
    /// variance of independent end points must match s²/β (whatever u₀ and the masses) within
    /// its sampling error: the variance of a variance estimate from n normal draws is 2σ⁴/n.
    #[test]
    fn baoab_matches_the_gaussian_variance() {
        let s2 = vec![1.0, 0.25, 4.0, 0.5];
        let masses = [1.0, 3.0, 0.5, 2.0];
        let target = Harmonic { s2: s2.clone() };
        // energy unit 2.5 and masses make the frequencies ω_i = sqrt(u₀ / (m_i s_i²)) differ;
        // h ω_max = 0.05 · sqrt(2.5 / (3 · 0.25)) ≈ 0.09.
        let lang = Langevin::new(0.05, 1.0, 2.5, &masses, 1).unwrap();
        let beta = 0.5;
        let n_chains = 4000;
        let steps = 400; // ≥ 20 / γ and many periods: end points are decorrelated from x = 0
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut sums = [0.0; 4];
        for _ in 0..n_chains {
            let mut s = lang.init_state(&target, vec![0.0; 4], beta, &mut rng);
            for _ in 0..steps {
                assert!(lang.step(&target, beta, &mut s, &mut rng));
            }
            for (acc, x) in sums.iter_mut().zip(&s.x) {
                *acc += x * x;
            }
        }
        for (i, (acc, s2)) in sums.iter().zip(&s2).enumerate() {
            let var = acc / n_chains as f64;
            let want = s2 / beta;
            let tol = 5.0 * want * (2.0 / n_chains as f64).sqrt();
            assert!(
                (var - want).abs() < tol,
                "coordinate {i}: {var} vs {want} ± {tol}"
            );
        }
    }

    /// Without friction BAOAB is velocity Verlet: the total energy u₀E + ½ m v² stays close to
    /// its initial value (bounded O(h²) oscillation, no drift).
    #[test]
    fn zero_friction_conserves_energy() {
        let target = Harmonic {
            s2: vec![1.0, 2.0, 0.3],
        };
        let lang = Langevin::new(0.01, 0.0, 1.5, &[1.0, 2.0, 0.7], 1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = lang.init_state(&target, vec![1.0, -0.5, 0.2], 1.0, &mut rng);
        let total = |s: &LangevinState| {
            1.5 * s.energy
                + 0.5
                    * s.v
                        .iter()
                        .zip(&lang.inv_mass)
                        .map(|(v, im)| v * v / im)
                        .sum::<f64>()
        };
        let h0 = total(&s);
        let mut max_dev: f64 = 0.0;
        for _ in 0..10_000 {
            lang.step(&target, 1.0, &mut s, &mut rng);
            max_dev = max_dev.max((total(&s) - h0).abs());
        }
        // ω_max h = sqrt(1.5 / (0.7 · 0.3)) · 0.01 ≈ 0.027: relative error ~ (ωh)²/8 < 1e-3
        assert!(max_dev < 1e-3 * h0, "{max_dev} vs {h0}");
    }

    #[test]
    fn invalid_parameters() {
        assert!(Langevin::new(0.0, 1.0, 1.0, &[1.0], 3).is_err());
        assert!(Langevin::new(0.1, -1.0, 1.0, &[1.0], 3).is_err());
        assert!(Langevin::new(0.1, 1.0, 1.0, &[0.0], 3).is_err());
        assert!(Langevin::new(0.1, 1.0, 1.0, &[], 3).is_err());
        assert_eq!(
            Langevin::new(0.1, 1.0, 1.0, &[1.0, 2.0], 3).unwrap().dim(),
            6
        );
        let mut cfg = RemdConfig {
            temperatures: vec![1.0, 2.0],
            steps_per_exchange: 1,
            warmup_rounds: 0,
            n_samples: 1,
            record_every: 1,
            seed: 0,
        };
        assert!(cfg.validate().is_ok());
        cfg.temperatures = vec![1.0, 0.5];
        assert!(cfg.validate().is_err());
        cfg.temperatures = vec![2.0];
        assert!(cfg.validate().is_err());
    }

    /// REMD on a Gaussian: every replica samples it exactly, so the target-replica samples
    /// have variance s² (β = 1) whatever the swaps do; samples are recorded every 5 rounds of
    /// 20 steps (5 time units, several relaxation times 2/γ = 2), so they are nearly
    /// independent and the relative error of the variance is ~ sqrt(2/n).
    #[test]
    fn remd_target_replica_has_the_target_variance() {
        let s2 = vec![1.0, 0.5];
        let target = Harmonic { s2: s2.clone() };
        let lang = Langevin::new(0.05, 1.0, 1.0, &[1.0, 1.0], 1).unwrap();
        let cfg = RemdConfig {
            temperatures: vec![1.0, 1.5, 2.25],
            steps_per_exchange: 20,
            warmup_rounds: 50,
            n_samples: 2000,
            record_every: 5,
            seed: 11,
        };
        let res = run_remd(
            &target,
            &lang,
            &cfg,
            &[0.0, 0.0],
            &mut crate::progress::Silent,
        )
        .unwrap();
        assert_eq!(res.samples.len(), 2 * cfg.n_samples);
        assert_eq!(res.non_finite, 0);
        let rounds = (cfg.warmup_rounds + cfg.n_samples * cfg.record_every) as u64;
        assert_eq!(res.energy_evals, 3 * (1 + rounds * 20));
        assert!(res.swaps.accepts.iter().all(|&a| a > 0));
        for (i, &want) in s2.iter().enumerate() {
            let var = res
                .samples
                .iter()
                .skip(i)
                .step_by(2)
                .map(|x| x * x)
                .sum::<f64>()
                / cfg.n_samples as f64;
            // residual correlation between records is small; allow 6 σ
            let tol = 6.0 * want * (2.0 / cfg.n_samples as f64).sqrt();
            assert!((var - want).abs() < tol, "{i}: {var} vs {want} ± {tol}");
        }
    }
}
