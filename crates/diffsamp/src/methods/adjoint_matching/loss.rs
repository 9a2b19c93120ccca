//! The Adjoint Matching loss (REFERENCE §2.3):
//!
//! ℓ_i = Σ_{k ∈ S} ‖u_θ(t_k, X_k^i) + σ_k ã_k^i‖²,   u_θ = 2 δ_θ / σ_k,   L = mean_i min(ℓ_i, c),
//!
//! with S a subset of the K control steps (random early steps with t_k ≤ t_max plus the last
//! few) and c a running high quantile of ℓ (per-sample clipping).

use crate::error::{Error, Result};
use crate::methods::adjoint_matching::{Memoryless, Trajectory};
use crate::nn::Control;
use diffsamp_metrics::SortedFinite;
use rand::seq::index::sample as sample_indices;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which steps of a trajectory enter the loss: random steps from the early part t ≤ t_e and
/// from the late part t > t_e of the grid.
///
/// The paper's recipe at K = 40 (10 random steps with t ≤ 0.725 plus the last 10) is the case
/// where the late part has exactly 10 steps. On a finer grid "the last 10" would leave
/// t ∈ (0.725, 1 − 10/K) out of every loss (at K = 200: t up to 0.95, where δ_θ is then never
/// fitted), so the late steps are drawn from the whole late part instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSteps {
    /// Distinct random steps drawn per iteration among those with t_k ≤ `early_t_max`
    /// (paper: 10).
    pub early: usize,
    /// Upper time t_e of the early part (paper: 0.725).
    pub early_t_max: f64,
    /// Distinct random steps drawn per iteration among those with t_k > `early_t_max`, all of
    /// them when there are no more (paper: 10, the last 10 of K = 40).
    pub late: usize,
}

impl Default for LossSteps {
    fn default() -> Self {
        Self {
            early: 10,
            early_t_max: 0.725,
            late: 10,
        }
    }
}

impl LossSteps {
    /// Checks the subset against a schedule of K steps; errors name the key.
    pub fn validate(&self, schedule: &Memoryless) -> Result<()> {
        let bad = |key: &str, why: String| {
            Err(Error::Config {
                key: key.into(),
                why,
            })
        };
        if !(0.0..=1.0).contains(&self.early_t_max) {
            return bad(
                "early_t_max",
                format!("{} must lie in [0, 1]", self.early_t_max),
            );
        }
        let pool = self.early_pool(schedule);
        if self.early > pool {
            return bad(
                "early",
                format!(
                    "{} early steps asked, but only {pool} of the K = {} steps have t ≤ {}",
                    self.early, schedule.steps, self.early_t_max
                ),
            );
        }
        if self.early.min(pool) + self.late.min(schedule.steps - pool) == 0 {
            return bad("late", "the loss needs at least one step".into());
        }
        Ok(())
    }

    /// Number of steps with t_k ≤ early_t_max (they come first on the increasing grid).
    fn early_pool(&self, schedule: &Memoryless) -> usize {
        (0..schedule.steps)
            .filter(|&k| schedule.time(k) <= self.early_t_max + 1e-12)
            .count()
    }

    /// The steps of one iteration, sorted: `early` distinct draws from the early part plus
    /// `late` distinct draws from the late part (the whole late part, without drawing, when
    /// it has at most `late` steps).
    pub fn select(&self, schedule: &Memoryless, rng: &mut impl Rng) -> Vec<usize> {
        let pool = self.early_pool(schedule);
        let mut steps: Vec<usize> = sample_indices(rng, pool, self.early.min(pool)).into_vec();
        let late_pool = schedule.steps - pool;
        if self.late >= late_pool {
            steps.extend(pool..schedule.steps);
        } else {
            steps.extend(
                sample_indices(rng, late_pool, self.late)
                    .into_iter()
                    .map(|i| pool + i),
            );
        }
        steps.sort_unstable();
        steps
    }
}

/// Running clip threshold c ← 0.9 c + 0.1 q_batch, started at the first batch's quantile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningClip {
    /// The quantile q of the per-sample losses tracked (e.g. 0.99).
    pub quantile: f64,
    /// The current threshold (None before the first batch).
    pub threshold: Option<f64>,
}

impl RunningClip {
    /// Updates the threshold with the batch's per-sample losses and returns it.
    pub fn update(&mut self, per_sample: &[f64]) -> f64 {
        let Some(q) = SortedFinite::new(per_sample.iter().copied()).nearest(self.quantile) else {
            return self.threshold.unwrap_or(f64::INFINITY);
        };
        let c = match self.threshold {
            Some(c) => 0.9 * c + 0.1 * q,
            None => q,
        };
        self.threshold = Some(c);
        c
    }
}

/// Per-sample loss ℓ_i `[batch]` on the steps `steps` (one batched forward of δ_θ).
pub fn per_sample_loss(
    residual: &dyn Control,
    schedule: &Memoryless,
    traj: &Trajectory,
    adjoints: &[Tensor],
    steps: &[usize],
) -> Tensor {
    let b = traj.states[0].size()[0];
    let x = Tensor::cat(
        &steps.iter().map(|&k| &traj.states[k]).collect::<Vec<_>>(),
        0,
    );
    let t = Tensor::cat(
        &steps
            .iter()
            .map(|&k| schedule.time_tensor(k, &traj.states[k]))
            .collect::<Vec<_>>(),
        0,
    );
    let sig: Vec<f64> = steps.iter().map(|&k| schedule.sigma(k)).collect();
    let sigma = Tensor::from_slice(&sig)
        .to_kind(x.kind())
        .to_device(x.device())
        .repeat_interleave_self_int(b, 0, None)
        .unsqueeze(1); // [|S| B, 1]
    let a = Tensor::cat(&steps.iter().map(|&k| &adjoints[k]).collect::<Vec<_>>(), 0);
    let u: Tensor = 2.0 * residual.control(&t, &x) / &sigma;
    let r = (u + &sigma * a as Tensor)
        .square()
        .sum_dim_intlist([1].as_slice(), false, x.kind()); // [|S| B]
    r.view([steps.len() as i64, b])
        .sum_dim_intlist([0].as_slice(), false, x.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::{HostNoise, NoiseSource};
    use rand::SeedableRng;
    use tch::{Device, Kind};

    #[test]
    fn step_selection_follows_the_paper_recipe() {
        let m = Memoryless::new(40).unwrap();
        let ls = LossSteps::default();
        ls.validate(&m).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            let s = ls.select(&m, &mut rng);
            assert_eq!(s.len(), 20);
            assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
            assert!(s[..10]
                .iter()
                .all(|&k| m.time(k) <= 0.725 + 1e-12 && k < 30));
            assert_eq!(&s[10..], &(30..40).collect::<Vec<_>>()[..]);
        }
        let too_many = LossSteps {
            early: 31,
            ..LossSteps::default()
        };
        let e = too_many.validate(&m).unwrap_err();
        assert!(matches!(e, Error::Config { key, .. } if key == "early"));
    }

    /// On a finer grid the late draws cover the whole late part t > 0.725, not only the last
    /// 10 steps.
    #[test]
    fn late_steps_cover_the_late_part_of_a_fine_grid() {
        for m in [
            Memoryless::new(200).unwrap(),
            Memoryless::with_grid(100, 2.0).unwrap(),
        ] {
            let ls = LossSteps::default();
            ls.validate(&m).unwrap();
            let first_late = (0..m.steps).find(|&k| m.time(k) > 0.725 + 1e-12).unwrap();
            let mut seen = vec![false; m.steps];
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            for _ in 0..200 {
                let s = ls.select(&m, &mut rng);
                assert_eq!(s.len(), 20);
                assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
                assert!(s[..10].iter().all(|&k| k < first_late));
                assert!(s[10..].iter().all(|&k| k >= first_late));
                s.iter().for_each(|&k| seen[k] = true);
            }
            assert!(seen[first_late..].iter().all(|&v| v), "K = {}", m.steps);
        }
    }

    #[test]
    fn loss_is_zero_at_the_optimal_control_and_matches_the_formula() {
        let m = Memoryless::with_grid(8, 2.0).unwrap();
        let base = |_: &Tensor, x: &Tensor| -x;
        let mut noise = HostNoise::seeded(3);
        let x0 = noise.standard_normal(&[5, 2], Kind::Float, Device::Cpu);
        let traj = m.rollout(&base, None, x0, &mut noise);
        let adj: Vec<Tensor> = (0..=8)
            .map(|k| traj.states[k].shallow_clone() * 0.5)
            .collect();
        // δ* = −σ² ã / 2 makes every term vanish (u = −σ ã).
        let h = m.offset();
        let optimal = move |t: &Tensor, x: &Tensor| {
            let t = t.unsqueeze(1);
            let num: Tensor = 2.0 * (1.0 + h - &t);
            let sigma2 = num / (t + h);
            -(sigma2 * x * 0.25)
        };
        let steps = [1usize, 4, 7];
        let l = per_sample_loss(&optimal, &m, &traj, &adj, &steps);
        assert!(l.abs().max().double_value(&[]) < 1e-6);
        // δ = 0: ℓ_i = Σ_k σ_k² ‖ã_k^i‖².
        let zero = |_: &Tensor, x: &Tensor| x.zeros_like();
        let l = per_sample_loss(&zero, &m, &traj, &adj, &steps);
        for i in 0..5 {
            let expect: f64 = steps
                .iter()
                .map(|&k| {
                    m.sigma(k).powi(2) * adj[k].get(i).square().sum(Kind::Double).double_value(&[])
                })
                .sum();
            assert!((l.double_value(&[i]) - expect).abs() < 1e-4 * expect, "{i}");
        }
    }

    #[test]
    fn running_clip_tracks_a_quantile() {
        let mut c = RunningClip {
            quantile: 0.9,
            threshold: None,
        };
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(c.update(&v), 90.0);
        let w: Vec<f64> = (0..=100).map(|x| 2.0 * x as f64).collect();
        assert!((c.update(&w) - (0.9 * 90.0 + 0.1 * 180.0)).abs() < 1e-12);
    }
}
