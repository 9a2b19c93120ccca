//! Starting points: Gaussian draws with a minimum particle spacing, then a short descent.

use crate::error::McmcError;
use crate::kernel::project;
use diffsamp_energy::Energy;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How each replica of each chain is initialised.
///
/// 1. Draw x ~ N(0, scale² I). Particle systems: particles are placed one at a time and a
///    draw is redrawn while it lies closer than `min_spacing` to an already placed particle
///    (after 1000 failed draws the scale grows by 10 % and placement restarts), so LJ never
///    starts with overlapping particles; then the COM is removed.
/// 2. `minimise_steps` steps of steepest descent with a trust region: the particle (or
///    coordinate, for plain vectors) with the largest force moves by δ ≤ `minimise_step`;
///    a step that raises the energy is refused and halves δ, an accepted one grows it by 20 %.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Standard deviation of the initial draw per coordinate (> 0, default 1).
    pub scale: f64,
    /// Minimum distance between particles at the start (≥ 0, default 0.8; particle systems
    /// only, same length unit as the energy).
    pub min_spacing: f64,
    /// Descent steps after the draw (default 50; 0 disables).
    pub minimise_steps: usize,
    /// Largest displacement of one particle in one descent step (> 0, default 0.05).
    pub minimise_step: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            scale: 1.0,
            min_spacing: 0.8,
            minimise_steps: 50,
            minimise_step: 0.05,
        }
    }
}

impl InitConfig {
    /// Checks the ranges documented on the fields.
    pub fn validate(&self) -> Result<(), McmcError> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(McmcError::invalid(
                "init.scale",
                self.scale,
                "must be finite and > 0",
            ));
        }
        if !(self.min_spacing.is_finite() && self.min_spacing >= 0.0) {
            return Err(McmcError::invalid(
                "init.min_spacing",
                self.min_spacing,
                "must be finite and ≥ 0",
            ));
        }
        if !(self.minimise_step.is_finite() && self.minimise_step > 0.0) {
            return Err(McmcError::invalid(
                "init.minimise_step",
                self.minimise_step,
                "must be finite and > 0",
            ));
        }
        Ok(())
    }
}

/// Draws a starting point (step 1 of [`InitConfig`]); zero-COM for particle systems.
pub fn draw_start<R: Rng>(energy: &dyn Energy, cfg: &InitConfig, rng: &mut R) -> Vec<f64> {
    let dim = energy.dim();
    let mut x = vec![0.0; dim];
    match energy.particles() {
        Some(p) if cfg.min_spacing > 0.0 && p.n > 1 => {
            let s = p.spatial;
            let min2 = cfg.min_spacing * cfg.min_spacing;
            let mut scale = cfg.scale;
            'restart: for _ in 0..200 {
                for i in 0..p.n {
                    let mut placed = false;
                    for _ in 0..1000 {
                        for a in &mut x[i * s..(i + 1) * s] {
                            *a = scale * rng.sample::<f64, _>(rand_distr::StandardNormal);
                        }
                        let (before, cur) = x.split_at(i * s);
                        let cur = &cur[..s];
                        let ok = before.chunks_exact(s).all(|q| {
                            q.iter()
                                .zip(cur)
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum::<f64>()
                                >= min2
                        });
                        if ok {
                            placed = true;
                            break;
                        }
                    }
                    if !placed {
                        scale *= 1.1;
                        continue 'restart;
                    }
                }
                break;
            }
            p.remove_com(&mut x);
        }
        particles => {
            for a in x.iter_mut() {
                *a = cfg.scale * rng.sample::<f64, _>(rand_distr::StandardNormal);
            }
            project(particles, &mut x);
        }
    }
    x
}

/// Trust-region steepest descent (step 2 of [`InitConfig`]) in place; returns the number of
/// energy+gradient evaluations. Stops early when the energy or gradient is non-finite.
pub fn minimise(energy: &dyn Energy, x: &mut [f64], steps: usize, max_step: f64) -> u64 {
    if steps == 0 {
        return 0;
    }
    let particles = energy.particles();
    let block = particles.map_or(1, |p| p.spatial);
    let dim = x.len();
    let mut g = vec![0.0; dim];
    let mut g_trial = vec![0.0; dim];
    let mut trial = vec![0.0; dim];
    let mut e = energy.energy_grad(x, &mut g);
    project(particles, &mut g);
    let mut evals = 1;
    let mut delta = max_step;
    for _ in 0..steps {
        if !e.is_finite() || !g.iter().all(|v| v.is_finite()) {
            break;
        }
        let g_max = g
            .chunks_exact(block)
            .map(|c| c.iter().map(|v| v * v).sum::<f64>().sqrt())
            .fold(0.0, f64::max);
        if g_max == 0.0 {
            break;
        }
        let s = delta / g_max;
        for ((t, &xi), &gi) in trial.iter_mut().zip(x.iter()).zip(&g) {
            *t = xi - s * gi;
        }
        project(particles, &mut trial);
        let e_trial = energy.energy_grad(&trial, &mut g_trial);
        evals += 1;
        project(particles, &mut g_trial);
        if e_trial.is_finite() && g_trial.iter().all(|v| v.is_finite()) && e_trial <= e {
            x.copy_from_slice(&trial);
            std::mem::swap(&mut g, &mut g_trial);
            e = e_trial;
            delta = (delta * 1.2).min(max_step);
        } else {
            delta *= 0.5;
        }
    }
    evals
}
